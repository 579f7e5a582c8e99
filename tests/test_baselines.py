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


# -- the fair pipeline: blur, Otsu, size filter, watershed ----------------------------------------

from unet_lib.baselines import classical_instances, remove_small_objects, seeded_watershed   # noqa: E402


def _discs(shape, centres, radius):
    """Label image of discs (later ones drawn over earlier ones) and the disc masks."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    discs = [(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2 for cy, cx in centres]
    labels = np.zeros(shape, np.int64)
    for k, disc in enumerate(discs, 1):
        labels[disc] = k
    return labels, discs


def test_remove_small_objects_hand_worked():
    instances = np.array([
        [1, 1, 0, 2],
        [1, 1, 0, 0],
        [0, 0, 3, 3],
    ])
    np.testing.assert_array_equal(remove_small_objects(instances, 2),
                                  [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 3, 3]])
    np.testing.assert_array_equal(remove_small_objects(instances, 3), [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(remove_small_objects(instances, 0), instances)


def test_seeded_watershed_hand_worked():
    # two floods meet on the ridge (cost 3); the ridge pixel goes to the flood that arrives first
    cost = np.array([[0, 1, 3, 1, 0]])
    markers = np.array([[1, 0, 0, 0, 2]])
    np.testing.assert_array_equal(seeded_watershed(cost, markers, np.ones((1, 5), bool)), [[1, 1, 1, 2, 2]])
    # the ridge moved: the lower side of it is flooded first, from both markers alike
    cost = np.array([[0, 5, 1, 1, 0]])
    np.testing.assert_array_equal(seeded_watershed(cost, markers, np.ones((1, 5), bool)), [[1, 1, 2, 2, 2]])
    # outside the mask nothing is labelled, and a masked region without a marker stays 0
    mask = np.array([[True, True, False, True, True]])
    np.testing.assert_array_equal(seeded_watershed(cost, np.array([[1, 0, 0, 0, 0]]), mask), [[1, 1, 0, 0, 0]])


def test_classical_instances_splits_two_touching_discs():
    labels, discs = _discs((48, 64), [(24, 22), (24, 41)], 11)      # centres 19 px apart, radius 11: they overlap
    rng = np.random.default_rng(0)
    image = np.where(labels > 0, 0.8, 0.1) + rng.normal(0, 0.05, labels.shape)
    assert len(np.unique(classical_instances(image, split_touching=False))) - 1 == 1   # one blob
    found = classical_instances(image)
    assert sorted(np.unique(found)) == [0, 1, 2]
    for disc in discs:   # each disc is one found object, up to the cut between them
        k = np.bincount(found[disc]).argmax()
        assert k > 0 and (found[disc] == k).mean() > 0.85 and (disc[found == k]).mean() > 0.85


def test_classical_instances_removes_specks_that_plain_otsu_keeps():
    labels, _ = _discs((40, 40), [(20, 20)], 8)
    image = np.where(labels > 0, 0.8, 0.1)
    image[3, 3] = image[35, 30] = 1.0                                 # two hot pixels
    assert otsu_instances(image).max() == 3
    found = classical_instances(image)
    assert found.max() == 1 and found[3, 3] == found[35, 30] == 0
    assert (found[labels > 0] == 1).mean() > 0.9                     # the blur may shave the rim


def test_classical_instances_keeps_an_object_without_its_own_marker():
    # a small disc next to a large one: inside the peak window its maximum is not the largest,
    # so it gets no marker, and it must still come out as an object of its own
    big, _ = _discs((40, 60), [(20, 20)], 12)
    small, _ = _discs((40, 60), [(20, 40)], 5)
    image = np.where((big + small) > 0, 0.8, 0.1)
    found = classical_instances(image, peak_footprint=31, min_size=10)
    assert found.max() == 2 and len(np.unique(found[small > 0])) == 2 and found[20, 40] not in (0, found[20, 20])


@pytest.mark.parametrize("call, match", [
    (lambda: remove_small_objects(np.zeros((2, 2, 2), int), 3), r"one \(H, W\) integer label image"),
    (lambda: remove_small_objects(np.zeros((2, 2)), 3), "integer label image"),
    (lambda: remove_small_objects(-np.ones((2, 2), int), 3), "labels must be >= 0"),
    (lambda: remove_small_objects(np.zeros((2, 2), int), -1), "min_size must be an integer >= 0"),
    (lambda: seeded_watershed(np.zeros((2, 2)), np.zeros((2, 3), int), np.ones((2, 2), bool)), "one shape"),
    (lambda: classical_instances(np.zeros((1, 4, 4))), r"one \(H, W\) image"),
    (lambda: classical_instances(np.random.rand(8, 8), sigma=-1), "must be >= 0"),
    (lambda: classical_instances(np.random.rand(8, 8), peak_footprint=0), "peak_footprint must be an integer >= 1"),
])
def test_baseline_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# -- watershed_split (notebook 11) ----------------------------------------------------------------

from unet_lib.baselines import watershed_split  # noqa: E402


def test_watershed_split_cuts_two_touching_discs_at_the_waist():
    yy, xx = np.mgrid[:40, :60]
    pair = ((yy - 20) ** 2 + (xx - 20) ** 2 <= 100) | ((yy - 20) ** 2 + (xx - 38) ** 2 <= 100)
    labels = watershed_split(pair)
    assert labels.dtype == np.int64 and labels.max() == 2
    assert np.array_equal(labels > 0, pair)
    assert labels[20, 20] != labels[20, 38]
    assert len(np.unique(labels[:, 25:32][pair[:, 25:32]])) == 2   # the cut lies at the waist (x ~ 29)


def test_classical_instances_is_unchanged_by_the_refactoring():
    # the last step of classical_instances is watershed_split of its foreground
    image = np.zeros((40, 60))
    yy, xx = np.mgrid[:40, :60]
    image[((yy - 20) ** 2 + (xx - 20) ** 2 <= 100) | ((yy - 20) ** 2 + (xx - 38) ** 2 <= 100)] = 1.0
    labels = classical_instances(image, sigma=0, min_size=0)
    np.testing.assert_array_equal(labels, watershed_split(image > 0))


@pytest.mark.parametrize("kwargs, match", [
    (dict(foreground=np.zeros((2, 2, 2))), r"one \(H, W\) foreground"),
    (dict(foreground=np.zeros((4, 4)), distance_sigma=-1), "distance_sigma must be >= 0"),
    (dict(foreground=np.zeros((4, 4)), peak_footprint=0), "peak_footprint must be an integer >= 1"),
])
def test_watershed_split_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        watershed_split(**kwargs)


# -- post-processing scaled to the objects (#21) ---------------------------------------------------

from unet_lib.baselines import (ObjectSize, object_size, postprocess_instances, split_by_size,   # noqa: E402
                                watershed_split)


def _rod(shape, start, end, half_width):
    """A capsule: the pixels within ``half_width`` of the segment from ``start`` to ``end`` (y, x)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    (y0, x0), (y1, x1) = start, end
    t = np.clip(((yy - y0) * (y1 - y0) + (xx - x0) * (x1 - x0)) / ((y1 - y0) ** 2 + (x1 - x0) ** 2), 0, 1)
    return np.hypot(yy - y0 - t * (y1 - y0), xx - x0 - t * (x1 - x0)) <= half_width


def test_object_size_measures_whole_objects_and_leaves_out_those_cut_by_the_edge():
    labels, discs = _discs((60, 80), [(20, 20), (40, 55), (30, 78)], 6)      # the third is cut by the edge
    size = object_size([labels])
    assert size.count == 2 and size.area == discs[0].sum() == discs[1].sum() == size.large
    assert abs(size.radius - 6) <= 1                                          # the inscribed radius
    # two discs touching each other: each measured on its own, not as one blob
    touching, _ = _discs((40, 60), [(20, 20), (20, 33)], 7)
    assert abs(object_size([touching]).radius - 6) <= 1.5 and object_size([touching]).count == 2
    cut_only, _ = _discs((20, 20), [(10, 18)], 6)
    assert object_size([cut_only]).count == 1                                 # nothing whole: the cut one counts
    with pytest.raises(ValueError, match="found no object"):
        object_size([np.zeros((5, 5), np.int64)])


def test_split_by_size_splits_touching_discs_and_keeps_a_rod_whole():
    labels, _ = _discs((48, 64), [(24, 22), (24, 41)], 11)
    assert len(np.unique(split_by_size(labels > 0, radius=11))) - 1 == 2
    rod = _rod((50, 80), (10, 10), (38, 68), 3.0)                             # a slanted rod of radius 3
    assert len(np.unique(split_by_size(rod, radius=3))) - 1 == 1
    # plain local maxima in a window as wide (no tolerance) split the rod along its ridge
    assert len(np.unique(watershed_split(rod, peak_footprint=3))) - 1 > 1
    with pytest.raises(ValueError, match="radius must be > 0"):
        split_by_size(rod, radius=0)


def test_postprocess_instances_splits_only_objects_larger_than_the_training_objects():
    pair, _ = _discs((40, 70), [(20, 20), (20, 39)], 10)                    # two touching discs: one blob
    size = ObjectSize(area=320.0, radius=10.0, count=10, large=400.0)         # 95% of the objects under 400 px
    assert (pair > 0).sum() > 400 and len(np.unique(postprocess_instances(pair > 0, size))) - 1 == 2
    big = ObjectSize(area=320.0, radius=10.0, count=10, large=1000.0)          # blobs of that size are single objects
    assert len(np.unique(postprocess_instances(pair > 0, big))) - 1 == 1
    # a peanut of 289 px, a typical object's size, stays whole, though a watershed would split its waist
    peanut, _ = _discs((30, 40), [(15, 13), (15, 25)], 7)
    assert len(np.unique(split_by_size(peanut > 0, 5.0))) - 1 == 2
    assert len(np.unique(postprocess_instances(peanut > 0, ObjectSize(200.0, 5.0, 10, 300.0)))) - 1 == 1
    assert ObjectSize(100.0, 5.0, 3).merged_above == 200.0                     # without a percentile: twice the median


def test_postprocess_instances_removes_specks_under_a_tenth_of_the_typical_object():
    labels, _ = _discs((40, 60), [(20, 15), (20, 45)], 8)
    pred = labels > 0
    pred[2:4, 2:4] = True                                                     # a 4-pixel speck
    size = ObjectSize(area=200.0, radius=8.0, count=10)                       # specks: under 20 px
    out = postprocess_instances(pred, size)
    assert len(np.unique(out)) - 1 == 2 and out[2, 2] == 0 and set(np.unique(out)) == {0, 1, 2}
    kept = postprocess_instances(pred, ObjectSize(area=30.0, radius=8.0, count=10))   # specks: under 3 px
    assert kept[2, 2] > 0
    cells = np.where(labels > 0, labels + 10, 0)                               # cells of a class map: ids kept apart
    np.testing.assert_array_equal(postprocess_instances(cells, size, split=False) > 0, labels > 0)


def test_classical_instances_for_dark_objects_and_with_an_object_size():
    labels, _ = _discs((48, 64), [(24, 22), (24, 41)], 11)
    rng = np.random.default_rng(0)
    bright = np.where(labels > 0, 0.8, 0.2) + 0.02 * rng.standard_normal(labels.shape)
    np.testing.assert_array_equal(classical_instances(1 - bright, dark=True), classical_instances(bright))
    sized = classical_instances(bright, size=object_size([labels]))
    assert len(np.unique(sized)) - 1 == 2
