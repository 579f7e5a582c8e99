"""Score predictions against your own masks: ``python -m unet_lib.score PRED_DIR MASKS_DIR``.

H, W = height, width. K = num_classes.

PRED_DIR holds one label image per image, as ``python -m unet_lib.predict`` writes them
(``<stem>.tif``; its ``<stem>_probs.tif`` and ``<stem>_overlay.png`` are not predictions and are
skipped), MASKS_DIR the true masks under the same stems (TIFF or PNG; the extensions may differ).
Every prediction needs its mask and every mask its prediction, of the same size. For each image,
and over all images together:

* foreground Dice and IoU (prediction > 0 against mask > 0); the overall row pools the pixels;
* instances (the default): predicted and true cells matched one to one at IoU 0.5 by
  ``unet_lib.metrics.instance_scores``, the library's and the notebooks' rule: true and predicted
  cells, matches, precision, recall, F1, and merged and split cells (a merged cell shares its
  predicted cell with another true cell; a split cell is cut into two or more predicted cells).
  The overall row adds up the counts. A binary mask or prediction (0 and 1 only) is labelled
  into its connected components (4-connectivity), as ``unet_lib.files.ImageFolder`` reads masks;
* with ``--classes K``: class maps with values 0..K-1, the IoU of every class and their mean over
  the classes present in the mask or the prediction (``unet_lib.metrics.class_scores``).

``--baseline IMAGES_DIR`` scores the fair classical pipeline as well
(``unet_lib.baselines.classical_instances``: blur, Otsu's threshold, hole filling, a size filter
and a watershed split of touching objects) on the images of the same stems, normalised as the U-Net
sees them (1st to 99.8th percentile per channel, channels averaged), so that the table shows what
the U-Net adds. ``--dark`` for dark objects on a bright background (phase contrast, brightfield):
the image is inverted first. ``--min-size`` and ``--footprint`` are the pipeline's object size filter and
watershed window; choose them on training images, not on the images you score. ``--model MODEL.pt``
does that for you: the baseline takes the objects' size that the train command measured in the
training masks and stored with the model (``classical_instances(size=...)``: the size filter and the
watershed split scaled to it, as ``python -m unet_lib.predict`` post-processes the U-Net), and the
model's percentiles, so that both methods get the same help.

The table is printed and written as CSV (``--csv``, default ``PRED_DIR/scores.csv``), atomically;
a file there that this command did not write (its first line is not this command's header) is
replaced only with ``--force``.

API
---
* ``score_folders(pred_dir, masks_dir, images_dir=None, num_classes=None, threshold=0.5, dark=False,
  min_size=30, footprint=11, size=None, percentiles=(1.0, 99.8)) -> list[dict]``: one row per image and method, then one ``"all"`` row per
  method (the columns: ``columns(num_classes)``).
* ``format_table(rows) -> str``, ``write_csv(path, rows, force=False) -> Path``, ``main(argv)``.
"""

import argparse
import csv
import io
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .baselines import ObjectSize, classical_instances
from .files import IMAGE_SUFFIXES, MASK_SUFFIXES, normalize_image, read_image, read_mask
from .metrics import InstanceScores, class_scores, confusion_matrix, dice, instance_scores, iou, label_instances
from .validate import check_bool, check_int

__all__ = ["score_folders", "pair_predictions", "columns", "format_table", "write_csv", "main", "SKIPPED_SUFFIXES"]

# files that python -m unet_lib.predict writes beside the label images: not predictions
SKIPPED_SUFFIXES = ("_probs", "_overlay")
PREDICTION, CLASSICAL, ALL = "prediction", "classical", "all"
_LISTED = 10                                   # file names listed in an error, at most
INSTANCE_COLUMNS = ["image", "method", "true_cells", "predicted_cells", "matched", "precision", "recall", "f1",
                    "merged", "split", "dice", "iou"]


def columns(num_classes: int | None = None) -> list[str]:
    """The CSV's columns: for instances ``INSTANCE_COLUMNS``; for K-class maps image, method,
    dice, iou (foreground: classes > 0), mean_iou and iou_class_0 .. iou_class_{K-1}."""
    if num_classes is None:
        return list(INSTANCE_COLUMNS)
    return ["image", "method", "dice", "iou", "mean_iou"] + [f"iou_class_{k}" for k in range(num_classes)]


def _names(items: Sequence) -> str:
    items = [str(i) for i in items]
    shown = ", ".join(items[:_LISTED])
    return shown if len(items) <= _LISTED else f"{shown}, ... ({len(items)} in all)"


# -- finding and pairing the files ------------------------------------------------------------------

def _list(name: str, folder, suffixes: tuple[str, ...], skip: tuple[str, ...] = ()) -> dict[str, Path]:
    """{stem: path} of the files with ``suffixes`` in ``folder`` (hidden files, subfolders and stems
    ending in ``skip`` left out), or an error that names the argument and says what is there."""
    if not isinstance(folder, (str, Path)):
        raise TypeError(f"{name} must be a folder (str or pathlib.Path), got {type(folder).__name__}")
    folder = Path(folder)
    kind = "images" if name == "images_dir" else "label images"
    if not folder.exists():
        raise FileNotFoundError(f"{name} {folder} does not exist; give the folder of {kind}")
    if not folder.is_dir():
        raise NotADirectoryError(f"{name} {folder} is a file, not a folder; give the folder that holds it")
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in suffixes:
            continue
        if skip and path.stem.endswith(skip):
            continue
        found.setdefault(path.stem, []).append(path)
    if not found:
        held = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        what = f"it holds {_names(held)}" if held else "it is empty"
        raise ValueError(f"{name} {folder} has no {' / '.join(suffixes)} files ({what}); give the folder that "
                         f"holds them")
    twins = [paths for paths in found.values() if len(paths) > 1]
    if twins:
        raise ValueError(f"{name} {folder} has files with the same name and different extensions "
                         f"({'; '.join(_names([p.name for p in paths]) for paths in twins[:_LISTED])}); files are "
                         f"paired by the name without its extension: keep one of each")
    return {stem: paths[0] for stem, paths in found.items()}


def pair_predictions(pred_dir, masks_dir) -> dict[str, tuple[Path, Path]]:
    """{stem: (prediction path, mask path)}, sorted by stem: the TIFF and PNG label images of
    ``pred_dir`` (without predict's ``*_probs`` and ``*_overlay`` files) and the masks of ``masks_dir``
    with the same name without extension. Refuses a prediction without a mask and a mask without
    a prediction, naming them."""
    preds = _list("pred_dir", pred_dir, MASK_SUFFIXES, SKIPPED_SUFFIXES)
    masks = _list("masks_dir", masks_dir, MASK_SUFFIXES)
    lonely_preds, lonely_masks = sorted(set(preds) - set(masks)), sorted(set(masks) - set(preds))
    if lonely_preds or lonely_masks:
        parts = []
        if lonely_preds:
            parts.append(f"{len(lonely_preds)} prediction(s) in {pred_dir} without a mask in {masks_dir}: "
                         f"{_names([preds[s].name for s in lonely_preds])}")
        if lonely_masks:
            parts.append(f"{len(lonely_masks)} mask(s) in {masks_dir} without a prediction in {pred_dir}: "
                         f"{_names([masks[s].name for s in lonely_masks])}")
        hint = ("a prediction pairs with the mask of the same name without extension (cell_01.tif with "
                "cell_01.png): predict exactly the images whose masks you score (python -m unet_lib.predict "
                "MODEL.pt TEST_IMAGES --out PRED_DIR), or give the masks of those images only")
        suffixes = {m[len(p):] for m in lonely_masks for p in lonely_preds if m.startswith(p) and len(m) > len(p)}
        if len(suffixes) == 1:
            hint += f" (the masks' names seem to end in {suffixes.pop()!r}: remove that from their names)"
        raise ValueError("; ".join(parts) + f". {hint}")
    return {stem: (preds[stem], masks[stem]) for stem in sorted(preds)}


def _labels(path: Path, num_classes: int | None) -> np.ndarray:
    """A label image as int64 (H, W): instances (a 0/1 image labelled into components), or a
    class map checked against K."""
    labels = read_mask(path)
    if num_classes is None:
        return label_instances(labels > 0) if labels.max(initial=0) == 1 else labels
    if labels.max(initial=0) >= num_classes:
        raise ValueError(f"{path} holds the value {int(labels.max())}, but --classes {num_classes} means classes "
                         f"0..{num_classes - 1}; pass --classes {int(labels.max()) + 1} if there are that many, or "
                         f"leave --classes out for instance labels")
    return labels


def _check_same_size(what: str, path: Path, a: np.ndarray, mask_path: Path, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what} {path} is {a.shape[0]}x{a.shape[1]} (H x W) but its mask {mask_path} is "
                         f"{b.shape[0]}x{b.shape[1]}; they must be of one image, pixel for pixel: was one of them "
                         f"cropped, resized or rotated, or are they of different images?")


# -- scores ---------------------------------------------------------------------------------------------

def _instance_row(pred: np.ndarray, truth: np.ndarray, threshold: float) -> tuple[dict, InstanceScores, tuple]:
    """One image's instance row, its counts and its pixel counts (intersection, |pred|, |truth|)."""
    counts = instance_scores(pred, truth, threshold)
    fg_pred, fg_true = pred > 0, truth > 0
    pixels = (int((fg_pred & fg_true).sum()), int(fg_pred.sum()), int(fg_true.sum()))
    row = _instance_values(counts, len(np.unique(truth[fg_true])), len(np.unique(pred[fg_pred])))
    row.update(dice=dice(fg_pred, fg_true), iou=iou(fg_pred, fg_true))
    return row, counts, pixels


def _instance_values(counts: InstanceScores, n_true: int, n_pred: int) -> dict:
    return dict(true_cells=n_true, predicted_cells=n_pred, matched=counts.tp, precision=counts.precision,
                recall=counts.recall, f1=counts.f1, merged=counts.merged, split=counts.split)


def _pooled_pixels(pixels: list[tuple[int, int, int]]) -> dict:
    """Foreground Dice and IoU of all images' pixels together (1.0 when both are empty, as
    ``unet_lib.metrics.dice`` and ``iou``)."""
    inter, n_pred, n_true = (sum(p[k] for p in pixels) for k in range(3))
    total, union = n_pred + n_true, n_pred + n_true - inter
    return dict(dice=2 * inter / total if total else 1.0, iou=inter / union if union else 1.0)


def _score_instances(pairs: dict[str, tuple[np.ndarray, np.ndarray]], method: str, threshold: float) -> list[dict]:
    rows, total, pixels, n_true, n_pred = [], InstanceScores(), [], 0, 0
    for stem, (pred, truth) in pairs.items():
        row, counts, image_pixels = _instance_row(pred, truth, threshold)
        rows.append(dict(image=stem, method=method, **row))
        total, n_true, n_pred = total + counts, n_true + row["true_cells"], n_pred + row["predicted_cells"]
        pixels.append(image_pixels)
    rows.append(dict(image=ALL, method=method, **_instance_values(total, n_true, n_pred), **_pooled_pixels(pixels)))
    return rows


def _class_values(confusion: np.ndarray) -> dict:
    ious, _ = class_scores(confusion)
    present = [x for x in ious if not np.isnan(x)]
    # foreground: every class > 0 against every class > 0
    inter = int(confusion[1:, 1:].sum())
    n_pred, n_true = int(confusion[:, 1:].sum()), int(confusion[1:, :].sum())
    values = _pooled_pixels([(inter, n_pred, n_true)])
    values["mean_iou"] = float(np.mean(present)) if present else float("nan")
    values.update({f"iou_class_{k}": x for k, x in enumerate(ious)})
    return values


def _score_classes(pairs: dict[str, tuple[np.ndarray, np.ndarray]], num_classes: int) -> list[dict]:
    rows, total = [], np.zeros((num_classes, num_classes), np.int64)
    for stem, (pred, truth) in pairs.items():
        confusion = confusion_matrix(pred, truth, num_classes)          # (K, K) rows true, columns predicted
        rows.append(dict(image=stem, method=PREDICTION, **_class_values(confusion)))
        total += confusion
    rows.append(dict(image=ALL, method=PREDICTION, **_class_values(total)))
    return rows


def _baseline_image(path: Path, dark: bool, percentiles: tuple[float, float] = (1.0, 99.8),
                    channel_axis: int | None = None) -> np.ndarray:
    """(H, W) float image for the classical pipeline: each channel normalised as for the U-Net
    (by default its 1st to 99.8th percentile), channels averaged; inverted for dark objects."""
    image = normalize_image(read_image(path, channel_axis), *percentiles, name=f"image {path}").mean(0)   # (H, W)
    return 1.0 - image if dark else image


def score_folders(pred_dir, masks_dir, images_dir=None, num_classes: int | None = None, threshold: float = 0.5,
                  dark: bool = False, min_size: int = 30, footprint: int = 11, size: ObjectSize | None = None,
                  percentiles: tuple[float, float] = (1.0, 99.8), channel_axis: int | None = None) -> list[dict]:
    """Score the label images of ``pred_dir`` against the masks of ``masks_dir`` (see the module
    docstring): a list of row dicts with the keys ``columns(num_classes)``, one per image (sorted by
    stem) and method, then the ``"all"`` row of each method (pooled pixels, added-up counts).

    ``images_dir``: also score ``classical_instances(image, min_size=min_size,
    peak_footprint=footprint)`` on the images of the same stems (rows with method
    ``"classical"``); ``dark`` inverts the images first. Instances only. ``size``: the objects'
    size measured in training masks (``unet_lib.baselines.object_size``; a model's, from
    ``unet_lib.predict.object_size_of(meta)``): the baseline's size filter and split are scaled to
    it instead (``classical_instances(size=size)``; ``min_size`` and ``footprint`` are not used).
    ``percentiles`` and ``channel_axis``: how the images are normalised and read (a model's
    ``meta["low"]``, ``["high"]``, ``["channel_axis"]``).
    """
    if size is not None and not isinstance(size, ObjectSize):
        raise TypeError(f"size must be a unet_lib.baselines.ObjectSize (object_size(masks), or a model's "
                        f"unet_lib.predict.object_size_of(meta)), got {type(size).__name__}")
    if num_classes is not None:
        num_classes = check_int("num_classes", num_classes, min=2, hint="the number of classes K of the class maps")
        if images_dir is not None:
            raise ValueError("the classical baseline finds objects, not classes: score class maps without a "
                             "baseline, or score instance labels (leave out num_classes) against instance masks")
    # the library's rule decides which thresholds it takes: asked before any file is read
    instance_scores(np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64), threshold)
    dark = check_bool("dark", dark)
    min_size = check_int("min_size", min_size, min=0, hint="the smallest object of the baseline in pixels")
    footprint = check_int("footprint", footprint, min=1, hint="the baseline's watershed window in pixels")
    paths = pair_predictions(pred_dir, masks_dir)
    arrays = {}
    for stem, (pred_path, mask_path) in paths.items():
        pred, truth = _labels(pred_path, num_classes), _labels(mask_path, num_classes)
        _check_same_size("prediction", pred_path, pred, mask_path, truth)
        arrays[stem] = (pred, truth)
    if num_classes is not None:
        return _score_classes(arrays, num_classes)
    rows = _score_instances(arrays, PREDICTION, threshold)
    if images_dir is None:
        return rows
    images = _list("images_dir", images_dir, IMAGE_SUFFIXES)
    missing = [stem for stem in paths if stem not in images]
    if missing:
        raise ValueError(f"images_dir {images_dir} has no image for {len(missing)} of the scored masks: "
                         f"{_names([paths[s][1].name for s in missing])}; the baseline needs the image of every "
                         f"scored mask, under the same name without extension")
    classical = {}
    for stem, (pred, truth) in arrays.items():
        image = _baseline_image(images[stem], dark, percentiles, channel_axis)
        _check_same_size("image", images[stem], image, paths[stem][1], truth)
        found = classical_instances(image, size=size) if size is not None else \
            classical_instances(image, min_size=min_size, peak_footprint=footprint)
        classical[stem] = (found, truth)
    return rows + _score_instances(classical, CLASSICAL, threshold)


# -- showing and writing -----------------------------------------------------------------------------------

def _cell(value) -> str:
    if isinstance(value, float):
        return "nan" if np.isnan(value) else f"{value:.3f}"
    return str(value)


def format_table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table (floats to 3 decimals), and for a scored baseline the
    overall differences, prediction minus classical."""
    if not rows:
        raise ValueError("rows is empty; score_folders gives at least one image and the 'all' row")
    keys = list(rows[0])
    table = [keys] + [[_cell(row[k]) for k in keys] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(keys))]
    lines = ["  ".join(text.ljust(w) if i < 2 else text.rjust(w) for i, (text, w) in enumerate(zip(line, widths)))
             for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    overall = {row["method"]: row for row in rows if row["image"] == ALL}
    if CLASSICAL in overall:
        ours, theirs = overall[PREDICTION], overall[CLASSICAL]
        lines.append("")
        lines.append("prediction - classical, all images: " + ", ".join(
            f"{key} {ours[key] - theirs[key]:+.3f}" for key in ("dice", "iou", "f1", "precision", "recall")))
    return "\n".join(lines)


def _header(num_classes: int | None) -> str:
    return ",".join(columns(num_classes))


def _written_by_us(path: Path) -> bool:
    """True when ``path``'s first line is a header this command writes."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            first = f.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError):
        return False
    return first == _header(None) or re.fullmatch(r"image,method,dice,iou,mean_iou(,iou_class_\d+)+", first) is not None


def write_csv(path, rows: list[dict], force: bool = False) -> Path:
    """Write ``rows`` as CSV to ``path`` atomically (floats in full precision, NaN as empty). An
    existing file is replaced only if this command wrote it (its first line is one of its headers),
    or with ``force=True``. Returns the path."""
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a file name (str or pathlib.Path), got {type(path).__name__}")
    path, force = Path(path), check_bool("force", force)
    if path.is_dir():
        raise IsADirectoryError(f"the CSV path {path} is a folder; give a file name inside it, e.g. {path / 'scores.csv'}")
    if path.exists() and not force and not _written_by_us(path):
        raise FileExistsError(f"{path} exists and was not written by this command (its first line is not a score "
                              f"table's header); give another --csv, or replace it on purpose with --force")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()})
    return atomic_write(path, buffer.getvalue())


# -- the command line ----------------------------------------------------------------------------------------

def _from_model(parser: argparse.ArgumentParser, path: Path) -> tuple[ObjectSize, tuple[float, float], int | None]:
    """(object size, percentiles, channel axis) stored in the checkpoint at ``path``, or
    ``parser.error`` naming what is missing."""
    from .checkpoint import load_checkpoint
    from .predict import object_size_of
    if not path.is_file():
        parser.error(f"argument --model: no checkpoint at {path}")
    try:
        meta = load_checkpoint(path).meta
    except ValueError as error:
        parser.error(f"argument --model: {error}")
    size = object_size_of(meta)
    if size is None:
        parser.error(f"argument --model: {path} holds no object size (only checkpoints of python -m unet_lib.train "
                     f"--images from #21 on do); give --min-size and --footprint instead")
    return size, (float(meta.get("low", 1.0)), float(meta.get("high", 99.8))), meta.get("channel_axis")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m unet_lib.score PRED_DIR MASKS_DIR [--baseline IMAGES_DIR]``: print the scores
    and write them as CSV. Exit status 0, or 2 with a message naming the argument at fault."""
    parser = argparse.ArgumentParser(
        prog="python -m unet_lib.score",
        description="Score label images against your own masks: per image and over all images, foreground Dice "
                    "and IoU, instance F1 at IoU 0.5, merged and split cells (or per-class IoU with --classes).",
        epilog="Matching rule: unet_lib.metrics.instance_scores (one to one, highest IoU first). Rows: one per image "
               "and method, then 'all' (pixels pooled, counts added up over the images).")
    parser.add_argument("pred_dir", type=Path, metavar="PRED_DIR",
                        help="label images, e.g. the --out of python -m unet_lib.predict (TIFF or PNG)")
    parser.add_argument("masks_dir", type=Path, metavar="MASKS_DIR", help="the true masks, with the same names")
    parser.add_argument("--baseline", type=Path, default=None, metavar="IMAGES_DIR",
                        help="also score the classical pipeline (unet_lib.baselines.classical_instances) on these "
                             "images (the same names)")
    parser.add_argument("--dark", action="store_true",
                        help="the baseline's objects are darker than the background (phase contrast, brightfield)")
    parser.add_argument("--min-size", type=int, default=30,
                        help="the baseline's smallest object in pixels (default 30, for nuclei about 24 px across)")
    parser.add_argument("--footprint", type=int, default=11,
                        help="the baseline's watershed window in pixels (default 11; about half an object's width)")
    parser.add_argument("--model", type=Path, default=None, metavar="MODEL.pt",
                        help="the baseline takes the objects' size that this checkpoint of python -m unet_lib.train "
                             "measured in its training masks (size filter and watershed scaled to it, as predict "
                             "post-processes), and its normalisation; instead of --min-size and --footprint")
    parser.add_argument("--classes", type=int, default=None, metavar="K",
                        help="predictions and masks are class maps 0..K-1: per-class IoU instead of cells")
    parser.add_argument("--threshold", type=float, default=0.5, help="the IoU of a match (default 0.5)")
    parser.add_argument("--csv", type=Path, default=None, metavar="FILE",
                        help="where to write the table (default: PRED_DIR/scores.csv)")
    parser.add_argument("--force", action="store_true", help="replace a CSV file that this command did not write")
    args = parser.parse_args(argv)
    checks = [("--classes", args.classes, args.classes is not None and args.classes < 2, "an int >= 2 (K classes)"),
              ("--min-size", args.min_size, args.min_size < 0, "pixels, >= 0"),
              ("--footprint", args.footprint, args.footprint < 1, "pixels, >= 1")]
    for flag, value, bad, right in checks:
        if bad:
            parser.error(f"argument {flag}: must be {right}, got {value}")
    try:
        instance_scores(np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64), args.threshold)
    except ValueError as error:
        parser.error(f"argument --threshold: {error}")
    if args.classes is not None and args.baseline is not None:
        parser.error("argument --baseline: the classical pipeline finds objects, not classes; leave out --classes to "
                     "score instance labels, or --baseline to score class maps")
    for flag, given in (("--dark", args.dark), ("--model", args.model is not None)):
        if given and args.baseline is None:
            parser.error(f"argument {flag}: it is a setting of the baseline; give --baseline IMAGES_DIR too")
    size, percentiles, channel_axis = None, (1.0, 99.8), None
    if args.model is not None:
        if args.min_size != 30 or args.footprint != 11:
            parser.error("argument --model: the baseline takes the model's object size instead of --min-size and "
                         "--footprint; give one or the other")
        size, percentiles, channel_axis = _from_model(parser, args.model)
    for flag, folder in (("PRED_DIR", args.pred_dir), ("MASKS_DIR", args.masks_dir), ("--baseline", args.baseline)):
        if folder is not None and not folder.is_dir():
            parser.error(f"argument {flag}: {folder} {'is a file' if folder.exists() else 'does not exist'}; give "
                         f"a folder")
    target = args.csv if args.csv is not None else args.pred_dir / "scores.csv"
    if target.is_dir():
        parser.error(f"argument --csv: {target} is a folder; give a file name, e.g. {target / 'scores.csv'}")
    if target.exists() and not args.force and not _written_by_us(target):
        parser.error(f"argument --csv: {target} exists and was not written by this command; give another --csv, or "
                     f"pass --force to replace it")
    try:
        rows = score_folders(args.pred_dir, args.masks_dir, args.baseline, args.classes, args.threshold, args.dark,
                             args.min_size, args.footprint, size, percentiles, channel_axis)
    except (ValueError, FileNotFoundError, NotADirectoryError) as error:
        raise SystemExit(f"error: {error}") from None
    print(format_table(rows))
    write_csv(target, rows, force=True)          # checked above: ours, new, or --force
    n = sum(row["image"] != ALL for row in rows if row["method"] == PREDICTION)
    print(f"\nscored {n} image(s); wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
