"""Export a trained U-Net for use outside this library: ONNX (onnxruntime, Fiji, napari, ...) and TorchScript.

B, C, K, H, W = batch, channels (in_channels), classes (num_classes), height, width.

Command line::

    python -m unet_lib.export MODEL.pt --onnx unet.onnx [--torchscript unet_ts.pt] [--logits] [--force]
    python -m unet_lib.export MODEL.pt --bioimageio unet.zip [--test-image IMAGE] [--name NAME]

``--bioimageio`` writes a BioImage Model Zoo package (what Fiji's deepImageJ, ilastik and napari
read; ``unet_lib.bioimageio``): both weights, rdf.yaml, the normalisation, a test input and its
output, a cover. Its test image is ``--test-image``, by default the first training image of a
checkpoint of ``python -m unet_lib.train --images`` (where it still is), or a toy-cell image for
the course's toy-cell model.

What is exported
----------------
Input ``image``: (B, C, H, W) float32, normalised as the metadata says. Batch, height and width
are dynamic; height and width must each be a valid input size of the network (the metadata's
``valid_input_sizes``: ``n = min_input_size + k * 2**depth``). An invalid size fails inside the
model (onnxruntime reports a ``Concat`` whose dimensions do not match) rather than giving a
silently shifted answer.

Output ``probs`` (the default): (B, K, H_out, W_out) softmax probabilities over axis 1, what a
Fiji or napari user wants to look at; ``argmax`` over axis 1 is the label map. With ``--logits``
the output is ``logits``, the network's raw class scores (``probs = softmax(logits, axis=1)``),
for those who want to combine or calibrate them. For ``padding="valid"`` (the paper's) the output is
smaller than the input: output pixel (0, 0) is input pixel (``output_offset``, ``output_offset``).

Metadata (ONNX ``metadata_props``; a ``metadata.json`` inside the TorchScript file), all strings:
``output``, ``output_description``, ``in_channels``, ``num_classes``, ``depth``,
``base_channels``, ``padding``, ``upsampling``, ``batch_norm``, ``context_margin``,
``min_input_size``, ``input_size_step``, ``valid_input_sizes``, ``output_size``,
``output_offset``, ``suggested_tile_size``, ``normalization``,
``normalization_low_percentile``, ``normalization_high_percentile``,
``normalization_description``, ``normalization_source``, ``source_checkpoint``,
``source_checkpoint_sha256``.

Run the exported model outside this library (numpy and onnxruntime only; ``image`` is a raw
(C, H, W) array of any size, e.g. ``image[None]`` for a grey (H, W) image)::

    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession("unet.onnx")
    meta = session.get_modelmeta().custom_metadata_map   # every value is a string
    margin, offset = int(meta["context_margin"]), int(meta["output_offset"])
    first, step = int(meta["min_input_size"]), int(meta["input_size_step"])
    low = float(meta["normalization_low_percentile"])
    high = float(meta["normalization_high_percentile"])

    def valid_size(n):   # the smallest valid input side that holds n pixels and their context
        return first + max(0, -(-(n + 2 * margin - first) // step)) * step

    def predict(image):
        \"\"\"(C, H, W) raw image -> (K, H, W) probabilities (or logits, see meta["output"]).\"\"\"
        lo, hi = np.percentile(image, [low, high], axis=(1, 2), keepdims=True)
        x = np.clip((image - lo) / (hi - lo), 0, 1).astype(np.float32)   # each channel to [0, 1]
        _, h, w = x.shape
        pad = [(0, 0), (margin, valid_size(h) - h - margin), (margin, valid_size(w) - w - margin)]
        x = np.pad(x, pad, mode="reflect")                     # mirror the borders for context
        out = session.run(None, {"image": x[None]})[0][0]      # (K, H_out, W_out)
        top = margin - offset                                  # image pixel (0, 0) in the output
        return out[:, top : top + h, top : top + w]            # (K, H, W)

    labels = predict(image).argmax(0)                          # (H, W) class per pixel

For an image too large for memory in one piece, run tiles of ``suggested_tile_size`` as
``unet_lib.tiling.predict_tiled`` does (overlapping by twice the context margin).

How: torch's legacy, TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``) traces
the network itself, ``UNet.forward`` (``_ExportedUNet`` only adds the softmax): its size checks
read the tracer's sizes at the traced example, and its crops keep the traced sizes, a fixed
margin per skip (``unet_lib.blocks._crop_size``). It runs offline in under a second for the
course model and needs no package beyond torch (``onnx`` adds the metadata). The newer
``dynamo=True`` exporter (torch's default) exported an earlier copy of the forward pass correctly,
with derived dimensions (``H = 2**depth * k + first``), but needs ``onnxscript`` and took about
50 s (on a busy 2-core machine, against 1 s); switch to it when torch removes the legacy one.
Every export is checked against PyTorch with onnxruntime on two valid sizes before a file is
written, and files are written atomically (``unet_lib.atomic``).
"""

import copy
import hashlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_write
from ..model import UNet
from ..tiling import _tile_geometry, context_margin
from ..validate import check_bool, check_instance, check_number, check_parameters_finite

__all__ = ["export_metadata", "onnx_bytes", "torchscript_bytes", "export_onnx", "export_torchscript"]

# The normalisation the course applies to real images (unet_lib.data.percentile_normalize, per
# channel in unet_lib.files): what an export records for a checkpoint that records none (a
# checkpoint of python -m unet_lib.train --images records its own, which the command line exports).
DEFAULT_LOW, DEFAULT_HIGH = 1.0, 99.8
OPSET = 17                  # onnxruntime >= 1.11, and the ONNX readers of Fiji and napari plugins
INPUT_NAME = "image"
TOLERANCE = 1e-4            # onnxruntime vs PyTorch: probabilities, or logits relative to their scale


# -- the network as it is exported ------------------------------------------------------------

class _ExportedUNet(nn.Module):
    """What an export traces: ``model`` itself, through its own ``UNet.forward``, and optionally
    the softmax over the classes. The size checks in that forward accept the tracer's sizes
    (``UNet._check_input``, ``unet_lib.blocks._crop_size``): the graph crops each skip by the fixed
    margin of a valid input size and so works for every valid size, while an invalid size fails
    at a concatenation. Dropout is the identity in eval mode."""

    def __init__(self, model: UNet, probabilities: bool):
        """``model``: a CPU float32 UNet in eval mode, in the plain memory layout (see ``_prepared``)."""
        super().__init__()
        self.unet, self.probabilities = model, probabilities

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.unet(x)                                # (B, K, H_out, W_out)
        return logits.softmax(1) if self.probabilities else logits


def _prepared(model: UNet, probabilities: bool) -> _ExportedUNet:
    """A CPU float32 copy of ``model`` in eval mode (BatchNorm with its running statistics) and in
    the plain (NCHW) memory layout, so that no channels_last crop is traced; wrapped for export.
    ``model`` itself is left as it was."""
    check_instance("model", model, UNet, "a unet_lib.UNet (it knows its size arithmetic)")
    check_bool("probabilities", probabilities)
    check_parameters_finite("model", model)
    copied = copy.deepcopy(model).cpu().float().to(memory_format=torch.contiguous_format)
    return _ExportedUNet(copied.eval(), probabilities).eval()


def _example_sizes(model: UNet) -> tuple[int, int]:
    """Two valid input sizes whose outputs are at least 8 px: the export's example and check."""
    step, n = 2**model.depth, model.min_input_size()
    while model.output_size(n) < 8:
        n += step
    return n, n + step


# -- metadata ----------------------------------------------------------------------------------

def export_metadata(model: UNet, probabilities: bool = True, low: float = DEFAULT_LOW, high: float = DEFAULT_HIGH,
                    normalization_source: str = "unet_lib defaults; the checkpoint records none",
                    checkpoint: str | Path | None = None) -> dict[str, str]:
    """What a user of the exported file needs to know, as {key: string} (ONNX metadata values are
    strings): the output, the network's shape, its size rule, tiling and the normalisation."""
    check_instance("model", model, UNet, "a unet_lib.UNet")
    check_bool("probabilities", probabilities)
    low, high = check_number("low", low), check_number("high", high)
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got low={low:g}, high={high:g}")
    first, step = model.min_input_size(), 2**model.depth
    margin = context_margin(model)
    offset = margin if model.padding == "valid" else 0
    shape = "(B, num_classes, H_out, W_out)"
    meta = {
        "output": "probs" if probabilities else "logits",
        "output_description": (f"probs: {shape} softmax probabilities over axis 1; argmax over axis 1 is the "
                               f"label map" if probabilities else
                               f"logits: {shape} raw class scores; probs = softmax(logits, axis=1), argmax over "
                               f"axis 1 is the label map"),
        "in_channels": str(model.in_channels),
        "num_classes": str(model.num_classes),
        "depth": str(model.depth),
        "base_channels": str(model.config["base_channels"]),
        "padding": model.padding,
        "upsampling": model.config["upsampling"],
        "batch_norm": str(model.config["batch_norm"]),
        "context_margin": str(margin),
        "min_input_size": str(first),
        "input_size_step": str(step),
        "valid_input_sizes": f"n = {first} + k*{step} (k = 0, 1, 2, ...; {step} = 2**depth), for H and W each",
        "output_size": f"n_out = n - {2 * offset}" if offset else "n_out = n",
        "output_offset": str(offset),
        "suggested_tile_size": str(_tile_geometry(model, None, 10**6, 10**6)[0]),
        "normalization": "percentile",
        "normalization_low_percentile": f"{low:g}",
        "normalization_high_percentile": f"{high:g}",
        "normalization_description": ("per channel: x = clip((image - p_low) / (p_high - p_low), 0, 1) as float32, "
                                      "p_low and p_high the low and high percentiles of that channel "
                                      "(unet_lib.data.percentile_normalize)"),
        "normalization_source": normalization_source,
    }
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        meta["source_checkpoint"] = checkpoint.name
        meta["source_checkpoint_sha256"] = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    return meta


# -- ONNX ----------------------------------------------------------------------------------------

def _onnx_modules():
    try:
        import onnx
        import onnxruntime
    except ImportError as error:
        raise ImportError(f"exporting to ONNX needs the packages onnx and onnxruntime ({error}); "
                          f"install them with `python -m pip install -r requirements.txt`") from None
    return onnx, onnxruntime


def _check_close(name: str, got: np.ndarray, expected: np.ndarray, probabilities: bool) -> float:
    """The largest difference; a RuntimeError when it is over ``TOLERANCE`` (relative for logits)."""
    if got.shape != expected.shape:
        raise RuntimeError(f"the {name} export gives shape {got.shape}, PyTorch {expected.shape}; nothing was written")
    err = float(np.abs(got - expected).max())
    scale = 1.0 if probabilities else max(1.0, float(np.abs(expected).max()))
    if not err <= TOLERANCE * scale:
        raise RuntimeError(f"the {name} export differs from PyTorch by up to {err:.3g} (tolerance "
                           f"{TOLERANCE * scale:.3g}); nothing was written")
    return err


def _check_export(run, wrapped: _ExportedUNet, name: str) -> None:
    """Run the export (``run``: numpy (B, C, H, W) -> numpy output) and PyTorch on seeded inputs
    of two valid sizes, batch 2, and refuse a difference over the tolerance."""
    generator = torch.Generator().manual_seed(0)
    unet = wrapped.unet
    for n, m in zip(_example_sizes(unet), reversed(_example_sizes(unet))):   # two sizes, H != W
        x = torch.rand(2, unet.in_channels, n, m, generator=generator)
        with torch.no_grad():
            logits = unet(x)                                 # the library's own forward, with its checks
        expected = (logits.softmax(1) if wrapped.probabilities else logits).numpy()
        _check_close(name, run(x.numpy()), expected, wrapped.probabilities)


def onnx_bytes(model: UNet, probabilities: bool = True, metadata: dict[str, str] | None = None) -> bytes:
    """``model`` as an ONNX file in memory: input ``image`` (B, C, H, W), output ``probs`` (or
    ``logits``) (B, K, H_out, W_out), batch, height and width dynamic, ``metadata`` (default
    ``export_metadata(model, probabilities)``) in ``metadata_props``. Checked against PyTorch
    with onnxruntime; a ``RuntimeError`` if they differ."""
    onnx, onnxruntime = _onnx_modules()
    wrapped = _prepared(model, probabilities)
    metadata = export_metadata(model, probabilities) if metadata is None else metadata
    output = "probs" if probabilities else "logits"
    n, m = _example_sizes(wrapped.unet)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # the legacy exporter announces its deprecation on every call (see the module docstring)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        torch.onnx.export(wrapped, (torch.zeros(1, model.in_channels, n, m),), buffer, dynamo=False,
                          opset_version=OPSET, input_names=[INPUT_NAME], output_names=[output],
                          dynamic_axes={INPUT_NAME: {0: "B", 2: "H", 3: "W"}, output: {0: "B", 2: "H_out", 3: "W_out"}})
    proto = onnx.load_from_string(buffer.getvalue())
    proto.producer_name = "unet_lib"
    del proto.metadata_props[:]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=str(value))
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    _check_export(lambda x: session.run(None, {INPUT_NAME: x})[0], wrapped, "ONNX")
    return data


def torchscript_bytes(model: UNet, probabilities: bool = True, metadata: dict[str, str] | None = None) -> bytes:
    """``model`` as a TorchScript file in memory (``torch.jit.load`` reads it; deepImageJ runs
    it), the same network as ``onnx_bytes``, with ``metadata`` as the extra file
    ``metadata.json``. Checked against PyTorch; a ``RuntimeError`` if they differ."""
    wrapped = _prepared(model, probabilities)
    metadata = export_metadata(model, probabilities) if metadata is None else metadata
    n, m = _example_sizes(wrapped.unet)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # torch.jit is deprecated, still what deepImageJ reads
        # check_trace=False: torch's own re-run check; _check_export below compares with PyTorch
        traced = torch.jit.trace(wrapped, torch.zeros(1, model.in_channels, n, m), check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={"metadata.json": json.dumps(metadata, indent=1)})
        loaded = torch.jit.load(io.BytesIO(buffer.getvalue()))

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return loaded(torch.from_numpy(x)).numpy()

    _check_export(run, wrapped, "TorchScript")
    return buffer.getvalue()


# -- writing files ---------------------------------------------------------------------------------

def _describe_existing(path: Path) -> str:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4)
    kind = ("a zip archive (a torch or TorchScript file?)" if head.startswith(b"PK\x03\x04") else
            "an ONNX model?" if path.suffix == ".onnx" else "a file")
    return f"{kind}, {size:,} bytes"


def _check_target(path: str | Path, overwrite: bool, what: str = "path") -> Path:
    """Refuse a folder, and an existing file unless ``overwrite``: no command overwrites work it
    did not create."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder; give a file name inside it, e.g. {path / 'unet.onnx'}")
    if path.exists() and not overwrite:
        how = "--force" if what.startswith("--") else "overwrite=True"
        raise FileExistsError(f"{what} {path} exists ({_describe_existing(path)}); no command overwrites work it did "
                              f"not create: give another file name, or replace it on purpose with {how}")
    return path


def export_onnx(model: UNet, path: str | Path, probabilities: bool = True, metadata: dict[str, str] | None = None,
                overwrite: bool = False) -> Path:
    """Write ``onnx_bytes(model, probabilities, metadata)`` to ``path`` atomically. An existing
    file is replaced only with ``overwrite=True``. Returns the path."""
    path = _check_target(path, check_bool("overwrite", overwrite))
    return atomic_write(path, onnx_bytes(model, probabilities, metadata))


def export_torchscript(model: UNet, path: str | Path, probabilities: bool = True,
                       metadata: dict[str, str] | None = None, overwrite: bool = False) -> Path:
    """Write ``torchscript_bytes(model, probabilities, metadata)`` to ``path`` atomically. An
    existing file is replaced only with ``overwrite=True``. Returns the path."""
    path = _check_target(path, check_bool("overwrite", overwrite))
    return atomic_write(path, torchscript_bytes(model, probabilities, metadata))


