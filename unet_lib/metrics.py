"""How good is a segmentation? Pixel-level and instance-level metrics.

H, W = height, width. Every function takes numpy arrays or torch tensors of the same shape,
(H, W) or a stack (N, H, W), and returns plain Python numbers.

Pixel level (``pred`` and ``mask`` are 0/1 foreground maps):

* ``iou``: |pred AND mask| / |pred OR mask| (Jaccard index) of the foreground.
* ``dice``: 2 |pred AND mask| / (|pred| + |mask|), the F1 score of the pixels.
* ``pixel_error``: the fraction of pixels whose label is wrong. One of the three ISBI 2012
  scores that the paper reports (Table 1).

Segment level (``pred_instances`` and ``instances`` are label images, 0 = background):

* ``rand_error``: the foreground-restricted Rand error of the ISBI 2012 challenge (Table 1 of
  the paper; Arganda-Carreras et al., 2015): 1 - the F-score of the Rand index over pairs of
  ground-truth foreground pixels.
* ``instance_scores``: one-to-one matching of predicted and ground-truth cells at IoU > 0.5
  (strictly, so that every match is unique), giving precision, recall, F1 and the numbers of
  merged and split cells. A touching pair
  predicted as one blob is the failure that the paper's weight map is made to prevent: it
  costs nothing in pixel IoU but counts as two misses and one false positive here.

``label_instances(pred)`` turns a foreground map into instances: its connected components.
``instances_from_classes(pred)`` does it for a three-class prediction (0 background, 1 interior,
2 border; ``unet_lib.data.interior_border_classes``): each interior grown into its border.
"""

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from .validate import check_array, check_number

__all__ = ["iou", "dice", "pixel_error", "rand_error", "label_instances", "instances_from_classes", "InstanceScores", "confusion_matrix", "class_scores",
           "instance_scores"]


def _as_numpy(x, name: str) -> np.ndarray:
    """(H, W) or (N, H, W) integer or bool labels, not empty, no negative values."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = check_array(name, x, (2, 3), dims="(H, W) or (N, H, W)", finite=False)  # numeric: no strings, no complex
    if x.dtype.kind == "f":
        raise TypeError(f"{name} must hold integer labels, got {x.dtype}; "
                        f"threshold probabilities first, e.g. pred = probs.argmax(0)")
    if x.dtype != bool and x.min() < 0:
        n = int((x < 0).sum())
        raise ValueError(f"{name} must hold labels >= 0 (0 = background), got {n} negative "
                         f"value{'s' if n > 1 else ''} (min {x.min()})")
    return x


def _binary(x, name: str) -> np.ndarray:
    x = _as_numpy(x, name)
    if x.dtype != bool and x.max() > 1:
        raise ValueError(f"{name} must be a 0/1 foreground map, got values from {x.min()} to {x.max()}; "
                         f"for instance labels use (labels > 0)")
    return x.astype(bool)


def _pair(pred, mask, names=("pred", "mask"), binary=True):
    convert = _binary if binary else _as_numpy
    pred, mask = convert(pred, names[0]), convert(mask, names[1])
    if pred.shape != mask.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {pred.shape} and {mask.shape}")
    return pred, mask


def iou(pred, mask) -> float:
    """Foreground IoU (Jaccard index) |pred AND mask| / |pred OR mask|, pooled over all pixels.

    1.0 when both are empty (nothing to find, nothing found).
    """
    pred, mask = _pair(pred, mask)
    union = np.logical_or(pred, mask).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, mask).sum() / union)


def dice(pred, mask) -> float:
    """Dice coefficient 2 |pred AND mask| / (|pred| + |mask|); 1.0 when both are empty.

    Dice = 2 IoU / (1 + IoU): it ranks results the same way as IoU but reads higher.
    """
    pred, mask = _pair(pred, mask)
    total = pred.sum() + mask.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(pred, mask).sum() / total)


def pixel_error(pred, mask) -> float:
    """The fraction of pixels where pred and mask disagree (1 - pixel accuracy)."""
    pred, mask = _pair(pred, mask)
    return float((pred != mask).mean())


def _contingency(pred_instances: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """(P + 1, G + 1) table of pixel counts: entry [p, g] counts the pixels labelled p in the
    prediction and g in the ground truth. Labels are renumbered 1..P and 1..G first."""
    _, pred_ids = np.unique(pred_instances, return_inverse=True)
    _, true_ids = np.unique(instances, return_inverse=True)
    # np.unique puts 0 first when present; shift so that background is always row/column 0
    pred_ids = pred_ids.reshape(-1) + (0 if (pred_instances == 0).any() else 1)
    true_ids = true_ids.reshape(-1) + (0 if (instances == 0).any() else 1)
    n_pred, n_true = pred_ids.max(initial=0) + 1, true_ids.max(initial=0) + 1
    counts = np.bincount(pred_ids * n_true + true_ids, minlength=n_pred * n_true)
    return counts.reshape(n_pred, n_true)


def rand_error(pred_instances, instances) -> float:
    """The foreground-restricted Rand error of the ISBI 2012 challenge.

    With p_ij the fraction of ground-truth foreground pixels labelled i in the prediction and
    j in the ground truth, s_i = sum_j p_ij and t_j = sum_i p_ij, the Rand F-score is

        V_Rand = sum_ij p_ij^2 / (0.5 sum_i s_i^2 + 0.5 sum_j t_j^2)

    (the harmonic mean of the Rand split and merge scores) and the error is 1 - V_Rand. Pixels
    with ground-truth label 0 are left out. Pixels predicted as background inside the true
    foreground count as one-pixel segments, so a missed cell is an error (scikit-image's
    ``adapted_rand_error`` treats predicted 0 as one more segment instead, and would score a
    prediction that misses exactly one cell as perfect). 0 means the same segmentation up to
    renaming the labels.
    """
    pred_instances, instances = _pair(pred_instances, instances, ("pred_instances", "instances"), binary=False)
    table = _contingency(pred_instances, instances)[:, 1:].astype(np.float64)   # drop true background
    total = table.sum()
    if total == 0:
        raise ValueError("instances has no foreground pixels; the Rand error restricted to the "
                         "foreground is undefined")
    p = table / total                                  # (P + 1, G), row 0 = predicted background
    singles = table[0].sum() / total**2                # each predicted-background pixel: p = 1/total
    sum_p2 = (p[1:] ** 2).sum() + singles
    sum_s2 = (p[1:].sum(1) ** 2).sum() + singles
    sum_t2 = (p.sum(0) ** 2).sum()
    return float(1.0 - 2.0 * sum_p2 / (sum_s2 + sum_t2))


def label_instances(pred) -> np.ndarray:
    """Instances from a foreground map: its connected components, labelled 1..n, 0 = background.

    (H, W) -> (H, W) int64, or (N, H, W) -> (N, H, W) labelled image by image. Pixels touching
    only at a corner are different cells (4-connectivity), so a one-pixel diagonal gap is
    enough to separate two cells.
    """
    pred = _binary(pred, "pred")
    if pred.ndim == 3:
        return np.stack([label_instances(p) for p in pred])
    labels, _ = ndimage.label(pred)   # default structure: 4-connectivity in 2-D
    return labels.astype(np.int64)


def instances_from_classes(pred) -> np.ndarray:
    """Instances from a three-class prediction (H, W): 0 = background, 1 = interior, 2 = border
    (the target of ``unet_lib.data.interior_border_classes``).

    The interiors are the seeds: their connected components (4-connectivity), labelled 1..n. Each
    grows into the border pixels around it (``unet_lib.baselines.seeded_watershed``, flooding the
    foreground, the nearest interior first), so two cells whose borders touch stay two cells.
    Border pixels that no interior reaches (a ring without an interior) stay background.
    Returns int64 (H, W).
    """
    from .baselines import seeded_watershed   # baselines imports nothing of unet_lib; kept local all the same
    pred = _as_numpy(pred, "pred")
    if pred.ndim != 2 or pred.max(initial=0) > 2:
        raise ValueError(f"pred must be one (H, W) map of classes 0 (background), 1 (interior) and 2 (border), got "
                         f"shape {pred.shape} with values up to {pred.max(initial=0)}")
    seeds, _ = ndimage.label(pred == 1)                                # 4-connectivity
    distance = ndimage.distance_transform_edt(pred != 1)              # to the nearest interior pixel
    return seeded_watershed(distance, seeds, pred > 0)


@dataclass
class InstanceScores:
    """Counts from matching predicted cells with ground-truth cells; add them up over images.

    tp: matched pairs (IoU > threshold); fp: predicted cells without a match; fn: ground-truth
    cells without a match; merged: ground-truth cells whose largest part lies in a predicted
    cell that also holds the largest part of another cell; split: ground-truth cells that hold
    the largest part of two or more predicted cells.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    merged: int = 0
    split: int = 0

    @property
    def precision(self) -> float:
        """tp / (tp + fp): the fraction of predicted cells that are real (1.0 if none predicted)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """tp / (tp + fn): the fraction of real cells that were found (1.0 if there are none)."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        """2 tp / (2 tp + fp + fn), the harmonic mean of precision and recall (1.0 if both empty)."""
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp + self.fp + self.fn else 1.0

    def __add__(self, other: "InstanceScores") -> "InstanceScores":
        return InstanceScores(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn,
                              self.merged + other.merged, self.split + other.split)


def instance_scores(pred_instances, instances, threshold: float = 0.5) -> InstanceScores:
    """Match predicted cells with ground-truth cells one to one and count the outcome.

    Takes two label images (0 = background) of the same shape, (H, W) or (N, H, W); a stack is
    scored image by image and the counts are added. A predicted cell p and a ground-truth cell
    g match when IoU(p, g) = |p AND g| / |p OR g| > ``threshold``, strictly, as in the nuclei
    metric of the 2018 Data Science Bowl. From 0.5 up, strictness is what
    makes a match unique: two predicted cells with IoU > 0.5 with one true cell would each
    cover more than half of it, while at exactly 0.5 two halves could both claim it (and one
    predicted cell could claim two true cells). Pairs are taken greedily from the highest IoU
    down, each cell at most once, which matters only for ``threshold`` < 0.5. ``threshold`` is
    in [0, 1): 0 matches any overlap. Use ``label_instances(pred)`` to get ``pred_instances``
    from a foreground map.
    """
    threshold = check_number("threshold", threshold, min=0.0, max=1.0)
    if threshold >= 1.0:
        raise ValueError(f"threshold must be below 1 (a match needs IoU > threshold, and IoU is at most 1), "
                         f"got {threshold!r}")
    pred_instances, instances = _pair(pred_instances, instances, ("pred_instances", "instances"), binary=False)
    if instances.ndim == 3:
        total = InstanceScores()
        for p, g in zip(pred_instances, instances):
            total = total + instance_scores(p, g, threshold)
        return total
    table = _contingency(pred_instances, instances)   # (P + 1, G + 1), row/column 0 = background
    inter = table[1:, 1:].astype(np.float64)           # (P, G) overlaps of real cells
    n_pred, n_true = inter.shape
    pred_area, true_area = table[1:, :].sum(1), table[:, 1:].sum(0)
    union = pred_area[:, None] + true_area[None, :] - inter
    ious = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    # greedy one-to-one matching, highest IoU first
    tp = 0
    pred_free, true_free = np.ones(n_pred, bool), np.ones(n_true, bool)
    for flat in np.argsort(-ious, axis=None, kind="stable"):
        i, j = divmod(int(flat), n_true)
        if not ious[i, j] > threshold:      # strictly above: at 0.5 exactly there is no match
            break
        if pred_free[i] and true_free[j]:
            pred_free[i] = true_free[j] = False
            tp += 1
    # merges and splits: where does the largest part of each cell lie (background included)?
    home_of_true = table[:, 1:].argmax(0)              # (G,) 0 = mostly missed, else predicted cell
    owners = np.bincount(home_of_true, minlength=n_pred + 1)
    owners[0] = 0                                      # missed cells are not merged
    merged = int((owners[home_of_true] >= 2).sum())
    home_of_pred = table[1:, :].argmax(1)              # (P,) 0 = mostly background, else true cell
    pieces = np.bincount(home_of_pred, minlength=n_true + 1)
    split = int((pieces[1:] >= 2).sum())
    return InstanceScores(tp=tp, fp=n_pred - tp, fn=n_true - tp, merged=merged, split=split)


def confusion_matrix(pred, mask, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class): int64 (K, K), row t = pixels of class t in
    ``mask``, column p = pixels predicted as p. ``pred`` and ``mask`` are class maps (H, W) or
    (N, H, W) with values in [0, K); add the matrices of several images to pool them."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    pred, mask = _pair(pred, mask, binary=False)
    top = max(int(pred.max()), int(mask.max()))
    if top >= num_classes:
        raise ValueError(f"pred and mask must hold classes 0..{num_classes - 1} (num_classes={num_classes}), "
                         f"found {top}")
    flat = mask.astype(np.int64).ravel() * num_classes + pred.astype(np.int64).ravel()
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def class_scores(confusion) -> tuple[list[float], list[float]]:
    """Per-class IoU and Dice from a (K, K) confusion matrix (rows true, columns predicted):
    IoU_c = n_cc / (true_c + predicted_c - n_cc), Dice_c = 2 n_cc / (true_c + predicted_c).
    A class absent from both truth and prediction scores NaN (nothing to find, nothing found:
    left out of a mean with ``np.nanmean``)."""
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1] or confusion.dtype.kind not in "iu":
        raise ValueError(f"confusion must be a square (K, K) matrix of integer counts, got shape "
                         f"{confusion.shape} and dtype {confusion.dtype}")
    hit = np.diag(confusion).astype(np.float64)                  # (K,)
    total = confusion.sum(1) + confusion.sum(0)                  # (K,) true_c + predicted_c
    with np.errstate(invalid="ignore", divide="ignore"):
        ious = np.where(total > 0, hit / (total - hit), np.nan)
        dices = np.where(total > 0, 2 * hit / total, np.nan)
    return [float(x) for x in ious], [float(x) for x in dices]
