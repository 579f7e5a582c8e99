"""Scoring a model on a dataset: ``evaluate`` and the pooled counts behind it.

The counts add up over images and over the ranks of a multi-process run.

B, C, K, H, W = batch, channels, classes (num_classes), height, width.

Every score is computed from sums (pixels, overlaps, matched cells, ...) pooled over the images,
so that images of different sizes weigh by their pixels and cells, and so that ``fit`` can split
its validation over several ranks and add their counts (``evaluate_over_ranks``).
"""

import warnings

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import distributed
from ..losses import weighted_cross_entropy
from ..metrics import InstanceScores, class_scores, confusion_matrix, instance_scores, label_instances, rand_error
from ..model import UNet
from ..tiling import padded_forward
from ..validate import check_bool, check_finite, check_int, describe
from .step import _check_model

__all__ = ["evaluate", "evaluate_over_ranks"]


def _batches(data: Dataset, batch_size: int):
    """Consecutive samples of ``data`` in batches of at most ``batch_size``, a new batch where
    the image size changes (whole images of different sizes cannot be stacked): (start, samples)."""
    batch, start = [], 0
    for i in range(len(data)):
        sample = data[i]
        if batch and (len(batch) == batch_size or sample["image"].shape != batch[0]["image"].shape):
            yield start, batch
            batch, start = [], i
        batch.append(sample)
    if batch:
        yield start, batch


@torch.no_grad()
def evaluate(model: UNet, data: Dataset, weighted: bool = True, batch_size: int = 8) -> dict:
    """Score ``model`` on every sample of ``data`` (dicts with image, instances, mask, weight_map).

    Returns plain floats: ``loss`` (the training loss, weighted or not), pixel-level ``iou``
    (of the foreground, classes > 0, pooled over all pixels) and ``pixel_error`` (the fraction
    of pixels of the wrong class), the mean ``rand_error`` per image, and the instance counts
    pooled over all images: ``precision``, ``recall``, ``f1``, ``merged`` and ``split`` (see
    ``unet_lib.metrics``). Predicted cells are the connected components of the predicted
    foreground; the true cells are ``instances``. The rand error and the instance scores are
    left out when no sample has instances (class maps). For a model with K > 2 classes it adds
    ``class_iou`` and ``class_dice`` (lists of K floats, NaN for a class absent from both truth
    and prediction), ``mean_iou`` and ``mean_dice`` (their mean over the classes 1..K-1, the
    background left out, NaN classes skipped) and ``confusion`` (K x K pixel counts, rows the
    true class, columns the predicted one), all pooled over the images.

    Images may differ in size: each image is scored on its own and the counts are pooled. The
    model is left in its mode.
    """
    _check_model(model, ddp=False)
    if not (hasattr(data, "__len__") and hasattr(data, "__getitem__")):
        raise TypeError(f"data must be a Dataset of dicts (e.g. ToyCells), got {describe(data)}")
    check_bool("weighted", weighted)
    batch_size = check_int("batch_size", batch_size, min=1)
    if len(data) == 0:
        raise ValueError("evaluate needs at least one sample, got an empty dataset")
    return _scores(_counts(model, data, weighted, batch_size), model.num_classes)


# the sums that evaluate pools over images, in a fixed order (so that ranks can add them up)
_COUNTS = ("loss", "pixels", "wrong", "inter", "union", "tp", "fp", "fn", "merged", "split", "rand_error_sum",
           "rand_error_n")


@torch.no_grad()
def _counts(model: UNet, data, weighted: bool, batch_size: int) -> dict:
    """The pooled sums behind ``evaluate`` (``_COUNTS``, and ``confusion`` (K, K) for K > 2):
    sums, so that the counts of parts of the data (one per rank) add up to those of the whole."""
    param = next(model.parameters())
    k = model.num_classes
    was_training = model.training
    model.eval()
    loss, pixels, wrong, inter, union = 0.0, 0, 0, 0, 0
    rand_errors, scores = [], InstanceScores()
    confusion = np.zeros((k, k), np.int64)
    try:
        for start, batch in _batches(data, batch_size):
            images = torch.stack([b["image"] for b in batch]).to(param.device, param.dtype)   # (B, C, H, W)
            check_finite(f"the image of data[{start}:{start + len(batch)}]", images,
                         "a NaN pixel gives NaN logits; replace them (torch.nan_to_num)")
            mask = torch.stack([b["mask"] for b in batch]).to(param.device)                 # (B, H, W)
            weight_map = torch.stack([b["weight_map"] for b in batch]).to(param.device) if weighted else None
            logits = padded_forward(model, images)                                          # (B, K, H, W)
            loss += weighted_cross_entropy(logits, mask, weight_map, reduction="sum").item()
            preds, masks = logits.argmax(1).cpu().numpy(), mask.cpu().numpy()              # (B, H, W)
            pixels += masks.size
            wrong += int((preds != masks).sum())
            inter += int(((preds > 0) & (masks > 0)).sum())
            union += int(((preds > 0) | (masks > 0)).sum())
            if k > 2:
                confusion += confusion_matrix(preds, masks, k)
            for pred, sample in zip(preds, batch):                                         # (H, W) each
                true = sample["instances"].numpy()
                pred_instances = label_instances(pred > 0)
                scores = scores + instance_scores(pred_instances, true)   # an empty image's cells are fp
                if true.any():
                    rand_errors.append(rand_error(pred_instances, true))
    finally:
        model.train(was_training)
    counts = dict(loss=loss, pixels=pixels, wrong=wrong, inter=inter, union=union, tp=scores.tp, fp=scores.fp,
                  fn=scores.fn, merged=scores.merged, split=scores.split,
                  # np.sum / n is np.mean to the last bit; the images without cells have no rand error
                  rand_error_sum=float(np.sum(rand_errors)) if rand_errors else 0.0, rand_error_n=len(rand_errors))
    if k > 2:
        counts["confusion"] = confusion
    return counts


def _scores(counts: dict, k: int) -> dict:
    """``evaluate``'s scores from the pooled ``_counts`` of a model with ``k`` classes."""
    c = {key: counts[key] for key in _COUNTS}
    pixels, inter, union = int(c["pixels"]), int(c["inter"]), int(c["union"])
    # pooled counts: the same numbers as scoring all pixels at once (iou, pixel_error)
    result = {
        "loss": c["loss"] / pixels,
        "iou": 1.0 if union == 0 else float(np.int64(inter) / np.int64(union)),
        "pixel_error": float(int(c["wrong"]) / pixels),
    }
    if c["rand_error_n"] > 0:   # class maps have no instances: no cells to match
        scores = InstanceScores(*(int(c[key]) for key in ("tp", "fp", "fn", "merged", "split")))
        result.update(rand_error=float(c["rand_error_sum"] / c["rand_error_n"]), precision=scores.precision,
                      recall=scores.recall, f1=scores.f1, merged=scores.merged, split=scores.split)
    if k > 2:
        confusion = np.asarray(counts["confusion"], np.int64)
        ious, dices = class_scores(confusion)
        with warnings.catch_warnings():   # all foreground classes absent: NaN, said by the NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            result.update(class_iou=ious, class_dice=dices, mean_iou=float(np.nanmean(ious[1:])),
                          mean_dice=float(np.nanmean(dices[1:])), confusion=confusion.tolist())
    return result


def evaluate_over_ranks(model: UNet, data: Dataset, weighted: bool, rank: int = 0, world_size: int = 1) -> dict:
    """``evaluate`` on ``data``; on several ranks, each scores every world_size-th image (each image
    once: no sampler padding) and the counts are summed over the ranks, so every rank gets the scores
    of the whole set."""
    if world_size == 1:
        return evaluate(model, data, weighted=weighted)
    part = [data[i] for i in range(rank, len(data), world_size)]   # may be empty: it adds zeros
    counts = _counts(model, part, weighted, batch_size=8)
    k = model.num_classes
    flat = [counts[key] for key in _COUNTS] + (counts["confusion"].ravel().tolist() if k > 2 else [])
    total = distributed.sum_over_ranks(flat)
    summed = dict(zip(_COUNTS, total))
    if k > 2:
        summed["confusion"] = np.asarray(total[len(_COUNTS):]).reshape(k, k)
    return _scores(summed, k)
