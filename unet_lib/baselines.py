"""A classical baseline for the U-Net to beat: Otsu's threshold, then connected components.

H, W = height, width.

Otsu (1979), "A threshold selection method from gray-level histograms": split the grey values
into a background class (values <= t) and a foreground class (values > t) so that the
between-class variance is largest,

    sigma_B^2(t) = omega_0(t) * omega_1(t) * (mu_0(t) - mu_1(t))^2,

where omega_k is the fraction of pixels in class k and mu_k its mean grey value. Maximising
sigma_B^2 is the same as minimising the within-class variance, because their sum is the total
variance, which does not depend on t.
"""

import numpy as np
from scipy import ndimage

__all__ = ["otsu_threshold", "otsu_instances"]


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
