"""The command line ``python -m unet_lib.export MODEL.pt --onnx OUT.onnx | --torchscript OUT.pt | --bioimageio OUT.zip``."""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..checkpoint import load_checkpoint
from . import DEFAULT_HIGH, DEFAULT_LOW, _check_target, export_metadata, onnx_bytes, torchscript_bytes


def _test_image(meta: dict, given: Path | None) -> np.ndarray | None:
    """The package's test image: ``given``, or the first training image of the checkpoint's
    ``meta`` (``images_dir``, ``train_images``) where it still is, or None (``unet_lib.bioimageio``
    then draws a toy-cell image, or says that one is needed)."""
    from ..files import IMAGE_SUFFIXES, read_image
    if given is not None:
        if not given.is_file():
            raise FileNotFoundError(f"--test-image {given} is not a file; give an image the model is meant for")
        return read_image(given, meta.get("channel_axis"))
    folder, stems = meta.get("images_dir"), meta.get("train_images") or []
    if folder is None or not stems:
        return None
    for suffix in IMAGE_SUFFIXES:
        for name in (stems[0] + suffix, stems[0] + suffix.upper()):
            if (Path(folder) / name).is_file():
                return read_image(Path(folder) / name, meta.get("channel_axis"))
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m unet_lib.export MODEL.pt --onnx OUT.onnx [--torchscript OUT.pt] [--bioimageio
    OUT.zip]``: export a checkpoint. Exit status: 0 written; 1 an export differs from PyTorch, 2 an
    error in the arguments (in both cases nothing is written)."""
    parser = argparse.ArgumentParser(prog="python -m unet_lib.export",
                                     description="Export a unet_lib checkpoint to ONNX, TorchScript and/or a "
                                                 "BioImage Model Zoo package (Fiji's deepImageJ, ilastik, napari).")
    parser.add_argument("checkpoint", type=Path, help="a checkpoint written by unet_lib (e.g. data/unet_toycells.pt)")
    parser.add_argument("--onnx", type=Path, help="write an ONNX model here (e.g. unet.onnx)")
    parser.add_argument("--torchscript", type=Path, help="write a TorchScript model here (e.g. unet_ts.pt)")
    parser.add_argument("--bioimageio", type=Path, metavar="OUT.zip",
                        help="write a BioImage Model Zoo package here (format 0.5: TorchScript and ONNX weights, "
                             "rdf.yaml with the sizes and the normalisation, a test input and output, a cover)")
    parser.add_argument("--test-image", type=Path, default=None, metavar="IMAGE",
                        help="with --bioimageio: an image the model is meant for, the package's test input and cover "
                             "(default: the checkpoint's first training image, where it still is)")
    parser.add_argument("--name", default=None,
                        help="with --bioimageio: the model's name (letters, digits, spaces and _ + - ( ); default "
                             "from the checkpoint's file name)")
    parser.add_argument("--logits", action="store_true",
                        help="output the raw logits instead of softmax probabilities (--onnx, --torchscript)")
    parser.add_argument("--force", action="store_true", help="replace output files that exist")
    args = parser.parse_args(argv)

    def fail(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return 2

    targets = [(flag, path) for flag, path in (("--onnx", args.onnx), ("--torchscript", args.torchscript),
                                               ("--bioimageio", args.bioimageio)) if path]
    if not targets:
        return fail("nothing to do: give --onnx OUT.onnx, --torchscript OUT.pt and/or --bioimageio OUT.zip")
    if args.bioimageio is None and (args.test_image is not None or args.name is not None):
        return fail(f"{'--test-image' if args.test_image is not None else '--name'} is a setting of the package: "
                    f"give --bioimageio OUT.zip too")
    if args.logits and args.bioimageio is not None and len(targets) == 1:
        return fail("--logits: a BioImage Model Zoo package gives probabilities (its consumers show them); leave "
                    "--logits out, or export --onnx/--torchscript with it")
    for i, (flag, path) in enumerate(targets):
        for other, other_path in targets[i + 1:]:
            if path.resolve() == other_path.resolve():
                return fail(f"{flag} and {other} are the same file {path}; give two file names")
    try:
        loaded = load_checkpoint(args.checkpoint)
        model = loaded.model
        for flag, path in targets:   # every output checked before anything is written
            if path.resolve() == args.checkpoint.resolve():
                return fail(f"{flag} {path} is the checkpoint being exported; give another file name")
            if flag == "--bioimageio" and path.suffix.lower() != ".zip":
                return fail(f"--bioimageio {path} must end in .zip: a BioImage Model Zoo package is a zip file "
                            f"(e.g. {path.with_suffix('.zip').name})")
            _check_target(path, args.force, what=flag)
        recorded = "low" in loaded.meta and "high" in loaded.meta
        metadata = export_metadata(model, probabilities=not args.logits,
                                   low=loaded.meta["low"] if recorded else DEFAULT_LOW,
                                   high=loaded.meta["high"] if recorded else DEFAULT_HIGH,
                                   normalization_source=("the checkpoint's low and high percentiles, as in training"
                                                         if recorded else "unet_lib defaults; the checkpoint records "
                                                                          "none"),
                                   checkpoint=args.checkpoint)
        exports = []
        for flag, path in targets:
            if flag == "--bioimageio":
                from ..bioimageio import package_bytes
                test_image = _test_image(loaded.meta, args.test_image)
                try:
                    data = package_bytes(args.checkpoint, test_image, name=args.name)
                except ValueError as error:
                    if test_image is None and "test_image is needed" in str(error):
                        raise ValueError(f"--bioimageio needs a test image for {args.checkpoint.name} (its training "
                                         f"images are not where it was trained): give --test-image IMAGE, one of "
                                         f"the images it is meant for") from None
                    raise ValueError(str(error).replace("test_image ", "--test-image ", 1)
                                     .replace("name must", "--name must", 1)) from None
            else:
                data = (onnx_bytes if flag == "--onnx" else torchscript_bytes)(model, not args.logits, metadata)
            exports.append((flag, path, data))
    except (OSError, ValueError, TypeError, ImportError) as error:
        return fail(str(error))
    except RuntimeError as error:   # an export that does not match PyTorch
        print(f"error: {error}", file=sys.stderr)
        return 1
    for flag, path, data in exports:   # all exported and checked: write them
        atomic_write(path, data)
        what = " (a BioImage Model Zoo package: rdf.yaml, weights, test tensors, cover)" if flag == "--bioimageio" else ""
        print(f"wrote {path} ({len(data) / 1e6:.2f} MB){what}")
    print(f"input 'image': (B, {metadata['in_channels']}, H, W) float32, H and W valid sizes "
          f"({metadata['valid_input_sizes'].split(' (')[0]}); output '{metadata['output']}'; "
          f"normalisation: {metadata['normalization_low_percentile']}-{metadata['normalization_high_percentile']} "
          f"percentiles per channel to [0, 1]")
    return 0


