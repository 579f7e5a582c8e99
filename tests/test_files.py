"""unet_lib.files: folders of images and masks, generated in temporary folders for every format."""

import os
import warnings

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch
from scipy import ndimage

from unet_lib.augment import AugmentConfig, Augmented
from unet_lib.data import draw_cells, percentile_normalize, targets_from_instances
from unet_lib.files import (ImageFolder, class_balance_map, find_pairs, normalize_image, read_image, read_mask,
                            split_by_image, write_labels)
from unet_lib.tiling import mirror_pad
from unet_lib.weights import class_weight_map

H, W = 29, 35          # odd, not square: a transposed axis shows


def cells(seed: int = 0, h: int = H, w: int = W) -> tuple[np.ndarray, np.ndarray]:
    """A small (image float (H, W) in [0, 1], instances int64 (H, W)) pair with a few cells."""
    image, instances = draw_cells(max(h, w, 36), np.random.default_rng(seed), n_cells=(3, 5), radius=(4.0, 7.0))
    return image[:h, :w], instances[:h, :w]


def write(path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".tif", ".tiff"):
        tifffile.imwrite(path, array)
    else:
        iio.imwrite(path, array)


def folder(tmp_path, images: dict, masks: dict):
    """images/ and masks/ under tmp_path with {file name: array}; returns the two folders."""
    for name, array in images.items():
        write(tmp_path / "images" / name, array)
    for name, array in masks.items():
        write(tmp_path / "masks" / name, array)
    (tmp_path / "images").mkdir(exist_ok=True)
    (tmp_path / "masks").mkdir(exist_ok=True)
    return tmp_path / "images", tmp_path / "masks"


def as_uint8(image):
    return np.round(image * 255).astype(np.uint8)


def as_uint16(image):
    return np.round(image * 60000).astype(np.uint16)


# -- formats, bit depths and layouts -----------------------------------------------------------

def image_in(fmt: str, image: np.ndarray) -> tuple[str, np.ndarray, np.ndarray]:
    """(file name, array to write, expected (C, H, W) raw) for one format of a (H, W) image."""
    rgb = np.stack([image, image**2, 1 - image], -1)                         # (H, W, 3)
    two = np.stack([image, image[::-1]])                                     # (2, H, W)
    return {
        "png8": ("a.png", as_uint8(image), as_uint8(image)[None]),
        "png16": ("a.png", as_uint16(image), as_uint16(image)[None]),
        "tif16": ("a.tif", as_uint16(image), as_uint16(image)[None]),
        "tif_float32": ("a.tiff", image.astype(np.float32), image.astype(np.float32)[None]),
        "png_rgb": ("a.png", as_uint8(rgb), np.moveaxis(as_uint8(rgb), -1, 0)),
        "tif_chw": ("a.tif", as_uint16(two), as_uint16(two)),
        "tif_hwc": ("a.tif", np.moveaxis(as_uint16(two), 0, -1).copy(), as_uint16(two)),
        "tif_1_1_hw": ("a.tif", as_uint16(image)[None, None], as_uint16(image)[None]),
    }[fmt]


@pytest.mark.parametrize("fmt", ["png8", "png16", "tif16", "tif_float32", "png_rgb", "tif_chw", "tif_hwc",
                                 "tif_1_1_hw"])
def test_formats_bit_depths_and_layouts(tmp_path, fmt):
    image, instances = cells()
    name, stored, raw = image_in(fmt, image)
    images_dir, masks_dir = folder(tmp_path, {name: stored}, {"a.png": instances.astype(np.uint8)})
    read = read_image(images_dir / name)
    assert read.dtype == raw.dtype
    np.testing.assert_array_equal(read, raw)
    ds = ImageFolder(images_dir, masks_dir)
    assert len(ds) == 1 and ds.stems == ["a"] and ds.in_channels == raw.shape[0] and ds.num_classes == 2
    sample = ds[0]
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (raw.shape[0], H, W)
    for key in ("instances", "mask"):
        assert sample[key].dtype == torch.int64 and sample[key].shape == (H, W)
    assert sample["weight_map"].dtype == torch.float32 and sample["weight_map"].shape == (H, W)
    # each channel normalised by its own percentiles
    for c in range(raw.shape[0]):
        np.testing.assert_array_equal(sample["image"][c].numpy(), percentile_normalize(raw[c]))
    # the paper's targets from the instances
    mask, weight_map = targets_from_instances(instances)
    np.testing.assert_array_equal(sample["instances"].numpy(), instances)
    np.testing.assert_array_equal(sample["mask"].numpy(), mask)
    np.testing.assert_array_equal(sample["weight_map"].numpy(), weight_map)


def test_jpeg_image(tmp_path):
    image, instances = cells()
    images_dir, masks_dir = folder(tmp_path, {"a.jpg": as_uint8(image)}, {"a.png": instances.astype(np.uint8)})
    sample = ImageFolder(images_dir, masks_dir)[0]
    assert sample["image"].shape == (1, H, W)
    # lossy, but close to the original
    assert np.abs(sample["image"][0].numpy() - percentile_normalize(as_uint8(image))).mean() < 0.05


def test_opaque_alpha_is_dropped_and_a_varying_one_kept(tmp_path):
    image, _ = cells()
    rgba = np.stack([as_uint8(image)] * 3 + [np.full((H, W), 255, np.uint8)], -1)   # (H, W, 4)
    write(tmp_path / "opaque.png", rgba)
    assert read_image(tmp_path / "opaque.png").shape == (3, H, W)
    rgba[0, 0, 3] = 0
    write(tmp_path / "varying.png", rgba)
    assert read_image(tmp_path / "varying.png").shape == (4, H, W)


def test_channel_axis_override(tmp_path):
    stack = np.random.default_rng(0).integers(0, 1000, (6, H, W)).astype(np.uint16)   # 6 channels
    write(tmp_path / "six.tif", stack)
    with pytest.raises(ValueError, match=r"six.tif has shape \(6, 29, 35\).*z-stack.*channel_axis=0"):
        read_image(tmp_path / "six.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "six.tif", channel_axis=0), stack)
    # a small image whose last axis looks like channels, read the other way round on request
    small = np.random.default_rng(1).integers(0, 1000, (3, 8, 4)).astype(np.uint16)
    write(tmp_path / "small.tif", small)
    assert read_image(tmp_path / "small.tif").shape == (4, 3, 8)
    assert read_image(tmp_path / "small.tif", channel_axis=0).shape == (3, 8, 4)
    with pytest.raises(ValueError, match=r"channel_axis must be an integer in \[-3, 2\]"):
        read_image(tmp_path / "small.tif", channel_axis=3)


@pytest.mark.parametrize("name, stored", [
    ("m.png", "uint8"), ("m.png", "uint16"), ("m.tif", "uint16"), ("m.tif", "int32"), ("m.tif", "uint64"),
    ("m.tif", "float32"), ("m.tif", "bool"), ("m.png", "rgb_gray"),
])
def test_read_mask_dtypes(tmp_path, name, stored):
    _, instances = cells()
    if stored == "bool":
        instances = (instances > 0).astype(np.int64)
        array = instances.astype(bool)
    elif stored == "rgb_gray":
        array = np.stack([instances.astype(np.uint8)] * 3, -1)              # a gray mask saved as RGB
    else:
        array = instances.astype(stored)
    write(tmp_path / name, array)
    labels = read_mask(tmp_path / name)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, instances)


def test_class_maps(tmp_path):
    images, masks = {}, {}
    for k in range(2):
        image, instances = cells(k)
        images[f"c{k}.tif"] = as_uint16(image)
        masks[f"c{k}.png"] = np.where(instances > 0, 1 + instances % 2, 0).astype(np.uint8)   # classes 0, 1, 2
    masks["c1.png"][:3, :3] = 3
    images_dir, masks_dir = folder(tmp_path, images, masks)
    ds = ImageFolder(images_dir, masks_dir, "classes", num_classes=4)
    assert ds.num_classes == 4 and ds.mask_kind == "classes"
    for i, stem in enumerate(ds.stems):
        sample = ds[i]
        classes = masks[f"{stem}.png"].astype(np.int64)
        np.testing.assert_array_equal(sample["mask"].numpy(), classes)
        np.testing.assert_array_equal(sample["weight_map"].numpy(), class_balance_map(classes, 4))
        assert not sample["instances"].any() and sample["instances"].dtype == torch.int64
    info = ds.summary()
    assert info["num_classes"] == 4 and len(info["class_fractions"]) == 4 and info["class_fractions"][3] > 0
    assert abs(sum(info["class_fractions"]) - 1) < 1e-3
    # a tile's weights balance the classes of the tile
    tile = ImageFolder(images_dir, masks_dir, "classes", num_classes=4, tile_size=8)[0]
    np.testing.assert_array_equal(tile["weight_map"].numpy(), class_balance_map(tile["mask"].numpy(), 4))


def test_class_balance_map_by_hand_and_against_class_weight_map():
    mask = np.array([[0, 0, 0, 1],
                     [0, 0, 2, 1]])                 # 5, 2, 1 pixels of classes 0, 1, 2; class 3 absent
    w = class_balance_map(mask, 4)                  # n / (K count_c) = 8 / (4 * count)
    np.testing.assert_allclose(w, np.array([[0.4, 0.4, 0.4, 1.0],
                                            [0.4, 0.4, 2.0, 1.0]]), rtol=1e-6)
    assert w.dtype == np.float32
    # each class present carries the same total weight
    assert all(abs(w[mask == c].sum() - 2.0) < 1e-5 for c in (0, 1, 2))
    # K = 2: the weights module's balanced w_c
    binary = (cells()[1] > 0).astype(np.int64)
    np.testing.assert_array_equal(class_balance_map(binary, 2), class_weight_map(binary, "balanced"))
    with pytest.raises(ValueError, match=r"mask must hold classes 0..1 \(num_classes=2\), found 2"):
        class_balance_map(mask, 2)


def test_binary_instance_mask_is_labelled_with_a_warning(tmp_path):
    image, instances = cells()
    binary = (instances > 0).astype(np.uint8)
    images_dir, masks_dir = folder(tmp_path, {"a.png": as_uint8(image)}, {"a.png": binary})
    with pytest.warns(UserWarning, match=r"1 mask in .* holds only 0 and 1 \(a.png\).*Touching objects .* cannot be "
                                         r"told apart"):
        ds = ImageFolder(images_dir, masks_dir)
    np.testing.assert_array_equal(ds[0]["instances"].numpy(), ndimage.label(binary)[0])
    assert ds.summary()["binary_masks"] == ["a"]


def test_instance_masks_warn_nothing(tmp_path):
    image, instances = cells()
    images_dir, masks_dir = folder(tmp_path, {"a.png": as_uint8(image)}, {"a.tif": instances.astype(np.uint16)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ImageFolder(images_dir, masks_dir)


def test_summary(tmp_path):
    images, masks = {}, {}
    for k, (h, w) in enumerate([(H, W), (H, W), (20, 17)]):
        image, instances = cells(k, h, w)
        images[f"i{k}.{'png' if k else 'tif'}"] = as_uint8(image) if k else as_uint16(image)
        masks[f"i{k}.png"] = instances.astype(np.uint8)
    images_dir, masks_dir = folder(tmp_path, images, masks)
    info = ImageFolder(images_dir, masks_dir, tile_size=16).summary()
    counts = [len(np.unique(m)) - 1 for m in masks.values()]
    assert info == dict(images=3, sizes={f"{H}x{W}": 2, "20x17": 1}, in_channels=1, dtypes={"uint16": 1, "uint8": 2},
                        mask_kind="instances", num_classes=2, tile_size=16, objects=sum(counts),
                        objects_per_image=(min(counts), max(counts)), binary_masks=[])


# -- tiles and whole images --------------------------------------------------------------------

@pytest.fixture
def two_sizes(tmp_path):
    """A 29x35 and a 12x9 image with their instance masks."""
    images, masks = {}, {}
    for stem, (h, w) in (("big", (H, W)), ("small", (12, 9))):
        image, instances = cells(len(stem), h, w)
        images[f"{stem}.tif"] = as_uint16(image)
        masks[f"{stem}.tif"] = instances.astype(np.uint16)
    return folder(tmp_path, images, masks)


def assert_own_targets(sample):
    """mask and weight_map are those of the sample's own instances (what Augmented checks)."""
    mask, weight_map = targets_from_instances(sample["instances"].numpy())
    np.testing.assert_array_equal(sample["mask"].numpy(), mask)
    np.testing.assert_array_equal(sample["weight_map"].numpy(), weight_map)


def test_samples_pass_augmented(two_sizes):
    """fit's augmentation checks each sample's targets against its instances once, then recomputes them."""
    for tile_size in (None, 16):
        ds = ImageFolder(*two_sizes, tile_size=tile_size, w0=5.0, sigma=3.0)
        augmented = Augmented(ds, seed=0)
        assert augmented.target_kwargs == dict(w0=5.0, sigma=3.0, class_weights="balanced")
        for i in range(len(ds)):
            assert augmented[i]["image"].shape[-2:] == ds[i]["image"].shape[-2:]


def test_whole_images_for_evaluation(two_sizes):
    ds = ImageFolder(*two_sizes)
    assert [ds[i]["image"].shape for i in range(2)] == [(1, H, W), (1, 12, 9)]
    # the same every time, and the cache is not changed by what a caller does to a sample
    first = ds[0]
    first["image"].zero_()
    assert torch.equal(ds[0]["image"], ImageFolder(*two_sizes)[0]["image"]) and ds[0]["image"].any()


def test_random_tiles_smaller_than_the_image(two_sizes):
    ds = ImageFolder(*two_sizes, tile_size=16, seed=3)
    whole = ImageFolder(*two_sizes)[0]
    tiles = [ds[0] for _ in range(4)]
    for k, tile in enumerate(tiles):
        assert tile["image"].shape == (1, 16, 16) and tile["mask"].shape == (16, 16)
        # access k draws its corner from (seed, i, k); the tile is that window of the whole image
        rng = np.random.default_rng([3, 0, k])
        y, x = int(rng.integers(H - 16 + 1)), int(rng.integers(W - 16 + 1))
        for key in ("image", "instances"):
            assert torch.equal(tile[key], whole[key][..., y : y + 16, x : x + 16]), key
        assert_own_targets(tile)
    assert not all(torch.equal(tiles[0]["image"], t["image"]) for t in tiles[1:])   # a new tile per access
    again = ImageFolder(*two_sizes, tile_size=16, seed=3)
    assert all(torch.equal(again[0]["image"], t["image"]) for t in tiles[:1])      # reproducible from the seed


@pytest.mark.parametrize("tile_size", [16, 40])
def test_images_smaller_than_a_tile_are_mirrored(two_sizes, tile_size):
    ds = ImageFolder(*two_sizes, tile_size=tile_size)
    whole = ImageFolder(*two_sizes)[1]                                               # 12x9
    tile = ds[1]
    t = tile_size
    padded = {key: mirror_pad(v, (t - 12) // 2, t - 12 - (t - 12) // 2, (t - 9) // 2, t - 9 - (t - 9) // 2)
              for key, v in whole.items()}
    for key in ("image", "instances"):
        assert torch.equal(tile[key], padded[key]), key
    assert_own_targets(tile)
    assert tile["mask"].shape == tile["weight_map"].shape == (t, t)
    assert ds[0]["image"].shape == (1, t, t)         # 29x35: mirrored only where it is smaller


def test_tile_larger_in_one_direction_only(two_sizes):
    ds = ImageFolder(*two_sizes, tile_size=10)       # the 12x9 image: rows cut, columns mirrored
    whole = ImageFolder(*two_sizes)[1]
    tile = ds[1]
    rng = np.random.default_rng([0, 1, 0])
    y, x = int(rng.integers(12 - 10 + 1)), int(rng.integers(1))
    expected = mirror_pad(whole["image"], 0, 0, 0, 1)[..., y : y + 10, x : x + 10]
    assert torch.equal(tile["image"], expected)


def test_subset_shares_the_arrays(two_sizes):
    ds = ImageFolder(*two_sizes)
    part = ds.subset(["small"], tile_size=8)
    assert part.stems == ["small"] and len(part) == 1 and part.tile_size == 8 and ds.tile_size is None
    assert part[0]["image"].shape == (1, 8, 8)
    assert part._images["small"] is ds._images["small"]
    with pytest.raises(ValueError, match=r"stems names 1 image not in this dataset: nope; its stems are big, small"):
        ds.subset(["nope"])
    with pytest.raises(TypeError, match=r"stems must be a non-empty list"):
        ds.subset("small")


def test_stems_selects_pairs(two_sizes):
    ds = ImageFolder(*two_sizes, stems=["small"])
    assert ds.stems == ["small"] and ds[0]["image"].shape == (1, 12, 9)
    with pytest.raises(ValueError, match=r"stems names 1 image not in .*images with a mask in .*masks: small.tif; "
                                         r"stems are file names without extension"):
        ImageFolder(*two_sizes, stems=["small.tif"])


# -- splitting by image ------------------------------------------------------------------------

def test_split_by_image_is_disjoint_complete_and_deterministic():
    stems = [f"img{k:02d}" for k in range(10)]
    train, val = split_by_image(stems, 0.3, seed=1)
    assert len(val) == 3 and len(train) == 7
    assert set(train).isdisjoint(val) and sorted(train + val) == stems
    assert split_by_image(stems, 0.3, seed=1) == (train, val)
    assert split_by_image(stems[::-1], 0.3, seed=1) == (train, val)                # the listing order does not matter
    assert len({tuple(split_by_image(stems, 0.3, seed=s)[1]) for s in range(6)}) > 1   # the seed matters
    # at least one image on each side
    assert [len(side) for side in split_by_image(["a", "b"], 0.01)] == [1, 1]
    assert [len(side) for side in split_by_image(["a", "b", "c"], 0.99)] == [1, 2]
    assert split_by_image(stems, 0.0) == (stems, [])
    # a number of images: indices
    train, val = split_by_image(5, 0.4, seed=0)
    assert sorted(train + val) == [0, 1, 2, 3, 4] and len(val) == 2


def test_split_an_image_folder(two_sizes):
    ds = ImageFolder(*two_sizes)
    train, val = split_by_image(ds, 0.5, seed=0)
    assert sorted(train + val) == ["big", "small"] and len(train) == len(val) == 1
    assert ds.subset(val).stems == val


@pytest.mark.parametrize("args, error, match", [
    ((["a"], 0.2), ValueError, r"a split needs >= 2 images .* got 1 image and val_fraction=0.2; with a single image"),
    ((["a", "b"], 1.0), ValueError, r"a split needs >= 2 images and 0 <= val_fraction < 1"),
    ((["a", "b"], 1.5), ValueError, r"val_fraction must be a finite number in \[0, 1\], got 1.5"),
    ((["a", "b", "a"], 0.5), ValueError, r"data lists the same image more than once \(a\)"),
    (("abc", 0.5), TypeError, r"data must be an ImageFolder, a sequence of stems or paths, or a number of images"),
])
def test_split_errors(args, error, match):
    with pytest.raises(error, match=match):
        split_by_image(*args)


# -- writing labels ----------------------------------------------------------------------------

def test_write_labels_round_trip_and_atomic(tmp_path):
    _, instances = cells()
    path = write_labels(tmp_path / "out" / "pred.tif", instances)
    assert path == tmp_path / "out" / "pred.tif"
    assert tifffile.imread(path).dtype == np.uint16
    np.testing.assert_array_equal(read_mask(path), instances)
    assert os.listdir(tmp_path / "out") == ["pred.tif"]                 # no temporary file left behind
    many = instances.astype(np.int64) * 100_000
    np.testing.assert_array_equal(read_mask(write_labels(tmp_path / "many.tiff", many)), many)
    assert tifffile.imread(tmp_path / "many.tiff").dtype == np.uint32
    with pytest.raises(ValueError, match=r"path .*pred.png must end in .tif or .tiff"):
        write_labels(tmp_path / "pred.png", instances)
    with pytest.raises(TypeError, match=r"labels must have an integer dtype"):
        write_labels(tmp_path / "pred.tif", instances.astype(np.float32))


# -- errors that name the file and the fix -----------------------------------------------------

def pair(tmp_path, image=None, mask=None, image_name="a.png", mask_name="a.png"):
    default_image, default_mask = cells()
    image = as_uint8(default_image) if image is None else image
    mask = default_mask.astype(np.uint8) if mask is None else mask
    return folder(tmp_path, {image_name: image}, {mask_name: mask})


def test_images_without_masks_and_masks_without_images(tmp_path):
    image, instances = cells()
    images_dir, masks_dir = folder(tmp_path, {"a.png": as_uint8(image), "b.png": as_uint8(image),
                                              "c.tif": as_uint16(image)},
                                   {"a.png": instances.astype(np.uint8), "z.png": instances.astype(np.uint8)})
    with pytest.raises(ValueError, match=r"2 images in .*images without a mask in .*masks: b.png, c.tif; 1 mask "
                                         r"in .*masks without an image in .*images: z.png\. images and masks are "
                                         r"paired by the file name without its extension"):
        ImageFolder(images_dir, masks_dir)


def test_mask_name_suffix_is_spotted(tmp_path):
    image, instances = cells()
    images_dir, masks_dir = folder(tmp_path, {"a.png": as_uint8(image), "b.png": as_uint8(image)},
                                   {"a_mask.png": instances.astype(np.uint8), "b_mask.png": instances.astype(np.uint8)})
    with pytest.raises(ValueError, match=r"the masks' names seem to end in '_mask': remove that from their names"):
        find_pairs(images_dir, masks_dir)


def test_size_mismatch(tmp_path):
    image, instances = cells()
    images_dir, masks_dir = pair(tmp_path, mask=instances[:, :-2].astype(np.uint8))
    with pytest.raises(ValueError, match=r"image .*images/a.png is 29x35 \(H x W\) but its mask .*masks/a.png is "
                                         r"29x33; a mask must label every pixel of its image: was one of them "
                                         r"cropped, resized or rotated\?"):
        ImageFolder(images_dir, masks_dir)


def test_size_mismatch_from_a_wrongly_guessed_channel_axis(tmp_path):
    _, instances = cells()
    stack = np.random.default_rng(0).integers(0, 999, (3, H, 4)).astype(np.uint16)   # really (C, H, W) = (3, 29, 4)
    images_dir, masks_dir = pair(tmp_path, image=stack, image_name="a.tif", mask=instances[:, :4].astype(np.uint8))
    with pytest.raises(ValueError, match=r"read as 4 channels of 3x29; if that is wrong, pass channel_axis"):
        ImageFolder(images_dir, masks_dir)
    assert ImageFolder(images_dir, masks_dir, channel_axis=0).in_channels == 3


def corrupt(kind: str, path):
    good = path.parent / f"good{path.suffix}"
    write(good, as_uint16(cells()[0]) if path.suffix == ".tif" else as_uint8(cells()[0]))
    data = good.read_bytes()
    good.unlink()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x89PNG\r\n not really" if
                      path.suffix == ".png" else b"II*\x00 not really", "empty": b""}[kind])


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty"])
@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("which", ["image", "mask"])
def test_unreadable_files(tmp_path, kind, suffix, which):
    images_dir, masks_dir = pair(tmp_path)
    target = (images_dir if which == "image" else masks_dir) / f"a{suffix}"
    (images_dir if which == "image" else masks_dir).joinpath("a.png").unlink()
    corrupt(kind, target)
    with pytest.raises(ValueError, match=rf"{which} .*a{suffix} (could not be read by|holds no image).*damaged.*"
                                         rf"export it again"):
        ImageFolder(images_dir, masks_dir)


@pytest.mark.parametrize("mask_kind, fix", [("instances", r"scipy.ndimage.label\(mask // 255\)\[0\]"),
                                            ("classes", r"save mask // 255 \(values 0, 1\) with num_classes=2")])
def test_mask_of_0_and_255(tmp_path, mask_kind, fix):
    _, instances = cells()
    images_dir, masks_dir = pair(tmp_path, mask=np.where(instances > 0, 255, 0).astype(np.uint8))
    with pytest.raises(ValueError, match=rf"mask .*a.png holds only 0 and 255: a binary mask saved white on black.*"
                                         rf"all black.*{fix}"):
        ImageFolder(images_dir, masks_dir, mask_kind, num_classes=None if mask_kind == "instances" else 2)


def test_rgb_colour_mask(tmp_path):
    _, instances = cells()
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]], np.uint8)
    images_dir, masks_dir = pair(tmp_path, mask=colours[instances % len(colours)])
    with pytest.raises(ValueError, match=r"mask .*a.png is a colour \(RGB\) image of shape \(29, 35, 3\): a mask must "
                                         r"hold one label per pixel.*Map each colour to its class or object id"):
        ImageFolder(images_dir, masks_dir)


def test_float_masks(tmp_path):
    _, instances = cells()
    write(tmp_path / "whole.tif", instances.astype(np.float32))
    np.testing.assert_array_equal(read_mask(tmp_path / "whole.tif"), instances)      # whole numbers: accepted
    smooth = ndimage.zoom(instances.astype(np.float32), 1.0, order=1) + 0.25         # interpolated: refused
    write(tmp_path / "smooth.tif", smooth)
    with pytest.raises(ValueError, match=rf"mask .*smooth.tif is stored as float32 with {H * W} values that are not "
                                         r"whole numbers \(e.g. 0.25\).*nearest-neighbour.*probability map"):
        read_mask(tmp_path / "smooth.tif")
    smooth[0, 0] = np.nan
    write(tmp_path / "nan.tif", smooth)
    with pytest.raises(ValueError, match=r"mask .*nan.tif has 1 NaN or infinite values"):
        read_mask(tmp_path / "nan.tif")


def test_negative_mask(tmp_path):
    write(tmp_path / "neg.tif", np.array([[0, -1], [2, 3]], np.int16))
    with pytest.raises(ValueError, match=r"mask .*neg.tif has negative values \(min -1\)"):
        read_mask(tmp_path / "neg.tif")


def test_jpeg_mask(tmp_path):
    images_dir, masks_dir = pair(tmp_path, mask_name="a.jpg")
    with pytest.raises(ValueError, match=r"mask .*a.jpg is a JPEG: its lossy compression changes label values.*"
                                         r"save masks as PNG or TIFF"):
        ImageFolder(images_dir, masks_dir)


def test_more_classes_than_given(tmp_path):
    image, instances = cells()
    classes = np.minimum(instances, 4).astype(np.uint8)
    images_dir, masks_dir = folder(tmp_path, {"a.png": as_uint8(image), "b.png": as_uint8(image)},
                                   {"a.png": classes, "b.png": np.minimum(classes, 1)})
    assert classes.max() == 4
    with pytest.raises(ValueError, match=r"num_classes=3 \(masks hold 0..2\), but 1 mask holds larger values: "
                                         r"a.png \(max 4\); pass num_classes=5"):
        ImageFolder(images_dir, masks_dir, "classes", num_classes=3)


def test_missing_empty_and_unsupported_folders(tmp_path):
    images_dir, masks_dir = pair(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"images_dir .*nowhere does not exist"):
        ImageFolder(tmp_path / "nowhere", masks_dir)
    with pytest.raises(FileNotFoundError, match=r"masks_dir .*nowhere does not exist; give the folder that holds "
                                                r"the masks"):
        ImageFolder(images_dir, tmp_path / "nowhere")
    with pytest.raises(NotADirectoryError, match=r"images_dir .*a.png is a file, not a folder"):
        ImageFolder(images_dir / "a.png", masks_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"masks_dir .*empty has no .tif / .tiff / .png / .jpg / .jpeg files, it is "
                                         r"empty"):
        ImageFolder(images_dir, tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.bmp").write_bytes(b"BM")
    (tmp_path / "other" / ".DS_Store").write_bytes(b"")
    with pytest.raises(ValueError, match=r"images_dir .*other has no .tif .* files; it holds a.bmp; convert the "
                                         r"images to TIFF or PNG"):
        ImageFolder(tmp_path / "other", masks_dir)
    with pytest.raises(TypeError, match=r"images_dir must be a path \(str or pathlib.Path\), got 3"):
        ImageFolder(3, masks_dir)


def test_channels_differ(tmp_path):
    image, instances = cells()
    images_dir, masks_dir = folder(tmp_path, {"gray.png": as_uint8(image),
                                              "rgb.png": as_uint8(np.stack([image, image**2, 1 - image], -1))},
                                   {"gray.png": instances.astype(np.uint8), "rgb.png": instances.astype(np.uint8)})
    with pytest.raises(ValueError, match=r"the images in .*images have different numbers of channels \(1 channel: "
                                         r"gray.png; 3 channels: rgb.png\); a network takes a fixed number"):
        ImageFolder(images_dir, masks_dir)


def test_same_stem_twice(tmp_path):
    image, _ = cells()
    images_dir, masks_dir = pair(tmp_path)
    write(images_dir / "a.tif", as_uint16(image))
    with pytest.raises(ValueError, match=r"images_dir .* has several files with the same name but different extensions "
                                         r"\(a.png, a.tif\)"):
        ImageFolder(images_dir, masks_dir)


def test_image_errors(tmp_path):
    write(tmp_path / "flat.png", np.full((H, W), 7, np.uint8))
    with pytest.raises(ValueError, match=r"image .*flat.png, channel 0 of 1: the 1.0 and 99.8 percentiles of the "
                                         r"image are both 7"):
        normalize_image(read_image(tmp_path / "flat.png"), name=f"image {tmp_path / 'flat.png'}")
    write(tmp_path / "stack.tif", np.zeros((2, 6, H, W), np.uint16))
    with pytest.raises(ValueError, match=r"image .*stack.tif has shape \(2, 6, 29, 35\): 4-D"):
        read_image(tmp_path / "stack.tif")
    write(tmp_path / "nan.tif", np.full((H, W), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"image must be finite, got 1015 NaN values"):
        normalize_image(read_image(tmp_path / "nan.tif"))
    with pytest.raises(FileNotFoundError, match=r"image .*missing.png does not exist"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "a.bmp").write_bytes(b"BM")
    with pytest.raises(ValueError, match=r"image .*a.bmp has the extension '.bmp', which is not supported"):
        read_image(tmp_path / "a.bmp")


def test_constant_image_in_a_folder_names_the_file(tmp_path):
    images_dir, masks_dir = pair(tmp_path, image=np.zeros((H, W), np.uint8))
    with pytest.raises(ValueError, match=r"image .*images/a.png, channel 0 of 1: the 1.0 and 99.8 percentiles"):
        ImageFolder(images_dir, masks_dir)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(mask_kind="labels"), ValueError, r"mask_kind='labels' is not supported; use one of 'instances', 'classes'"),
    (dict(mask_kind="classes"), ValueError, r"num_classes must be given for mask_kind='classes'"),
    (dict(mask_kind="classes", num_classes=1), ValueError, r"num_classes must be an integer >= 2"),
    (dict(num_classes=3), ValueError, r"num_classes must be None or 2 for mask_kind='instances'"),
    (dict(tile_size=0), ValueError, r"tile_size must be an integer >= 1, got 0"),
    (dict(tile_size=16.0), TypeError, r"tile_size must be an integer >= 1, got 16.0"),
    (dict(seed=-1), ValueError, r"seed must be an integer in \[0, "),
    (dict(w0=-1.0), ValueError, r"w0 must be a finite number >= 0"),
    (dict(low=50.0, high=5.0), ValueError, r"low must be below high, got low=50, high=5"),
    (dict(stems="a"), TypeError, r"stems must be a list of file names without extension"),
    (dict(stems=[]), ValueError, r"stems is empty"),
])
def test_argument_errors(tmp_path, kwargs, error, match):
    images_dir, masks_dir = pair(tmp_path)
    with pytest.raises(error, match=match):
        ImageFolder(images_dir, masks_dir, **kwargs)


def test_index_errors(tmp_path):
    ds = ImageFolder(*pair(tmp_path))
    with pytest.raises(IndexError, match=r"index 1 is out of range for ImageFolder of length 1"):
        ds[1]


def test_tiles_drawn_in_dataloader_workers_differ_between_workers(tmp_path):
    images, masks = {}, {}
    for i in range(2):
        image, instances = cells(i, 60, 60)
        images[f"c{i}.tif"], masks[f"c{i}.tif"] = image.astype(np.float32), instances.astype(np.uint16)
    folder(tmp_path, images, masks)
    data = ImageFolder(tmp_path / "images", tmp_path / "masks", tile_size=20)
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=2, sampler=[0, 0])   # worker 0, then 1
    first, second = [batch["image"] for batch in loader]
    assert not torch.equal(first, second)                        # both are access 0 of image 0, in two workers
    assert torch.equal(data[0]["image"], data.subset(data.stems, tile_size=20)[0]["image"])   # main process: as before


def test_class_map_tiles_augment_as_class_maps(tmp_path):
    """Augmented warps a class map with its 3-channel image and rebalances it; labels never blend."""
    images, masks = {}, {}
    for k in range(2):
        image, instances = cells(k, 40, 40)
        classes = np.where(instances > 0, 1 + instances % 2, 0).astype(np.uint8)     # 0, 1, 2
        # channel 0 encodes the classes, channel 1 its negative, channel 2 their square: all must move together
        stack = np.stack([classes / 2, 1 - classes / 2, (classes / 2) ** 2], -1)       # (H, W, 3)
        images[f"c{k}.tif"], masks[f"c{k}.png"] = as_uint16(stack), classes
    images_dir, masks_dir = folder(tmp_path, images, masks)
    ds = ImageFolder(images_dir, masks_dir, "classes", num_classes=3, tile_size=32, low=0.0, high=100.0)
    augmented = Augmented(ds, seed=0, config=AugmentConfig(brightness=0.0, contrast=0.0, gamma=0.0))
    for i in [0, 1, 0, 1]:
        sample = augmented[i]
        mask, image = sample["mask"].numpy(), sample["image"].numpy()
        assert image.shape == (3, 32, 32) and set(np.unique(mask)) <= {0, 1, 2}
        np.testing.assert_array_equal(sample["weight_map"].numpy(), class_balance_map(mask, 3))
        np.testing.assert_allclose(image[1], 1 - image[0], atol=1e-6)
        inside = np.isclose(image[0] * 2, mask, atol=1e-3)                  # the image moved with its mask
        assert inside.mean() > 0.8
        np.testing.assert_allclose(image[2][inside], (mask[inside] / 2) ** 2, atol=1e-3)


def test_sample_without_targets_is_the_same_draw(two_sizes):
    """Augmented asks for tiles without the targets it recomputes: the same tiles, the same augmentations."""
    full, bare = ImageFolder(*two_sizes, tile_size=16), ImageFolder(*two_sizes, tile_size=16)
    for i in [0, 1, 0, 0]:
        a, b = full[i], bare.sample(i, targets=False)
        assert set(b) == {"image", "instances"}
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["instances"], b["instances"])
    whole = ImageFolder(*two_sizes)
    bare_whole = whole.sample(1, targets=False)
    assert set(bare_whole) == {"image", "instances"} and torch.equal(bare_whole["image"], whole[1]["image"])
    with pytest.raises(TypeError, match=r"targets must be True or False, got 'no'"):
        bare.sample(0, targets="no")


# -- normalisation that keeps the objects, regions, object sizes (#21) ----------------------------

from unet_lib.files import split_by_region   # noqa: E402
from unet_lib.files.normalization import CLIP_LIMIT, Clipping   # noqa: E402


def test_clipping_counts_by_hand():
    raw = np.arange(1000, dtype=np.uint16).reshape(1, 20, 50)                 # values 0..999
    labels = np.zeros((20, 50), np.int64)
    labels[0, :20] = 1                                                        # objects: the 20 darkest, 0..19
    labels[-1, -5:] = 2                                                       # and the 5 brightest, 995..999
    clipping = Clipping(low=1.0, high=99.8)
    clipping.add(raw, labels)
    below, above = clipping.shares()
    # the 1st percentile is 9.99: values 0..9 clipped, 10 of 25; the 0.5th (4.995): 0..4; the 0.2nd: 0, 1
    assert (below[1.0], below[0.5], below[0.2], below[0.0]) == (10 / 25, 5 / 25, 2 / 25, 1 / 25)
    assert (above[99.8], above[100.0]) == (2 / 25, 1 / 25)                    # 997.002: 998 and 999
    chosen = clipping.choose(limit=0.3)
    assert (chosen["low"], chosen["clipped_low"], chosen["given_clipped_low"]) == (0.5, 0.2, 0.4)
    assert chosen["high"] == 99.8 and clipping.choose(limit=1.0)["low"] == 1.0


def _dark_rods(seed):
    """A bright uneven background with a few dark rods covering under 1% of the image."""
    rng = np.random.default_rng(seed)
    image = 30000 + 2000 * rng.standard_normal((64, 64))
    labels = np.zeros((64, 64), np.uint16)
    for k, (y, x) in enumerate([(10, 10), (40, 30)], 1):
        labels[y : y + 2, x : x + 9] = k                                      # 2 x 9 px: 36 px, 0.9% of the image
    image[labels > 0] = 8000 + 500 * rng.standard_normal(int((labels > 0).sum()))
    return image.astype(np.uint16), labels


def test_keep_objects_widens_the_percentiles_that_clip_dark_sparse_objects(tmp_path):
    pairs = {f"rods_{i}.tif": _dark_rods(i) for i in range(2)}
    images, masks = folder(tmp_path, {k: v[0] for k, v in pairs.items()}, {k: v[1] for k, v in pairs.items()})
    plain = ImageFolder(images, masks)
    assert (plain.low, plain.high) == (1.0, 99.8) and plain.clipping["given_clipped_low"] == 1.0
    assert float(plain[0]["image"][0][torch.from_numpy(pairs["rods_0.tif"][1] > 0)].max()) == 0.0   # all 0
    kept = ImageFolder(images, masks, keep_objects=True)
    assert kept.low < 1.0 and kept.clipping["clipped_low"] <= CLIP_LIMIT and kept.high == 99.8
    inside = kept[0]["image"][0][torch.from_numpy(pairs["rods_0.tif"][1] > 0)]
    assert inside.std() > 0.01                                                 # the objects' detail is back
    np.testing.assert_array_equal(kept[0]["image"].numpy(), normalize_image(
        tifffile.imread(images / "rods_0.tif")[None], kept.low, kept.high))


def test_split_by_region_holds_out_a_strip_of_every_image(two_sizes):
    data = ImageFolder(*two_sizes)
    train, val = split_by_region(data, 0.25, "right")
    assert train.stems == val.stems == data.stems
    for i, stem in enumerate(data.stems):
        whole = data[i]["image"]
        w = whole.shape[-1]
        assert train[i]["image"].shape[-1] == w - round(0.25 * w) and val[i]["image"].shape[-1] == round(0.25 * w)
        torch.testing.assert_close(torch.cat([train[i]["image"], val[i]["image"]], -1), whole)
    bottom_train, bottom_val = split_by_region(data, 0.5, "bottom")
    assert bottom_train[0]["instances"].shape[0] + bottom_val[0]["instances"].shape[0] == data[0]["instances"].shape[0]
    tiles = bottom_train.subset(bottom_train.stems, tile_size=8)
    assert tiles[0]["image"].shape == (1, 8, 8)
    with pytest.raises(ValueError, match="leaves nothing for validation"):
        split_by_region(data, 0.001)
    with pytest.raises(ValueError, match="side='left' is not supported"):
        split_by_region(data, 0.2, "left")


def test_object_size_of_instances_and_of_a_class_map_with_a_border_class(tmp_path):
    from unet_lib.data import interior_border_classes
    _, instances = cells(1, 40, 40)
    images, masks = folder(tmp_path, {"a.tif": as_uint16(cells(1, 40, 40)[0])}, {"a.tif": instances.astype(np.uint16)})
    size = ImageFolder(images, masks).object_size()
    classes_dir = tmp_path / "classes"
    write(classes_dir / "a.tif", interior_border_classes(instances).astype(np.uint8))
    three = ImageFolder(images, classes_dir, "classes", num_classes=3).object_size()
    assert size.count == three.count and abs(three.area - size.area) <= 0.1 * size.area
