"""Tests for unet_lib.baselines: Otsu's threshold and the connected-components baseline."""

import numpy as np
import pytest
from scipy import ndimage

from unet_lib.baselines import otsu_instances, otsu_threshold


def _within_class_variance_threshold(image: np.ndarray) -> float:
    """Oracle straight from Otsu's other criterion: the split with the smallest
    within-class variance omega_0 var_0 + omega_1 var_1 (computed with np.var)."""
    x = image.ravel().astype(np.float64)
    values = np.unique(x)
    best, best_t = np.inf, None
    for t in values[:-1]:
        bg, fg = x[x <= t], x[x > t]
        within = (len(bg) * bg.var() + len(fg) * fg.var()) / len(x)
        if within < best - 1e-12:
            best, best_t = within, t
    return float(best_t)


def test_otsu_threshold_hand_worked():
    # values 1, 2, 6, 7: splits {1}|{2,6,7}: 1/4 * 3/4 * (1 - 5)^2 = 3; {1,2}|{6,7}: 1/4 * 25 = 6.25;
    # {1,2,6}|{7}: 3/16 * 16 = 3 -> the middle split, t = 2 (largest background value)
    assert otsu_threshold(np.array([7, 1, 6, 2])) == 2.0
    # class sizes matter: 0, 0, 0, 4, 4, 10: {0,0,0}|{4,4,10}: 1/4 * (0 - 6)^2 = 9;
    # {0,0,0,4,4}|{10}: 5/36 * (1.6 - 10)^2 = 9.8 -> t = 4: the 4s join the 0s
    assert otsu_threshold(np.array([[0, 0, 0], [4, 4, 10]])) == 4.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_otsu_threshold_matches_within_class_variance_oracle(seed):
    rng = np.random.default_rng(seed)
    image = np.concatenate([rng.normal(0.2, 0.05, 300), rng.normal(0.7, 0.1, 100)]).round(3).reshape(20, 20)
    assert otsu_threshold(image) == pytest.approx(_within_class_variance_threshold(image))


def test_otsu_threshold_is_affine_equivariant_and_splits_two_modes():
    rng = np.random.default_rng(3)
    image = np.where(rng.random((31, 17)) < 0.3, 200, 20) + rng.integers(0, 10, (31, 17))
    t = otsu_threshold(image)
    assert 29 <= t < 200                              # between the two modes
    assert otsu_threshold(image.astype(np.float32) / 255) == pytest.approx(t / 255, rel=1e-6)


@pytest.mark.parametrize("image, error, match", [
    (np.zeros((0, 4)), ValueError, "non-empty"),
    (np.full((3, 3), 5.0), ValueError, "two distinct values; every pixel is 5"),
    (np.array([0.0, np.nan, 1.0]), ValueError, "NaN or infinite"),
    (np.array([True, False]), TypeError, "real-valued"),
])
def test_otsu_threshold_errors(image, error, match):
    with pytest.raises(error, match=match):
        otsu_threshold(image)


def test_otsu_instances_hand_worked():
    image = np.array([
        [9, 9, 0, 0, 0],
        [9, 9, 0, 0, 0],
        [0, 0, 9, 0, 8],   # touches the first blob only at a corner: 4-connectivity keeps it apart
        [0, 0, 0, 0, 8],
    ])
    instances = otsu_instances(image)
    expected = np.array([
        [1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 2, 0, 3],
        [0, 0, 0, 0, 3],
    ])
    assert instances.dtype == np.int64
    np.testing.assert_array_equal(instances, expected)


def test_otsu_instances_matches_scipy_label():
    rng = np.random.default_rng(4)
    image = ndimage.gaussian_filter(rng.random((40, 33)), 2)
    expected, _ = ndimage.label(image > otsu_threshold(image))
    np.testing.assert_array_equal(otsu_instances(image), expected)


def test_otsu_instances_needs_one_2d_image():
    with pytest.raises(ValueError, match=r"one \(H, W\) image, got shape \(1, 4, 4\)"):
        otsu_instances(np.zeros((1, 4, 4)))
