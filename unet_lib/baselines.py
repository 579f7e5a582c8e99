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

import numpy as np
from scipy import ndimage

__all__ = ["otsu_threshold", "otsu_instances", "remove_small_objects", "seeded_watershed", "watershed_split",
           "classical_instances"]


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
                        peak_footprint: int = 11, distance_sigma: float = 1.0) -> np.ndarray:
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
    ``peak_footprint`` with the size of your objects.
    """
    image = np.asarray(image, np.float64)
    if image.ndim != 2:
        raise ValueError(f"classical_instances expects one (H, W) image, got shape {image.shape}")
    if sigma < 0 or distance_sigma < 0:
        raise ValueError(f"sigma and distance_sigma must be >= 0, got {sigma} and {distance_sigma}")
    if not isinstance(peak_footprint, (int, np.integer)) or peak_footprint < 1:
        raise ValueError(f"peak_footprint must be an integer >= 1, got {peak_footprint!r}")
    blurred = ndimage.gaussian_filter(image, sigma) if sigma else image
    foreground = ndimage.binary_fill_holes(blurred > otsu_threshold(blurred))
    components, _ = ndimage.label(foreground)                                  # 4-connectivity
    foreground = remove_small_objects(components, min_size) > 0
    if not split_touching:
        return ndimage.label(foreground)[0].astype(np.int64)
    return watershed_split(foreground, peak_footprint, distance_sigma)


def watershed_split(foreground: np.ndarray, peak_footprint: int = 11, distance_sigma: float = 1.0) -> np.ndarray:
    """Split touching roundish objects of a (H, W) foreground at their waists: (H, W) int64 labels.

    The distance transform of ``foreground`` (distance to the nearest background pixel), smoothed
    with ``distance_sigma``, has one maximum near the centre of each roundish object and a saddle
    where two touch. Its local maxima over a ``peak_footprint`` x ``peak_footprint`` window become
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
    peaks = foreground & (distance == ndimage.maximum_filter(distance, size=peak_footprint))
    markers, _ = ndimage.label(peaks, structure=np.ones((3, 3)))             # a plateau is one marker
    labels = seeded_watershed(-distance, markers, foreground)
    # a component whose maximum lost to a higher one of a neighbour in the window has no
    # marker of its own; it stays one object
    components, n = ndimage.label(foreground & (labels == 0))
    return np.where(components > 0, components + labels.max(), labels).astype(np.int64)
