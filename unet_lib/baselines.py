"""Classical baselines for the U-Net to beat, from Otsu's threshold to a watershed.

H, W = height, width.

Two baselines, from the weakest to the fair one:

* ``otsu_instances``: Otsu's threshold on the raw image, then connected components. Nuclei
  whose pixels straddle the threshold break into fragments, single bright background pixels
  become objects, and touching nuclei merge.
* ``classical_instances``: what a practitioner would do without a network: a Gaussian blur,
  Otsu's threshold, hole filling, a minimum object size, and a watershed on the distance
  transform that splits touching nuclei at their waist (``seeded_watershed``).

Otsu (1979), "A threshold selection method from gray-level histograms": split the grey values
into a background class (values <= t) and a foreground class (values > t) so that the
between-class variance is largest,

    sigma_B^2(t) = omega_0(t) * omega_1(t) * (mu_0(t) - mu_1(t))^2,

where omega_k is the fraction of pixels in class k and mu_k its mean grey value. Maximising
sigma_B^2 is the same as minimising the within-class variance, because their sum is the total
variance, which does not depend on t.
"""

import heapq
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
from scipy import ndimage

__all__ = ["otsu_threshold", "otsu_instances", "remove_small_objects", "seeded_watershed", "watershed_split",
           "classical_instances", "ObjectSize", "object_size", "split_by_size", "postprocess_instances"]

# Post-processing scaled to the objects (``postprocess_instances``), from the training masks'
# objects (``object_size``) and nothing else; one rule for all data, compared on nuclei, toy cells
# and dark rods (the table in benchmarks/own_defaults.py):
MIN_AREA_SHARE = 0.1          # objects under a tenth of the median object's area are specks, removed
LARGE_PERCENTILE = 95         # objects larger than 95% of the training objects are taken for merged ones
PEAK_FOOTPRINT_RADII = 2.0    # watershed markers: maxima over a window twice the inscribed radius wide
PEAK_TOLERANCE = (1.0, 0.1)   # ... or within max(1 px, 0.1 radius) of it: a rod's ridge is one marker


def otsu_threshold(image: np.ndarray) -> float:
    """Otsu's threshold of ``image`` (any shape, real values): foreground = ``image > t``.

    Exact over the image's distinct values (no histogram bins): every split between two
    consecutive distinct values is tried, and ``t`` is the largest background value of the best
    split (the first one if several are equally good). Raises ``ValueError`` for an empty image,
    non-finite values, or an image with a single value (no split exists).
    """
    image = np.asarray(image)
    if image.size == 0:
        raise ValueError(f"otsu_threshold needs a non-empty image, got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.number) or np.issubdtype(image.dtype, np.complexfloating):
        raise TypeError(f"otsu_threshold needs a real-valued image, got dtype {image.dtype}")
    if not np.isfinite(image).all():
        raise ValueError("otsu_threshold got NaN or infinite values; replace them first, e.g. np.nan_to_num(image)")
    values, counts = np.unique(image.astype(np.float64), return_counts=True)
    if len(values) < 2:
        raise ValueError(f"otsu_threshold needs at least two distinct values; every pixel is {values[0]:g}")
    n0 = np.cumsum(counts)[:-1]                  # pixels with value <= values[k], k = 0 .. K-2
    s0 = np.cumsum(counts * values)[:-1]         # their sum
    n, total = counts.sum(), (counts * values).sum()
    mu0, mu1 = s0 / n0, (total - s0) / (n - n0)
    # omega_0 * omega_1 * (mu_0 - mu_1)^2, times the constant n^2, which does not move the argmax
    between = n0 * (n - n0) * (mu0 - mu1) ** 2
    return float(values[np.argmax(between)])


def otsu_instances(image: np.ndarray) -> np.ndarray:
    """The classical baseline: threshold (H, W) ``image`` at ``otsu_threshold`` and label each
    4-connected foreground region as one instance. Returns (H, W) int64, 0 = background.

    Nothing else: no smoothing, no hole filling, no size filter, and touching nuclei become one
    instance; this is the baseline the U-Net has to beat, specks included.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"otsu_instances expects one (H, W) image, got shape {image.shape}")
    foreground = image > otsu_threshold(image)
    instances, _ = ndimage.label(foreground)   # default structure: 4-connectivity
    return instances.astype(np.int64)


def remove_small_objects(instances: np.ndarray, min_size: int) -> np.ndarray:
    """(H, W) label image -> the same labels with every object of fewer than ``min_size``
    pixels set to 0 (background). The remaining labels keep their values."""
    instances = np.asarray(instances)
    if instances.ndim != 2 or not np.issubdtype(instances.dtype, np.integer):
        raise ValueError(f"remove_small_objects expects one (H, W) integer label image, got shape "
                         f"{instances.shape} and dtype {instances.dtype}")
    if instances.size and instances.min() < 0:
        raise ValueError(f"labels must be >= 0 (0 = background), got {instances.min()}")
    if not isinstance(min_size, (int, np.integer)) or min_size < 0:
        raise ValueError(f"min_size must be an integer >= 0, got {min_size!r}")
    sizes = np.bincount(instances.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return np.where(keep[instances], instances, 0).astype(np.int64)


def seeded_watershed(cost: np.ndarray, markers: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Marker-based watershed by flooding (Meyer 1994): (H, W) ``cost``, ``markers`` (int, 0 =
    no marker) and bool ``mask`` -> (H, W) int64 labels, 0 outside ``mask``.

    Every marker floods its 4-neighbours inside ``mask``, always the lowest reachable pixel
    first (a priority queue ordered by the highest cost on the way there), so two floods meet
    on the ridge of ``cost`` between their markers. Pixels of ``mask`` that no marker reaches
    stay 0; ties go to the marker that arrived first. Markers outside ``mask`` are ignored.
    """
    cost, markers, mask = np.asarray(cost, np.float64), np.asarray(markers), np.asarray(mask, bool)
    if not (cost.ndim == 2 and cost.shape == markers.shape == mask.shape):
        raise ValueError(f"cost, markers and mask must be (H, W) arrays of one shape, got "
                         f"{cost.shape}, {markers.shape} and {mask.shape}")
    labels = np.where(mask, markers, 0).astype(np.int64)
    h, w = labels.shape
    ys, xs = np.nonzero(labels)
    order = 0
    heap = []
    for y, x in zip(ys.tolist(), xs.tolist()):
        heap.append((cost[y, x], order, y, x))
        order += 1
    heapq.heapify(heap)
    # plain Python lists: element access is several times faster than on numpy arrays
    cost_, labels_, mask_ = cost.tolist(), labels.tolist(), mask.tolist()
    while heap:
        level, _, y, x = heapq.heappop(heap)
        label = labels_[y][x]
        for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
            if 0 <= ny < h and 0 <= nx < w and mask_[ny][nx] and labels_[ny][nx] == 0:
                labels_[ny][nx] = label
                order += 1
                heapq.heappush(heap, (max(level, cost_[ny][nx]), order, ny, nx))
    return np.array(labels_, dtype=np.int64).reshape(h, w)


def classical_instances(image: np.ndarray, sigma: float = 1.0, min_size: int = 30, split_touching: bool = True,
                        peak_footprint: int = 11, distance_sigma: float = 1.0, *, dark: bool = False,
                        size: "ObjectSize | None" = None) -> np.ndarray:
    """The fair classical baseline: (H, W) ``image`` -> (H, W) int64 instances, 0 = background.

    1. Gaussian blur with ``sigma`` (pixels): each pixel is judged with its neighbours, so a
       nucleus whose pixels straddle the threshold no longer breaks into fragments, and single
       noisy pixels no longer cross it.
    2. Otsu's threshold of the blurred image (of the pixels given: a crop gets its own
       threshold); holes inside objects are filled.
    3. Objects smaller than ``min_size`` pixels are removed.
    4. With ``split_touching``: the distance transform of the foreground (distance to the
       nearest background pixel), smoothed with ``distance_sigma``, has one maximum near the
       centre of each roundish nucleus and a saddle at the waist where two nuclei touch. Its
       local maxima over a ``peak_footprint`` x ``peak_footprint`` window become markers, and
       ``seeded_watershed`` on the negative distance splits the foreground between them.
       Without ``split_touching``: the connected components.

    The defaults suit nuclei about 24 px across, such as those of notebook 10's image. How well a
    setting suits an image is measured on annotated nuclei, not assumed: notebook 10's exercise 2
    chooses ``peak_footprint`` on the annotated half of that image. Scale ``min_size`` and
    ``peak_footprint`` with the size of your objects, or pass ``size``.

    ``dark``: the objects are darker than the background (phase contrast, brightfield): the
    image is inverted first. ``size``: the objects' size measured in training masks
    (``object_size``, what ``python -m unet_lib.train`` stores): steps 3 and 4 are then scaled to
    it, as the U-Net's prediction is post-processed: every object split at its waists by
    ``split_by_size`` and objects under ``MIN_AREA_SHARE`` of the median area removed
    (``min_size``, ``split_touching``, ``peak_footprint`` and ``distance_sigma`` are not used; on
    the course's nuclei image this gives F1 0.764 on the held-out half, against 0.761 with the
    settings tuned on that image).
    """
    image = np.asarray(image, np.float64)
    if image.ndim != 2:
        raise ValueError(f"classical_instances expects one (H, W) image, got shape {image.shape}")
    if dark:
        image = -image                                                         # dark objects become bright
    if sigma < 0 or distance_sigma < 0:
        raise ValueError(f"sigma and distance_sigma must be >= 0, got {sigma} and {distance_sigma}")
    if not isinstance(peak_footprint, (int, np.integer)) or peak_footprint < 1:
        raise ValueError(f"peak_footprint must be an integer >= 1, got {peak_footprint!r}")
    blurred = ndimage.gaussian_filter(image, sigma) if sigma else image
    foreground = ndimage.binary_fill_holes(blurred > otsu_threshold(blurred))
    if size is not None:   # every component split: a threshold merges all touching objects
        return _without_specks(split_by_size(foreground, size.radius), size)
    components, _ = ndimage.label(foreground)                                  # 4-connectivity
    foreground = remove_small_objects(components, min_size) > 0
    if not split_touching:
        return ndimage.label(foreground)[0].astype(np.int64)
    return watershed_split(foreground, peak_footprint, distance_sigma)


def watershed_split(foreground: np.ndarray, peak_footprint: int = 11, distance_sigma: float = 1.0,
                    tolerance: float = 0.0) -> np.ndarray:
    """Split touching roundish objects of a (H, W) foreground at their waists: (H, W) int64 labels.

    The distance transform of ``foreground`` (distance to the nearest background pixel), smoothed
    with ``distance_sigma``, has one maximum near the centre of each roundish object and a saddle
    where two touch. Its local maxima over a ``peak_footprint`` x ``peak_footprint`` window (the
    pixels within ``tolerance`` of the window's maximum; 8-connected ones are one marker) become
    markers, and ``seeded_watershed`` on the negative distance floods the foreground from them.
    A component whose maximum lost to a higher one of a neighbour in the window stays one object.
    The last step of ``classical_instances``; it splits a U-Net's merged blobs the same way.
    """
    foreground = np.asarray(foreground)
    if foreground.ndim != 2:
        raise ValueError(f"watershed_split expects one (H, W) foreground, got shape {foreground.shape}")
    foreground = foreground > 0
    if distance_sigma < 0:
        raise ValueError(f"distance_sigma must be >= 0, got {distance_sigma}")
    if not isinstance(peak_footprint, (int, np.integer)) or peak_footprint < 1:
        raise ValueError(f"peak_footprint must be an integer >= 1, got {peak_footprint!r}")
    distance = ndimage.distance_transform_edt(foreground)
    if distance_sigma:
        distance = ndimage.gaussian_filter(distance, distance_sigma)
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    peaks = foreground & (distance >= ndimage.maximum_filter(distance, size=peak_footprint) - tolerance)
    markers, _ = ndimage.label(peaks, structure=np.ones((3, 3)))             # a plateau is one marker
    labels = seeded_watershed(-distance, markers, foreground)
    # a component whose maximum lost to a higher one of a neighbour in the window has no
    # marker of its own; it stays one object
    components, n = ndimage.label(foreground & (labels == 0))
    return np.where(components > 0, components + labels.max(), labels).astype(np.int64)


# -- post-processing scaled to the objects -----------------------------------------------------

class ObjectSize(NamedTuple):
    """The typical object of a set of label images (``object_size``)."""
    area: float          # median pixels per object
    radius: float        # median inscribed radius: the largest distance from an object's pixel to its outline
    count: int           # objects measured
    large: float = 0.0   # the LARGE_PERCENTILE-th percentile of the areas (0: twice the median)

    @property
    def merged_above(self) -> float:
        """The area above which a predicted object is taken for merged ones and split."""
        return self.large if self.large > 0 else 2.0 * self.area


def object_size(label_images: Iterable[np.ndarray]) -> ObjectSize:
    """The median area and inscribed radius of the objects of (H, W) label images (0 =
    background, one id per object), and the ``LARGE_PERCENTILE``-th percentile of their areas.
    Objects that touch an image's edge are cut by it and left out, unless no other object is left.
    Raises ``ValueError`` when no image holds an object."""
    areas, radii, cut = [], [], []
    for labels in label_images:
        labels = np.asarray(labels)
        if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"object_size expects (H, W) integer label images, got shape {labels.shape} and "
                             f"dtype {labels.dtype}")
        ids = np.unique(labels)
        ids = ids[ids > 0]
        if ids.size == 0:
            continue
        # inside: objects' pixels whose 4-neighbours hold the same id, so that touching objects are apart
        inside = (labels > 0) & (ndimage.maximum_filter(labels, 3, mode="nearest") ==
                                 ndimage.minimum_filter(labels, 3, mode="nearest"))
        depth = ndimage.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]   # the image's edge is no outline
        areas.append(ndimage.sum_labels(np.ones(labels.shape), labels, ids))
        radii.append(ndimage.maximum(depth, labels, ids) + 1.0)                  # the outline pixel counts
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        cut.append(np.isin(ids, edge))
    if not areas:
        raise ValueError("object_size found no object (every label image is all 0)")
    areas, radii, cut = np.concatenate(areas), np.concatenate(radii), np.concatenate(cut)
    keep = ~cut if (~cut).any() else np.ones_like(cut)
    return ObjectSize(float(np.median(areas[keep])), float(np.median(radii[keep])), int(keep.sum()),
                      float(np.percentile(areas[keep], LARGE_PERCENTILE)))


def split_by_size(foreground: np.ndarray, radius: float) -> np.ndarray:
    """Split touching objects of a (H, W) foreground at their waists, scaled to objects of
    inscribed ``radius`` (``object_size``): ``watershed_split`` with a ``peak_footprint`` twice the
    radius (odd, at least 3) and a ``tolerance`` of max(1 px, a tenth of the radius). The
    tolerance keeps elongated objects whole: along a rod's ridge the distance transform wobbles by
    a fraction of a pixel, so its local maxima are many (plain maxima split 62 of 116 separated
    rods of radius 3, with the tolerance none), while two round objects touching at a waist keep
    two markers. Returns (H, W) int64 labels."""
    if not radius > 0:
        raise ValueError(f"radius must be > 0 (the objects' inscribed radius in pixels), got {radius!r}")
    footprint = max(3, 2 * int(round(PEAK_FOOTPRINT_RADII * radius / 2)) + 1)
    tolerance = max(PEAK_TOLERANCE[0], PEAK_TOLERANCE[1] * radius)
    return watershed_split(foreground, footprint, tolerance=tolerance)


def postprocess_instances(pred: np.ndarray, size: ObjectSize, split: bool = True) -> np.ndarray:
    """Objects of a (H, W) prediction, scaled to the training masks' objects ``size`` and chosen
    from nothing else. With ``split``: the connected components of the foreground ``pred > 0``,
    those larger than ``size.merged_above`` (95% of the training objects are smaller) taken for
    merged objects and split at their waists (``split_by_size``); objects of a typical size are
    left alone. Without: ``pred``'s own labels (cells from a class map with a border class, which
    the border class already separates). Then objects under ``MIN_AREA_SHARE`` of the median area
    are removed (specks). Returns (H, W) int64 labels 1..n."""
    pred = np.asarray(pred)
    if pred.ndim != 2:
        raise ValueError(f"postprocess_instances expects one (H, W) prediction, got shape {pred.shape}")
    labels = ndimage.label(pred > 0)[0].astype(np.int64) if split else pred.astype(np.int64)
    if split:
        merged = np.flatnonzero(np.bincount(labels.ravel()) > size.merged_above)
        large = np.isin(labels, merged[merged > 0])                        # (H, W) the objects to split
        if large.any():
            parts = split_by_size(large, size.radius)
            labels = np.where(large, parts + labels.max(), labels)
    return _without_specks(labels, size)


def _without_specks(labels: np.ndarray, size: ObjectSize) -> np.ndarray:
    """``labels`` without the objects under ``MIN_AREA_SHARE`` of the median area, renumbered 1..n."""
    kept = remove_small_objects(labels.astype(np.int64), int(round(MIN_AREA_SHARE * size.area)))
    ids, inverse = np.unique(kept, return_inverse=True)
    return (inverse.reshape(kept.shape) + (0 if ids[0] == 0 else 1)).astype(np.int64)
