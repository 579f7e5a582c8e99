"""The checks of notebook 08, evaluation and tiling: ``check_iou``, ``check_count_matches``, ``check_shift_change``."""

from collections.abc import Callable

import numpy as np
import torch

from ..model import UNet
from ._core import CheckPassed, call, fail, learner_check

__all__ = ['check_iou', 'check_count_matches', 'check_shift_change']


@learner_check
def check_iou(iou_fn: Callable) -> CheckPassed:
    """``iou_fn(pred, mask)`` must give the foreground IoU of two 0/1 numpy arrays, 1.0 when both
    are empty; compared with ``unet_lib.metrics.iou``."""
    from ..metrics import iou
    rng = np.random.default_rng(0)
    cases = [(rng.integers(0, 2, (6, 7)), rng.integers(0, 2, (6, 7))) for _ in range(3)]
    cases.append((np.eye(4, dtype=np.int64), np.ones((4, 4), np.int64)))
    cases.append((np.zeros((3, 3), np.int64), np.ones((3, 3), np.int64)))
    for pred, mask in cases:
        got, expected = call(iou_fn, pred, mask), iou(pred, mask)
        if got is None or not np.isscalar(got) and not isinstance(got, (float, np.floating)):
            fail(f"iou returned {got!r}; expected a number", "return |pred AND mask| / |pred OR mask|")
        if abs(float(got) - expected) > 1e-9:
            dice = 2 * (pred & mask).sum() / (pred.sum() + mask.sum())
            hint = ("that is the Dice score 2|A and B| / (|A| + |B|); IoU divides by the union |A or B|"
                    if abs(float(got) - dice) < 1e-9 else
                    "intersection: both 1; union: either 1 (np.logical_and / np.logical_or), then divide")
            fail(f"iou(pred, mask) = {float(got):.4f} for pred={pred.tolist()}, mask={mask.tolist()}; "
                  f"expected {expected:.4f}", hint)
    empty = np.zeros((3, 3), np.int64)
    try:
        got = call(iou_fn, empty, empty)
    except ZeroDivisionError:
        got = "ZeroDivisionError"
    if got == "ZeroDivisionError" or not np.isfinite(float(got)) or float(got) != 1.0:
        fail(f"iou of two empty masks gave {got!r}; expected 1.0",
              "when the union is empty there was nothing to find and nothing was found: return 1.0")
    return CheckPassed("✓ iou matches unet_lib.metrics.iou, also for empty masks")


@learner_check
def check_count_matches(count_matches: Callable) -> CheckPassed:
    """``count_matches(pred_instances, instances)`` must count the one-to-one matches at
    IoU >= 0.5 between predicted and true cells; compared with ``instance_scores(...).tp``."""
    from ..metrics import instance_scores
    instances = np.zeros((8, 10), np.int64)
    instances[1:4, 1:4], instances[1:4, 4:7], instances[5:7, 1:3] = 1, 2, 3
    perfect = np.choose(instances, [0, 5, 9, 2])                    # same cells, other ids
    merged = np.zeros_like(instances)
    merged[1:4, 0:7], merged[5:7, 1:3] = 1, 2                      # the touching pair as one blob
    half = np.zeros_like(instances)
    half[1:4, 1:4], half[5:7, 1:2] = 1, 2                           # cell 3 half found: IoU 0.5
    shifted = np.zeros_like(instances)
    shifted[2:5, 2:5] = 1                                           # IoU 4/14 with cell 1
    cases = [("the same cells with other ids", perfect), ("the touching pair merged", merged),
             ("a cell found half (IoU exactly 0.5)", half), ("a shifted cell (IoU 0.29)", shifted),
             ("nothing", np.zeros_like(instances))]
    for what, pred in cases:
        got, expected = call(count_matches, pred, instances), instance_scores(pred, instances).tp
        if not isinstance(got, (int, np.integer)):
            fail(f"count_matches returned {got!r}; expected an int", "count the matched pairs")
        if got != expected:
            hints = {
                "the same cells with other ids": "match by overlap, not by equal ids: ids are arbitrary",
                "the touching pair merged": "a blob covering two cells has IoU < 0.5 with each: no match",
                "a cell found half (IoU exactly 0.5)": "the threshold is inclusive: IoU >= 0.5 matches",
                "a shifted cell (IoU 0.29)": "a little overlap is not a match: compute IoU = |p and g| / |p or g|",
                "nothing": "with no predicted cells there is nothing to match; skip label 0 (background)",
            }
            fail(f"{what}: count_matches gave {got}; expected {expected}", hints[what])
    return CheckPassed("✓ count_matches agrees with unet_lib.metrics.instance_scores")


def _shift_change_reference(model: UNet, image: torch.Tensor, size: int, shift: int,
                            mistake: str | None = None) -> float:
    """What ``shift_change`` must return (``mistake=None``), or what a known mistake returns."""
    import copy

    from ..tiling import padded_forward
    model = copy.deepcopy(model).train(mistake == "train mode")   # a copy: training mode updates BatchNorm's statistics
    forward = (lambda x: padded_forward(model, x)) if mistake == "padded" else model
    with torch.no_grad():
        first = forward(image[None, :, :size, :size])                                   # (1, K, n, n)
        second = forward(image[None, :, shift : shift + size, shift : shift + size])
    if mistake != "logits":
        first, second = first.softmax(1), second.softmax(1)
    first, second = first[0, 1], second[0, 1]                                           # (n, n) P(cell)
    n = first.shape[-1]
    if mistake == "unaligned":
        return (first - second).abs().max().item()
    return (first[shift:, shift:] - second[: n - shift, : n - shift]).abs().max().item()


@learner_check
def check_shift_change(shift_change: Callable) -> CheckPassed:
    """``shift_change(model, image, size, shift)`` must return the largest change of a
    valid-padding model's P(cell) between two ``size`` x ``size`` input windows of ``image`` that
    are ``shift`` px apart (down and right), compared pixel by pixel where they predict the same
    place. Compared with the check's own computation on the course checkpoint, for shifts that are
    and are not multiples of 2**depth."""
    import copy

    from ..checkpoint import load_checkpoint
    from ..data import ToyCells
    from ..train import COURSE_CHECKPOINT
    model = load_checkpoint(COURSE_CHECKPOINT).model.cpu()
    image = ToyCells(1, size=164, seed=5)[0]["image"]                  # (1, 164, 164)
    size, step = model.min_input_size() + 6 * 2**model.depth, 2**model.depth   # 140 -> a 52x52 output
    shifts = (step, 1, step // 2, 2 * step)                            # 8, 1, 4, 16 for depth 3
    results = {}
    for shift in shifts:
        # a copy in training mode, as a model arrives from training: the learner's code must switch to
        # eval mode, and a forward pass in training mode must not change the check's model
        got = call(shift_change, copy.deepcopy(model).train(), image.clone(), size, shift)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if not isinstance(got, (int, float, np.floating)):
            fail(f"shift_change(model, image, {size}, {shift}) returned {got!r}; expected one float",
                  "return the largest absolute difference as a float: diff.abs().max().item()")
        expected = _shift_change_reference(model, image, size, shift)
        if abs(got - expected) <= 1e-5:
            results[shift] = expected
            continue
        problem = f"shift_change(model, image, {size}, {shift}) = {got:.6f}; expected {expected:.6f}"
        hints = {
            "train mode": ("call model.eval() first: in training mode BatchNorm normalises each window with its own "
                           "statistics, so even a perfect shift changes the output"),
            "unaligned": (f"compare the pixels that see the same input: pixel (i, j) of the second window's output is "
                          f"pixel (i + {shift}, j + {shift}) of the first's, e.g. first[{shift}:, {shift}:] against "
                          f"second[:n - {shift}, :n - {shift}]"),
            "logits": "compare probabilities: softmax over the classes (dim 1), then channel 1 is P(cell)",
            "padded": ("run model(window) directly: padded_forward mirrors each window at its own border, so the "
                       "pixels near it change whatever the shift"),
        }
        for mistake, hint in hints.items():
            if abs(got - _shift_change_reference(model, image, size, shift, mistake)) <= 1e-5:
                fail(problem, hint)
        fail(problem, f"windows image[:, :{size}, :{size}] and image[:, {shift}:{shift + size}, {shift}:{shift + size}], "
                       "each with a batch dimension; P(cell) = model(window).softmax(1)[0, 1]; then the largest "
                       "absolute difference over the aligned pixels")
    aligned = [s for s in shifts if s % step == 0]
    others = [s for s in shifts if s % step]
    facts = ""
    if max(results[s] for s in aligned) < 1e-4 and min(results[s] for s in others) > 1e-2:
        facts = (f": shifts of {' and '.join(map(str, aligned))} px (multiples of 2**depth = {step}) change P(cell) "
                 f"by less than 1e-4, shifts of {' and '.join(map(str, others))} px by more than 0.01")
    return CheckPassed(f"✓ shift_change matches the check's own computation on the course model{facts}")
