"""A trained U-Net as a BioImage Model Zoo package: the format Fiji (deepImageJ), ilastik and napari read.

C, K, H, W = channels (in_channels), classes (num_classes), height, width.

``write_bioimageio_package(CHECKPOINT, "unet.zip")`` (on the command line ``python -m
unet_lib.export MODEL.pt --bioimageio unet.zip``) writes one zip file holding

* ``rdf.yaml``: the description, format 0.5 (https://bioimage.io/docs: "model RDF 0.5"): the
  input ``image`` (batch, channel, y, x) with its valid sizes (``min_input_size + k * 2**depth``,
  a ``ParameterizedSize``) and the normalisation the model expects as preprocessing; the output
  ``probs`` (batch, channel, y, x: K softmax probabilities) whose size is the input's minus twice
  the context margin for the paper's valid padding (a ``SizeReference`` with that offset), so a
  consumer knows that output pixel (0, 0) is input pixel (margin, margin); the weights; the test
  tensors; the cover; the citations; the licence; the training data's description; and under
  ``config.unet_lib`` the metadata of ``unet_lib.export.export_metadata``;
* ``weights_torchscript.pt`` and ``weights.onnx``: ``unet_lib.export.torchscript_bytes`` and
  ``onnx_bytes`` (each checked against PyTorch before it is written);
* ``test_input.npy`` (1, C, H, W) float32, a raw image before normalisation, and
  ``test_output.npy`` (1, K, H - 2 margin, W - 2 margin) float32, what this library's model
  gives for it: a consumer's test runs the package on the input and compares;
* ``cover.png`` (the test image, and its predicted outlines drawn on it:
  ``unet_lib.viz.draw_outlines``) and ``README.md`` (the documentation).

The normalisation is the one the model was trained with: a checkpoint of ``python -m
unet_lib.train --images`` records its percentiles (``low``, ``high``), and the package says
``scale_range`` per channel with those percentiles, then ``clip`` to [0, 1] (what
``unet_lib.data.percentile_normalize`` does); a checkpoint that records none (the course's toy-cell
model, trained on ``ToyCells`` images that are already in [0, 1]) gets no preprocessing.

The rdf.yaml is written by this module (no bioimageio package is needed to export); the tests
validate packages with ``bioimageio.core`` (its model test). Whether Fiji, ilastik and napari
open them is not tested here.
"""

import datetime
import hashlib
import io
import json
import math
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import imageio.v3 as iio
import numpy as np
import tifffile
import torch

from .atomic import atomic_write, check_new_file
from .checkpoint import load_checkpoint
from .data import percentile_normalize
from .export import OPSET, export_metadata, onnx_bytes, torchscript_bytes
from .metrics import label_instances
from .model import UNet
from .tiling import context_margin
from .validate import describe

__all__ = ["write_bioimageio_package", "package_bytes", "package_files", "FORMAT_VERSION", "PAPER", "LICENSE"]

FORMAT_VERSION = "0.5.4"        # model RDF 0.5; 0.5.4 (2024) is read by the consumers of 2024-2026
LICENSE = "MIT"                 # the course's licence (pyproject.toml), for the weights as for the code
# Citations are DOIs only: a validator checks a DOI's pattern, and fetches every http(s) URL
PAPER = {"text": "Ronneberger, O., Fischer, P. and Brox, T. (2015). U-Net: Convolutional Networks for Biomedical "
                 "Image Segmentation. MICCAI 2015, LNCS 9351, 234-241 (arXiv:1505.04597).",
         "doi": "10.1007/978-3-319-24574-4_28"}
DSB2018 = {"text": "Caicedo, J. C. et al. (2019). Nucleus segmentation across imaging experiments: the 2018 Data "
                   "Science Bowl. Nature Methods 16, 1247-1253 (image set BBBC038v1).",
           "doi": "10.1038/s41592-019-0612-7"}
NAME_CHARACTERS = "letters, digits, spaces and _ + - ( )"   # what the model zoo allows in a name
_NAME = re.compile(r"[A-Za-z0-9_+\- ()]+")
TOY_CELLS = ("Synthetic images from unet_lib.data.ToyCells (the course's toy cells: 128x128, 6-12 irregular "
             "ellipses of radius 8-15 px, most of them pressed against a neighbour, textured, with darker rims, "
             "on an uneven background, blurred, Gaussian noise of SD 0.06; values in [0, 1]); the course recipe "
             "(unet_lib.train.train_course_model): 16 tiles of 256x256, 18 epochs, the weight map of Eq. 2.")


def _yaml(value, indent: int = 0) -> list[str]:
    """YAML lines of nested dicts, lists and scalars, block style; strings double-quoted (JSON's
    escapes are YAML's)."""
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines += [f"{pad}{key}:"] + _yaml(item, indent + 2)
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return lines
    if isinstance(value, list):
        lines = []
        for item in value:
            nested = _yaml(item, indent + 2) if isinstance(item, (dict, list)) and item else [f"{pad}  {_scalar(item)}"]
            lines.append(f"{pad}- {nested[0].lstrip()}")
            lines += nested[1:]
        return lines
    return [f"{pad}{_scalar(value)}"]


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise ValueError(f"a package value must be finite, got {value}")
        return repr(float(value))
    if isinstance(value, (dict, list)):
        return "{}" if isinstance(value, dict) else "[]"
    return json.dumps(str(value), ensure_ascii=False)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _tif(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.ascontiguousarray(array), photometric="minisblack")
    return buffer.getvalue()


def _png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    iio.imwrite(buffer, rgb, extension=".png")
    return buffer.getvalue()


def _test_input(model: UNet, image) -> np.ndarray:
    """The test image as float32 (C, n, n): its top left n x n pixels, n the largest valid input size
    it holds (a package's test tensor must have a valid size), at most 284 (small files)."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.dtype.kind not in "buif":
        raise TypeError(f"test_image must be a real (H, W) or (C, H, W) numpy array, as read_image gives it, "
                        f"got {describe(image)}")
    image = image[None] if image.ndim == 2 else image
    if image.shape[0] != model.in_channels:
        raise ValueError(f"test_image has {image.shape[0]} channel(s) (read as (C, H, W) = {image.shape}), the model "
                         f"takes {model.in_channels}")
    if not np.all(np.isfinite(image)):
        raise ValueError("test_image has NaN or infinite pixels; give an image the model would see")
    side = min(image.shape[1:] + (284,))
    sizes = model.valid_input_sizes(model.min_input_size(), side) if side >= model.min_input_size() else []
    if not sizes:
        raise ValueError(f"test_image is {image.shape[1]}x{image.shape[2]}, smaller than the model's smallest valid "
                         f"input {model.min_input_size()}x{model.min_input_size()}; give a larger image")
    n = sizes[-1]
    return image[:, :n, :n].astype(np.float32)                    # (C, n, n)


def _normalised(image: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    """(C, H, W) as the model saw its training images: each channel by its percentiles, or as is."""
    if low is None:
        return image
    return np.stack([percentile_normalize(channel, low, high) for channel in image])


def _cover(model: UNet, image: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    """(n, 2 n, 3) uint8, 2:1 as the zoo shows covers: the test image, and the same with the
    outlines of the objects the model finds in it (the connected components of the predicted
    foreground, the image mirrored at its borders for context: ``unet_lib.tiling.predict_tiled``)."""
    from .tiling import predict_tiled
    from .viz.outlines import _grey_or_rgb, draw_outlines   # viz imports matplotlib: only when packaging
    shown = _normalised(image, low, high)                   # (C, n, n)
    labels = label_instances(predict_tiled(model, torch.from_numpy(shown)).argmax(0).numpy() > 0)
    return np.concatenate([_grey_or_rgb(shown), draw_outlines(shown, labels)], axis=1)


def _validation(history: dict) -> str:
    """The checkpoint's own validation scores, at the epoch whose weights it holds."""
    if not history or "val_f1" not in history:
        return "The checkpoint records no validation scores."
    epochs = history.get("epoch", [])
    best = int(history["best_epoch"][-1]) if history.get("best_epoch") else int(epochs[-1]) if epochs else None
    i = epochs.index(float(best)) if best is not None and float(best) in epochs else -1
    scores = ", ".join(f"{key[4:]} {history[key][i]:.3f}" if "iou" in key or "f1" in key else f"{key[4:]} {history[key][i]:g}"
                       for key in ("val_iou", "val_f1", "val_merged", "val_split") if key in history)
    return (f"On its validation images at the end of training (epoch {best}, the weights in this package), as "
            f"recorded in the checkpoint: {scores} (foreground IoU; instance F1 at IoU 0.5; merged and split cells).")


def _readme(name: str, description: str, model: UNet, margin: int, normalisation: str, training: str,
            channel_names: Sequence[str], class_names: Sequence[str], source: str, validation: str) -> str:
    first, step = model.min_input_size(), 2**model.depth
    return f"""# {name}

{description}

A U-Net (Ronneberger, Fischer & Brox, 2015) built and trained with the unet-course library
`unet_lib`: depth {model.depth}, {model.config['base_channels']} channels at the top,
{model.config['padding']} padding, {'BatchNorm after each convolution' if model.config['batch_norm'] else 'no BatchNorm'}.
Exported from `{source}`.

## Input
`image`: (batch, channel, y, x), float32, {model.in_channels} channel(s) ({', '.join(channel_names)}).
Height and width are each a valid size: {first} + k * {step} (k = 0, 1, 2, ...), e.g.
{', '.join(str(first + k * step) for k in range(4))}, ...

Normalisation (the package's preprocessing): {normalisation}

## Output
`probs`: (batch, channel, y, x), float32 softmax probabilities of {model.num_classes} classes
({', '.join(class_names)}); the most probable class per pixel is the segmentation, its connected
components the objects. The paper's valid convolutions need context: the output is
{2 * margin} pixels smaller than the input in y and in x ({margin} on each side), and output pixel
(0, 0) is input pixel ({margin}, {margin}). To segment a whole image, mirror-pad it by {margin} pixels
on each side (more at the bottom and right to reach a valid size) or predict overlapping tiles
(the overlap-tile strategy of the paper, Fig. 2; `unet_lib.tiling.predict_tiled`).

## Training data
{training}

## Validation
{validation}

The package's own test (`bioimageio.core`'s model test) runs `test_input.npy` through the
preprocessing and each weights format and compares the result with `test_output.npy`.

## Weights
TorchScript (`weights_torchscript.pt`, for deepImageJ and PyTorch) and ONNX (`weights.onnx`, opset
{OPSET}, for onnxruntime), both exported from the same PyTorch model and checked against it.
The test tensors (`test_input.npy`, `test_output.npy`) are an image before normalisation and this
library's output for it.

## Citation
{PAPER['text']} doi:{PAPER['doi']}

Licence: {LICENSE}.
"""


def package_files(checkpoint: str | Path, test_image=None, *, name: str | None = None, description: str | None = None,
                  training_data: str | None = None, authors: Sequence[str] = ("unet-course contributors",),
                  class_names: Sequence[str] | None = None) -> dict[str, bytes]:
    """{file name: bytes} of the package of ``checkpoint`` (a ``unet_lib`` checkpoint file): see the
    module docstring. ``test_image``: a raw (H, W) or (C, H, W) image as ``unet_lib.files.read_image``
    gives it (its top-left n x n pixels are used, n the largest valid input size up to 284); None
    for a checkpoint that records no normalisation (the course's toy-cell model) uses a
    ``ToyCells`` image. ``training_data``: a sentence or two on the images it was trained on (default:
    what the checkpoint records). ``class_names``: one name per class (default background, cell, or
    class 0 .. class K-1)."""
    if name is not None and (not isinstance(name, str) or not _NAME.fullmatch(name)):
        raise ValueError(f"name must be made of {NAME_CHARACTERS} (the model zoo's rule), got {name!r}")
    checkpoint = Path(checkpoint)
    loaded = load_checkpoint(checkpoint)
    model, meta = loaded.model.cpu().float().eval(), dict(loaded.meta)
    low, high = (meta["low"], meta["high"]) if "low" in meta else (None, None)
    test_image = _default_test_image(test_image, low, checkpoint)
    k, margin = model.num_classes, context_margin(model)
    class_names = list(class_names) if class_names is not None else (
        ["background", "cell"] if k == 2 else [f"class {c}" for c in range(k)])
    if len(class_names) != k:
        raise ValueError(f"class_names must name the model's {k} classes, got {len(class_names)}: {class_names}")
    channel_names = ["grey"] if model.in_channels == 1 else [f"channel {c}" for c in range(model.in_channels)]

    raw = _test_input(model, test_image)                                     # (C, n, n) float32
    with torch.no_grad():
        probs = model(torch.from_numpy(_normalised(raw, low, high))[None]).softmax(1)[0].numpy()   # (K, n - 2m, n - 2m)
    normalisation, preprocessing, metadata = _normalisation(model, checkpoint, low, high)
    files = {"weights_torchscript.pt": torchscript_bytes(model, True, metadata),
             "weights.onnx": onnx_bytes(model, True, metadata)}
    text = _texts(meta, checkpoint, k, low, name, description, training_data)

    files["test_input.npy"] = _npy(raw[None])                                        # (1, C, n, n)
    files["test_output.npy"] = _npy(probs[None].astype(np.float32))                  # (1, K, n - 2m, n - 2m)
    files["cover.png"] = _png(_cover(model, raw, low, high))
    files["README.md"] = _readme(text.name, text.description, model, margin, normalisation, text.training_data,
                                 channel_names, class_names, checkpoint.name, _validation(loaded.history)).encode()
    # sample tensors, for people to look at (TIFF: imageio reads them): the test image and its probabilities
    files["sample_input.tif"] = _tif(raw[0] if raw.shape[0] == 1 else raw)          # (H, W) or (C, H, W)
    files["sample_output.tif"] = _tif(probs.astype(np.float32))                      # (K, H', W')
    sha = {f: hashlib.sha256(data).hexdigest() for f, data in files.items()}
    rdf = _rdf(model, checkpoint, text, authors, sha, channel_names, class_names, preprocessing, metadata)
    files["rdf.yaml"] = ("\n".join(_yaml(rdf)) + "\n").encode()
    return files


def _default_test_image(test_image, low: float | None, checkpoint: Path):
    """``test_image``, or for a checkpoint without normalisation (the toy cells') a held-out ``ToyCells`` image."""
    if test_image is not None:
        return test_image
    if low is not None:
        raise ValueError(f"test_image is needed for {checkpoint.name}: give one of the images it is meant for "
                         f"(a raw (H, W) or (C, H, W) array, e.g. unet_lib.files.read_image(path)); the package's "
                         f"test runs it through the model")
    from .data import ToyCells
    return ToyCells(1, size=188, seed=2000)[0]["image"].numpy()             # (1, 188, 188), held out


def _normalisation(model: UNet, checkpoint: Path, low: float | None, high: float | None) -> tuple[str, list, dict]:
    """(the README's sentence on normalisation, the rdf's preprocessing, the weights' metadata)."""
    if low is None:
        normalisation = ("none: images in [0, 1], as the toy cells (`unet_lib.data.ToyCells`) it was trained on; "
                         "scale other images to [0, 1] first.")
        preprocessing = []
        source_note = "none recorded: the images were in [0, 1]"
    else:
        normalisation = (f"each channel mapped from its {low:g}th to its {high:g}th percentile to 0..1, then clipped to "
                         f"[0, 1] (`unet_lib.data.percentile_normalize`, as in training).")
        preprocessing = [{"id": "scale_range", "kwargs": {"axes": ["y", "x"], "min_percentile": float(low),
                                                          "max_percentile": float(high)}},
                         {"id": "clip", "kwargs": {"min": 0.0, "max": 1.0}}]
        source_note = "the checkpoint's low and high percentiles"
    metadata = export_metadata(model, True, low if low is not None else 0.0, high if high is not None else 100.0,
                               normalization_source=source_note, checkpoint=checkpoint)
    if low is None:
        metadata.update(normalization="none", normalization_description="images in [0, 1], no normalisation")
        for key in ("normalization_low_percentile", "normalization_high_percentile"):
            metadata.pop(key, None)
    return normalisation, preprocessing, metadata


class _Texts(NamedTuple):
    """What the package says about the model in words."""
    name: str
    description: str
    training_data: str
    nuclei: bool        # trained on crops of the shipped nuclei image (BBBC038): its citation and licence


def _texts(meta: dict, checkpoint: Path, k: int, low: float | None, name: str | None, description: str | None,
           training_data: str | None) -> _Texts:
    """The package's name, description and training-data note: those given, else from the checkpoint."""
    if training_data is None:
        if meta.get("data") == "unet_lib.files.ImageFolder":
            stems = meta.get("train_images", [])
            kind = "instance masks" if meta.get("mask_kind", "instances") == "instances" else "class maps"
            training_data = (f"{len(stems)} image(s) of a folder read by unet_lib.files.ImageFolder "
                             f"({kind}; tiles of {meta.get('tile_size')} px, "
                             f"{meta.get('tiles_per_image')} per image per epoch): {', '.join(stems[:12])}"
                             f"{' ...' if len(stems) > 12 else ''}.")
        else:
            training_data = TOY_CELLS
    nuclei = any(str(s).startswith("nuclei_") for s in meta.get("train_images", []))
    if name is None:
        name = ("U-Net for toy cells (unet-course)" if low is None else
                f"U-Net {re.sub(r'[^A-Za-z0-9_+ -]', '-', checkpoint.stem)} (unet-course)")
    if nuclei and "BBBC038" not in training_data:
        training_data += (" The crops are of one fluorescence image of nuclei of the 2018 Data Science Bowl "
                          "(BBBC038v1, CC0), its left half (the right half held out).")
    description = description or (f"Segments {'cells' if k == 2 else f'{k} classes'} in 2-D {'fluorescence ' if nuclei else ''}"
                                  f"images: a U-Net with the paper's valid padding and weight map, from the "
                                  f"unet-course library.")
    return _Texts(name, description, training_data, nuclei)


def _rdf(model: UNet, checkpoint: Path, text: _Texts, authors: Sequence[str], sha: dict[str, str],
         channel_names: list[str], class_names: list[str], preprocessing: list, metadata: dict) -> dict:
    """The package's ``rdf.yaml`` as a dict: the model zoo's description of the files (``sha``: their hashes)."""
    nuclei = text.nuclei
    return {
        "format_version": FORMAT_VERSION,
        "type": "model",
        "name": text.name,
        "description": text.description,
        "authors": [{"name": a} for a in authors],
        "cite": [PAPER] + ([DSB2018] if nuclei else []),
        "license": LICENSE,
        "tags": ["unet", "segmentation", "2d", "pytorch", "onnx", "torchscript", "unet-course"]
                + (["nuclei", "fluorescence-light-microscopy", "instance-segmentation"] if nuclei else ["cells"]),
        "documentation": "README.md",
        "covers": ["cover.png"],
        "timestamp": datetime.datetime.fromtimestamp(checkpoint.stat().st_mtime, datetime.timezone.utc)
                                      .strftime("%Y-%m-%dT%H:%M:%SZ"),
        "training_data": {"type": "dataset", "format_version": "0.3.0", "name": "training images",
                          "description": text.training_data, "documentation": "README.md",
                          "authors": [{"name": a} for a in authors] if not nuclei else
                          [{"name": "the 2018 Data Science Bowl (Broad Institute), BBBC038v1"}],
                          "cite": [DSB2018] if nuclei else [PAPER],
                          "license": "CC0-1.0" if nuclei else LICENSE,
                          "tags": ["nuclei", "fluorescence-light-microscopy"] if nuclei else ["synthetic", "cells"]},
        **_rdf_tensors(model, sha, channel_names, class_names, preprocessing),
        "weights": {
            "torchscript": {"source": "weights_torchscript.pt", "sha256": sha["weights_torchscript.pt"],
                            "pytorch_version": torch.__version__.split("+")[0]},
            "onnx": {"source": "weights.onnx", "sha256": sha["weights.onnx"], "opset_version": OPSET,
                     "parent": "torchscript"},
        },
        "config": {"unet_lib": metadata},
    }


def _rdf_tensors(model: UNet, sha: dict[str, str], channel_names: list[str], class_names: list[str],
                 preprocessing: list) -> dict:
    """The rdf's ``inputs`` and ``outputs``: axes, valid sizes, the test and sample tensors."""
    k = model.num_classes
    offset = context_margin(model) if model.padding == "valid" else 0   # output pixel (0, 0) in input pixels
    space = {"min": model.min_input_size(), "step": 2**model.depth}
    return {
        "inputs": [{
            "id": "image",
            "description": f"{model.in_channels}-channel 2-D image; height and width {space['min']} + k * {space['step']}",
            "axes": [{"type": "batch"},
                     {"type": "channel", "channel_names": channel_names},
                     {"type": "space", "id": "y", "size": space},
                     {"type": "space", "id": "x", "size": space}],
            "test_tensor": {"source": "test_input.npy", "sha256": sha["test_input.npy"]},
            "sample_tensor": {"source": "sample_input.tif", "sha256": sha["sample_input.tif"]},
            "data": {"type": "float32"},
            "preprocessing": preprocessing,
        }],
        "outputs": [{
            "id": "probs",
            "description": (f"softmax probabilities of {k} classes; {2 * offset} px smaller than the input in y and "
                            f"x: output pixel (0, 0) is input pixel ({offset}, {offset})"),
            "axes": [{"type": "batch"},
                     {"type": "channel", "channel_names": class_names},
                     {"type": "space", "id": "y", "size": {"tensor_id": "image", "axis_id": "y", "offset": -2 * offset}},
                     {"type": "space", "id": "x", "size": {"tensor_id": "image", "axis_id": "x", "offset": -2 * offset}}],
            "test_tensor": {"source": "test_output.npy", "sha256": sha["test_output.npy"]},
            "sample_tensor": {"source": "sample_output.tif", "sha256": sha["sample_output.tif"]},
            "data": {"type": "float32", "range": [0.0, 1.0]},
        }],
    }


def package_bytes(checkpoint: str | Path, test_image=None, **kwargs) -> bytes:
    """The package of ``checkpoint`` as the bytes of a zip file: ``package_files(checkpoint,
    test_image, **kwargs)`` zipped, rdf.yaml first."""
    files = package_files(checkpoint, test_image, **kwargs)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ["rdf.yaml"] + sorted(f for f in files if f != "rdf.yaml"):
            archive.writestr(name, files[name])
    return buffer.getvalue()


def write_bioimageio_package(checkpoint: str | Path, path: str | Path, test_image=None, *, overwrite: bool = False,
                             **kwargs) -> Path:
    """Write the BioImage Model Zoo package of ``checkpoint`` to ``path`` (a .zip), atomically:
    ``package_files(checkpoint, test_image, **kwargs)`` zipped, rdf.yaml first. An existing file is
    replaced only with ``overwrite=True``. Returns the path."""
    path = check_new_file(path, ".zip", "a BioImage Model Zoo package is a zip file", overwrite, example="unet.zip")
    if Path(checkpoint).resolve() == path.resolve():
        raise ValueError(f"path {path} is the checkpoint itself; give another file name")
    return atomic_write(path, package_bytes(checkpoint, test_image, **kwargs))
