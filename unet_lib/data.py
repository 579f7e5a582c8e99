"""The course's data: synthetic microscopy-like cells (``ToyCells``, trained on a CPU in about a
minute), the paper's targets made from instances, and the real nuclei image of notebooks 10 and 11.

H, W = height, width.

The paper's hardest case is touching cells of the same class: a semantic mask alone would merge
them, so the ground truth puts a thin line of background between them (Sec. 3, Fig. 3) and the
weight map (``unet_lib.weights``) makes that line count. ``ToyCells`` draws cells that are often
pressed together, with textured interiors, an uneven background, blur and noise, so that a
threshold on intensity does not separate them.

API
---
* ``ToyCells(n, size=128, seed=0, n_cells=(6, 12), radius=(8.0, 15.0), touching=0.7,
  noise=0.06, w0=10.0, sigma=5.0, class_weights="balanced")``: a ``torch.utils.data.Dataset``;
  ``ds[i]`` is a dict with ``image`` float32 (1, H, W) in [0, 1], ``instances`` int64 (H, W)
  (0 = background), ``mask`` int64 (H, W) in {0, 1} with the borders between touching cells set
  to background, ``weight_map`` float32 (H, W) (Eq. 2). Sample i depends only on (seed, i).
* ``draw_cells(size, rng, ...) -> (image, instances)``: one sample as numpy arrays. A crowded
  image holds fewer cells than drawn: impossible settings are refused, and a sample with fewer
  than half of the fewest cells asked for is warned about with the number placed.
* ``touching_borders(instances) -> bool (H, W)``: cell pixels with a pixel of another cell among
  their 8 neighbours.
* ``separate_touching(instances) -> int64 (H, W)``: instances with those pixels set to 0.
* ``instances_to_mask(instances) -> int64 (H, W)``: the paper's semantic ground truth.
* ``interior_border_classes(instances, width=2) -> int64 (H, W)``: a three-class target, 0 =
  background, 1 = cell interior, 2 = the cell's own border ring (the alternative to the weight map
  for touching cells; ``unet_lib.metrics.instances_from_classes`` turns a prediction back into cells).
* ``targets_from_instances(instances, w0=10.0, sigma=5.0, class_weights="balanced")
  -> (mask int64 (H, W), weight_map float32 (H, W))``, numpy: what ``ToyCells`` computes from
  its instances; use it after augmenting ``instances`` (``unet_lib.augment``) so that mask and
  weight map match the augmented image.
"""

import math
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from .shipped import course_data_dir
from .validate import (check_finite, check_index, check_int, check_number, check_pair,
                       check_probability, check_rng, check_seed)
from .weights import ClassWeights, _as_labels, _check_class_weights, _check_w0_sigma, unet_weight_map

__all__ = [
    "ToyCells", "draw_cells", "touching_borders", "touching_fraction", "separate_touching", "instances_to_mask",
    "targets_from_instances", "interior_border_classes", "percentile_normalize", "load_real_nuclei",
    "real_nuclei_crops",
]


# -- ground truth from instances -------------------------------------------------------------

def touching_borders(instances) -> np.ndarray:
    """Cell pixels that have a pixel of a *different* cell among their 8 neighbours.

    (H, W) integer labels in, bool (H, W) out. Both sides of a contact are marked, so the
    separating line is 2 pixels wide and does not depend on which cell has the larger id.
    """
    instances = _as_labels(instances)
    labels = instances.astype(np.int64)
    # a neighbour with a larger id, or a smaller non-zero id (background made "infinitely large")
    larger = ndimage.maximum_filter(labels, size=3, mode="nearest") > labels
    # (not iinfo.max: scipy's minimum_filter overflows on it)
    no_background = np.where(labels == 0, labels.max(initial=0) + 1, labels)
    smaller = ndimage.minimum_filter(no_background, size=3, mode="nearest") < labels
    return (labels > 0) & (larger | smaller)


def touching_fraction(instances) -> float:
    """The fraction of the cells in ``instances`` ((H, W) integer labels, 0 = background) that
    touch another cell: that have a pixel on ``touching_borders``. 0.0 for an image without cells.
    Counts the ids present, so labels need not be consecutive."""
    labels = _as_labels(instances).astype(np.int64)
    cells = np.unique(labels[labels > 0])
    if cells.size == 0:
        return 0.0
    touching = np.unique(labels[touching_borders(labels)])
    return float(touching.size / cells.size)


def separate_touching(instances) -> np.ndarray:
    """``instances`` with the pixels on the borders between touching cells set to background.
    (H, W) in, int64 (H, W) out; ids are kept."""
    labels = _as_labels(instances).astype(np.int64)
    return np.where(touching_borders(labels), 0, labels)


def instances_to_mask(instances) -> np.ndarray:
    """The paper's semantic ground truth: 1 on cells, 0 on background *and* on the borders
    between touching cells, so that touching cells stay separate. int64 (H, W)."""
    return (separate_touching(instances) > 0).astype(np.int64)


def targets_from_instances(instances, w0: float = 10.0, sigma: float = 5.0,
                           class_weights: ClassWeights = "balanced") -> tuple[np.ndarray, np.ndarray]:
    """(mask, weight_map) for an (H, W) label image: mask int64 (H, W) in {0, 1} (borders between
    touching cells are background), weight_map float32 (H, W) = Eq. 2 on the separated cells."""
    separated = separate_touching(instances)
    mask = (separated > 0).astype(np.int64)
    return mask, unet_weight_map(separated, w0=w0, sigma=sigma, class_weights=class_weights)


def interior_border_classes(instances, width: int = 2) -> np.ndarray:
    """A three-class target from (H, W) instances: 0 = background, 1 = cell interior, 2 = border.

    The border of a cell is its own outer ring, ``width`` pixels thick: every cell pixel with a
    pixel of another label (background or another cell) within ``width`` pixels (a (2 width + 1)
    square). Touching cells are then two interiors with two border rings between them, so a
    network that predicts the interior class keeps them apart without the weight map of Eq. 2
    (not in the paper; a common alternative, e.g. in the 2018 Data Science Bowl). int64 (H, W).
    """
    labels = _as_labels(instances).astype(np.int64)
    width = check_int("width", width, min=1, hint="the thickness of the border ring in pixels, e.g. 2")
    size = 2 * width + 1
    # a different label within the window: a larger one, or a smaller one (background included)
    other = ((ndimage.maximum_filter(labels, size=size, mode="nearest") != labels)
             | (ndimage.minimum_filter(labels, size=size, mode="nearest") != labels))
    return np.where(labels == 0, 0, np.where(other, 2, 1)).astype(np.int64)


# -- drawing cells ---------------------------------------------------------------------------

def _place_cells(size: int, n: int, radius: tuple[float, float], touching: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Centres (n, 2) and mean radii (n,). With probability ``touching`` a cell is put against an
    existing one, overlapping it a little, so the two end up pressed together."""
    centres, radii = [], []
    for _ in range(n):
        r = rng.uniform(*radius)
        for _attempt in range(20):
            if centres and rng.random() < touching:
                j = rng.integers(len(centres))
                angle = rng.uniform(0, 2 * math.pi)
                gap = (radii[j] + r) * rng.uniform(0.75, 0.95)     # < r_i + r_j: they overlap
                c = centres[j] + gap * np.array([math.sin(angle), math.cos(angle)])
            else:
                c = rng.uniform(r, size - r, 2)
            # keep the centre inside the image and away from other centres (no swallowed cells)
            inside = np.all(c >= r * 0.5) and np.all(c <= size - r * 0.5)
            apart = all(np.hypot(*(c - cj)) > 0.7 * (r + rj) for cj, rj in zip(centres, radii))
            if inside and apart:
                centres.append(c)
                radii.append(r)
                break
    return np.array(centres).reshape(-1, 2), np.array(radii)


def _smooth_noise(size: int, grid: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size) noise with features about size / grid pixels across: white noise on a
    coarse grid x grid lattice, interpolated bicubically; zero mean, unit standard deviation."""
    coarse = rng.standard_normal((grid, grid))
    field = ndimage.zoom(coarse, size / grid, order=3, mode="reflect", grid_mode=True)[:size, :size]
    return (field - field.mean()) / (field.std() + 1e-12)


def _check_draw_settings(size, n_cells, radius, touching, noise) -> tuple:
    """The settings of ``draw_cells`` and ``ToyCells``, checked by name; returns them as plain numbers."""
    size = check_int("size", size, min=16, hint="size is in pixels")
    n_cells = check_pair("n_cells", n_cells, "integer", hint="(min, max) cells per image, e.g. (6, 12)")
    if not 1 <= n_cells[0] <= n_cells[1]:
        raise ValueError(f"n_cells must be (min, max) with 1 <= min <= max, got {n_cells!r}")
    radius = check_pair("radius", radius, hint="(min, max) mean cell radius in pixels, e.g. (8.0, 15.0)")
    if not 2 <= radius[0] <= radius[1] <= size / 3:
        raise ValueError(f"radius must be (min, max) with 2 <= min <= max <= size/3 = {size / 3:.0f}, "
                         f"got {radius!r}")
    most = _most_cells(size, radius[0])
    if n_cells[0] > most:
        raise ValueError(f"n_cells={n_cells!r} asks for at least {n_cells[0]} cells, but at most {most} cells of "
                         f"radius >= {radius[0]:g} fit in a {size}x{size} image (their centres stay at least "
                         f"0.7 (r_i + r_j) apart; a random placement finds room for far fewer); ask for fewer "
                         f"cells, smaller radii or a larger size")
    touching = check_probability("touching", touching, hint="touching is a probability")
    noise = check_number("noise (a standard deviation)", noise, min=0.0)
    return size, n_cells, radius, touching, noise


def _most_cells(size: int, min_radius: float) -> int:
    """An upper bound on the cells that ``_place_cells`` can put in a size x size image: centres
    lie in [r/2, size - r/2] and at least 0.7 (r_i + r_j) >= 1.4 r_min apart, so disks of radius
    0.7 r_min around them are disjoint and inside a square of side size + 0.4 r_min."""
    return int((size + 0.4 * min_radius) ** 2 / (math.pi * (0.7 * min_radius) ** 2))


def _crowded(placed: int, n_cells: tuple[int, int]) -> bool:
    """Fewer than half of the fewest cells asked for found room: the image is not what was
    asked for. (The course's own small images place fewer cells than drawn, never this few.)"""
    return placed < n_cells[0] / 2


def _crowded_message(what: str, placed: int, n: int, size: int, n_cells, radius) -> str:
    return (f"{what}: only {placed} of the {n} cells drawn from n_cells={tuple(n_cells)!r} found room in the "
            f"{size}x{size} image (radius={tuple(radius)!r}; each cell gets 20 tries at a free place), fewer than "
            f"half of the fewest asked for; ask for fewer cells, smaller radii or a larger size")


def draw_cells(size: int, rng: np.random.Generator, n_cells: tuple[int, int] = (6, 12),
               radius: tuple[float, float] = (8.0, 15.0), touching: float = 0.7,
               noise: float = 0.06) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic image: (image float32 (H, W) in [0, 1], instances int64 (H, W)), H = W = size.

    Each cell is an irregular ellipse: a random ellipse whose radius wobbles with angle (2nd to
    4th harmonics). Where cells overlap, a pixel goes to the cell whose (normalised) centre is
    nearest, which gives pressed-together cells with a shared straight-ish border. Every cell is
    darker along its outline, the shared borders included: a faint line, as between real cells.

    A crowded image holds fewer cells than drawn (each new cell gets 20 tries at a free place).
    Raises ``ValueError`` when even the fewest cells asked for cannot fit, and warns, with the
    number placed, when fewer than half of them found room.
    """
    size, n_cells, radius, touching, noise = _check_draw_settings(size, n_cells, radius, touching, noise)
    check_rng("rng", rng)
    image, instances, n, placed = _draw_cells(size, rng, n_cells, radius, touching, noise)
    if _crowded(placed, n_cells):
        warnings.warn(_crowded_message("draw_cells", placed, n, size, n_cells, radius), stacklevel=2)
    return image, instances


def _draw_cells(size: int, rng: np.random.Generator, n_cells: tuple[int, int], radius: tuple[float, float],
                touching: float, noise: float) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``draw_cells`` on checked settings, without its warning: (image, instances, the number of
    cells drawn, the number placed)."""
    n = int(rng.integers(n_cells[0], n_cells[1] + 1))
    centres, radii = _place_cells(size, n, radius, touching, rng)
    # rho_i(x) < 1 inside cell i: the distance from its centre, normalised by its radius at
    # that angle. Each cell is computed only in a box around it and kept where it is the nearest
    # so far: memory stays O(H W) however many cells there are (a 1024x1024 image with 500 cells
    # would need 4 GB as one (cells, H, W) array)
    rho_min = np.full((size, size), np.inf)                        # (H, W) the nearest cell's rho
    nearest = np.zeros((size, size), dtype=np.int64)              # (H, W) its index
    for i, ((cy, cx), r) in enumerate(zip(centres, radii)):
        theta = rng.uniform(0, math.pi)
        aspect = rng.uniform(0.7, 1.0)
        phases = rng.uniform(0, 2 * math.pi, 3)
        amplitudes = rng.uniform(0, 0.08, 3)
        reach = int(math.ceil(1.25 * r)) + 1                       # rho < 1.01 lies inside
        top, left = max(int(cy) - reach, 0), max(int(cx) - reach, 0)
        bottom, right = min(int(cy) + reach + 1, size), min(int(cx) + reach + 1, size)
        dy, dx = np.mgrid[top:bottom, left:right].astype(np.float64)
        dy, dx = dy - cy, dx - cx
        u = dx * math.cos(theta) + dy * math.sin(theta)          # along the long axis
        v = (-dx * math.sin(theta) + dy * math.cos(theta)) / aspect
        angle = np.arctan2(v, u)
        wobble = 1 + sum(a * np.cos(k * angle + p) for a, k, p in zip(amplitudes, (2, 3, 4), phases))
        rho = np.hypot(u, v) / (r * wobble)
        box = (slice(top, bottom), slice(left, right))
        closer = rho < rho_min[box]                               # ties go to the earlier cell
        rho_min[box] = np.where(closer, rho, rho_min[box])
        nearest[box] = np.where(closer, i, nearest[box])
    instances = np.where(rho_min < 1, nearest + 1, 0).astype(np.int64)
    # a cell hidden by its neighbours leaves a gap in the ids: renumber 1..n
    ids = np.unique(instances)
    instances = np.searchsorted(ids, instances) if ids[0] == 0 else np.searchsorted(ids, instances) + 1

    # image: uneven background, cells of varied brightness with textured interiors and darker rims
    background = 0.22 + 0.06 * _smooth_noise(size, max(4, round(size / 32)), rng)   # blobs ~32 px
    brightness = np.concatenate([[0.0], rng.uniform(0.5, 0.8, len(radii))])
    texture = ndimage.gaussian_filter(0.2 * rng.standard_normal((size, size)), 1.5)   # std ~0.04
    # the rim darkens towards each cell's own outline, also where it meets a neighbour (two
    # membranes pressed together): without it a contact between overlapping cells would be
    # invisible, and its ground truth a guess that no one could make from the image
    outline = (ndimage.maximum_filter(instances, 3) != ndimage.minimum_filter(instances, 3)) & (instances > 0)
    to_outline = ndimage.distance_transform_edt(~outline)         # (H, W) pixels to the nearest outline
    rim = np.minimum(np.clip(1 - 0.35 * rho_min**4, 0, 1), 1 - 0.35 * np.exp(-to_outline / 2))
    cells = brightness[instances] * rim + texture
    image = np.where(instances > 0, cells, background)
    image = ndimage.gaussian_filter(image, 1.0)                  # the microscope's blur
    image = image + noise * rng.standard_normal((size, size))
    return np.clip(image, 0, 1).astype(np.float32), instances, n, len(radii)


class ToyCells(Dataset):
    """``n`` synthetic cell images, generated on access: sample i depends only on (seed, i).

    ``ds[i]`` is a dict with
    ``image`` float32 (1, H, W) in [0, 1], ``instances`` int64 (H, W) (0 = background, cells
    1, 2, ...), ``mask`` int64 (H, W) in {0, 1} (the borders between touching cells are
    background, as in the paper's ground truth) and ``weight_map`` float32 (H, W) (Eq. 2 with
    ``w0``, ``sigma``, ``class_weights``). H = W = ``size``.

    Knobs: ``n_cells`` (min, max) cells per image, ``radius`` (min, max) mean cell radius in
    pixels, ``touching`` the probability that a new cell is placed against an existing one,
    ``noise`` the standard deviation of the added Gaussian noise. The defaults give 128x128
    images with about 9 cells, most of them touching another. Settings whose fewest cells cannot
    fit are refused (``ValueError``); when fewer than half of them find room in a sample, a
    warning names the sample and the number placed (once per dataset).
    """

    def __init__(self, n: int, size: int = 128, seed: int = 0, n_cells: tuple[int, int] = (6, 12),
                 radius: tuple[float, float] = (8.0, 15.0), touching: float = 0.7, noise: float = 0.06,
                 w0: float = 10.0, sigma: float = 5.0, class_weights: ClassWeights = "balanced"):
        n = check_int("n (the number of samples)", n, min=1)
        size, n_cells, radius, touching, noise = _check_draw_settings(size, n_cells, radius, touching, noise)
        seed = check_seed("seed", seed)
        w0, sigma = _check_w0_sigma(w0, sigma)
        if not isinstance(class_weights, str) or class_weights != "balanced":
            _check_class_weights(class_weights)
        self.n, self.size, self.seed = n, size, seed
        self.draw_kwargs = dict(n_cells=tuple(n_cells), radius=tuple(radius), touching=touching, noise=noise)
        self.target_kwargs = dict(w0=w0, sigma=sigma, class_weights=class_weights)
        self._warned_crowded = False

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        i = check_index("index", i, self.n, "ToyCells")
        rng = np.random.default_rng([self.seed, i])              # sample i depends only on (seed, i)
        image, instances, drawn, placed = _draw_cells(self.size, rng, **self.draw_kwargs)
        if _crowded(placed, self.draw_kwargs["n_cells"]) and not self._warned_crowded:
            self._warned_crowded = True                          # once per dataset, not once per sample
            warnings.warn(_crowded_message(f"ToyCells sample {i} (later samples are not warned about)", placed,
                                           drawn, self.size, **{k: self.draw_kwargs[k] for k in ("n_cells", "radius")}),
                          stacklevel=2)
        mask, weight_map = targets_from_instances(instances, **self.target_kwargs)
        return {
            "image": torch.from_numpy(image)[None],               # (1, H, W)
            "instances": torch.from_numpy(instances),             # (H, W)
            "mask": torch.from_numpy(mask),                       # (H, W)
            "weight_map": torch.from_numpy(weight_map),           # (H, W)
        }


# -- a real image: nuclei from the 2018 Data Science Bowl --------------------------------------

# the course's files (the checkout's data/ folder, installed as unet_course_data; unet_lib.shipped);
# the files and their provenance: data/README.md
DATA_DIR = course_data_dir()
REAL_NUCLEI_FILES = {"image": "dsb2018_img2d.npz", "instances": "dsb2018_mask2d.npz"}


def percentile_normalize(image, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Map the ``low`` and ``high`` percentiles of ``image`` to 0 and 1, clip to [0, 1].

    Any shape in, float32 of the same shape out. Percentiles rather than min and max, so that
    a few saturated pixels do not squeeze every nucleus into the bottom of the range.
    """
    low, high = check_number("low", low), check_number("high", high)
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got low={low:g}, high={high:g}")
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    image = np.asarray(image) if isinstance(image, (np.ndarray, list, tuple)) else image
    if not isinstance(image, np.ndarray) or image.size == 0 or image.dtype.kind not in "iuf":
        what = (f"shape {image.shape}, dtype {image.dtype}" if isinstance(image, np.ndarray)
                else type(image).__name__)
        raise ValueError(f"percentile_normalize needs a non-empty real-valued image, got {what}")
    # one NaN pixel would make every percentile NaN, and so the whole image
    check_finite("image", image, "percentiles of an image with NaN are NaN; replace them first, e.g. np.nan_to_num")
    lo, hi = np.percentile(image.astype(np.float64), [low, high])
    if hi <= lo:
        raise ValueError(f"the {low} and {high} percentiles of the image are both {lo:g}; "
                         f"there is no contrast to stretch (widen the percentiles)")
    return np.clip((image - lo) / (hi - lo), 0, 1).astype(np.float32)


def load_real_nuclei(low: float = 1.0, high: float = 99.8,
                     data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The real image of notebook 10: 125 manually annotated fluorescence nuclei, 512x512.

    Returns ``(image, instances)``, like ``draw_cells``: ``image`` float32 (H, W) in [0, 1]
    (``percentile_normalize`` with ``low``, ``high``) and ``instances`` int64 (H, W), 0 =
    background, nuclei 1..125 (the file's ids 1..183 with gaps, renumbered in the same order).
    H = W = 512. From BBBC038 / the 2018 Data Science Bowl, CC0; ``data_dir`` defaults to the
    checkout's data/ folder, whose README.md says where the files came from.
    """
    for name, value in (("low", low), ("high", high)):
        check_number(name, value, min=0.0, max=100.0, hint="a percentile")
    if data_dir is not None and not isinstance(data_dir, (str, Path)):
        raise TypeError(f"data_dir must be a folder (str or pathlib.Path) or None, got {type(data_dir).__name__}")
    data_dir = DATA_DIR if data_dir is None else Path(data_dir)
    arrays = {}
    for key, name in REAL_NUCLEI_FILES.items():
        path = data_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; it ships with the course repository "
                                    f"(see data/README.md to re-create it from the stardist wheel)")
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays[key] = f[key]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ValueError(f"{path} could not be read as a .npz file holding the array {key!r} ({reason}); "
                             f"it ships with the course repository (see data/README.md to re-create it "
                             f"from the stardist wheel)") from None
    image = percentile_normalize(arrays["image"], low, high)
    ids, inverse = np.unique(arrays["instances"], return_inverse=True)
    instances = inverse.reshape(arrays["instances"].shape).astype(np.int64)
    if ids[0] != 0:                        # no background pixel: the first id becomes 1, not 0
        instances += 1
    return image, instances


def real_nuclei_crops(size: int = 128, columns: tuple[int, int] = (0, 256),
                      data_dir: str | Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The real nuclei image cut into ``size`` x ``size`` crops, as files of your own would hold them.

    Returns ``{stem: (image, instances)}`` in row-major order of the crops, stems
    ``"nuclei_y{top:03d}_x{left:03d}"``: ``image`` uint8 (size, size), the stored grey values
    (0..235, not normalised: what a microscope wrote), ``instances`` uint16 (size, size), the
    nuclei in the crop relabelled 1..n (a nucleus cut by a crop's edge is a nucleus of each crop).
    Only the columns ``columns[0]`` to ``columns[1] - 1`` are cut: the default is the left half,
    notebook 10's training half (the right half, columns 256..511, is held out for evaluation).
    """
    size = check_int("size", size, min=1, max=512, hint="the crop side in pixels, e.g. 128")
    left, right = check_pair("columns", columns, "integer")
    if 512 % size:
        raise ValueError(f"size must divide 512 (the image's height), got {size}; e.g. 64, 128 or 256")
    if not 0 <= left < right <= 512 or (right - left) % size:
        raise ValueError(f"columns must be (left, right) with 0 <= left < right <= 512 and right - left a multiple "
                         f"of size={size}, got {columns!r}")
    data_dir = DATA_DIR if data_dir is None else Path(data_dir)
    with np.load(data_dir / REAL_NUCLEI_FILES["image"], allow_pickle=False) as f:
        raw = f["image"]                                               # (512, 512) uint16, values 0..235
    _, instances = load_real_nuclei(data_dir=data_dir)                 # (512, 512) int64, 1..125
    crops = {}
    for top in range(0, 512, size):
        for x in range(left, right, size):
            window = np.s_[top : top + size, x : x + size]
            ids, inverse = np.unique(instances[window], return_inverse=True)
            labels = inverse.reshape(size, size) + (0 if ids[0] == 0 else 1)   # 1..n, 0 stays background
            crops[f"nuclei_y{top:03d}_x{x:03d}"] = (raw[window].astype(np.uint8), labels.astype(np.uint16))
    return crops
