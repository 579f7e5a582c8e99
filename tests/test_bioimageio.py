"""unet_lib.bioimageio: the course's two models as BioImage Model Zoo packages, read back and
validated by bioimageio.core's model test (skipped where bioimageio.core is not installed)."""

import hashlib
import io
import socket
import zipfile

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch

from unet_lib.bioimageio import PAPER, package_files, write_bioimageio_package
from unet_lib.checkpoint import load_checkpoint, save_checkpoint
from unet_lib.config import TrainConfig
from unet_lib.data import DATA_DIR, percentile_normalize
from unet_lib.export.cli import main as export_main
from unet_lib.model import UNet
from unet_lib.tiling import context_margin

TOY, NUCLEI = DATA_DIR / "unet_toycells.pt", DATA_DIR / "unet_nuclei.pt"


def _nuclei_image() -> np.ndarray:
    """The raw grey values of the held-out right half of notebook 10's image, from row 200."""
    with np.load(DATA_DIR / "dsb2018_img2d.npz") as f:
        return f["image"][200:, 256:].astype(np.uint8)                     # (312, 256)


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """{name: path of the zip} for the toy-cell model (its default test image) and the nuclei model."""
    root = tmp_path_factory.mktemp("bioimageio")
    return {"toy": write_bioimageio_package(TOY, root / "toy.zip"),
            "nuclei": write_bioimageio_package(NUCLEI, root / "nuclei.zip", _nuclei_image())}


def _files(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist()[0] == "rdf.yaml"
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.mark.parametrize("name, checkpoint", [("toy", TOY), ("nuclei", NUCLEI)])
def test_the_package_describes_the_model_and_its_test_is_the_models_output(packages, name, checkpoint):
    yaml = pytest.importorskip("yaml")
    files = _files(packages[name])
    rdf = yaml.safe_load(files["rdf.yaml"])
    model = load_checkpoint(checkpoint).model.eval()
    margin = context_margin(model)
    assert rdf["format_version"].startswith("0.5.") and rdf["type"] == "model" and rdf["license"] == "MIT"
    assert PAPER["doi"] in [c["doi"] for c in rdf["cite"]]
    (image,), (probs,) = rdf["inputs"], rdf["outputs"]
    assert [a["type"] for a in image["axes"]] == ["batch", "channel", "space", "space"]
    assert image["axes"][2]["size"] == {"min": model.min_input_size(), "step": 2**model.depth} == image["axes"][3]["size"]
    assert probs["axes"][2]["size"] == {"tensor_id": "image", "axis_id": "y", "offset": -2 * margin}
    assert probs["axes"][1]["channel_names"] == ["background", "cell"]
    for entry in [image["test_tensor"], probs["test_tensor"], image["sample_tensor"],
                  *[{"source": s, "sha256": w["sha256"]} for s, w in
                    ((w["source"], w) for w in rdf["weights"].values())]]:
        assert hashlib.sha256(files[entry["source"]]).hexdigest() == entry["sha256"]
    raw = np.load(io.BytesIO(files["test_input.npy"]))                     # (1, 1, n, n) before normalisation
    expected = np.load(io.BytesIO(files["test_output.npy"]))               # (1, 2, n - 88, n - 88)
    assert expected.shape == (1, 2, raw.shape[2] - 2 * margin, raw.shape[3] - 2 * margin)
    if name == "toy":                                                      # trained on [0, 1] images as they are
        assert image["preprocessing"] == [] and 0 <= raw.min() and raw.max() <= 1
        x = raw
    else:                                                                  # the checkpoint's percentiles, clipped
        assert image["preprocessing"] == [
            {"id": "scale_range", "kwargs": {"axes": ["y", "x"], "min_percentile": 1.0, "max_percentile": 99.8}},
            {"id": "clip", "kwargs": {"min": 0.0, "max": 1.0}}]
        assert raw.max() > 1                                               # raw grey values, not normalised
        x = percentile_normalize(raw, 1.0, 99.8)
    with torch.no_grad():
        ours = model(torch.from_numpy(x)).softmax(1).numpy()
        scripted = torch.jit.load(io.BytesIO(files["weights_torchscript.pt"]))(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(expected, ours, atol=1e-6)
    np.testing.assert_allclose(scripted, ours, atol=1e-4)
    cover = iio.imread(files["cover.png"])
    assert cover.shape == (raw.shape[2], 2 * raw.shape[3], 3)               # 2:1, the image and its outlines
    readme = files["README.md"].decode()
    for section in ("## Input", "## Output", "## Training data", "## Validation", "## Citation"):
        assert section in readme
    assert f"output pixel\n(0, 0) is input pixel ({margin}, {margin})" in readme or f"({margin}, {margin})" in readme


def test_packages_are_written_once_and_bad_arguments_are_refused(packages, tmp_path):
    with pytest.raises(FileExistsError, match="exists; no command overwrites work it did not create"):
        write_bioimageio_package(TOY, packages["toy"])
    with pytest.raises(ValueError, match=r"must end in \.zip"):
        write_bioimageio_package(TOY, tmp_path / "toy.bioimage")
    with pytest.raises(ValueError, match=r"test_image is needed for unet_nuclei\.pt"):
        package_files(NUCLEI)
    with pytest.raises(ValueError, match=r"test_image has 3 channel\(s\) .* the model takes 1"):
        package_files(NUCLEI, np.zeros((3, 120, 120), np.uint8))
    with pytest.raises(ValueError, match=r"test_image is 60x200, smaller than the model's smallest valid input 92x92"):
        package_files(NUCLEI, np.zeros((60, 200), np.uint8))
    with pytest.raises(ValueError, match=r"name must be made of letters, digits, spaces and _ \+ - \( \)"):
        package_files(TOY, name="U-Net, version 2")
    assert not (tmp_path / "toy.bioimage").exists()


def _offline_test_model(monkeypatch, tmp_path):
    """bioimageio.core's ``test_model`` with the network switched off (every socket connection
    raises) and its cache in ``tmp_path``; the test is skipped without bioimageio.core."""
    pytest.importorskip("bioimageio.core")
    from bioimageio.core import test_model
    from bioimageio.spec._internal._settings import settings

    def no_network(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(settings, "cache_path", tmp_path)
    return test_model


def test_bioimageio_core_runs_each_package_and_reproduces_its_test_output(packages, monkeypatch, tmp_path):
    """bioimageio.core's model test: the format validation, then for each weights format
    (TorchScript, ONNX) the test input through the preprocessing and the weights, compared with the
    test output, and inference at other valid sizes and batch sizes.

    Offline. What the validation would fetch: every http(s) URL in rdf.yaml gets a HEAD request
    (bioimageio.spec's URL check, which the model test switches on), and an ``id`` (of the model,
    of a linked dataset) would be looked up in the zoo's collection. The packages name neither: the
    citations are DOIs, whose pattern alone is checked, and training_data is described inline,
    without its ``source`` URL (left out on purpose; the validator asks for it as a FAIR warning).
    The network is switched off here (every socket connection raises), so that a fetch would fail
    the test instead of passing where a network happens to be, and the cache goes to tmp_path.
    """
    test_model = _offline_test_model(monkeypatch, tmp_path)
    for name, path in packages.items():
        summary = test_model(path)
        details = {d.name: d.status for d in summary.details}
        assert summary.status == "passed", (name, summary.format())
        for weights in ("torchscript", "onnx"):
            assert details[f"Reproduce test outputs from test inputs ({weights})"] == "passed"
        messages = [w.msg for d in summary.details for w in d.warnings]
        assert not [m for m in messages if "Failed to validate URL" in m], messages


# -- the command line: python -m unet_lib.export MODEL.pt --bioimageio OUT.zip --------------------------------

@pytest.fixture
def own_checkpoint(tmp_path):
    """(checkpoint, its first training image): a tiny U-Net saved with the meta that python -m
    unet_lib.train --images writes (percentiles 0.5 and 99.9, the folder of its training images)."""
    images = tmp_path / "images"
    images.mkdir()
    image = (np.random.default_rng(0).random((101, 97)) * 40000).astype(np.uint16)   # (H, W) raw 16-bit
    tifffile.imwrite(images / "first.tif", image)
    torch.manual_seed(0)
    meta = dict(data="unet_lib.files.ImageFolder", mask_kind="instances", low=0.5, high=99.9, channel_axis=None,
                images_dir=str(images), train_images=["first"], tile_size=60, tiles_per_image=4.0)
    path = save_checkpoint(tmp_path / "mine.pt", UNet(depth=2, base_channels=4).eval(),
                           TrainConfig(epochs=1, batch_size=2, progress=False), {"epoch": [1.0]}, meta)
    return path, image


def test_the_export_command_packages_an_own_images_model_with_its_normalisation(own_checkpoint, tmp_path, capsys):
    yaml = pytest.importorskip("yaml")
    path, image = own_checkpoint
    out = tmp_path / "mine.zip"
    assert export_main([str(path), "--bioimageio", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    files = _files(out)
    rdf = yaml.safe_load(files["rdf.yaml"])
    assert rdf["inputs"][0]["preprocessing"][0]["kwargs"] == {"axes": ["y", "x"], "min_percentile": 0.5,
                                                             "max_percentile": 99.9}
    model = load_checkpoint(path).model.eval()
    raw = np.load(io.BytesIO(files["test_input.npy"]))                       # the first training image, top left
    n = raw.shape[-1]
    assert raw.shape == (1, 1, n, n) and n in model.valid_input_sizes(n, n + 1)
    np.testing.assert_array_equal(raw[0, 0], image[:n, :n])
    with torch.no_grad():
        expected = model(torch.from_numpy(percentile_normalize(raw, 0.5, 99.9))).softmax(1).numpy()
    np.testing.assert_allclose(np.load(io.BytesIO(files["test_output.npy"])), expected, atol=1e-6)
    # --onnx of the same checkpoint records the same percentiles
    onnx = pytest.importorskip("onnx")
    assert export_main([str(path), "--onnx", str(tmp_path / "mine.onnx")]) == 0
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "mine.onnx")).metadata_props}
    assert (props["normalization_low_percentile"], props["normalization_high_percentile"]) == ("0.5", "99.9")


def test_the_export_command_refuses_what_it_cannot_package(own_checkpoint, tmp_path, capsys):
    path, image = own_checkpoint
    moved = tmp_path / "elsewhere.tif"
    (tmp_path / "images" / "first.tif").rename(moved)
    out = tmp_path / "mine.zip"
    cases = [(["--bioimageio", out], "--bioimageio needs a test image for mine.pt (its training images are not where "
                                     "it was trained): give --test-image IMAGE"),
             (["--bioimageio", out, "--test-image", tmp_path / "nope.tif"], "--test-image"),
             (["--onnx", tmp_path / "m.onnx", "--test-image", moved], "--test-image is a setting of the package: give "
                                                                      "--bioimageio OUT.zip too"),
             (["--bioimageio", out, "--logits"], "--logits: a BioImage Model Zoo package gives probabilities"),
             (["--bioimageio", tmp_path / "mine.bioimage"], "must end in .zip"),
             (["--bioimageio", out, "--name", "mine, v2"], "--name must be made of letters, digits")]
    for argv, message in cases:
        assert export_main([str(path)] + [str(a) for a in argv]) == 2
        assert message in capsys.readouterr().err, argv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere.tif", "images", "mine.pt"]
    assert export_main([str(path), "--bioimageio", str(out), "--test-image", str(moved)]) == 0
    before = out.read_bytes()
    assert export_main([str(path), "--bioimageio", str(out), "--test-image", str(moved)]) == 2
    assert "exists" in capsys.readouterr().err and out.read_bytes() == before
    assert export_main([str(path), "--bioimageio", str(out), "--test-image", str(moved), "--force"]) == 0


def test_bioimageio_core_runs_the_export_commands_package(own_checkpoint, monkeypatch, tmp_path):
    """The package of python -m unet_lib.export --bioimageio, for a checkpoint of your own images
    (percentiles that are not the course's), through bioimageio.core's model test, offline."""
    test_model = _offline_test_model(monkeypatch, tmp_path / "cache")
    path, _ = own_checkpoint
    assert export_main([str(path), "--bioimageio", str(tmp_path / "mine.zip")]) == 0
    summary = test_model(tmp_path / "mine.zip")
    assert summary.status == "passed", summary.format()
