"""unet_lib.weights: the paper's weight map (Eq. 2) against a brute-force oracle and by hand."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from unet_lib.weights import (border_term, border_term_naive, class_weight_map, two_nearest_distances,
                              unet_weight_map)


def brute_force_distances(instances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """d1, d2 by comparing every pixel with every pixel of every cell: obviously right, slow."""
    H, W = instances.shape
    pixels = np.stack(np.mgrid[0:H, 0:W], axis=-1).reshape(-1, 2).astype(float)   # (H*W, 2)
    per_cell = []
    for i in np.unique(instances[instances > 0]):
        cell = np.argwhere(instances == i).astype(float)                            # (n_i, 2)
        d = np.sqrt(((pixels[:, None] - cell[None]) ** 2).sum(-1)).min(axis=1)      # (H*W,)
        per_cell.append(d.reshape(H, W))
    stacked = np.sort(np.stack(per_cell + [np.full((H, W), np.inf)] * 2), axis=0)   # per pixel; inf if < 2 cells
    return stacked[0], stacked[1]


def brute_force_weight_map(instances, w0=10.0, sigma=5.0, class_weights=(1.0, 1.0)):
    d1, d2 = brute_force_distances(instances)
    background = instances == 0
    w = np.where(background, class_weights[0], class_weights[1]).astype(float)
    if len(np.unique(instances[instances > 0])) >= 2:
        w += np.where(background, w0 * np.exp(-(d1 + d2) ** 2 / (2 * sigma**2)), 0)
    return w


def random_cells(shape, n_cells, rng, radius=(3, 8)):
    """Label image with discs at random places; later discs do not overwrite earlier ones."""
    H, W = shape
    yy, xx = np.mgrid[0:H, 0:W]
    instances = np.zeros(shape, np.int64)
    for i in range(1, n_cells + 1):
        cy, cx, r = rng.uniform(0, H), rng.uniform(0, W), rng.uniform(*radius)
        instances[((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) & (instances == 0)] = i
    return instances


def test_two_cells_worked_by_hand():
    # one row: cell 1 | background | background | cell 2
    instances = np.array([[1, 0, 0, 2]])
    # both gap pixels: d1 = 1, d2 = 2 -> w0 * exp(-9 / (2 * 25)); balanced w_c: 4 / (2 * 2) = 1
    gap = 1 + 10 * math.exp(-9 / 50)
    np.testing.assert_allclose(unet_weight_map(instances), [[1, gap, gap, 1]], rtol=1e-6)
    d1, d2 = two_nearest_distances(instances)
    np.testing.assert_array_equal(d1, [[0, 1, 1, 0]])
    np.testing.assert_array_equal(d2, [[3, 2, 2, 3]])


def test_balanced_class_weights_worked_by_hand():
    mask = np.zeros((3, 4), np.int64)
    mask[0, :3] = 1                       # 3 cell pixels, 9 background pixels
    w = class_weight_map(mask)
    assert w.dtype == np.float32
    np.testing.assert_allclose(w[mask == 1], 12 / (2 * 3))
    np.testing.assert_allclose(w[mask == 0], 12 / (2 * 9))
    # both classes carry the same total weight
    assert w[mask == 1].sum() == pytest.approx(w[mask == 0].sum())
    np.testing.assert_array_equal(class_weight_map(mask, (0.25, 4.0)), np.where(mask == 1, 4.0, 0.25))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", [(23, 31), (40, 17)])
def test_matches_brute_force_oracle(seed, shape):
    rng = np.random.default_rng(seed)
    instances = random_cells(shape, n_cells=6, rng=rng)
    expected = brute_force_weight_map(instances, w0=10.0, sigma=5.0)
    np.testing.assert_allclose(unet_weight_map(instances, class_weights=(1.0, 1.0)), expected, atol=1e-3)
    d1, d2 = brute_force_distances(instances)
    got1, got2 = two_nearest_distances(instances)
    np.testing.assert_allclose(got1, d1, atol=1e-9)
    np.testing.assert_allclose(got2, d2, atol=1e-9)


@pytest.mark.parametrize("w0, sigma", [(10.0, 5.0), (5.0, 2.0), (20.0, 9.0)])
def test_fast_equals_naive_on_many_cells(w0, sigma):
    rng = np.random.default_rng(1)
    instances = random_cells((256, 256), n_cells=35, rng=rng, radius=(8, 16))
    fast = border_term(instances, w0, sigma)
    slow = border_term_naive(instances, w0, sigma)
    assert fast.dtype == slow.dtype == np.float32
    assert np.abs(fast - slow).max() <= 1e-3
    assert slow.max() > 0.5 * w0          # the case does exercise the border term


def test_naive_matches_brute_force():
    instances = random_cells((21, 25), n_cells=5, rng=np.random.default_rng(7))
    expected = brute_force_weight_map(instances, class_weights=(0.0, 0.0))
    np.testing.assert_allclose(border_term_naive(instances), expected, atol=1e-5)


def test_border_term_only_on_background():
    instances = random_cells((48, 48), n_cells=8, rng=np.random.default_rng(3))
    term = border_term(instances)
    assert np.all(term[instances > 0] == 0)
    assert term[instances == 0].max() > 1


def test_empty_image_and_single_cell_have_no_border_term():
    empty = np.zeros((9, 11), np.int64)
    np.testing.assert_array_equal(unet_weight_map(empty), np.full((9, 11), 0.5, np.float32))
    np.testing.assert_array_equal(unet_weight_map(empty, class_weights=(1, 1)), np.ones((9, 11)))
    single = np.zeros((9, 11), np.int64)
    single[2:5, 3:7] = 4
    np.testing.assert_array_equal(border_term(single), 0)
    np.testing.assert_array_equal(unet_weight_map(single), class_weight_map((single > 0).astype(int)))
    d1, d2 = two_nearest_distances(single)
    assert np.isinf(d2).all() and d1[3, 4] == 0


def test_ids_do_not_matter():
    instances = random_cells((30, 34), n_cells=6, rng=np.random.default_rng(5))
    reference = unet_weight_map(instances)
    gappy = np.where(instances > 0, instances * 7 + 100, 0)            # non-consecutive ids
    huge = np.where(instances > 0, instances + 10**12, 0)                # ids far above the size
    shuffled = np.where(instances > 0, np.array([0, 5, 3, 6, 1, 2, 4])[instances], 0)
    for relabelled in (gappy, huge, shuffled, instances.astype(np.uint8)):
        np.testing.assert_allclose(unet_weight_map(relabelled), reference, atol=1e-6)


def test_torch_input():
    instances = random_cells((20, 22), n_cells=4, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(unet_weight_map(torch.from_numpy(instances)), unet_weight_map(instances))


def test_tolerance_bounds_the_error():
    instances = random_cells((64, 64), n_cells=10, rng=np.random.default_rng(4))
    exact = border_term_naive(instances)
    for tolerance in (1e-1, 1e-2, 1e-4):
        assert np.abs(border_term(instances, tolerance=tolerance) - exact).max() <= tolerance + 1e-6


def test_w0_zero_gives_class_weights_only():
    instances = random_cells((20, 20), n_cells=4, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(unet_weight_map(instances, w0=0.0), class_weight_map((instances > 0).astype(int)))


@pytest.mark.parametrize("bad, error, match", [
    (np.zeros((4, 4), np.float32), TypeError, "integer dtype.*astype"),
    (np.zeros((4, 4), bool), TypeError, "scipy.ndimage.label"),
    (np.array([[0, -1], [2, 0]]), ValueError, "negative ids"),
    (np.zeros((2, 4, 4), np.int64), ValueError, r"2-D \(H, W\)"),
])
def test_bad_labels(bad, error, match):
    with pytest.raises(error, match=match):
        unet_weight_map(bad)


@pytest.mark.parametrize("kwargs, match", [
    (dict(w0=-1.0), "w0 must be"),
    (dict(sigma=0.0), "sigma must be"),
    (dict(sigma=float("nan")), "sigma must be"),
    (dict(class_weights="inverse"), "not supported"),
    (dict(class_weights=(1.0, 2.0, 3.0)), "two finite numbers"),
    (dict(class_weights=(1.0, -2.0)), "two finite numbers"),
    (dict(tolerance=0.0), "tolerance must be a finite number > 0, got 0.0"),
])
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        unet_weight_map(np.array([[1, 0, 2]]), **kwargs)


def test_class_weight_map_rejects_labels():
    with pytest.raises(ValueError, match=r"only 0 \(background\) and 1"):
        class_weight_map(np.array([[0, 1, 2]]))


def test_gap_weight_grows_as_cells_come_closer():
    # the border term is what makes narrow gaps expensive: compare gaps of 2, 4 and 8 pixels
    peaks = []
    for gap in (2, 4, 8):
        instances = np.zeros((20, 20 + gap), np.int64)
        instances[5:15, 0:10], instances[5:15, 10 + gap:] = 1, 2
        peaks.append(border_term(instances)[10, 10:10 + gap].max())
    assert peaks[0] > peaks[1] > peaks[2]
    assert peaks[0] == pytest.approx(10 * math.exp(-(1 + 2) ** 2 / 50), rel=1e-5)   # d1 = 1, d2 = 2


def test_scipy_edt_agrees_with_our_distances():
    instances = random_cells((33, 29), n_cells=1, rng=np.random.default_rng(9))
    d1, _ = two_nearest_distances(instances)
    np.testing.assert_allclose(d1, ndimage.distance_transform_edt(instances == 0))


# -- property tests (hypothesis): the fast weight map equals the naive one on any label image ----

from hypothesis import given, settings, strategies as st   # noqa: E402
from hypothesis.extra.numpy import arrays   # noqa: E402

# any ids (small, huge, gaps), all background, one cell; sizes from 1x1 up
label_images = st.tuples(st.integers(1, 14), st.integers(1, 14)).flatmap(
    lambda shape: arrays(np.int64, shape, elements=st.sampled_from([0, 0, 0, 1, 2, 7, 2**40, 2**62])))


@settings(max_examples=25, deadline=None)
@given(instances=label_images, w0=st.floats(0.5, 20.0), sigma=st.floats(1.0, 8.0))
def test_property_border_term_equals_naive(instances, w0, sigma):
    fast = border_term(instances, w0=w0, sigma=sigma, tolerance=1e-6)
    np.testing.assert_allclose(fast, border_term_naive(instances, w0=w0, sigma=sigma), atol=1e-5)
    w = unet_weight_map(instances, w0=w0, sigma=sigma, tolerance=1e-6)
    assert w.shape == instances.shape and w.dtype == np.float32 and np.all(np.isfinite(w)) and np.all(w > 0)
    np.testing.assert_allclose(w - class_weight_map((instances > 0).astype(np.int64)), fast, atol=1e-5)


@pytest.mark.parametrize("call, error, match", [
    (lambda: unet_weight_map(np.zeros((0, 0), np.int64)), ValueError, r"instances must not be empty, got shape \(0, 0\)"),
    (lambda: unet_weight_map(np.array([[1, 0, 2]]), w0="10"), TypeError, r"w0 must be a finite number >= 0, got '10' \(str\)"),
    (lambda: unet_weight_map(np.array([[1, 0, 2]]), class_weights=[1, "a"]), TypeError, r"class_weights must be .*class_weights\[1\]"),
    (lambda: unet_weight_map(np.array([[1, 0, 2]]), class_weights={0: 1, 1: 2}), TypeError, r"class_weights must be .* got \{0: 1, 1: 2\} \(dict\)"),
    (lambda: unet_weight_map(np.array([[1, 0, 2]]), class_weights=(1.0, float("nan"))), ValueError, r"class_weights\[1\] must be a finite number"),
    (lambda: unet_weight_map(np.array([[1, 0, 2]]), sigma=float("inf")), ValueError, "sigma must be a finite number > 0, got inf"),
    (lambda: unet_weight_map(np.array([[1, 0, 2**63 + 5]], np.uint64)), ValueError, r"ids above 2\*\*63 - 1"),
    (lambda: unet_weight_map("cells.png"), TypeError, "instances must be a numpy array or torch tensor"),
    (lambda: two_nearest_distances(np.array([[1, 0, 2]]), max_distance=-1), ValueError, "max_distance must be a number > 0"),
])
def test_more_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


# -- #21: a tile full of cells costs what a sparse one does, and the weight map stays the same ----

def _border_term_before_21(instances, w0=10.0, sigma=5.0, tolerance=1e-4):
    """border_term as it was before #21 (every cell's distances on its box), kept as the oracle."""
    term = np.zeros(instances.shape, np.float32)
    if w0 == 0 or w0 <= tolerance:
        return term
    radius = sigma * math.sqrt(2 * math.log(w0 / tolerance))
    d1, d2 = two_nearest_distances(instances, max_distance=radius)
    near = (instances == 0) & (d1 + d2 <= radius)
    term[near] = w0 * np.exp(-(d1[near] + d2[near]) ** 2 / (2 * sigma**2))
    return term


def _crowded_tiles():
    from unet_lib.data import draw_cells, separate_touching
    tiles = []
    for seed, (size, n, radius) in enumerate([(132, (60, 60), (4.0, 6.0)), (132, (2, 2), (8.0, 12.0)),
                                              (96, (6, 12), (8.0, 15.0)), (61, (30, 40), (2.0, 4.0))]):
        _, instances = draw_cells(size, np.random.default_rng(seed), n_cells=n, radius=radius)
        tiles.append(separate_touching(instances)[:, : size - seed])      # not square but the first
    ids = tiles[0].copy()
    ids[ids > 0] = ids[ids > 0] * 1_000_003 + 2**40                       # huge ids with gaps
    return tiles + [ids]


@pytest.mark.parametrize("scan", [None, True, False])
def test_the_weight_map_is_bit_for_bit_what_it_was(monkeypatch, scan):
    """Both ways to d1 and d2 (boxes per cell, the neighbourhood scan) and the choice between them
    give exactly the weight map of before #21, on crowded, sparse and odd tiles and settings."""
    import unet_lib.weights as weights
    if scan is not None:                                                   # force one way
        monkeypatch.setattr(weights, "_SCAN_WHEN_BOXES_COVER", 0.0 if scan else math.inf)
    for instances in _crowded_tiles():
        for w0, sigma, tolerance in [(10.0, 5.0, 1e-4), (5.0, 3.0, 1e-6), (10.0, 9.5, 1e-2)]:
            expected = class_weight_map((instances > 0).astype(np.int64)) + _border_term_before_21(
                instances, w0, sigma, tolerance)
            np.testing.assert_array_equal(unet_weight_map(instances, w0, sigma, tolerance=tolerance), expected)


def test_a_crowded_tile_is_scanned_and_a_sparse_one_boxed(monkeypatch):
    """The choice by the work the boxes would do: 60 small cells on 132x132 (boxes covering the
    tile about 10 times over) are scanned; two cells are not. Counted by the calls, not timed."""
    import unet_lib.weights as weights
    calls = []
    scan = weights._two_nearest_by_scan
    monkeypatch.setattr(weights, "_two_nearest_by_scan", lambda *a: calls.append(a[0].shape) or scan(*a))
    crowded, sparse = _crowded_tiles()[:2]
    cells, cover = weights._boxes_cover(crowded, 25)
    assert cells >= 55 and cover > 9
    border_term(crowded)
    border_term(sparse)
    assert calls == [crowded.shape]
