"""Predict a folder of your own images with a checkpoint of ``python -m unet_lib.train --images``.

C, K, H, W = channels, classes (num_classes), height, width.

``python -m unet_lib.predict MODEL.pt IMAGES_DIR --out OUT_DIR`` writes one ``<stem>.tif`` label
image per input image: the instances (connected components of the predicted foreground, 1..n,
0 = background; ``unet_lib.metrics.label_instances``) for a model trained on instance masks, the
class map (0..K-1) for one trained on class maps. ``--probabilities`` adds ``<stem>_probs.tif``,
float32 (K, H, W) softmax probabilities. Images of any size are predicted by the paper's
overlap-tile strategy (``unet_lib.tiling.predict_tiled``), each normalised as in training (the
checkpoint's ``low`` and ``high`` percentiles, per channel). Files are written atomically, and a
file already in OUT_DIR is overwritten only if an earlier run of this command wrote it (listed in
``OUT_DIR/unet-predict.json``) or with ``--force``.
"""

import argparse
import io
import json
from pathlib import Path

import numpy as np
import tifffile
import torch
from tqdm.auto import tqdm

from .arguments import device_arg
from .atomic import atomic_write
from .checkpoint import load_checkpoint
from .files import IMAGE_SUFFIXES, normalize_image, read_image, write_labels
from .files.pairing import _list_folder
from .metrics import label_instances
from .model import UNet
from .tiling import fastest_tile_size, predict_tiled

__all__ = ["predict_image", "main", "MANIFEST"]

MANIFEST = "unet-predict.json"   # the files that this command wrote in an output folder


def predict_image(model: UNet, image: np.ndarray, meta: dict, tile_size: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(labels (H, W) int64, probs (K, H, W) float32) for a stored image (C, H, W) as
    ``read_image`` gives it: normalised with the checkpoint's ``meta["low"]``/``["high"]``,
    predicted by overlap-tile, labelled as instances when ``meta["mask_kind"]`` is "instances"
    (the default), else the class map."""
    if image.shape[0] != model.in_channels:
        raise ValueError(f"the model takes {model.in_channels}-channel images, this one has {image.shape[0]} "
                         f"channel(s) (read as (C, H, W) = {image.shape})")
    normalised = normalize_image(image, meta.get("low", 1.0), meta.get("high", 99.8))   # (C, H, W) float32
    probs = predict_tiled(model, torch.from_numpy(normalised), tile_size)                # (K, H, W)
    classes = probs.argmax(0).numpy()                                                     # (H, W)
    if meta.get("mask_kind", "instances") == "instances":
        labels = label_instances(classes > 0)
    else:
        labels = classes.astype(np.int64)
    return labels, probs.numpy().astype(np.float32)


def _write_probs(path: Path, probs: np.ndarray) -> Path:
    buffer = io.BytesIO()
    # one page per class (K, H, W), not an RGB image when K = 3
    tifffile.imwrite(buffer, np.ascontiguousarray(probs, dtype=np.float32), photometric="minisblack")
    return atomic_write(path, buffer.getvalue())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m unet_lib.predict", description=__doc__.split("\n\n")[0],
        epilog="Writes <stem>.tif per image: instance labels (uint16, 0 = background) for a model trained on "
               "instance masks, a class map otherwise; with --probabilities also <stem>_probs.tif (float32, K x H "
               "x W). Refuses to overwrite files it did not write, unless --force.")
    parser.add_argument("model", type=Path, metavar="MODEL.pt", help="a checkpoint of python -m unet_lib.train --images")
    parser.add_argument("images", type=Path, metavar="IMAGES_DIR", help="folder of images (TIFF, PNG, JPEG)")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT_DIR", help="folder for the label images")
    parser.add_argument("--probabilities", action="store_true", help="also write <stem>_probs.tif (K, H, W)")
    parser.add_argument("--tile", type=int, default=None,
                        help="input tile side, a valid input size of the model (default: per image, the tile of at "
                             "most 700 px that computes the fewest pixels)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when present)")
    parser.add_argument("--force", action="store_true", help="overwrite files in OUT_DIR that this command did not write")
    return parser


def main(argv: list[str] | None = None) -> None:
    """``python -m unet_lib.predict MODEL.pt IMAGES_DIR --out OUT_DIR``: one label image per image."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.model.is_file():
        parser.error(f"argument MODEL.pt: no checkpoint at {args.model}")
    device = torch.device(device_arg(parser, args.device) or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        model, _, _, meta = load_checkpoint(args.model)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if args.tile is not None:
        try:
            model.output_size(args.tile)
        except ValueError as error:
            parser.error(f"argument --tile: {error}")
    try:
        images, _ = _list_folder("images_dir", args.images, IMAGE_SUFFIXES)
    except (ValueError, FileNotFoundError, NotADirectoryError) as error:
        parser.error(f"argument IMAGES_DIR: {error}")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"argument --out: {args.out} is a file; give a folder")
    manifest_path = args.out / MANIFEST
    written: list[str] = json.loads(manifest_path.read_text())["written"] if manifest_path.is_file() else []
    targets = {stem: [f"{stem}.tif"] + ([f"{stem}_probs.tif"] if args.probabilities else []) for stem in images}
    clash = [name for names in targets.values() for name in names
             if (args.out / name).exists() and name not in written]
    if clash and not args.force:
        shown = ", ".join(clash[:5]) + (f", ... ({len(clash)} in all)" if len(clash) > 5 else "")
        parser.error(f"argument --out: {args.out} already holds {shown}, which this command did not write; pass "
                     f"--force to overwrite, or another --out")
    args.out.mkdir(parents=True, exist_ok=True)
    model.to(device)
    channel_axis = meta.get("channel_axis")
    for stem, path in tqdm(images.items(), desc="predicting", unit="image"):
        try:
            image = read_image(path, channel_axis)                                       # (C, H, W) as stored
            # larger tiles than predict_tiled's ~128 px outputs: 2-2.5x faster (less recomputed overlap)
            tile = args.tile if args.tile is not None else fastest_tile_size(model, *image.shape[1:])
            labels, probs = predict_image(model, image, meta, tile)
        except ValueError as error:
            raise SystemExit(f"error: {path}: {error}") from None
        write_labels(args.out / f"{stem}.tif", labels)
        if args.probabilities:
            _write_probs(args.out / f"{stem}_probs.tif", probs)
        written = sorted(set(written) | set(targets[stem]))
        atomic_write(manifest_path, json.dumps({"model": str(args.model), "written": written}, indent=1).encode())
    kind = "instance labels" if meta.get("mask_kind", "instances") == "instances" else "class maps"
    print(f"wrote {len(images)} {kind} to {args.out}" + (" (and probabilities)" if args.probabilities else ""))


if __name__ == "__main__":
    main()
