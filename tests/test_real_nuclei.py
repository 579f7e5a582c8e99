"""Tests for unet_lib.data.load_real_nuclei and percentile_normalize: the real image of notebook 10."""

import hashlib

import numpy as np
import pytest

from unet_lib import course_file
from unet_lib.data import REAL_NUCLEI_FILES, load_real_nuclei, percentile_normalize

# SHA-256 of the pixels (uint16, little-endian, row-major), as recorded in data/README.md:
# the same for the TIFFs in the stardist 0.9.2 wheel and for the vendored .npz files
REAL_NUCLEI_PIXEL_SHA256 = {
    "image": "8952cab7611450bd761f81e14b95bdd197d5b17487ed98f6814fd35720e65963",
    "instances": "13ef0db2a960a93cf97cc419d9e02aa90038feb4b143fe6e0623bcfcc10ad5f4",
}


@pytest.fixture(scope="module")
def real_nuclei():
    return load_real_nuclei()


@pytest.mark.parametrize("key", ["image", "instances"])
def test_vendored_files_hold_the_documented_pixels(key):
    with np.load(course_file(REAL_NUCLEI_FILES[key])) as f:
        raw = f[key]
    assert raw.dtype == np.uint16 and raw.shape == (512, 512)
    assert hashlib.sha256(raw.astype("<u2").tobytes()).hexdigest() == REAL_NUCLEI_PIXEL_SHA256[key]


def test_load_real_nuclei_shapes_dtypes_and_range(real_nuclei):
    image, instances = real_nuclei
    assert image.shape == instances.shape == (512, 512)
    assert image.dtype == np.float32 and instances.dtype == np.int64
    assert image.min() == 0.0 and image.max() == 1.0
    # percentiles 1 and 99.8 -> about 1% of the pixels at 0 and 0.2% at 1 (more where values tie)
    assert 0.005 < (image == 0).mean() < 0.05
    assert 0.001 < (image == 1).mean() < 0.01


def test_load_real_nuclei_has_125_nuclei_numbered_consecutively(real_nuclei):
    _, instances = real_nuclei
    np.testing.assert_array_equal(np.unique(instances), np.arange(126))   # 0 = background, 1..125
    with np.load(course_file(REAL_NUCLEI_FILES["instances"])) as f:
        raw = f["instances"]
    # renumbering keeps every nucleus's pixels and the order of the ids
    np.testing.assert_array_equal(instances > 0, raw > 0)
    np.testing.assert_array_equal(np.unique(raw)[instances], raw)


def test_load_real_nuclei_bright_pixels_lie_on_nuclei(real_nuclei):
    image, instances = real_nuclei
    assert image[instances > 0].mean() > 3 * image[instances == 0].mean()


def test_load_real_nuclei_percentiles_and_relabelling_by_hand(tmp_path):
    np.savez_compressed(tmp_path / REAL_NUCLEI_FILES["image"], image=np.arange(101, dtype=np.uint16).reshape(1, 101))
    np.savez_compressed(tmp_path / REAL_NUCLEI_FILES["instances"], instances=np.array([[0, 5, 5, 9, 0]], dtype=np.uint16))
    image, instances = load_real_nuclei(low=10, high=90, data_dir=tmp_path)
    assert image[0, [0, 10, 50, 90, 100]].tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert instances.tolist() == [[0, 1, 1, 2, 0]]
    np.savez_compressed(tmp_path / REAL_NUCLEI_FILES["instances"], instances=np.array([[3, 7]], dtype=np.uint16))
    assert load_real_nuclei(data_dir=tmp_path)[1].tolist() == [[1, 2]]   # no background: ids from 1


def test_load_real_nuclei_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dsb2018_img2d.npz is missing.*data/README.md"):
        load_real_nuclei(data_dir=tmp_path)


def test_percentile_normalize_hand_worked():
    # percentiles of 0..100 are the values themselves: 10 -> 0, 90 -> 1, clipped outside
    image = np.arange(101, dtype=np.uint8)
    out = percentile_normalize(image, low=10, high=90)
    assert out.dtype == np.float32 and out.shape == (101,)
    np.testing.assert_allclose(out, np.clip((np.arange(101) - 10) / 80, 0, 1), rtol=1e-6)
    np.testing.assert_allclose(percentile_normalize(np.array([[2.0, 4.0], [6.0, 10.0]]), 0, 100),
                               [[0.0, 0.25], [0.5, 1.0]])


@pytest.mark.parametrize("image, low, high, match", [
    (np.arange(10), 50, 50, r"0 <= low < high <= 100, got low=50, high=50"),
    (np.arange(10), -1, 99, "0 <= low < high <= 100"),
    (np.arange(10), 1, 101, "0 <= low < high <= 100"),
    (np.zeros((0, 3)), 1, 99, "non-empty real-valued image"),
    (np.full((4, 4), 7), 1, 99, "both 7; there is no contrast"),
])
def test_percentile_normalize_errors(image, low, high, match):
    with pytest.raises(ValueError, match=match):
        percentile_normalize(image, low, high)


def test_load_real_nuclei_names_a_corrupt_file(tmp_path):
    for name in REAL_NUCLEI_FILES.values():
        (tmp_path / name).write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"dsb2018_img2d.npz could not be read as a .npz file holding the array 'image'"):
        load_real_nuclei(data_dir=tmp_path)
    np.savez(tmp_path / REAL_NUCLEI_FILES["image"], other=np.zeros(3))
    with pytest.raises(ValueError, match=r"dsb2018_img2d.npz could not be read .*'image'"):
        load_real_nuclei(data_dir=tmp_path)


def test_percentile_normalize_counts_nan_pixels():
    image = np.arange(16.0).reshape(4, 4)
    image[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"image must be finite, got 1 NaN value among its 16 \(the first at \(1, 2\)\)"):
        percentile_normalize(image)
    with pytest.raises(TypeError, match=r"low must be a finite number, got '1' \(str\)"):
        percentile_normalize(np.arange(16.0), low="1")
