"""The checks of notebook 05, toy cells and augmentation: ``check_touching_pairs``,
``check_warp_image``, ``check_touching_share``.

Each refuses the library's twin of what it asks, by what runs during the learner's call (see
``_core.call``): the library's touching helpers in the two touching exercises, ``elastic_deform``
and the ready-made interpolators (scipy's ``map_coordinates``, the C routine behind it, all of
``scipy.interpolate``, torch's ``grid_sample`` and the ``grid_sampler`` kernels under it) in the
warp, and ``inspect.getsource`` in all three (the library's source run from the learner's function
is still the library's).
"""

import inspect
from collections.abc import Callable

import numpy as np
import torch

from ._core import CheckError, CheckPassed, T, as_array, cached, call, fail, learner_check, passed

__all__ = ['check_touching_pairs', 'check_warp_image', 'check_touching_share']


def _touching_shortcuts() -> dict[str, object]:
    """The library's functions that already find which cells touch."""
    from .. import data
    return {"touching_borders": data.touching_borders, "separate_touching": data.separate_touching,
            "touching_fraction": data.touching_fraction, "instances_to_mask": data.instances_to_mask,
            "inspect.getsource": inspect.getsource}


# -- touching_pairs --------------------------------------------------------------------------------

def _touching_pairs(instances: np.ndarray, wrap: bool = False, steps=None) -> set[tuple[int, int]]:
    """The pairs (a, b), a < b, of cells with a pixel of b among the 8 neighbours of a pixel of a.
    ``wrap``: shift with np.roll (the last column becomes the first's neighbour), a learner's likely
    mistake; ``steps``: the neighbour offsets looked at (all 8 by default)."""
    if instances.size == 0:
        return set()
    H, W = instances.shape
    padded = np.pad(instances, 1)
    pairs = set()
    steps = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)] if steps is None else steps
    for dy, dx in steps:
        if wrap:
            neighbour = np.roll(instances, (-dy, -dx), axis=(0, 1))                  # (H, W)
        else:
            neighbour = padded[1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W]            # (H, W)
        contact = (instances > 0) & (neighbour > 0) & (instances != neighbour)
        pairs.update((int(min(a, b)), int(max(a, b))) for a, b in zip(instances[contact], neighbour[contact]))
    return pairs


def _ground_truth_cases() -> list[tuple[str, np.ndarray]]:
    """Hand-made label images and a toy one (also used by notebook 11's check)."""
    side_by_side = np.array([[1, 1, 2, 2, 0],
                             [1, 1, 2, 2, 0],
                             [0, 0, 0, 0, 0]])
    diagonal = np.array([[1, 1, 0, 0],
                         [1, 1, 0, 0],
                         [0, 0, 3, 3],
                         [0, 0, 3, 3]])
    apart = np.array([[5, 5, 0, 7, 7],
                      [5, 5, 0, 7, 7]])
    from ..data import draw_cells
    _, toy = draw_cells(40, np.random.default_rng(1), n_cells=(8, 8), radius=(5.0, 8.0))
    return [("two cells side by side", side_by_side), ("two cells touching at a corner", diagonal),
            ("two cells one pixel apart (ids 5 and 7)", apart), ("a 40x40 toy-cells image", toy)]


def _pair_cases() -> list[tuple[str, np.ndarray]]:
    """``_ground_truth_cases`` and the cases that wrong neighbour tests get wrong: the other
    diagonal (a cell down-left of another), cells on opposite edges (a shift that wraps around),
    three cells in a row, no cells."""
    anti_diagonal = np.array([[0, 0, 1, 1],              # cell 3 lies down-left of cell 1
                              [0, 0, 1, 1],
                              [3, 3, 0, 0],
                              [3, 3, 0, 0]])
    at_the_edges = np.array([[4, 0, 0, 0, 6],            # 4 and 6 on opposite edges: no contact,
                             [0, 0, 0, 0, 0],            # but a shift that wraps around makes one
                             [0, 0, 0, 0, 0],
                             [8, 0, 0, 0, 0]])
    three = np.zeros((5, 9), np.int64)
    three[1:4, 0:3], three[1:4, 3:6], three[1:4, 6:9] = 4, 9, 2          # 4 | 9 | 2: two contacts
    apart = np.array([[0, 5, 5, 0, 7, 7, 0],            # background at both edges: no contact
                      [0, 5, 5, 0, 7, 7, 0]])            # however the image is shifted
    four = np.array([[2, 2, 1, 1],                     # four cells meet at the centre: every two touch,
                     [2, 2, 1, 1],                     # 2 and 3 (and 1 and 4) only across the corner
                     [4, 4, 3, 3],
                     [4, 4, 3, 3]])
    cases = _ground_truth_cases()
    return (cases[:2] + [("two cells touching at the other corner", anti_diagonal),
                         ("two cells one pixel apart (ids 5 and 7)", apart)]
            + [("cells on opposite edges of the image (ids 4, 6, 8)", at_the_edges),
               ("three cells in a row (ids 4, 9, 2)", three),
               ("four cells meeting at one corner (ids 1 to 4)", four)] + cases[3:]
            + [("an image without cells", np.zeros((4, 5), np.int64))])


def _extreme_neighbour_pairs(instances: np.ndarray) -> set[tuple[int, int]]:
    """A learner's likely mistake, after the ``touching_borders`` source: each cell pixel paired
    only with the largest and the smallest other id among its 8 neighbours (a maximum and a
    minimum filter), so a pixel with neighbours of three other cells misses the middle one."""
    from scipy import ndimage
    labels = instances.astype(np.int64)
    largest = ndimage.maximum_filter(labels, size=3, mode="constant", cval=0)
    no_background = np.where(labels == 0, labels.max(initial=0) + 1, labels)
    smallest = ndimage.minimum_filter(no_background, size=3, mode="constant", cval=labels.max(initial=0) + 1)
    pairs = set()
    for other in (largest, smallest):
        contact = (labels > 0) & (other != labels) & (other > 0) & (other <= labels.max(initial=0))
        pairs.update((int(min(a, b)), int(max(a, b))) for a, b in zip(labels[contact], other[contact]))
    return pairs


@learner_check
def check_touching_pairs(touching_pairs: Callable) -> CheckPassed:
    """``touching_pairs(instances)`` must return the set of pairs (a, b), a < b, of cells that
    touch: a pixel of cell a has a pixel of cell b among its 8 neighbours. Both diagonals, cells on
    opposite edges of the image (no contact: the image does not wrap around), ids that are not
    1..n. The library's ``touching_borders`` (and what is built on it) is refused."""
    refuse = _touching_shortcuts()
    forward_only = [(0, 1), (1, 0), (1, 1)]               # right, down, down-right: never down-left
    for name, instances in _pair_cases():
        got = _call_or_fail(touching_pairs, "touching_pairs", name, instances.copy(), refuse=refuse)
        expected = _touching_pairs(instances)
        try:
            pairs = [tuple(int(v) for v in pair) for pair in got]
        except TypeError:
            fail("touching_pairs({name}) returned {got!r}; expected a set of pairs of cell ids",
                 "return a set of tuples (a, b), such as {{(1, 2), (2, 5)}}", name=name, got=got)
        if any(len(pair) != 2 for pair in pairs):
            fail("touching_pairs({name}) returned {got!r}: every element must be one pair (a, b)",
                 "add one pair (a, b) per contact, not single ids or longer tuples", name=name, got=got)
        if set(pairs) == expected and all(a < b for a, b in pairs):
            continue
        values = dict(name=name, got=sorted(set(pairs)), expected=sorted(expected))
        if any(0 in pair for pair in pairs):
            fail("touching_pairs({name}) contains a pair with 0",
                 "0 is the background, not a cell: only a neighbour that belongs to *another cell* is a contact",
                 **values)
        if any(a == b for a, b in pairs):
            fail("touching_pairs({name}) contains a cell paired with itself",
                 "only neighbours with a *different* id count", **values)
        if {(min(p), max(p)) for p in pairs} == expected:
            fail("touching_pairs({name}) = {got}; expected {expected}",
                 "each pair once, the smaller id first", **values)
        missing, extra = sorted(expected - set(pairs)), sorted(set(pairs) - expected)
        if extra:
            if set(extra) <= _touching_pairs(instances, wrap=True) - expected:
                fail("touching_pairs({name}) pairs cells on opposite edges of the image: {extra}",
                     "the image does not wrap around: a shift that wraps (np.roll) brings the last column next to "
                     "the first, and the bottom row next to the top",
                     "let background come in at the edge where you shift, instead of the pixels from the other side",
                     extra=extra, **values)
            fail("touching_pairs({name}) has pairs that do not touch: {extra}",
                 "a contact is a pixel of a and a pixel of b at most one step apart (diagonals included); cells "
                 "with any pixel between them do not touch",
                 extra=extra, **values)
        if set(pairs) == _extreme_neighbour_pairs(instances):
            fail("touching_pairs({name}) misses the contact {missing}",
                 "a pixel can have neighbours from several other cells: each of them makes a pair, not only the "
                 "largest and the smallest id around it",
                 missing=missing[0], **values)
        if name.startswith("two cells touching at") and set(pairs) == _touching_pairs(instances, steps=forward_only):
            fail("touching_pairs({name}) misses the contact {missing}",
                 "a contact can lie in any of the 8 directions: looking only right, down and down-right from each "
                 "pixel misses one diagonal (a cell down-left of another)",
                 missing=missing[0], **values)
        if name.startswith("two cells touching at"):
            fail("touching_pairs({name}) misses the contact {missing}",
                 "look at all 8 neighbours, the diagonal ones too", missing=missing[0], **values)
        fail("touching_pairs({name}) misses {count} contact(s), such as {missing}",
             "for every cell pixel, each of its 8 neighbours that belongs to another cell makes a pair",
             "compare the label image with itself shifted by each of the 8 offsets, background coming in at the edge",
             count=len(missing), missing=missing[0], **values)
    return passed("✓ touching_pairs finds every contact, both diagonals, each pair once, nothing across the image's "
                  "edge")


def _call_or_fail(fn: Callable, exercise: str, name: str, *args, refuse: dict[str, object]):
    """``call``, with an error of the learner's function turned into a message that names the case
    (a refused shortcut or a skeleton keeps its own message)."""
    try:
        return call(fn, *args, refuse=refuse)
    except (CheckError, NotImplementedError):
        raise
    except ZeroDivisionError as error:
        fail("{exercise}({name}) raised ZeroDivisionError: {error}",
             "a case without cells has nothing to divide by: decide what your function returns then, before "
             "dividing",
             exercise=exercise, name=name, error=str(error).splitlines()[0])
    except Exception as error:
        fail("{exercise}({name}) raised {kind}: {error}",
             "run your function yourself on this case: the error names the line that fails",
             exercise=exercise, name=name, kind=type(error).__name__, error=str(error).splitlines()[0])


# -- warp_image ------------------------------------------------------------------------------------

def _reflect(i: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Indices outside 0..n-1 brought back in: 'reflect' repeats the edge pixel (-1 -> 0, as
    elastic_deform), 'mirror' does not (-1 -> 1), 'nearest' clamps, 'wrap' wraps around."""
    if mode == "reflect":
        i = np.mod(i, 2 * n)
        return np.where(i >= n, 2 * n - 1 - i, i)
    if mode == "mirror":
        i = np.mod(i, max(2 * n - 2, 1))
        return np.where(i >= n, 2 * n - 2 - i, i)
    if mode == "nearest":
        return np.clip(i, 0, n - 1)
    return np.mod(i, n)                                                   # wrap


def _warp(image: np.ndarray, displacement: np.ndarray, sign: float = 1.0, swap: bool = False,
          mode: str = "reflect", sampling: str = "bilinear") -> np.ndarray:
    """``image`` sampled at x + sign * displacement(x), bilinearly: the reference (the defaults, equal
    to ``elastic_deform``'s image) and the learner's likely mistakes, for ``check_warp_image``.
    ``mode``: how indices outside the image come back in ('reflect', 'mirror', 'nearest', 'wrap',
    or 'constant' for zeros); ``sampling``: 'bilinear', 'round' (nearest pixel), 'floor' (the
    pixel above and to the left), 'swapped weights' (the farther pixel weighs more), 'trunc' (the
    pixel above found by rounding towards zero, ``astype(int)``, wrong for negative coordinates)."""
    H, W = image.shape
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    d = displacement[::-1] if swap else displacement
    r, c = rows + sign * d[0], cols + sign * d[1]                          # (H, W) where to look
    if sampling == "round":
        r, c = np.floor(r + 0.5), np.floor(c + 0.5)
    if sampling == "trunc":
        r0, c0 = r.astype(np.int64), c.astype(np.int64)                    # towards zero: -0.5 -> 0
    else:
        r0, c0 = np.floor(r).astype(np.int64), np.floor(c).astype(np.int64)
    fr, fc = r - r0, c - c0
    if sampling == "floor":
        fr, fc = np.zeros_like(fr), np.zeros_like(fc)
    if sampling == "swapped weights":
        fr, fc = 1 - fr, 1 - fc

    def at(rr: np.ndarray, cc: np.ndarray) -> np.ndarray:
        if mode == "constant":
            inside = (rr >= 0) & (rr < H) & (cc >= 0) & (cc < W)
            return np.where(inside, image[np.clip(rr, 0, H - 1), np.clip(cc, 0, W - 1)], 0.0)
        return image[_reflect(rr, H, mode), _reflect(cc, W, mode)]

    return ((1 - fr) * (1 - fc) * at(r0, c0) + (1 - fr) * fc * at(r0, c0 + 1)
            + fr * (1 - fc) * at(r0 + 1, c0) + fr * fc * at(r0 + 1, c0 + 1))


def _interpolators() -> dict[str, object]:
    """The ready-made interpolators and warps that would do the exercise's job: ``elastic_deform``,
    scipy.ndimage's interpolating transforms and the C routine under all of them, every public
    callable of ``scipy.interpolate``, torch's ``grid_sample`` and the kernels under it (also as
    ``torch.ops.aten`` operators, matched by the builtin each one calls)."""
    import scipy.interpolate
    import torch.nn.functional as F
    from scipy import ndimage
    from scipy.ndimage import _nd_image

    from ..augment import elastic_deform
    shortcuts = {"elastic_deform": elastic_deform, "scipy.ndimage.map_coordinates": ndimage.map_coordinates,
                 "scipy.ndimage.geometric_transform": ndimage.geometric_transform,
                 "scipy.ndimage.affine_transform": ndimage.affine_transform,
                 "scipy.ndimage._nd_image.geometric_transform": _nd_image.geometric_transform,
                 "torch.nn.functional.grid_sample": F.grid_sample, "torch.grid_sampler": torch.grid_sampler,
                 "torch.grid_sampler_2d": torch.grid_sampler_2d, "inspect.getsource": inspect.getsource}
    for name in scipy.interpolate.__all__:
        member = getattr(scipy.interpolate, name)
        if callable(member):
            shortcuts[f"scipy.interpolate.{name}"] = member
    for name in ("grid_sampler", "grid_sampler_2d"):
        packet = getattr(torch.ops.aten, name)
        shortcuts[f"torch.ops.aten.{name}"] = packet._op
        for overload in packet.overloads():
            shortcuts[f"torch.ops.aten.{name}.{overload}"] = getattr(packet, overload)._op
    return shortcuts


@learner_check
def check_warp_image(warp_image: Callable) -> CheckPassed:
    """``warp_image(image, displacement)`` must return the (H, W) image whose pixel x takes the
    value of ``image`` at x + displacement(x) (rows ``displacement[0]``, columns
    ``displacement[1]``), interpolated bilinearly from the four pixels around that point, an index
    outside the image reflected back in with the edge pixel repeated (-1 reads 0, H reads H - 1):
    the image half of ``unet_lib.augment.elastic_deform``, which is the reference. ``elastic_deform``
    and the ready-made interpolators are refused: the sampling is the exercise."""
    from scipy import ndimage

    from ..augment import elastic_deform, elastic_displacement
    refuse = _interpolators()
    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.random((20, 24)), 1.0)            # (H, W), smooth like a micrograph
    shift = np.stack([np.full((20, 24), 2.0), np.full((20, 24), -3.0)])
    half = np.stack([np.full((20, 24), 0.5), np.full((20, 24), 0.25)])
    up_left = np.stack([np.full((20, 24), -0.5), np.full((20, 24), -1.75)])   # points above and left of the image
    _, field = elastic_displacement((20, 24), rng, grid=3, sigma=4.0)
    cases = [("a shift by (2, -3) px", shift), ("a shift by (0.5, 0.25) px", half),
             ("a shift by (-0.5, -1.75) px", up_left), ("an elastic field (grid 3, sigma 4)", field)]
    # the learner's likely mistakes, by the hint's key: how _warp reproduces each one
    mistakes = [("sign", dict(sign=-1.0)), ("swap", dict(swap=True)), ("round", dict(sampling="round")),
                ("floor", dict(sampling="floor")), ("weights", dict(sampling="swapped weights")),
                ("mirror", dict(mode="mirror")), ("nearest", dict(mode="nearest")),
                ("constant", dict(mode="constant")), ("wrap", dict(mode="wrap")), ("trunc", dict(sampling="trunc"))]
    for name, displacement in cases:
        got = as_array(_call_or_fail(warp_image, "warp_image", "image, " + name, image.copy(), displacement.copy(),
                                     refuse=refuse),
                       "warp_image(image, " + name + ")", image.shape)
        expected = elastic_deform(image, np.zeros(image.shape, np.int64), displacement)[0]
        if np.allclose(got, expected, atol=1e-6):
            continue
        key = next((key for key, kwargs in mistakes
                    if np.allclose(got, _warp(image, displacement, **kwargs), atol=1e-6)), None)
        if key == "sign":
            hint = T("content moves *against* the arrows: output pixel x takes its value from x + displacement(x), "
                     "not from x - displacement(x) (section 3 measured it on the cells)")
        elif key == "swap":
            hint = T("displacement[0] moves along the rows (down), displacement[1] along the columns")
        elif key == "round":
            hint = T("you take the nearest pixel; between pixels, interpolate: the value at row 2.25 is three "
                     "quarters of row 2's and one quarter of row 3's (nearest pixel is for labels)")
        elif key == "floor":
            hint = T("you take the pixel above and to the left of the point; interpolate between it and its "
                     "neighbours instead")
        elif key == "weights":
            hint = T("the nearer pixel must weigh more: at row 2.25, row 2 gets 0.75 and row 3 gets 0.25")
        elif key == "mirror":
            hint = T("you reflect about the edge pixel's centre (index -1 reads pixel 1); here the edge pixel is "
                     "repeated: index -1 reads pixel 0, -2 reads pixel 1")
        elif key == "nearest":
            hint = T("you repeat the edge pixel for every index outside; reflect instead: index -2 reads pixel 1, "
                     "-3 reads pixel 2")
        elif key == "constant":
            hint = T("a point outside the image is reflected back in, not read as 0")
        elif key == "wrap":
            hint = T("a point outside the image is reflected back in, not wrapped around to the other side")
        elif key == "trunc":
            hint = T("right inside the image, wrong above and left of it: converting a coordinate to int rounds "
                     "towards zero, so for a point at row -0.5 you start from row 0, which lies *below* it. The "
                     "pixel above a point is the largest whole number not above it")
        if key is not None:
            fail("warp_image(image, {name}) differs from elastic_deform's warp", hint, name=name)
        worst = np.unravel_index(np.abs(got - expected).argmax(), got.shape)
        fail("warp_image(image, {name}) differs at pixel {pixel}: {got:.4g}, expected {expected:.4g}",
             "output pixel (r, c) shows the image at (r + displacement[0][r, c], c + displacement[1][r, c]), a point "
             "between pixels: weight the four pixels around it by how near they are",
             "try your function on a shift by (0.5, 0): every output pixel must then be the mean of two vertical "
             "neighbours",
             name=name, pixel=tuple(int(v) for v in worst), got=float(got[worst]), expected=float(expected[worst]))
    return passed("✓ warp_image samples at x + displacement(x), bilinearly, reflected at the border: as "
                  "elastic_deform does")


# -- touching_share --------------------------------------------------------------------------------

_FOUR_NEIGHBOURS = [(-1, 0), (1, 0), (0, -1), (0, 1)]


def _share(images: list[np.ndarray], k: int = 1, steps=None) -> float:
    """The cells that touch at least ``k`` other cells over all cells, pooled over ``images``; 0.0
    without cells. ``steps``: the neighbour offsets looked at (all 8 by default)."""
    cells = touching = 0
    for instances in images:
        ids = np.unique(instances[instances > 0])
        partners = {int(i): set() for i in ids}
        for a, b in _touching_pairs(instances, steps=steps):
            partners[a].add(b)
            partners[b].add(a)
        cells += ids.size
        touching += sum(len(p) >= k for p in partners.values())
    return touching / cells if cells else 0.0


@cached(maxsize=4)
def _toy_images(seed: int, n: int, touching: float) -> tuple[np.ndarray, ...]:
    from ..data import draw_cells
    return tuple(draw_cells(64, np.random.default_rng([seed, i]), n_cells=(2, 9), radius=(5.0, 9.0),
                            touching=touching)[1] for i in range(n))


def _share_cases() -> list[tuple[str, list[np.ndarray], int]]:
    # 3 cells, 1 and 2 touch; a second image with two cells apart: pooled 2 / 5, per-image mean (2/3 + 0) / 2
    one = np.array([[1, 1, 2, 0, 3],
                    [1, 1, 2, 0, 3]])
    lone = np.array([[0, 0, 0],
                     [7, 0, 8]])
    # a chain 4 - 9 - 40 and ids that are not 1..n: 3 of 3 touch one other, with 2 contacts; only 9 touches two
    chain = np.zeros((5, 9), np.int64)
    chain[1:4, 0:3], chain[1:4, 3:6], chain[1:4, 6:9] = 4, 9, 40
    corner = np.array([[1, 1, 0],                          # two cells that meet only across a corner
                       [1, 1, 0],
                       [0, 0, 2]])
    star = np.zeros((7, 7), np.int64)                      # cell 5 touches 1, 2 and 3, cell 3 touches 1, 2 and 5,
    star[2:5, 2:5], star[0:2, 2:5], star[5:7, 2:5], star[2:5, 0:2], star[6, 6] = 5, 1, 2, 3, 8   # 1 and 2 two each
    return [("[two touching cells and one apart, two cells apart], k=1", [one, lone], 1),
            ("[a chain of three cells with ids 4, 9, 40], k=1", [chain], 1),
            ("[two cells that meet only at a corner], k=1", [corner], 1),
            ("[a chain of three cells with ids 4, 9, 40], k=2", [chain], 2),
            ("[five cells in a cluster, and an image without cells], k=3", [star, np.zeros((3, 3), np.int64)], 3),
            ("six 64x64 toy images (seed 11, touching 0.4), k=1", list(_toy_images(11, 6, 0.4)), 1),
            ("six 64x64 toy images (seed 11, touching 0.4), k=2", list(_toy_images(11, 6, 0.4)), 2),
            ("three 64x64 toy images (seed 5, touching 0.0), k=1", list(_toy_images(5, 3, 0.0)), 1),
            ("[an image without cells], k=1", [np.zeros((4, 4), np.int64)], 1),
            ("[] (no images), k=2", [], 2)]


@learner_check
def check_touching_share(touching_share: Callable) -> CheckPassed:
    """``touching_share(images, k)`` must return the fraction of all the cells of a list of label
    images that touch at least ``k`` other cells (a cell touches another when a pixel among the 8
    neighbours of one of its pixels belongs to the other): such cells summed over the images / cells
    summed over the images, 0.0 without cells. ``touching_fraction`` and the other library helpers
    that find touching cells are refused."""
    refuse = _touching_shortcuts()
    for name, images, k in _share_cases():
        got = _call_or_fail(touching_share, "touching_share", name, [im.copy() for im in images], k, refuse=refuse)
        if isinstance(got, torch.Tensor) and got.numel() == 1 or isinstance(got, np.ndarray) and got.size == 1:
            got = got.item()
        if not isinstance(got, (int, float, np.integer, np.floating)) or isinstance(got, bool):
            fail("touching_share({name}) returned {kind}; expected one number, a fraction of the cells",
                 "pool all images into one fraction: the cells that touch at least k others over all cells",
                 name=name, kind=type(got).__name__)
        value, expected = float(got), _share(images, k)
        if abs(value - expected) <= 1e-6:        # float32 answers pass
            continue
        per_image = [(np.unique(im[im > 0]).size, _share([im], k)) for im in images]
        cells = sum(n for n, _ in per_image)
        contacts = sum(len(_touching_pairs(im)) for im in images)
        with_background = sum(np.unique(im).size for im in images)
        by_max = sum(int(im.max(initial=0)) for im in images)
        touching_cells = round(expected * cells)
        # the mistakes about the idea first: where a wrong rule happens to give another mistake's number
        # (one cell counted where one cell counts), the rule is the likelier cause
        mistakes = [("percent", 100 * expected), ("k ignored", _share(images, 1) if k != 1 else None),
                    ("corner", _share(images, k, steps=_FOUR_NEIGHBOURS)), ("more than k", _share(images, k + 1)),
                    ("count", touching_cells),
                    ("mean", float(np.mean([f for _, f in per_image])) if images else None),
                    ("contacts", 2 * contacts / cells if cells and k == 1 else None),
                    ("background", touching_cells / with_background if with_background else None),
                    ("max", touching_cells / by_max if by_max else None),
                    ("first", _share(images[:1], k))]
        key = next((key for key, wrong in mistakes if wrong is not None and abs(value - wrong) <= 1e-6
                    and abs(wrong - expected) > 1e-6), None)
        if key == "percent":
            hint = T("return a fraction in [0, 1], not a percentage")
        elif key == "count":
            hint = T("that is the number of such cells; divide it by the number of all cells")
        elif key == "mean":
            hint = T("that is the mean of the per-image fractions, which gives an image with one cell the weight "
                     "of one with many: add up the cells that count and all cells over the images first, then divide")
        elif key == "contacts":
            hint = T("that counts contacts, not cells: a cell that touches two others is one touching cell")
        elif key == "background":
            hint = T("the background (id 0) is not a cell: leave it out of the count")
        elif key == "max":
            hint = T("the largest id is not the number of cells when ids are not 1..n: count the ids present")
        elif key == "first":
            hint = T("that is the first image only: pool all the images")
        elif key == "corner":
            hint = T("cells that meet only at a corner touch too: look at all 8 neighbours of a pixel")
        elif key == "more than k":
            hint = T("a cell counts when it touches *at least* k others: exactly k is enough")
        elif key == "k ignored":
            hint = T("that is the share of cells that touch at least one other, whatever k: count, for each cell, "
                     "how many *different* cells it touches, and compare that number with k")
        if key is not None:
            fail("touching_share({name}) = {value:.4g}; expected {expected:.4g}", hint,
                 name=name, value=value, expected=expected)
        fail("touching_share({name}) = {value:.4g}; expected {expected:.4g}",
             "a cell counts when it touches at least k *different* cells: count its partners once each, in every "
             "image, and divide the cells that count by all the cells of all the images",
             "your touching_pairs of exercise 1 names the cells in contact: each pair gives both of its cells a "
             "partner",
             name=name, value=value, expected=expected)
    return passed("✓ touching_share pools the cells of all images, counts each cell's different partners and "
                  "ignores the background")
