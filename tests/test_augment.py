"""unet_lib.augment: joint transforms keep labels integral and aligned with the image."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from unet_lib.augment import (AugmentConfig, Augmented, augment, elastic_deform, elastic_displacement,
                              upsample_displacement)
from unet_lib.data import ToyCells, draw_cells, targets_from_instances
from unet_lib.weights import class_balance_map

GEOMETRY_ONLY = AugmentConfig(elastic=0.0, brightness=0.0, contrast=0.0, gamma=0.0)
NO_INTENSITY = AugmentConfig(brightness=0.0, contrast=0.0, gamma=0.0)


def labelled_pair(size=48, seed=0):
    """instances and an image that encodes them: image = instances / 16 (both (H, W))."""
    _, instances = draw_cells(size, np.random.default_rng(seed), radius=(5.0, 9.0))
    return (instances / 16).astype(np.float32), instances


@pytest.mark.parametrize("seed", range(6))
def test_flips_and_rotations_are_joint_and_exact(seed):
    image, instances = labelled_pair()
    out_image, out_instances = augment(image, instances, np.random.default_rng(seed), GEOMETRY_ONLY)
    np.testing.assert_array_equal(out_image * 16, out_instances)
    # one of the 8 symmetries of the square
    symmetries = [np.rot90(f, k) for f in (instances, instances[::-1]) for k in range(4)]
    assert any(np.array_equal(out_instances, s) for s in symmetries)


@pytest.mark.parametrize("seed", range(4))
def test_elastic_keeps_labels_integral_and_aligned(seed):
    image, instances = labelled_pair(size=128, seed=seed)   # at 48 px, sigma = 10 px can fold the image
    out_image, out_instances = augment(image, instances, np.random.default_rng(seed), NO_INTENSITY)
    assert out_instances.dtype == instances.dtype
    assert set(np.unique(out_instances)) <= set(np.unique(instances))        # no new ids
    assert not np.array_equal(out_instances, instances)
    # the image is interpolated linearly, the labels by nearest neighbour: each image value is a
    # mix of labels that lie next to each other, so it stays within the labels of its neighbourhood
    low = ndimage.minimum_filter(out_instances, size=5, mode="nearest")
    high = ndimage.maximum_filter(out_instances, size=5, mode="nearest")
    assert np.all((low - 1e-4 <= out_image * 16) & (out_image * 16 <= high + 1e-4))
    assert np.isclose(out_image * 16, out_instances, atol=1e-4).mean() > 0.75


def test_elastic_deform_samples_image_and_labels_at_the_same_points():
    image, instances = labelled_pair(size=128, seed=1)
    _, displacement = elastic_displacement(instances.shape, np.random.default_rng(0))
    out_image, out_instances = elastic_deform(image, instances, displacement)
    # where the four pixels around a sampling point carry one label, both outputs must be it
    H, W = instances.shape
    rows, cols = np.arange(H)[:, None] + displacement[0], np.arange(W)[None, :] + displacement[1]
    inside = (rows >= 0) & (rows <= H - 1) & (cols >= 0) & (cols <= W - 1)   # no reflection needed
    rows, cols = np.clip(rows, 0, H - 1), np.clip(cols, 0, W - 1)
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    r1, c1 = np.minimum(r0 + 1, H - 1), np.minimum(c0 + 1, W - 1)
    corners = np.stack([instances[r0, c0], instances[r0, c1], instances[r1, c0], instances[r1, c1]])
    uniform = (corners == corners[0]).all(axis=0) & inside
    assert uniform.mean() > 0.5
    np.testing.assert_array_equal(out_instances[uniform], corners[0][uniform])
    np.testing.assert_allclose(out_image[uniform] * 16, corners[0][uniform], atol=1e-4)


def test_zero_displacement_is_the_identity():
    image, instances = labelled_pair()
    out_image, out_instances = elastic_deform(image, instances, np.zeros((2,) + instances.shape))
    np.testing.assert_array_equal(out_instances, instances)
    np.testing.assert_allclose(out_image, image)


def test_whole_pixel_shift_worked_by_hand():
    instances = np.arange(20).reshape(4, 5)
    displacement = np.zeros((2, 4, 5))
    displacement[1] = 1.0                 # every output pixel takes the value one column to the right
    image, out = elastic_deform(instances.astype(np.float64), instances, displacement)
    expected = np.concatenate([instances[:, 1:], instances[:, -1:]], axis=1)   # reflect at the edge
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(image, expected)


def test_upsampled_field_passes_through_the_grid_points():
    coarse = np.random.default_rng(0).normal(0, 10, (2, 3, 3))
    field = upsample_displacement(coarse, (33, 41))       # nodes at rows 0, 16, 32 and columns 0, 20, 40
    np.testing.assert_allclose(field[:, ::16, ::20], coarse, atol=1e-9)
    np.testing.assert_allclose(upsample_displacement(np.full((2, 3, 3), 2.5), (8, 9)), 2.5)
    # bicubic is smooth: neighbouring pixels move almost together
    assert np.abs(np.diff(field, axis=2)).max() < 3


def test_coarse_displacements_have_the_papers_spread():
    rng = np.random.default_rng(0)
    coarse = np.stack([elastic_displacement((16, 16), rng)[0] for _ in range(400)])   # (400, 2, 3, 3)
    assert coarse.std() == pytest.approx(10.0, rel=0.05)
    assert abs(coarse.mean()) < 0.5
    assert elastic_displacement((16, 20), rng, grid=5, sigma=2.0)[1].shape == (2, 16, 20)


def test_same_generator_same_result_and_kinds_preserved():
    image, instances = labelled_pair()
    a = augment(image[None], instances, np.random.default_rng(3))
    b = augment(image[None], instances, np.random.default_rng(3))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].shape == (1, 48, 48) and a[0].dtype == np.float32
    assert 0 <= a[0].min() and a[0].max() <= 1
    t_image, t_instances = augment(torch.from_numpy(image[None]), torch.from_numpy(instances), np.random.default_rng(3))
    assert isinstance(t_image, torch.Tensor) and isinstance(t_instances, torch.Tensor)
    torch.testing.assert_close(t_image, torch.from_numpy(a[0]))
    assert t_instances.dtype == torch.int64


def test_intensity_changes_leave_labels_alone():
    image, instances = labelled_pair()
    config = AugmentConfig(flip=False, rotate90=False, elastic=0.0, brightness=0.2, contrast=0.3, gamma=0.3)
    out_image, out_instances = augment(image, instances, np.random.default_rng(1), config)
    np.testing.assert_array_equal(out_instances, instances)
    assert not np.allclose(out_image, image)


def test_non_square_images_keep_their_shape():
    image, instances = np.zeros((20, 30), np.float32), np.zeros((20, 30), np.int64)
    for seed in range(8):
        out_image, out_instances = augment(image, instances, np.random.default_rng(seed))
        assert out_image.shape == out_instances.shape == (20, 30)


def test_augmented_dataset():
    base = ToyCells(3, size=64, seed=0)
    aug = Augmented(base, seed=5)
    first, second = aug[1], aug[1]
    assert set(first) == {"image", "instances", "mask", "weight_map"}
    assert first["image"].shape == (1, 64, 64) and first["image"].dtype == torch.float32
    assert first["mask"].dtype == torch.int64 and first["weight_map"].dtype == torch.float32
    assert not torch.equal(first["instances"], second["instances"])          # a new draw each access
    mask, weight_map = targets_from_instances(first["instances"].numpy())
    np.testing.assert_array_equal(first["mask"].numpy(), mask)               # targets match the warp
    np.testing.assert_array_equal(first["weight_map"].numpy(), weight_map)
    again = Augmented(base, seed=5)
    assert torch.equal(again[1]["image"], first["image"])                    # reproducible from the seed
    assert torch.equal(again[-2]["image"], second["image"])                  # index -2 is sample 1
    with pytest.raises(IndexError, match="out of range"):
        aug[3]


def test_augmented_keeps_the_datasets_weight_map_settings():
    base = ToyCells(2, size=64, seed=0, w0=0.0, class_weights=(1.0, 1.0))   # w(x) = 1 everywhere
    aug = Augmented(base, seed=0)
    assert aug.target_kwargs == base.target_kwargs
    assert torch.all(aug[0]["weight_map"] == 1.0)
    assert Augmented(base, w0=3.0).target_kwargs == {**base.target_kwargs, "w0": 3.0}   # given here wins
    plain = Augmented([base[0]], seed=0)                                                 # no target_kwargs
    assert plain.target_kwargs == dict(w0=10.0, sigma=5.0, class_weights="balanced")   # the paper's


@pytest.mark.parametrize("call, error, match", [
    (lambda: augment(np.zeros((8, 8)), np.zeros((8, 8), int), 0), TypeError, "numpy.random.Generator"),
    (lambda: augment(np.zeros((8, 8)), np.zeros((8, 9), int), np.random.default_rng()), ValueError, "same H, W"),
    (lambda: augment(np.zeros((1, 3, 8, 8)), np.zeros((8, 8), int), np.random.default_rng()), ValueError,
     r"\(C, H, W\) or \(H, W\)"),
    (lambda: augment(np.zeros((3, 8, 8)), np.zeros((8, 9), int), np.random.default_rng()), ValueError,
     r"image \(3, 8, 8\) and instances \(8, 9\) must have the same H, W"),
    (lambda: augment(np.zeros((8, 8)), np.zeros((8, 8)), np.random.default_rng()), TypeError, "integer dtype"),
    (lambda: upsample_displacement(np.zeros((3, 3)), (8, 8)), ValueError, r"\(2, g, g\)"),
    (lambda: elastic_displacement((8, 8), np.random.default_rng(), grid=1), ValueError, "grid must be"),
    (lambda: elastic_displacement((8, 8), np.random.default_rng(), sigma=-1), ValueError, "sigma must be"),
    (lambda: elastic_deform(np.zeros((8, 8)), np.zeros((8, 8), int), np.zeros((2, 8, 9))), ValueError,
     r"\(2, H, W\)"),
])
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("call, error, match", [
    (lambda: augment(np.full((8, 8), 200, np.uint8), np.zeros((8, 8), int), np.random.default_rng()), TypeError, r"image must be floating point in \[0, 1\], got uint8.*/ 255"),
    (lambda: augment(np.full((8, 8), 200.0), np.zeros((8, 8), int), np.random.default_rng()), ValueError, r"image must hold values in \[0, 1\], got 64 pixels outside, from 200 to 200; images in 0..255\? divide by 255"),
    (lambda: augment(np.where(np.eye(8) > 0, np.nan, 0.5), np.zeros((8, 8), int), np.random.default_rng()), ValueError, r"image must be finite, got 8 NaN values among its 64"),
    (lambda: augment(np.zeros((8, 8)), np.zeros((8, 8), int), np.random.default_rng(), config={"flip": False}), TypeError, r"config must be an AugmentConfig or None, got \{'flip': False\} \(dict\); build one with AugmentConfig\(\*\*settings\)"),
    (lambda: augment(np.zeros((8, 8)), np.zeros((8, 8), int), np.random.default_rng(), AugmentConfig(elastic=2.0)), ValueError, r"config.elastic must be a finite number in \[0, 1\], got 2.0"),
    (lambda: augment(np.zeros((0, 0)), np.zeros((0, 0), int), np.random.default_rng()), ValueError, r"instances must not be empty"),
    (lambda: elastic_displacement((8, "8"), np.random.default_rng()), TypeError, r"shape\[1\] must be an integer >= 1, got '8' \(str\)"),
    (lambda: Augmented(ToyCells(1, size=32, radius=(4.0, 8.0)), seed=-1), ValueError, r"seed must be an integer in \[0, 18446744073709551615\], got -1"),
    (lambda: Augmented(ToyCells(1, size=32, radius=(4.0, 8.0)))[0.0], TypeError, r"index must be an integer, got 0.0"),
])
def test_more_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_augmented_refuses_weight_maps_it_cannot_recompute():
    base = ToyCells(2, size=32, n_cells=(2, 3), radius=(4.0, 8.0))
    custom = [dict(base[0], weight_map=torch.ones(32, 32))]
    with pytest.raises(ValueError, match=r"dataset\[0\]\['weight_map'\] is not Eq. 2 of its instances with w0=10.0"):
        Augmented(custom)[0]
    assert Augmented(custom, w0=0.0, class_weights=(1.0, 1.0))[0]["weight_map"].eq(1).all()   # settings that match


@pytest.mark.parametrize("big", [2**53 + 1, 2**62 + 3, 2**64 - 1])
def test_elastic_deform_keeps_any_integer_id(big):
    dtype = np.uint64 if big >= 2**63 else np.int64
    if big >= 2**63:   # ids above int64 are refused up front, by name
        with pytest.raises(ValueError, match=r"ids above 2\*\*63 - 1"):
            augment(np.zeros((16, 16)), np.full((16, 16), big, dtype), np.random.default_rng(0))
        return
    instances = np.zeros((16, 16), dtype)
    instances[2:9, 2:9], instances[9:14, 9:14] = big, big + 2
    _, displacement = elastic_displacement((16, 16), np.random.default_rng(0), sigma=3.0)
    _, warped = elastic_deform(np.zeros((16, 16)), instances, displacement)
    assert set(np.unique(warped)) <= {0, big, big + 2} and warped.dtype == dtype


def _class_sample(size=64, seed=0, k=3):
    """A class map (0..k-1, no instances) and an image that encodes it: image = mask / (k - 1)."""
    _, instances = draw_cells(size, np.random.default_rng(seed), radius=(5.0, 9.0))
    mask = np.where(instances > 0, instances % (k - 1) + 1, 0)
    return {"image": torch.from_numpy((mask / (k - 1)).astype(np.float32)[None]), "mask": torch.from_numpy(mask),
            "instances": torch.zeros(size, size, dtype=torch.int64),
            "weight_map": torch.from_numpy(class_balance_map(mask, k))}


@pytest.mark.parametrize("seed", range(3))
def test_every_channel_gets_the_same_transform(seed):
    image, instances = labelled_pair(size=96, seed=seed)
    # three different patterns: each channel of the 3-channel result is what a 1-channel
    # augmentation with the same generator makes of that channel alone
    channels = np.stack([image, 1 - image, np.full_like(image, 0.5)])          # (3, H, W)
    out, out_instances = augment(channels, instances, np.random.default_rng(seed))
    assert out.shape == (3, 96, 96) and out.dtype == np.float32
    for c in range(3):
        alone, alone_instances = augment(channels[c], instances, np.random.default_rng(seed))
        np.testing.assert_array_equal(out[c], alone)
        np.testing.assert_array_equal(out_instances, alone_instances)
    equal, _ = augment(np.stack([image] * 3), instances, np.random.default_rng(seed))
    assert np.array_equal(equal[0], equal[1]) and np.array_equal(equal[1], equal[2])   # equal channels stay equal
    assert not np.array_equal(out[0], image)


def test_augmented_class_maps_stay_class_maps_aligned_with_the_image():
    sample = _class_sample(size=128)             # at 64 px, sigma = 10 px can fold the image
    labels = set(np.unique(sample["mask"].numpy()))
    aug = Augmented([sample], seed=0, config=NO_INTENSITY)
    for _ in range(3):
        out = aug[0]
        mask = out["mask"].numpy()
        assert set(np.unique(mask)) <= labels and len(np.unique(mask)) == 3   # labels never blend
        assert not np.array_equal(mask, sample["mask"].numpy())               # it moved
        np.testing.assert_array_equal(out["weight_map"].numpy(), class_balance_map(mask, 3))
        assert not out["instances"].any()
        # the image (mask / 2) moved with the mask: interpolated linearly, it mixes the classes next to
        # each pixel and equals its class almost everywhere (as for instances above)
        image2 = out["image"][0].numpy() * 2
        low, high = ndimage.minimum_filter(mask, size=5), ndimage.maximum_filter(mask, size=5)
        assert np.all((low - 1e-4 <= image2) & (image2 <= high + 1e-4))
        assert np.isclose(image2, mask, atol=1e-4).mean() > 0.8


def test_augmented_keeps_k_class_masks_made_from_instances():
    base = ToyCells(2, size=48, n_cells=(3, 5), radius=(5.0, 9.0))
    five = [dict(s, mask=s["mask"] * 5) for s in (base[0], base[1])]   # labels 0 and 5, Eq. 2 weights
    out = Augmented(five, seed=1)[0]
    mask, instances = out["mask"].numpy(), out["instances"].numpy()
    assert set(np.unique(mask)) == {0, 5}                               # not replaced by 0/1 targets
    assert np.all(instances[mask > 0] > 0)                              # warped with the instances
    np.testing.assert_array_equal(out["weight_map"].numpy(), targets_from_instances(instances)[1])


def test_augmented_multichannel_samples_and_constant_weights():
    sample = _class_sample()
    three = dict(sample, image=torch.cat([sample["image"], 1 - sample["image"], sample["image"]]),
                 weight_map=torch.full((64, 64), 2.0))
    out = Augmented([three], seed=2, config=NO_INTENSITY)[0]
    assert out["image"].shape == (3, 64, 64)
    torch.testing.assert_close(out["image"][1], 1 - out["image"][0], atol=1e-6, rtol=0)
    assert torch.equal(out["image"][0], out["image"][2])
    assert torch.all(out["weight_map"] == 2.0)                           # a constant weight map stays constant


def test_augmented_refuses_a_weight_map_of_a_class_map_it_cannot_recompute():
    sample = _class_sample()
    odd = dict(sample, weight_map=torch.rand(64, 64, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match=r"dataset\[0\]\['weight_map'\] is neither Eq. 2 of its instances .*nor the "
                                         r"class balance of its mask .*nor constant.*augment=False"):
        Augmented([odd])[0]
    with pytest.raises(ValueError, match=r"dataset\[0\]\['mask'\] is \(60, 64\), its instances \(64, 64\)"):
        Augmented([dict(sample, mask=sample["mask"][:60])])[0]


class _LaterPatch(torch.utils.data.Dataset):
    """A dataset that draws anew on each access (as random tiles do): its first draw of a sample is
    an ordinary binary mask, later ones carry a 6x6 patch of class 5 (#21: it was replaced by the
    instances' foreground, a 6-class model trained on 0/1 targets without a word)."""
    draws_on_access = True

    def __init__(self):
        self.base, self.accesses = ToyCells(1, size=48, n_cells=(3, 5), radius=(5.0, 9.0))[0], 0

    def __len__(self):
        return 1

    def __getitem__(self, i):
        self.accesses += 1
        mask = self.base["mask"].clone()
        if self.accesses > 1:
            mask[20:26, 20:26] = 5
        return dict(self.base, mask=mask)


def test_augmented_keeps_classes_that_a_later_draw_brings():
    aug = Augmented(_LaterPatch(), seed=0, config=AugmentConfig(elastic=0.0))   # flips and rotations keep a patch
    first = aug[0]
    assert set(np.unique(first["mask"].numpy())) <= {0, 1}                    # decided on: targets of the instances
    later = aug[0]
    assert int((later["mask"] == 5).sum()) == 36                             # the patch kept, moved with the image
    np.testing.assert_array_equal(later["weight_map"].numpy(), targets_from_instances(later["instances"].numpy())[1])
