"""Tests for unet_lib.export: onnxruntime and TorchScript against PyTorch (the oracle: the
library's own UNet.forward) at two valid sizes, the metadata, the docstring's numpy-only
snippet against ``padded_forward``, and the command line's refusals."""

import hashlib
import io
import json
import re
import shutil
import textwrap
import time
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import unet_lib.export
from unet_lib.checkpoint import load_checkpoint, save_checkpoint
from unet_lib.data import percentile_normalize
from unet_lib.export.cli import main
from unet_lib.export import (export_metadata, export_onnx, export_torchscript, onnx_bytes,
                             torchscript_bytes)
from unet_lib.model import UNet
from unet_lib.tiling import context_margin, padded_forward, predict_tiled
from unet_lib.train import COURSE_CHECKPOINT, TrainConfig

TINY = dict(depth=2, base_channels=4, batch_norm=True)
TOL = 1e-4


def _tiny(seed=0, **kwargs) -> UNet:
    """A tiny U-Net in eval mode whose BatchNorm statistics are not the identity's (0 and 1),
    so that an export that used batch statistics would differ."""
    torch.manual_seed(seed)
    model = UNet(**{**TINY, **kwargs})
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _session(data) -> ort.InferenceSession:
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: a second thread costs more than it gains, most of all on a shared machine
    (measured: exports 6x faster with one thread on a loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny():
    return _tiny()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny):
    config = TrainConfig(epochs=1, batch_size=2, progress=False)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", tiny, config, {"epoch": [1]})


@pytest.fixture(scope="module")
def exported(tmp_path_factory, checkpoint):
    """The command line run once: (onnx path, torchscript path)."""
    out = tmp_path_factory.mktemp("export")
    onnx_path, ts_path = out / "sub" / "tiny.onnx", out / "tiny_ts.pt"
    assert main([str(checkpoint), "--onnx", str(onnx_path), "--torchscript", str(ts_path)]) == 0
    return onnx_path, ts_path


def _max_diff(run, model, sizes, probabilities=True):
    """The largest |export - PyTorch| over seeded inputs of ``sizes`` [(B, H, W), ...]."""
    generator = torch.Generator().manual_seed(1)
    worst = 0.0
    for b, h, w in sizes:
        x = torch.rand(b, model.in_channels, h, w, generator=generator) * 2 - 0.5
        with torch.no_grad():
            logits = model(x)
        expected = logits.softmax(1) if probabilities else logits
        got = run(x.numpy())
        assert got.shape == tuple(expected.shape)
        worst = max(worst, float(np.abs(got - expected.numpy()).max()))
    return worst


# -- the exports against PyTorch ---------------------------------------------------------------------

def test_onnx_gives_pytorchs_probabilities_at_two_valid_sizes(exported, tiny):
    session = _session(str(exported[0]))
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == ["probs"]
    assert session.get_inputs()[0].shape == ["B", 1, "H", "W"]   # batch, height and width are dynamic
    # depth 2: valid sizes are 44 + 4k; 52 -> 12 px out, 64 x 76 -> 24 x 36 px, batch 1 and 3
    run = lambda x: session.run(None, {"image": x})[0]
    err = _max_diff(run, tiny, [(1, 52, 52), (3, 64, 76)])
    print(f"max |onnxruntime - PyTorch| probabilities: {err:.2e}")
    assert err < TOL


@pytest.mark.parametrize("config, probabilities", [
    (dict(padding="valid", upsampling="bilinear", dropout=0.5), False),
    (dict(padding="same", upsampling="transpose"), True),
    (dict(depth=0, in_channels=2, num_classes=3), True),
])
def test_onnx_other_networks_and_logits(config, probabilities):
    model = _tiny(seed=1, **config)
    session = _session(onnx_bytes(model, probabilities=probabilities))
    assert session.get_outputs()[0].name == ("probs" if probabilities else "logits")
    first, step = model.min_input_size(), 2**model.depth
    sizes = [(1, first + 2 * step, first + 2 * step), (2, first + 5 * step, first + 3 * step)]
    run = lambda x: session.run(None, {"image": x})[0]
    assert _max_diff(run, model, sizes, probabilities) < TOL * (1 if probabilities else 10)


def test_an_invalid_size_fails_inside_onnxruntime(exported):
    session = _session(str(exported[0]))
    with pytest.raises(Exception, match="Concat"):   # 54 is not 44 + 4k: no silently shifted output
        session.run(None, {"image": np.zeros((1, 1, 54, 52), np.float32)})


def test_torchscript_gives_pytorchs_probabilities_and_carries_the_metadata(exported, tiny):
    extra = {"metadata.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # torch.jit is deprecated; deepImageJ still reads it
        loaded = torch.jit.load(str(exported[1]), _extra_files=extra)

    def run(x):
        with torch.no_grad():
            return loaded(torch.from_numpy(x)).numpy()

    assert _max_diff(run, tiny, [(1, 52, 52), (2, 76, 64)]) < TOL
    assert json.loads(extra["metadata.json"]) == _session(str(exported[0])).get_modelmeta().custom_metadata_map


@pytest.mark.parametrize("config", [dict(), dict(padding="same", upsampling="bilinear"), dict(depth=3, in_channels=2)])
def test_both_exports_of_the_model_itself_match_pytorch_at_four_valid_sizes(config):
    """The export traces UNet.forward itself (no second copy of the forward pass): its crops keep
    the traced sizes, so ONNX and TorchScript give PyTorch's probabilities at valid sizes other
    than the traced example (the smallest two with an output of 8 px), square and not, batch 1 and 2."""
    model = _tiny(seed=2, **config)
    first, step = model.min_input_size(), 2**model.depth
    sizes = [(1, first, first + 3 * step), (2, first + 2 * step, first + 2 * step),
             (1, first + 7 * step, first + step), (2, first + 4 * step, first + 9 * step)]
    session = _session(onnx_bytes(model))
    assert _max_diff(lambda x: session.run(None, {"image": x})[0], model, sizes) < TOL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # torch.jit is deprecated; deepImageJ still reads it
        loaded = torch.jit.load(io.BytesIO(torchscript_bytes(model)))

    def run(x):
        with torch.no_grad():
            return loaded(torch.from_numpy(x)).numpy()

    assert _max_diff(run, model, sizes) < TOL


def test_the_export_traces_the_models_own_forward_without_warnings(tiny):
    """The size checks of UNet.forward and center_crop read the tracer's sizes without asking it
    to freeze them (no TracerWarning), and the traced graph holds the network's own layers."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        data = torchscript_bytes(tiny)
        loaded = torch.jit.load(io.BytesIO(data))
    names = {name for name, _ in loaded.named_modules()}
    assert {"unet.inc", "unet.downs.0", "unet.ups.1.up", "unet.outc"} <= names


def test_a_wrong_export_is_refused_before_anything_is_written(tmp_path, tiny, monkeypatch):
    forward = unet_lib.export._ExportedUNet.forward
    monkeypatch.setattr(unet_lib.export._ExportedUNet, "forward", lambda self, x: forward(self, x) + 1e-3)
    with pytest.raises(RuntimeError, match=r"the ONNX export differs from PyTorch by up to 0.001.*nothing was written"):
        export_onnx(tiny, tmp_path / "wrong.onnx")
    with pytest.raises(RuntimeError, match="the TorchScript export differs"):
        torchscript_bytes(tiny)
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_writes_nothing_when_an_export_is_wrong(checkpoint, tmp_path, capsys, monkeypatch):
    forward = unet_lib.export._ExportedUNet.forward
    monkeypatch.setattr(unet_lib.export._ExportedUNet, "forward", lambda self, x: forward(self, x) + 1e-3)
    rc, err = _run(capsys, checkpoint, "--onnx", tmp_path / "a.onnx", "--torchscript", tmp_path / "b.pt")
    assert rc == 1 and "export differs from PyTorch" in err
    assert list(tmp_path.iterdir()) == []


def test_the_shipped_course_checkpoint_exports(tmp_path):
    start = time.perf_counter()
    assert main([str(COURSE_CHECKPOINT), "--onnx", str(tmp_path / "course.onnx")]) == 0
    seconds = time.perf_counter() - start
    session = _session(str(tmp_path / "course.onnx"))
    model = load_checkpoint(COURSE_CHECKPOINT).model
    first, step = model.min_input_size(), 2**model.depth
    err = _max_diff(lambda x: session.run(None, {"image": x})[0], model, [(2, first + 8 * step, first + 5 * step)])
    print(f"course checkpoint exported and checked in {seconds:.1f} s; max |onnxruntime - PyTorch| {err:.2e}")
    assert err < TOL
    meta = session.get_modelmeta().custom_metadata_map
    # the course model (unet_lib.train.COURSE_MODEL): depth 3, valid padding
    assert (meta["depth"], meta["padding"], meta["context_margin"]) == ("3", "valid", str(context_margin(model)))


# -- metadata --------------------------------------------------------------------------------------

def test_metadata_by_hand_for_the_tiny_model(exported, tiny, checkpoint):
    proto = onnx.load(str(exported[0]))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta == _session(str(exported[0])).get_modelmeta().custom_metadata_map
    # depth 2, valid: 44 -> 4 px out, so the margin is (44 - 4) / 2 = 20; the smallest tile
    # whose output reaches 128 px is 168 (168 - 40 = 128)
    assert {k: meta[k] for k in ["output", "in_channels", "num_classes", "depth", "base_channels", "padding",
                                 "upsampling", "batch_norm", "context_margin", "min_input_size", "input_size_step",
                                 "valid_input_sizes", "output_size", "output_offset", "suggested_tile_size",
                                 "normalization", "normalization_low_percentile",
                                 "normalization_high_percentile", "source_checkpoint"]} == {
        "output": "probs", "in_channels": "1", "num_classes": "2", "depth": "2", "base_channels": "4",
        "padding": "valid", "upsampling": "transpose", "batch_norm": "True", "context_margin": "20",
        "min_input_size": "44", "input_size_step": "4",
        "valid_input_sizes": "n = 44 + k*4 (k = 0, 1, 2, ...; 4 = 2**depth), for H and W each",
        "output_size": "n_out = n - 40", "output_offset": "20", "suggested_tile_size": "168",
        "normalization": "percentile", "normalization_low_percentile": "1", "normalization_high_percentile": "99.8",
        "source_checkpoint": "tiny.pt"}
    assert meta["source_checkpoint_sha256"] == _sha(checkpoint)
    assert "checkpoint records none" in meta["normalization_source"]
    assert proto.producer_name == "unet_lib"


@pytest.mark.parametrize("config", [TINY, dict(depth=3, padding="same"), dict(depth=1)])
def test_metadata_agrees_with_the_models_size_arithmetic(config):
    model = UNet(**{**config, "base_channels": 1})
    meta = export_metadata(model)
    first, step = int(meta["min_input_size"]), int(meta["input_size_step"])
    assert model.valid_input_sizes(1, 300) == list(range(first, 301, step))
    assert int(meta["context_margin"]) == context_margin(model)
    offset = int(meta["output_offset"])
    for n in model.valid_input_sizes(1, 120):
        assert model.output_size(n) == n - 2 * offset
    assert int(meta["suggested_tile_size"]) in model.valid_input_sizes(1, 1024)
    assert export_metadata(model, probabilities=False)["output"] == "logits"


# -- the numpy-only snippet of the docstring ----------------------------------------------------------

def _snippet() -> str:
    """The indented block after "Run the exported model outside this library" in the module
    docstring, as written there."""
    doc = unet_lib.export.__doc__
    start = doc.index("::\n", doc.index("Run the exported model outside this library")) + 3
    block = re.match(r"(\n| {4}.*\n)+", doc[start:]).group(0)
    return textwrap.dedent(block)


@pytest.mark.parametrize("h, w, padding", [(37, 50, "valid"), (130, 21, "valid"), (37, 50, "same")])
def test_the_docstring_snippet_matches_padded_forward(exported, tiny, tmp_path, monkeypatch, h, w, padding):
    if padding == "valid":
        shutil.copy(exported[0], tmp_path / "unet.onnx")
    else:
        tiny = _tiny(seed=2, padding="same")
        (tmp_path / "unet.onnx").write_bytes(onnx_bytes(tiny))
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    image = rng.gamma(2.0, 300.0, size=(1, h, w)) + 100       # raw intensities, not in [0, 1]
    code = _snippet()
    assert "import numpy as np" in code and "unet_lib" not in code and "torch" not in code
    namespace = {"image": image}
    exec(compile(code, "export_snippet", "exec"), namespace)
    probs = namespace["predict"](image)                         # (K, H, W)
    x = torch.from_numpy(percentile_normalize(image))[None]     # (1, 1, H, W)
    with torch.no_grad():
        expected = padded_forward(tiny, x).softmax(1)[0].numpy()
    assert probs.shape == expected.shape == (2, h, w)
    assert np.abs(probs - expected).max() < TOL
    sure = np.abs(expected[1] - expected[0]) > 1e-3             # argmax of near-ties may flip
    assert (namespace["labels"] == expected.argmax(0))[sure].all()
    # and the same as the library's overlap-tile prediction
    assert np.abs(probs - predict_tiled(tiny, percentile_normalize(image)).numpy()).max() < TOL


# -- refusals --------------------------------------------------------------------------------------

def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def test_missing_and_bad_checkpoints(tmp_path, capsys):
    rc, err = _run(capsys, tmp_path / "nope.pt", "--onnx", tmp_path / "a.onnx")
    assert rc == 2 and re.search(r"error: no checkpoint at .*nope\.pt \(no file there\)", err)
    (tmp_path / "notes.txt").write_text("not a model\n")
    rc, err = _run(capsys, tmp_path / "notes.txt", "--onnx", tmp_path / "a.onnx")
    assert rc == 2 and "could not be read as a checkpoint" in err and "it is a text file" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_nothing_to_do_and_unknown_options(checkpoint, capsys):
    rc, err = _run(capsys, checkpoint)
    assert rc == 2 and "nothing to do: give --onnx OUT.onnx, --torchscript OUT.pt and/or --bioimageio OUT.zip" in err
    with pytest.raises(SystemExit) as exit:
        main([str(checkpoint), "--onnx"])
    assert exit.value.code == 2 and "--onnx: expected one argument" in capsys.readouterr().err


def test_an_output_that_is_a_folder(checkpoint, tmp_path, capsys):
    rc, err = _run(capsys, checkpoint, "--onnx", tmp_path)
    expected = f"--onnx {tmp_path} is a folder; give a file name inside it, e.g. {tmp_path / 'unet.onnx'}"
    assert rc == 2 and expected in err


def test_existing_outputs_are_refused_unless_force(checkpoint, tmp_path, capsys):
    precious = tmp_path / "precious.onnx"
    precious.write_text("someone's work\n")
    before = _sha(precious)
    rc, err = _run(capsys, checkpoint, "--torchscript", tmp_path / "new_ts.pt", "--onnx", precious)
    assert rc == 2 and re.search(r"--onnx .*precious\.onnx exists \(an ONNX model\?, 15 bytes\); no command "
                                 r"overwrites work it did not create: give another file name, or replace it on "
                                 r"purpose with --force", err)
    assert _sha(precious) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.onnx"]   # the other output was not written
    rc, _ = _run(capsys, checkpoint, "--onnx", precious, "--force")
    assert rc == 0 and onnx.load(str(precious)).producer_name == "unet_lib"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.onnx"]   # no temporary file left


def test_outputs_that_clash(checkpoint, tmp_path, capsys):
    rc, err = _run(capsys, checkpoint, "--onnx", tmp_path / "m", "--torchscript", tmp_path / "m")
    assert rc == 2 and "--onnx and --torchscript are the same file" in err
    before = _sha(checkpoint)
    rc, err = _run(capsys, checkpoint, "--onnx", checkpoint, "--force")
    assert rc == 2 and "is the checkpoint being exported; give another file name" in err
    assert _sha(checkpoint) == before


def test_library_refusals(tiny, tmp_path):
    (tmp_path / "there.onnx").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="replace it on purpose with overwrite=True"):
        export_onnx(tiny, tmp_path / "there.onnx")
    with pytest.raises(TypeError, match="model must be a unet_lib.UNet"):
        onnx_bytes(torch.nn.Conv2d(1, 2, 3))
    with pytest.raises(TypeError, match="probabilities must be True or False, got 'yes'"):
        onnx_bytes(tiny, probabilities="yes")
    with pytest.raises(ValueError, match="percentiles must satisfy 0 <= low < high <= 100, got low=50, high=20"):
        export_metadata(tiny, low=50, high=20)
    broken = _tiny()
    with torch.no_grad():
        broken.outc.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="model has non-finite weights"):
        onnx_bytes(broken)


def test_export_leaves_the_model_as_it_was(tmp_path):
    model = _tiny().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, tmp_path / "m.onnx")
    export_torchscript(model, tmp_path / "m_ts.pt", probabilities=False)
    with pytest.raises(FileExistsError, match="m_ts.pt exists"):
        export_torchscript(model, tmp_path / "m_ts.pt")
    assert export_torchscript(model, tmp_path / "m_ts.pt", overwrite=True) == tmp_path / "m_ts.pt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m_ts.pt"]
    assert model.training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
