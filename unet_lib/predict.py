"""Predict a folder of your own images with a checkpoint of ``python -m unet_lib.train --images``.

C, K, H, W = channels, classes (num_classes), height, width.

``python -m unet_lib.predict MODEL.pt IMAGES_DIR --out OUT_DIR`` writes one ``<stem>.tif`` label
image per input image: for a model trained on instance masks the objects (1..n, 0 = background),
for one trained on class maps the class map (0..K-1), or with ``--instances`` the cells of a
three-class map with a border class (``unet_lib.metrics.instances_from_classes``).
``--probabilities`` adds ``<stem>_probs.tif``, float32 (K, H, W) softmax probabilities;
``--overlays`` adds ``<stem>_overlay.png``, the image with the outlines of the predicted objects
drawn in magenta (``unet_lib.viz.write_overlay``), and with ``--masks MASKS_DIR`` the outlines of
the true objects of the mask of the same name in green (yellow where both lie): a look at the
result before a number (``python -m unet_lib.score`` gives the numbers). Images of
any size are predicted by the paper's overlap-tile strategy (``unet_lib.tiling.predict_tiled``),
each normalised as in training (the checkpoint's ``low`` and ``high`` percentiles, per channel).

Post-processing scales with the objects, and is chosen from nothing but the training masks: the
train command measures their median area and inscribed radius and stores them in the checkpoint;
objects larger than 95% of the training objects (merged ones) are split at their waists by a
watershed scaled to that radius, and objects under a tenth of the median area removed
(``unet_lib.baselines.postprocess_instances``). ``--no-postprocess`` gives
the connected components of the predicted foreground (what a checkpoint without sizes gets).

Files are written atomically. ``OUT_DIR/unet-predict.json`` records, for every file this command
wrote, the SHA-256 of the checkpoint that made it and the settings: a file that this command did
not write, or wrote from another model or with other settings, is replaced only with ``--force``;
a run with the same model and settings replaces its own files.
"""

import argparse
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import tifffile
import torch

from .arguments import device_arg
from .atomic import atomic_write
from .baselines import ObjectSize, postprocess_instances
from .checkpoint import load_checkpoint
from .files import IMAGE_SUFFIXES, MASK_SUFFIXES, normalize_image, read_image, read_mask, write_labels
from .files.pairing import _list_folder
from .metrics import instances_from_classes, label_instances
from .model import UNet
from .progress import Progress
from .tiling import fastest_tile_size, predict_tiled
from .viz import write_overlay

__all__ = ["predict_image", "object_size_of", "main", "MANIFEST"]

MANIFEST = "unet-predict.json"   # the files that this command wrote in an output folder, with model and settings


def object_size_of(meta: dict) -> ObjectSize | None:
    """The training masks' object size stored in a checkpoint's ``meta`` (None for checkpoints
    written before the train command measured it)."""
    if meta.get("object_area") is None or meta.get("object_radius") is None:
        return None
    return ObjectSize(float(meta["object_area"]), float(meta["object_radius"]), int(meta.get("objects_measured", 0)),
                      float(meta.get("object_large_area") or 0.0))


def predict_image(model: UNet, image: np.ndarray, meta: dict, tile_size: int | None = None,
                  postprocess: bool = True, instances: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(labels (H, W) int64, probs (K, H, W) float32) for a stored image (C, H, W) as
    ``read_image`` gives it: normalised with the checkpoint's ``meta["low"]``/``["high"]``,
    predicted by overlap-tile, then for a model of instance masks (``meta["mask_kind"]``, the
    default) its objects: with ``postprocess`` and an object size in ``meta`` split and filtered
    to that size (``postprocess_instances``), else the connected components of the foreground.
    For a model of class maps the class map, or with ``instances`` (three classes: background,
    interior, border) the cells, filtered to the size with ``postprocess``."""
    if image.shape[0] != model.in_channels:
        raise ValueError(f"the model takes {model.in_channels}-channel images, this one has {image.shape[0]} "
                         f"channel(s) (read as (C, H, W) = {image.shape})")
    if instances and model.num_classes != 3:
        raise ValueError(f"instances=True turns a map of three classes (background, interior, border) into cells; "
                         f"this model predicts {model.num_classes} classes")
    normalised = normalize_image(image, meta.get("low", 1.0), meta.get("high", 99.8))   # (C, H, W) float32
    probs = predict_tiled(model, torch.from_numpy(normalised), tile_size)                # (K, H, W)
    classes = probs.argmax(0).numpy()                                                     # (H, W)
    size = object_size_of(meta) if postprocess else None
    if meta.get("mask_kind", "instances") == "instances":
        labels = postprocess_instances(classes, size) if size is not None else label_instances(classes > 0)
    elif instances:
        cells = instances_from_classes(classes)
        labels = postprocess_instances(cells, size, split=False) if size is not None else cells
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
        epilog="Writes <stem>.tif per image: objects (uint16, 0 = background) for a model trained on instance masks, "
               "post-processed to the size of the training masks' objects; a class map for one trained on class maps "
               "(cells with --instances); with --probabilities also <stem>_probs.tif (float32, K x H x W); with --overlays "
               "<stem>_overlay.png (outlines on the image; --masks adds the true ones). Refuses to "
               "overwrite files it did not write, or wrote from another model or with other settings, unless --force.")
    parser.add_argument("model", type=Path, metavar="MODEL.pt", help="a checkpoint of python -m unet_lib.train --images")
    parser.add_argument("images", type=Path, metavar="IMAGES_DIR", help="folder of images (TIFF, PNG, JPEG)")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT_DIR", help="folder for the label images")
    parser.add_argument("--probabilities", action="store_true", help="also write <stem>_probs.tif (K, H, W)")
    parser.add_argument("--overlays", action="store_true",
                        help="also write <stem>_overlay.png: the image with the predicted outlines (magenta)")
    parser.add_argument("--masks", type=Path, default=None, metavar="MASKS_DIR",
                        help="with --overlays: draw the true outlines too (green; yellow where both lie), from the "
                             "masks of the same names (TIFF or PNG), one for every image")
    parser.add_argument("--no-postprocess", dest="postprocess", action="store_false",
                        help="the connected components of the predicted foreground, without the split and the size "
                             "filter scaled to the training masks' objects")
    parser.add_argument("--instances", action="store_true",
                        help="for a model of three classes (background, interior, border): write the cells, each "
                             "interior grown into its border, instead of the class map")
    parser.add_argument("--tile", type=int, default=None,
                        help="input tile side, a valid input size of the model (default: per image, the tile of at "
                             "most 700 px that computes the fewest pixels)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when present)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite files in OUT_DIR that this command did not write, or wrote from another model "
                             "or with other settings")
    return parser


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _written(manifest_path: Path) -> dict[str, dict]:
    """{file name: {"model": sha256, "settings": {...}}} of the files an earlier run wrote; a
    manifest of before the hashes (a list of names) gives ``model`` None (unknown)."""
    if not manifest_path.is_file():
        return {}
    try:
        written = json.loads(manifest_path.read_text())["written"]
    except (ValueError, KeyError, TypeError):
        return {}
    if isinstance(written, list):
        return {name: {"model": None, "settings": None} for name in written}
    return written if isinstance(written, dict) else {}


def _clashes(out: Path, names: list[str], written: dict, made_by: dict) -> list[str]:
    """The files among ``names`` in ``out`` that this run may not replace: not written by this
    command, or written from another model or with other settings ("name (why)")."""
    clash = []
    for name in names:
        if not (out / name).exists():
            continue
        earlier = written.get(name)
        if earlier is None:
            clash.append(f"{name} (not written by this command)")
        elif earlier.get("model") != made_by["model"]:
            clash.append(f"{name} (from another model)")
        elif earlier.get("settings") != made_by["settings"]:
            clash.append(f"{name} (other settings: {earlier.get('settings')})")
    return clash


def _masks_of(parser: argparse.ArgumentParser, args: argparse.Namespace, images: dict[str, Path]
              ) -> dict[str, Path] | None:
    """{stem: mask path} of ``--masks`` for every image (None without it), or ``parser.error``
    naming the images without a mask; checked before anything is predicted."""
    if args.masks is None:
        return None
    if not args.overlays:
        parser.error("argument --masks: the true outlines are drawn on the overlays; give --overlays too (to score "
                     "predictions against masks: python -m unet_lib.score OUT_DIR MASKS_DIR)")
    try:
        masks, _ = _list_folder("masks_dir", args.masks, MASK_SUFFIXES)
    except (ValueError, FileNotFoundError, NotADirectoryError) as error:
        parser.error(f"argument --masks: {error}")
    lonely = [path.name for stem, path in images.items() if stem not in masks]
    if lonely:
        shown = ", ".join(lonely[:5]) + (f", ... ({len(lonely)} in all)" if len(lonely) > 5 else "")
        parser.error(f"argument --masks: {len(lonely)} image(s) in {args.images} without a mask in {args.masks}: "
                     f"{shown}; a mask pairs with the image of the same name without extension (cell_01.tif with "
                     f"cell_01.png): give the masks of every image, or predict only the images that have one")
    return {stem: masks[stem] for stem in images}


def _mask_for(masks: dict[str, Path], stem: str, image: np.ndarray) -> np.ndarray:
    """The mask of ``stem`` (H, W), or a ``ValueError`` when its size is not the image's."""
    truth = read_mask(masks[stem])
    if truth.shape != image.shape[1:]:
        raise ValueError(f"its mask {masks[stem]} is {truth.shape[0]}x{truth.shape[1]}, the image "
                         f"{image.shape[1]}x{image.shape[2]}; give the mask of this image")
    return truth


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
    if args.instances and (meta.get("mask_kind", "instances") == "instances" or model.num_classes != 3):
        predicts = ("objects already" if meta.get("mask_kind", "instances") == "instances" else
                    f"{model.num_classes} classes")
        parser.error(f"argument --instances: turns a map of three classes (background, interior, border) into cells; "
                     f"{args.model} predicts {predicts}")
    try:
        images, _ = _list_folder("images_dir", args.images, IMAGE_SUFFIXES)
    except (ValueError, FileNotFoundError, NotADirectoryError) as error:
        parser.error(f"argument IMAGES_DIR: {error}")
    masks = _masks_of(parser, args, images)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"argument --out: {args.out} is a file; give a folder")
    manifest_path = args.out / MANIFEST
    written = _written(manifest_path)
    made_by = {"model": _sha256(args.model), "settings": {"postprocess": args.postprocess, "instances": args.instances}}
    # an overlay is also made by the masks whose outlines it shows
    overlay_by = {"model": made_by["model"], "settings": {**made_by["settings"],
                                                          "masks": None if masks is None else str(args.masks)}}
    targets = {stem: {f"{stem}.tif": made_by, **({f"{stem}_probs.tif": made_by} if args.probabilities else {}),
                      **({f"{stem}_overlay.png": overlay_by} if args.overlays else {})} for stem in images}
    clash = [c for names in targets.values() for name, by in names.items() for c in _clashes(args.out, [name], written, by)]
    if clash and not args.force:
        shown = ", ".join(clash[:5]) + (f", ... ({len(clash)} in all)" if len(clash) > 5 else "")
        parser.error(f"argument --out: {args.out} already holds {shown}; this command replaces only its own files "
                     f"from the same model and settings: pass --force to overwrite them, or another --out")
    size = object_size_of(meta)
    if args.postprocess and size is None and meta.get("mask_kind", "instances") == "instances":
        print(f"note: {args.model} holds no object size (trained before the train command measured it): the objects "
              f"are the connected components of the predicted foreground, without post-processing")
    args.out.mkdir(parents=True, exist_ok=True)
    model.to(device)
    channel_axis = meta.get("channel_axis")
    progress = Progress(len(images), "predicting", "image")
    kind = "objects" if meta.get("mask_kind", "instances") == "instances" or args.instances else "class maps"
    for k, (stem, path) in enumerate(images.items(), start=1):
        try:
            image = read_image(path, channel_axis)                                       # (C, H, W) as stored
            # larger tiles than predict_tiled's ~128 px outputs: 2-2.5x faster (less recomputed overlap)
            tile = args.tile if args.tile is not None else fastest_tile_size(model, *image.shape[1:])
            truth = _mask_for(masks, stem, image) if masks is not None else None
            labels, probs = predict_image(model, image, meta, tile, args.postprocess, args.instances)
        except ValueError as error:
            raise SystemExit(f"error: {path}: {error}".replace("pass channel_axis=", "retrain with --channel-axis ")) \
                from None
        write_labels(args.out / f"{stem}.tif", labels)
        if args.probabilities:
            _write_probs(args.out / f"{stem}_probs.tif", probs)
        if args.overlays:   # checked against the manifest above: new, ours, or --force
            write_overlay(args.out / f"{stem}_overlay.png", image, labels, truth, overwrite=True)
        written.update(targets[stem])
        atomic_write(manifest_path, json.dumps({"written": dict(sorted(written.items()))}, indent=1).encode())
        progress.step()
        found = (f"{int(labels.max())} objects" if kind == "objects" else
                 f"classes {', '.join(str(c) for c in np.unique(labels))}")
        progress.done(f"{k}/{len(images)} {stem}.tif: {found}")
    progress.close()
    post = " post-processed to the training masks' object size" if args.postprocess and size is not None and \
        kind == "objects" else ""
    also = [what for what, given in (("probabilities", args.probabilities), ("overlays", args.overlays)) if given]
    print(f"wrote {len(images)} images of {kind}{post} to {args.out}" + (f" (and {' and '.join(also)})" if also else ""))


if __name__ == "__main__":
    main()
