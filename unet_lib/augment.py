"""Joint image/label augmentation, with the paper's elastic deformation (Sec. 3.1).

H, W = height, width.

> As for our tasks there is very little training data available, we use excessive data
> augmentation by applying elastic deformations to the available training images. [...]
> We generate smooth deformations using random displacement vectors on a coarse 3 by 3 grid.
> The displacements are sampled from a Gaussian distribution with 10 pixels standard deviation.
> Per-pixel displacements are then computed using bicubic interpolation.

Every geometric transform is applied to the image and the instances together; labels are warped
with nearest-neighbour interpolation so that instance ids survive (no id is ever averaged into a
new one). Compute ``mask`` and ``weight_map`` *after* augmenting, from the augmented instances
(``unet_lib.data.targets_from_instances``): the borders between touching cells move with them.
All randomness comes from an explicit ``numpy.random.Generator``.

API
---
* ``AugmentConfig(flip=True, rotate90=True, elastic=1.0, elastic_sigma=10.0, elastic_grid=3,
  brightness=0.1, contrast=0.2, gamma=0.2)``
* ``augment(image, instances, rng, config=None) -> (image, instances)``: image (1, H, W) or
  (H, W) float, instances (H, W) int; numpy or torch; returns the same shapes, dtypes and kinds
  (a torch image gives torch outputs). Import it as ``from unet_lib.augment import augment``:
  ``unet_lib`` does not re-export it, because the name would hide this module.
* ``elastic_displacement(shape, rng, grid=3, sigma=10.0) -> (coarse, displacement)``: coarse
  (2, grid, grid) and per-pixel (2, H, W) displacements (row, column), float64.
* ``upsample_displacement(coarse, shape) -> (2, H, W)``: the bicubic interpolation.
* ``elastic_deform(image, instances, displacement) -> (image, instances)``, numpy (H, W) each.
* ``Augmented(dataset, seed=0, config=None, w0=10.0, sigma=5.0, class_weights="balanced")``: a
  Dataset that augments ``dataset[i]["image"]`` and ``["instances"]`` on every access and
  recomputes ``mask`` and ``weight_map``; same dict keys, shapes and dtypes as ``ToyCells``.
  Access k of sample i draws from the generator seeded with (seed, i, k): a new deformation
  every epoch, reproducible from the seed (the counts live in the object, so with DataLoader
  workers each worker counts its own accesses; still reproducible with persistent workers).
"""

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch.utils.data import Dataset

from .data import targets_from_instances
from .weights import ClassWeights, _as_labels

__all__ = [
    "AugmentConfig", "augment", "elastic_displacement", "upsample_displacement", "elastic_deform", "Augmented",
]


@dataclass
class AugmentConfig:
    """Which augmentations ``augment`` applies, and how strongly."""
    flip: bool = True              # random horizontal and vertical flips
    rotate90: bool = True          # a random multiple of 90 degrees (0 or 180 for non-square images)
    elastic: float = 1.0           # probability of the elastic deformation
    elastic_sigma: float = 10.0    # std of the coarse displacements in pixels (paper: 10)
    elastic_grid: int = 3          # coarse grid size (paper: 3x3)
    brightness: float = 0.1        # add U(-b, b)
    contrast: float = 0.2          # scale around the mean by U(1 - c, 1 + c)
    gamma: float = 0.2             # image ** exp(U(-g, g)); not in the paper, like the other intensity changes


def _check_rng(rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)), "
                        f"got {type(rng).__name__}; augmentation never uses global random state")


def upsample_displacement(coarse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bicubic interpolation of coarse displacements (2, g, g) to per-pixel ones (2, H, W).

    The g x g grid points sit evenly from corner to corner (``align_corners=True``), so for
    g = 3 they are the four corners, the four edge midpoints and the centre.
    """
    coarse = np.asarray(coarse, dtype=np.float64)
    if coarse.ndim != 3 or coarse.shape[0] != 2:
        raise ValueError(f"coarse displacements must be (2, g, g) (rows, columns), got {coarse.shape}")
    field = F.interpolate(torch.from_numpy(coarse)[None], size=tuple(shape), mode="bicubic",
                          align_corners=True)                    # (1, 2, H, W)
    return field[0].numpy()


def elastic_displacement(shape: tuple[int, int], rng: np.random.Generator, grid: int = 3,
                         sigma: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """The paper's smooth random deformation for an image of ``shape`` (H, W).

    Returns (coarse, displacement): coarse (2, grid, grid) ~ N(0, sigma^2) pixels, and the
    per-pixel displacement (2, H, W) (row, column) interpolated bicubically from it.
    """
    _check_rng(rng)
    if not (isinstance(grid, int) and grid >= 2):
        raise ValueError(f"grid must be an integer >= 2 (the paper uses 3), got {grid!r}")
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0 pixels (the paper uses 10), got {sigma!r}")
    coarse = rng.normal(0.0, sigma, size=(2, grid, grid))
    return coarse, upsample_displacement(coarse, shape)


def elastic_deform(image: np.ndarray, instances: np.ndarray, displacement: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Warp image (H, W) and instances (H, W) with one displacement field (2, H, W): output pixel
    x takes the value at x + displacement(x). The image is interpolated linearly, the labels with
    nearest-neighbour (ids stay ids); both reflect at the border, so they stay aligned."""
    H, W = instances.shape
    if image.shape != (H, W) or displacement.shape != (2, H, W):
        raise ValueError(f"image {image.shape}, instances {instances.shape} and displacement "
                         f"{displacement.shape} must be (H, W), (H, W) and (2, H, W)")
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    coords = np.stack([rows + displacement[0], cols + displacement[1]])   # (2, H, W) where to sample
    warped = ndimage.map_coordinates(image, coords, order=1, mode="reflect")
    labels = ndimage.map_coordinates(instances, coords, order=0, mode="reflect")
    return warped.astype(image.dtype), labels.astype(instances.dtype)


def augment(image, instances, rng: np.random.Generator, config: AugmentConfig | None = None):
    """Randomly flip, rotate by 90 degrees, elastically deform (all jointly) and change the
    intensity (image only) of one sample.

    image (1, H, W) or (H, W) float in [0, 1]; instances (H, W) int labels; numpy arrays or torch
    tensors. Returns (image, instances) with the same shapes, dtypes and kinds; the image is
    clipped to [0, 1]. Then compute mask and weight_map from the returned instances.
    """
    _check_rng(rng)
    config = config or AugmentConfig()
    as_torch = isinstance(image, torch.Tensor)
    img = image.detach().cpu().numpy() if as_torch else np.asarray(image)
    labels = _as_labels(instances)
    channel = img.ndim == 3
    if channel and img.shape[0] != 1:
        raise ValueError(f"image must be (1, H, W) or (H, W), got {img.shape}")
    img2d = img[0] if channel else img
    if img2d.shape != labels.shape:
        raise ValueError(f"image {img.shape} and instances {labels.shape} must have the same H, W")
    dtype, label_dtype = img.dtype, labels.dtype
    img2d = img2d.astype(np.float64)

    # geometry: the same transform for both
    if config.flip:
        if rng.random() < 0.5:
            img2d, labels = img2d[:, ::-1], labels[:, ::-1]
        if rng.random() < 0.5:
            img2d, labels = img2d[::-1], labels[::-1]
    if config.rotate90:
        square = labels.shape[0] == labels.shape[1]
        k = int(rng.integers(4)) if square else 2 * int(rng.integers(2))   # keep the shape
        img2d, labels = np.rot90(img2d, k), np.rot90(labels, k)
    img2d, labels = np.ascontiguousarray(img2d), np.ascontiguousarray(labels)
    if rng.random() < config.elastic:
        _, displacement = elastic_displacement(labels.shape, rng, config.elastic_grid, config.elastic_sigma)
        img2d, labels = elastic_deform(img2d, labels, displacement)

    # intensity: image only (not in the paper, which mentions shift, rotation and gray value variations)
    img2d = np.clip(img2d, 0, 1) ** math.exp(rng.uniform(-config.gamma, config.gamma))
    mean = img2d.mean()
    img2d = (img2d - mean) * rng.uniform(1 - config.contrast, 1 + config.contrast) + mean
    img2d = np.clip(img2d + rng.uniform(-config.brightness, config.brightness), 0, 1)

    img_out = (img2d[None] if channel else img2d).astype(dtype)
    labels = labels.astype(label_dtype)
    if as_torch:
        return torch.from_numpy(img_out), torch.from_numpy(labels)
    if isinstance(instances, torch.Tensor):
        return img_out, torch.from_numpy(labels)
    return img_out, labels


class Augmented(Dataset):
    """Wraps a dataset of dicts with ``image`` (1, H, W) and ``instances`` (H, W) (``ToyCells``):
    each access augments the sample and recomputes ``mask`` and ``weight_map`` from the augmented
    instances, with the dataset's ``w0``, ``sigma`` and ``class_weights`` (its ``target_kwargs``)
    unless they are given here. Returns the same keys as ``ToyCells``: image float32 (1, H, W), instances int64
    (H, W), mask int64 (H, W), weight_map float32 (H, W).

    Access k (k = 0, 1, ...) of sample i uses ``np.random.default_rng([seed, i, k])``: every
    epoch sees a new deformation, and a run with the same seed and order sees the same ones.
    """

    def __init__(self, dataset: Dataset, seed: int = 0, config: AugmentConfig | None = None,
                 w0: float | None = None, sigma: float | None = None, class_weights: ClassWeights | None = None):
        self.dataset, self.seed, self.config = dataset, seed, config or AugmentConfig()
        # the weight map's settings: given here, else the dataset's own (``ToyCells.target_kwargs``),
        # else the paper's (w0 = 10, sigma = 5, balanced classes)
        given = dict(w0=w0, sigma=sigma, class_weights=class_weights)
        own = getattr(dataset, "target_kwargs", None) or {}
        paper = dict(w0=10.0, sigma=5.0, class_weights="balanced")
        self.target_kwargs = {k: given[k] if given[k] is not None else own.get(k, paper[k]) for k in paper}
        self._accesses: dict[int, int] = defaultdict(int)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} is out of range for a dataset of length {len(self)}")
        i = i % len(self)                                         # one seed per sample, also for i < 0
        sample = self.dataset[i]
        k = self._accesses[i]
        self._accesses[i] += 1
        rng = np.random.default_rng([self.seed, i, k])
        image, instances = augment(torch.as_tensor(sample["image"]), torch.as_tensor(sample["instances"]),
                                   rng, self.config)
        mask, weight_map = targets_from_instances(instances.numpy(), **self.target_kwargs)
        return {
            "image": image.float(),                               # (1, H, W)
            "instances": instances.long(),                        # (H, W)
            "mask": torch.from_numpy(mask),                       # (H, W)
            "weight_map": torch.from_numpy(weight_map),           # (H, W)
        }
