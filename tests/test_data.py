"""unet_lib.data: the toy cell dataset and the ground truth computed from instances.

(load_real_nuclei and percentile_normalize are tested in tests/test_real_nuclei.py.)
"""

import re
import tracemalloc
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage

from unet_lib.data import (ToyCells, draw_cells, instances_to_mask, separate_touching, targets_from_instances,
                           touching_borders, touching_fraction)
from unet_lib.weights import unet_weight_map


def brute_force_borders(instances: np.ndarray) -> np.ndarray:
    """A cell pixel is on a border if one of its 8 neighbours is another cell: pixel by pixel."""
    H, W = instances.shape
    out = np.zeros((H, W), bool)
    for y in range(H):
        for x in range(W):
            if instances[y, x] == 0:
                continue
            window = instances[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]
            out[y, x] = np.any((window != 0) & (window != instances[y, x]))
    return out


def test_touching_borders_worked_by_hand():
    instances = np.array([[1, 1, 2, 2, 0, 3],
                          [1, 1, 0, 0, 0, 0],
                          [0, 0, 0, 0, 0, 4]])
    expected = np.array([[0, 1, 1, 0, 0, 0],
                         [0, 1, 0, 0, 0, 0],      # (1, 1) touches 2 diagonally
                         [0, 0, 0, 0, 0, 0]], bool)   # 3 and 4 are two rows apart: not touching
    np.testing.assert_array_equal(touching_borders(instances), expected)
    np.testing.assert_array_equal(separate_touching(instances), np.where(expected, 0, instances))
    np.testing.assert_array_equal(instances_to_mask(instances), (np.where(expected, 0, instances) > 0).astype(int))


def test_touching_fraction_worked_by_hand():
    # cells 1 and 2 touch, cell 5 stands alone (ids need not be consecutive): 2 of 3 touch
    instances = np.zeros((6, 8), np.int64)
    instances[1:3, 1:3], instances[1:3, 3:5], instances[4:6, 6:8] = 1, 2, 5
    assert touching_fraction(instances) == pytest.approx(2 / 3)
    assert touching_fraction(np.zeros((4, 4), np.int64)) == 0.0
    with pytest.raises(TypeError, match="instances"):
        touching_fraction(np.zeros((4, 4), np.float32) + 0.5)


def test_touching_borders_match_brute_force():
    _, instances = draw_cells(48, np.random.default_rng(3), n_cells=(8, 8), radius=(5, 9))
    expected = brute_force_borders(instances)
    assert expected.any()
    np.testing.assert_array_equal(touching_borders(instances), expected)


def test_targets_from_instances():
    _, instances = draw_cells(64, np.random.default_rng(0))
    mask, weight_map = targets_from_instances(instances, w0=7.0, sigma=3.0)
    assert mask.dtype == np.int64 and weight_map.dtype == np.float32
    np.testing.assert_array_equal(mask, instances_to_mask(instances))
    np.testing.assert_array_equal(weight_map, unet_weight_map(separate_touching(instances), w0=7.0, sigma=3.0))
    # the separating borders are background in the mask and get the largest weights
    borders = touching_borders(instances)
    assert np.all(mask[borders] == 0)
    assert weight_map[borders].mean() > 3 * weight_map[(instances == 0)].mean()


def test_sample_shapes_dtypes_and_ranges():
    ds = ToyCells(3, size=96, seed=1)
    assert len(ds) == 3
    sample = ds[0]
    assert set(sample) == {"image", "instances", "mask", "weight_map"}
    assert sample["image"].shape == (1, 96, 96) and sample["image"].dtype == torch.float32
    assert 0 <= sample["image"].min() and sample["image"].max() <= 1
    for key, dtype in [("instances", torch.int64), ("mask", torch.int64), ("weight_map", torch.float32)]:
        assert sample[key].shape == (96, 96) and sample[key].dtype == dtype
    assert set(sample["mask"].unique().tolist()) == {0, 1}
    assert (sample["weight_map"] > 0).all()
    mask, weight_map = targets_from_instances(sample["instances"].numpy())
    np.testing.assert_array_equal(sample["mask"].numpy(), mask)
    np.testing.assert_array_equal(sample["weight_map"].numpy(), weight_map)


def test_instance_ids_are_consecutive():
    for i in range(5):
        ids = ToyCells(5, seed=2)[i]["instances"].unique().tolist()
        assert ids == list(range(len(ids)))


def test_sample_depends_only_on_seed_and_index():
    in_order = [ToyCells(4, seed=7)[i] for i in range(4)]
    backwards = ToyCells(4, seed=7)
    for i in reversed(range(4)):
        for key in in_order[i]:
            assert torch.equal(backwards[i][key], in_order[i][key])
    assert torch.equal(backwards[-1]["image"], in_order[3]["image"])
    assert not torch.equal(in_order[0]["image"], in_order[1]["image"])
    assert not torch.equal(ToyCells(4, seed=8)[0]["image"], in_order[0]["image"])
    # the length of the dataset does not change a sample
    assert torch.equal(ToyCells(100, seed=7)[2]["instances"], in_order[2]["instances"])


def test_defaults_make_cells_touch():
    ds = ToyCells(10)
    touching = [touching_borders(ds[i]["instances"].numpy()).any() for i in range(len(ds))]
    assert sum(touching) >= 9
    counts = [int(ds[i]["instances"].max()) for i in range(len(ds))]
    assert 6 <= min(counts) and max(counts) <= 12


def test_knobs():
    apart = sum(touching_borders(ToyCells(8, touching=0.0, seed=4)[i]["instances"].numpy()).sum() for i in range(8))
    pressed = sum(touching_borders(ToyCells(8, touching=1.0, seed=4)[i]["instances"].numpy()).sum() for i in range(8))
    assert pressed > 2 * apart
    assert all(ToyCells(4, n_cells=(3, 3))[i]["instances"].max() <= 3 for i in range(4))
    quiet = ToyCells(1, noise=0.0)[0]["image"].numpy()[0]
    noisy = ToyCells(1, noise=0.2)[0]["image"].numpy()[0]
    assert np.abs(np.diff(noisy, axis=1)).mean() > 3 * np.abs(np.diff(quiet, axis=1)).mean()
    assert ToyCells(1, size=40, radius=(4.0, 6.0))[0]["image"].shape == (1, 40, 40)


def test_large_images_are_cheap_to_draw():
    # notebook 08 draws a 1024x1024 image: memory must grow with the pixels, not pixels x cells
    tracemalloc.start()
    try:
        _, instances = draw_cells(1024, np.random.default_rng(0), n_cells=(500, 500))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert instances.max() > 400
    assert peak < 200e6, f"drawing 1024x1024 with 500 cells took {peak / 1e6:.0f} MB"


def test_a_threshold_does_not_separate_touching_cells():
    # the point of the data: any global threshold that keeps most of the cells merges some of them
    sample = ToyCells(1, seed=0)[0]
    image, instances = sample["image"].numpy()[0], sample["instances"].numpy()
    for t in np.linspace(0.2, 0.8, 13):
        foreground = image > t
        if foreground[instances > 0].mean() < 0.8:
            continue
        components = ndimage.label(foreground)[0]
        # the connected component that holds most of each cell
        home = [np.bincount(components[instances == i]).argmax() for i in range(1, instances.max() + 1)]
        home = [c for c in home if c > 0]
        assert len(home) - len(set(home)) >= 3, f"threshold {t:.2f} separates the cells"


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n .* must be an integer >= 1"),
    (dict(n=2, size=8), "size must be an integer >= 16"),
    (dict(n=2, n_cells=(5, 2)), "n_cells must be"),
    (dict(n=2, radius=(1.0, 5.0)), "radius must be"),
    (dict(n=2, size=30, radius=(4.0, 20.0)), "radius must be"),
    (dict(n=2, touching=1.5), "touching is a probability"),
    (dict(n=2, noise=-0.1), "noise .* must be a finite number >= 0, got -0.1"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ToyCells(**kwargs)


def test_index_out_of_range():
    with pytest.raises(IndexError, match="out of range for ToyCells of length 3"):
        ToyCells(3)[3]


def test_ground_truth_rejects_bad_labels():
    with pytest.raises(TypeError, match="integer dtype"):
        instances_to_mask(np.zeros((4, 4), np.float64))
    with pytest.raises(ValueError, match="negative ids"):
        targets_from_instances(np.array([[0, -3]]))


@pytest.mark.parametrize("call, error, match", [
    (lambda: ToyCells(2, n_cells=5), TypeError, r"n_cells must be a pair \(min, max\) of two integers, got 5"),
    (lambda: ToyCells(2, seed=-1), ValueError, r"seed must be an integer in \[0, .*got -1; numpy and torch generators"),
    (lambda: ToyCells(2, seed=None), TypeError, r"seed must be an integer in \[0, .*got None"),
    (lambda: ToyCells(2, w0="10"), TypeError, r"w0 must be a finite number >= 0, got '10' \(str\)"),
    (lambda: ToyCells(2, class_weights=[1, "a"]), TypeError, r"class_weights must be"),
    (lambda: ToyCells(2)[1.0], TypeError, r"index must be an integer, got 1.0; ToyCells is indexed one sample at a time"),
    (lambda: ToyCells(2)["0"], TypeError, r"index must be an integer, got '0' \(str\)"),
    (lambda: ToyCells(2)[0:1], TypeError, r"index must be an integer, got slice"),
    (lambda: ToyCells(2)[torch.tensor(0.0)], TypeError, r"index must be an integer, got tensor of shape \(\), dtype torch.float32"),
    (lambda: draw_cells(64, 0), TypeError, r"rng must be a numpy.random.Generator .* got 0"),
    (lambda: draw_cells(64.0, np.random.default_rng()), TypeError, r"size must be an integer >= 16, got 64.0"),
])
def test_more_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_0d_integer_tensor_is_an_index():
    data = ToyCells(2, size=32, radius=(4.0, 8.0))
    assert torch.equal(data[torch.tensor(1)]["image"], data[1]["image"])
    assert torch.equal(data[np.int64(-1)]["image"], data[1]["image"])


# -- interior_border_classes and real_nuclei_crops (notebook 11) --------------------------------

from unet_lib.data import interior_border_classes, load_real_nuclei, real_nuclei_crops  # noqa: E402


def test_interior_border_classes_by_hand():
    instances = np.array([[0, 0, 0, 0, 0, 0],
                          [0, 1, 1, 1, 2, 2],
                          [0, 1, 1, 1, 2, 2],
                          [0, 1, 1, 1, 2, 2],
                          [0, 0, 0, 0, 0, 0]])
    expected = np.array([[0, 0, 0, 0, 0, 0],
                         [0, 2, 2, 2, 2, 2],
                         [0, 2, 1, 2, 2, 1],      # the 3x3 cell keeps its centre; the image edge is not a label
                         [0, 2, 2, 2, 2, 2],
                         [0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(interior_border_classes(instances, width=1), expected)
    assert interior_border_classes(instances, width=1).dtype == np.int64


def test_interior_border_classes_width_and_oracle():
    _, instances = draw_cells(64, np.random.default_rng(3))
    for width in (1, 2, 3):
        classes = interior_border_classes(instances, width)
        assert np.array_equal(classes > 0, instances > 0)
        # oracle: a cell pixel is interior iff its (2w+1) square (clipped to the image) holds only its own label
        padded = np.pad(instances, width, mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, (2 * width + 1,) * 2)
        interior = (windows == instances[..., None, None]).all(axis=(-2, -1)) & (instances > 0)
        np.testing.assert_array_equal(classes == 1, interior)


def test_interior_border_classes_refuses_a_bad_width():
    with pytest.raises(ValueError, match="width"):
        interior_border_classes(np.zeros((4, 4), np.int64), width=0)


def test_real_nuclei_crops_cut_the_left_half():
    crops = real_nuclei_crops()
    assert list(crops) == [f"nuclei_y{y:03d}_x{x:03d}" for y in (0, 128, 256, 384) for x in (0, 128)]
    image, instances = load_real_nuclei()
    for stem, (crop, labels) in crops.items():
        y, x = int(stem[8:11]), int(stem[13:16])
        assert crop.dtype == np.uint8 and labels.dtype == np.uint16 and crop.shape == labels.shape == (128, 128)
        truth = instances[y:y + 128, x:x + 128]
        assert np.array_equal(labels > 0, truth > 0)
        assert labels.max() == len(np.unique(truth)) - 1            # relabelled 1..n
    right = real_nuclei_crops(256, columns=(256, 512))
    assert list(right) == ["nuclei_y000_x256", "nuclei_y256_x256"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(size=100), "size must divide 512"),
    (dict(columns=(0, 200)), "multiple of size=128"),
    (dict(columns=(256, 128)), r"0 <= left < right <= 512"),
])
def test_real_nuclei_crops_refuses_bad_cuts(kwargs, match):
    with pytest.raises(ValueError, match=match):
        real_nuclei_crops(**kwargs)


def test_cells_that_cannot_fit_are_refused_with_the_most_that_can():
    """#21: ToyCells(1, size=32, n_cells=(3000, 3000), radius=(3, 5)) placed 26 cells without a
    word. By hand: centres >= 0.7 (3 + 3) = 4.2 px apart and within [1.5, 30.5], so disks of radius
    2.1 around them are disjoint inside a 33.2 px square: at most 33.2**2 / (pi 2.1**2) = 79.6."""
    with pytest.raises(ValueError, match=r"n_cells=\(3000, 3000\) asks for at least 3000 cells, but at most 79 cells "
                                         r"of radius >= 3 fit in a 32x32 image"):
        ToyCells(1, size=32, n_cells=(3000, 3000), radius=(3, 5))
    with pytest.raises(ValueError, match="at most 79 cells"):
        draw_cells(32, np.random.default_rng(0), n_cells=(80, 90), radius=(3, 5))


def test_a_crowded_sample_is_warned_about_with_the_number_placed_once_per_dataset():
    data = ToyCells(3, size=32, n_cells=(50, 50), radius=(3, 5))      # fits the bound, not a random placement
    with pytest.warns(UserWarning, match=r"ToyCells sample 0 .*: only (\d+) of the 50 cells drawn from "
                                         r"n_cells=\(50, 50\) found room in the 32x32 image") as record:
        instances = data[0]["instances"]
    placed = int(re.search(r"only (\d+) of", str(record[0].message)).group(1))
    assert placed < 25 and len(np.unique(instances)) - 1 <= placed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data[1], data[2]                                             # once per dataset
    with pytest.warns(UserWarning, match=r"draw_cells: only \d+ of the 50 cells"):
        draw_cells(32, np.random.default_rng([0, 0]), n_cells=(50, 50), radius=(3, 5))


@pytest.mark.parametrize("kwargs", [dict(size=48, seed=5), dict(size=32, radius=(4.0, 8.0)), dict(size=64),
                                    dict(size=40, radius=(4.0, 6.0)), dict(size=96, seed=4), dict(seed=2000)])
def test_the_courses_small_images_stay_silent(kwargs):
    """The course's own cramped settings (fewer cells placed than drawn, as before) warn about nothing."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = ToyCells(4, **kwargs)
        for i in range(4):
            data[i]
