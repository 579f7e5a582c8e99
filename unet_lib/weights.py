"""The paper's pixel-wise weight map (Ronneberger et al., 2015, Sec. 3, Eq. 2).

H, W = height, width. Label images are numpy (H, W) integer arrays, 0 = background
(torch tensors are accepted and converted).

> We pre-compute the weight map for each ground truth segmentation to compensate the different
> frequency of pixels from a certain class in the training data set, and to force the network to
> learn the small separation borders that we introduce between touching cells.
>
>     w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2))                      (2)
>
> where w_c is the weight map to balance the class frequencies, d1 denotes the distance to the
> border of the nearest cell and d2 the distance to the border of the second nearest cell. In our
> experiments we set w0 = 10 and sigma ~ 5 pixels.

API
---
* ``unet_weight_map(instances, w0=10.0, sigma=5.0, class_weights="balanced", tolerance=1e-4)``
  -> float32 (H, W): Eq. 2, fast.
* ``class_weight_map(mask, class_weights="balanced")`` -> float32 (H, W): the w_c term.
* ``class_balance_map(mask, num_classes)`` -> float32 (H, W): w_c balanced over K classes (class maps).
* ``border_term(instances, w0=10.0, sigma=5.0, tolerance=1e-4)`` -> float32 (H, W): the second
  term of Eq. 2, fast.
* ``border_term_naive(instances, w0=10.0, sigma=5.0)`` -> float32 (H, W): the same, the slow
  obvious way (the reference for the tests and the benchmark).
* ``two_nearest_distances(instances, max_distance=inf)`` -> (d1, d2), float64 (H, W) each.

The choices the paper leaves open, and ours:

* **Distance to what.** d_i(x) is the Euclidean distance from pixel x to the nearest *pixel* of
  cell i (so a background pixel next to a cell has d = 1), computed with
  ``scipy.ndimage.distance_transform_edt``.
* **Where the border term applies.** Background pixels only (``instances == 0``). Inside a cell
  d1 = 0 and the term would put a large weight on every cell pixel near a neighbour; the paper's
  Fig. 3d shows large weights only in the gaps.
* **Fewer than two cells.** d2 does not exist: no border term (w = w_c).
* **Touching cells.** Eq. 2 assumes the separating borders are already background. If your
  cells touch, cut the borders first (``unet_lib.data.separate_touching``) and pass the result;
  ``unet_lib.data.targets_from_instances`` does both.
* **w_c.** ``"balanced"``: w_c(x) = n_pixels / (n_classes * count_c) for x in class c, with
  n_classes = 2 (background, cell); a class that is absent has no pixels, so its weight is never
  used (an empty image is 0.5 everywhere). Or a sequence (w_background, w_cell).

Speed: the naive way runs one full-image distance transform per cell. But the border term is
below ``tolerance`` wherever d1 + d2 > R = sigma * sqrt(2 ln(w0 / tolerance)), and there
d2 <= R; so each cell's distances are only needed within R of the cell: a distance transform on
its bounding box grown by R. For 35 cells on 256x256 that is about 10x less work. On a tile full
of small cells those boxes cover every pixel many times over (60 cells of radius 4-6 on 132x132:
12 times), and the work grows with the cells; there ``border_term`` scans every pixel's
R-neighbourhood instead, in two passes (columns, then rows), at a cost that depends on the tile's
size and R only. The two ways give the same d1 and d2, so the same weight map to the last bit.
"""

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

from .validate import check_int, check_labels, check_number, describe

__all__ = [
    "unet_weight_map", "class_weight_map", "class_balance_map", "border_term", "border_term_naive", "two_nearest_distances",
]

ClassWeights = str | Sequence[float]


def _as_labels(instances, name: str = "instances") -> np.ndarray:
    """Validate an (H, W) label image: integer dtype, no negative ids. Returns a numpy view."""
    return check_labels(name, instances)


def _check_w0_sigma(w0: float, sigma: float) -> tuple[float, float]:
    return (check_number("w0", w0, min=0.0, hint="the paper uses w0 = 10"),
            check_number("sigma", sigma, positive=True, hint="the paper uses sigma = 5 pixels"))


def _relabel_if_sparse(instances: np.ndarray) -> np.ndarray:
    """Map ids to 1..n when the largest id is far above the image size, so that per-id tables
    (``find_objects``) stay small. Background stays 0."""
    if int(instances.max(initial=0)) <= instances.size:
        return instances
    ids, inverse = np.unique(instances, return_inverse=True)
    inverse = inverse.reshape(instances.shape)
    return inverse if ids[0] == 0 else inverse + 1


def two_nearest_distances(instances, max_distance: float = math.inf) -> tuple[np.ndarray, np.ndarray]:
    """d1 and d2 of Eq. 2: per pixel, the Euclidean distance to the nearest pixel of the nearest
    and of the second-nearest cell. Returns two float64 (H, W) arrays.

    Distances above ``max_distance`` are not computed: they come back as ``inf``. A pixel inside
    cell i has distance 0 to cell i. With fewer than two cells d2 is ``inf`` everywhere.
    """
    max_distance = check_number("max_distance", max_distance, positive=True, finite=False)
    instances = _relabel_if_sparse(_as_labels(instances))
    H, W = instances.shape
    d1 = np.full((H, W), np.inf)
    d2 = np.full((H, W), np.inf)
    grow = H + W if math.isinf(max_distance) else int(math.floor(max_distance)) + 1
    for cell_id, cell_box in enumerate(ndimage.find_objects(instances), start=1):
        if cell_box is None:                              # an id that does not occur
            continue
        rows, cols = cell_box
        # pixels more than max_distance away lie outside the box grown by max_distance
        box = (slice(max(rows.start - grow, 0), min(rows.stop + grow, H)),
               slice(max(cols.start - grow, 0), min(cols.stop + grow, W)))
        d = ndimage.distance_transform_edt(instances[box] != cell_id)   # (h, w) distance to cell_id
        if not math.isinf(max_distance):
            d[d > max_distance] = np.inf
        near1, near2 = d1[box], d2[box]                   # views: updated in place
        np.minimum(near2, np.maximum(near1, d), out=near2)   # new second = min(second, max(first, d))
        np.minimum(near1, d, out=near1)
    return d1, d2


# A scan of every pixel's neighbourhood (R = 24) costs about as much as distance transforms on
# boxes that cover the image this many times over: the crossing was at 7-10 covers in CPU time on
# this course's 2-core machine (132x132: boxes 0.5 ms per cover, the scan 5 ms; 256x256: 2.3 ms
# and 16 ms), so a tile of 100 small cells (13.7 covers, 7.1 ms by boxes) is scanned in 5.2 ms
_SCAN_WHEN_BOXES_COVER = 8.0
_FAR = np.int32(2**30)         # a squared distance beyond every reach


def _two_nearest_by_scan(instances: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """d1 and d2 (float64 (H, W)) exactly where d2 <= ``reach`` (larger elsewhere), at a cost that
    does not depend on the number of cells: the same values as ``two_nearest_distances``.

    d1 and the nearest cell pixel's label n1 come from one distance transform. d2 is the distance
    to the nearest pixel of a label other than n1, found in two passes over squared distances
    (separable, as the exact distance transform itself): down every column, the nearest cell pixel
    (g1, its label l1) and the nearest one of another label (g2) within ``reach`` rows; then
    along every row, d2^2 = min over columns x' within ``reach`` of (x - x')^2 + (g1 if l1 != n1
    else g2). A column's nearest pixel of a label other than n1 is its nearest one, unless that
    one is n1's: then it is the nearest of another label. Exact: every pixel within ``reach`` is
    within ``reach`` rows and columns.
    """
    labels = _relabel_if_sparse(instances).astype(np.int32, copy=False)   # ids <= H W: they fit
    h, w = labels.shape
    d1, (iy, ix) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
    n1 = labels[iy, ix]                                                   # (H, W) label of the nearest cell pixel
    # down the columns, nearest rows first: the first label met is l1, the first other label gives g2
    rows = np.zeros((h + 2 * reach, w), np.int32)                         # labels, 0 beyond the image
    rows[reach : reach + h] = labels
    g1, g2 = np.full((h, w), _FAR), np.full((h, w), _FAR)
    l1 = np.zeros((h, w), np.int32)
    for k in range(reach + 1):
        for dy in (0,) if k == 0 else (k, -k):
            c = rows[reach + dy : reach + dy + h]                         # (H, W) the label dy rows away
            found = c != 0
            first = found & (l1 == 0)
            other = found & (l1 != 0) & (c != l1) & (g2 == _FAR)
            l1 = np.where(first, c, l1)
            g1 = np.where(first, k * k, g1)
            g2 = np.where(other, k * k, g2)
    # along the rows: the nearest pixel whose label is not n1
    G1, G2 = np.full((h, w + 2 * reach), _FAR), np.full((h, w + 2 * reach), _FAR)
    L1 = np.zeros((h, w + 2 * reach), np.int32)
    G1[:, reach : reach + w], G2[:, reach : reach + w], L1[:, reach : reach + w] = g1, g2, l1
    e2 = np.full((h, w), _FAR)
    for dx in range(-reach, reach + 1):
        column = slice(reach + dx, reach + dx + w)                        # the column dx away
        candidate = np.where(L1[:, column] != n1, G1[:, column], G2[:, column]) + dx * dx
        np.minimum(e2, candidate, out=e2)
    return d1, np.sqrt(e2.astype(np.float64))        # the same sqrt of whole numbers as the transform's


def _boxes_cover(instances: np.ndarray, grow: int) -> tuple[int, float]:
    """(the number of cells, how many times over their bounding boxes grown by ``grow`` cover the
    image): the work of ``two_nearest_distances`` with that reach, in images."""
    h, w = instances.shape
    boxes = [b for b in ndimage.find_objects(_relabel_if_sparse(instances)) if b is not None]
    area = sum((min(r.stop + grow, h) - max(r.start - grow, 0)) * (min(c.stop + grow, w) - max(c.start - grow, 0))
               for r, c in boxes)
    return len(boxes), area / (h * w)


def border_term(instances, w0: float = 10.0, sigma: float = 5.0, tolerance: float = 1e-4) -> np.ndarray:
    """The second term of Eq. 2, w0 * exp(-(d1 + d2)^2 / (2 sigma^2)), on background pixels.

    Takes an (H, W) integer label image (0 = background) and returns float32 (H, W); 0 on cell
    pixels and everywhere when there are fewer than two cells. Values below ``tolerance`` are
    set to 0: that is what makes it fast (d1 and d2 are only needed where d1 + d2 <= R =
    sigma * sqrt(2 ln(w0 / tolerance))). The error is at most ``tolerance``.

    How: each cell's distances on its bounding box grown by R (``two_nearest_distances``); or,
    when those boxes would cover the image many times over (a tile full of small cells), one scan
    of every pixel's R-neighbourhood (``_two_nearest_by_scan``), whose cost does not grow with the
    number of cells. Both give the same d1 and d2, so the same values.
    """
    w0, sigma = _check_w0_sigma(w0, sigma)
    tolerance = check_number("tolerance", tolerance, positive=True,
                             hint="use border_term_naive for the exact values")
    instances = _as_labels(instances)
    term = np.zeros(instances.shape, np.float32)
    if w0 == 0 or w0 <= tolerance:
        return term
    radius = sigma * math.sqrt(2 * math.log(w0 / tolerance))   # w0 * exp(-R^2 / 2 sigma^2) = tolerance
    cells, cover = _boxes_cover(instances, int(math.floor(radius)) + 1)
    if cells < 2:
        return term                                             # no d2: no border term
    if cover > _SCAN_WHEN_BOXES_COVER:
        d1, d2 = _two_nearest_by_scan(instances, int(math.floor(radius)))
    else:
        d1, d2 = two_nearest_distances(instances, max_distance=radius)
    near = (instances == 0) & (d1 + d2 <= radius)               # inf or beyond R where d2 was not needed
    term[near] = w0 * np.exp(-(d1[near] + d2[near]) ** 2 / (2 * sigma**2))
    return term


def border_term_naive(instances, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """``border_term`` the slow, obvious way: one full-image distance transform per cell, then a
    sort along the cells. The reference for tests and the benchmark. float32 (H, W)."""
    w0, sigma = _check_w0_sigma(w0, sigma)
    instances = _as_labels(instances)
    ids = np.unique(instances[instances > 0])
    if len(ids) < 2:
        return np.zeros(instances.shape, np.float32)
    distances = np.stack([ndimage.distance_transform_edt(instances != i) for i in ids])   # (n_cells, H, W)
    distances.sort(axis=0)
    d1, d2 = distances[0], distances[1]
    term = w0 * np.exp(-(d1 + d2) ** 2 / (2 * sigma**2))
    return np.where(instances == 0, term, 0).astype(np.float32)


def _check_class_weights(class_weights) -> np.ndarray:
    """A pair (w_background, w_cell) of finite numbers >= 0 as float64 (2,)."""
    what = "'balanced' or two finite numbers >= 0 (w_background, w_cell)"
    if isinstance(class_weights, (dict, set, bytes)) or not hasattr(class_weights, "__len__"):
        raise TypeError(f"class_weights must be {what}, got {describe(class_weights)}")
    if len(class_weights) != 2:
        raise ValueError(f"class_weights must be {what}, got {len(class_weights)} values: {class_weights!r}")
    for i, w in enumerate(class_weights):
        try:
            check_number(f"class_weights[{i}]", w, min=0.0)
        except (TypeError, ValueError) as error:
            raise type(error)(f"class_weights must be {what}, got {class_weights!r} ({error})") from None
    return np.asarray([float(w) for w in class_weights], dtype=np.float64)


def class_weight_map(mask, class_weights: ClassWeights = "balanced") -> np.ndarray:
    """w_c of Eq. 2: a per-pixel weight by class. ``mask`` is (H, W) with values in {0, 1}
    (0 = background, 1 = cell); returns float32 (H, W).

    ``class_weights="balanced"``: w_c = n_pixels / (n_classes * count_c) with n_classes = 2, so
    that both classes carry the same total weight. Or a sequence (w_background, w_cell).
    """
    mask = _as_labels(mask, "mask")
    if mask.size and mask.max() > 1:
        raise ValueError(f"mask must contain only 0 (background) and 1 (cell), found {mask.max()}; "
                         f"for a label image use (instances > 0)")
    if isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ValueError(f"class_weights={class_weights!r} is not supported; use 'balanced' or "
                             f"a pair (w_background, w_cell)")
        counts = np.bincount(mask.ravel(), minlength=2)
        weights = mask.size / (2 * np.maximum(counts, 1))   # an absent class: weight never used
    else:
        weights = _check_class_weights(class_weights)
    return weights.astype(np.float32)[mask]


def unet_weight_map(instances, w0: float = 10.0, sigma: float = 5.0, class_weights: ClassWeights = "balanced",
                    tolerance: float = 1e-4) -> np.ndarray:
    """The paper's weight map, Eq. 2: w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2)).

    Takes an (H, W) integer label image, 0 = background, any positive ids (numpy or torch);
    touching cells must already be separated by background (see the module docstring). Returns
    float32 (H, W). The border term is added on background pixels only and only with two or
    more cells; terms below ``tolerance`` are dropped (error <= tolerance). Raises ``TypeError``
    for non-integer labels and ``ValueError`` for negative ids or a bad ``w0``/``sigma``.
    """
    instances = _as_labels(instances)
    w = class_weight_map((instances > 0).astype(np.int64), class_weights)
    w += border_term(instances, w0, sigma, tolerance)
    return w


def class_balance_map(mask, num_classes: int) -> np.ndarray:
    """w_c of Eq. 2 for a K-class map: w_c(x) = n_pixels / (K * count_c) for x in class c, so
    that every class present carries the same total weight. (H, W) ints in [0, K) -> float32 (H, W).

    For K = 2 it is ``unet_lib.weights.class_weight_map(mask, "balanced")``; a class that is
    absent has no pixels, so its weight is never used.
    """
    num_classes = check_int("num_classes", num_classes, min=2)
    mask = check_labels("mask", mask)
    if mask.size and mask.max() >= num_classes:
        raise ValueError(f"mask must hold classes 0..{num_classes - 1} (num_classes={num_classes}), "
                         f"found {mask.max()}")
    counts = np.bincount(mask.ravel().astype(np.int64), minlength=num_classes)   # (K,)
    weights = mask.size / (num_classes * np.maximum(counts, 1))
    return weights.astype(np.float32)[mask]
