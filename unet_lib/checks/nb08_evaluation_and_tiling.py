"""The checks of notebook 08, evaluation and tiling: ``check_iou``, ``check_count_matches``, ``check_shift_change``."""

import copy
from collections.abc import Callable

import numpy as np
import torch

from ..model import UNet
from ._core import CheckPassed, T, cached, call, fail, learner_check, passed

__all__ = ['check_iou', 'check_count_matches', 'check_shift_change']


# -- foreground IoU ------------------------------------------------------------------------------

def _iou_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(what, pred, mask): 0/1 arrays the check scores, random ones and the cases that tell the
    plausible wrong formulas apart."""
    rng = np.random.default_rng(0)
    cases = [(f"random 6x7 masks ({k + 1})", rng.integers(0, 2, (6, 7)), rng.integers(0, 2, (6, 7))) for k in range(3)]
    cases.append(("a diagonal against a full 4x4 mask", np.eye(4, dtype=np.int64), np.ones((4, 4), np.int64)))
    cases.append(("a full 4x4 prediction against a diagonal mask", np.ones((4, 4), np.int64), np.eye(4, dtype=np.int64)))
    cases.append(("nothing predicted against a full 3x3 mask", np.zeros((3, 3), np.int64), np.ones((3, 3), np.int64)))
    cases.append(("cells predicted on an image without cells", np.eye(4, dtype=np.int64), np.zeros((4, 4), np.int64)))
    small, large = np.zeros((2, 5, 5), bool), np.zeros((2, 5, 5), bool)
    small[0, 2, 2] = large[0, 2, 2] = True                     # image 0: one pixel, found: IoU 1
    large[1, :2, :] = True                                     # image 1: 10 true pixels ...
    small[1, :1, :] = True                                     # ... 5 of them found: IoU 0.5
    cases.append(("a stack of two 5x5 images (bool)", small, large))
    return cases


def _iou_variants(pred: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """What the plausible wrong formulas give for one case (NaN where they divide by zero)."""
    p, m = np.asarray(pred, bool), np.asarray(mask, bool)
    inter, union = (p & m).sum(), (p | m).sum()

    def ratio(a, b):
        return float(a / b) if b else float("nan")

    per_image = [ratio((a & b).sum(), (a | b).sum()) for a, b in zip(p, m)] if p.ndim == 3 else []
    background = ratio((~p & ~m).sum(), (~p | ~m).sum())
    return {
        "dice": ratio(2 * inter, p.sum() + m.sum()),
        "recall": ratio(inter, m.sum()),
        "precision": ratio(inter, p.sum()),
        "accuracy": float((p == m).mean()),
        "both classes": (ratio(inter, union) + background) / 2,
        "per image": float(np.mean(per_image)) if per_image else float("nan"),
        "empty truth": 1.0 if not m.any() else float("nan"),        # 1.0 whenever the image has no cell
        "empty prediction": 1.0 if not p.any() else float("nan"),   # 1.0 whenever nothing is predicted
    }


def _plain(value):
    """A numpy scalar as the Python number it holds, so that a message shows 3.0, not np.float64(3.0)."""
    return value.item() if isinstance(value, np.generic) else value


def _same(a: float, b: float) -> bool:
    """Equal up to float32 rounding (a right answer computed in float32 is off by about 1e-8 here;
    the wrong formulas differ by 0.01 or more on these small cases)."""
    return bool(np.isfinite(a) and np.isfinite(b) and abs(a - b) <= 1e-6)


@learner_check
def check_iou(iou_fn: Callable) -> CheckPassed:
    """``iou_fn(pred, mask)`` must give the foreground IoU of two 0/1 arrays of any shape (an image
    or a stack, whose pixels are pooled), 1.0 when neither has foreground. Compared with
    ``unet_lib.metrics.iou``, which it may not call (nor ``dice`` or ``class_scores``)."""
    from ..metrics import class_scores, dice, iou
    refuse = {"unet_lib.metrics.iou": iou, "unet_lib.metrics.dice": dice, "unet_lib.metrics.class_scores": class_scores}
    for what, pred, mask in _iou_cases():
        got, expected = call(iou_fn, pred.copy(), mask.copy(), refuse=refuse), iou(pred, mask)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if not isinstance(got, (int, float, np.integer, np.floating)) or isinstance(got, bool):
            fail("{what}: foreground_iou returned {got!r}; expected one number",
                 "the IoU of two maps is a single number between 0 and 1",
                 what=what, got=_plain(got))
        got = float(got)
        if _same(got, expected):
            continue
        problem = T("{what}: foreground_iou gave {got:.4f}; the foreground IoU is {expected:.4f}")
        values = dict(what=what, got=got, expected=expected)
        variants = _iou_variants(pred, mask)
        if _same(got, variants["dice"]):
            fail(problem, "that is the Dice score, which weighs the overlap twice against the sum of the two areas; "
                          "IoU divides the overlap by the union: the pixels that either map calls foreground", **values)
        if _same(got, variants["recall"]):
            fail(problem, "you divided the overlap by the true foreground only: a prediction that paints every pixel "
                          "as cell would score 1; IoU divides by the union of the two", **values)
        if _same(got, variants["precision"]):
            fail(problem, "you divided the overlap by the predicted foreground only: a prediction of one right pixel "
                          "would score 1; IoU divides by the union of the two", **values)
        if _same(got, variants["accuracy"]):
            fail(problem, "that is the share of pixels on which the two maps agree, background included (1 - pixel "
                          "error); the foreground IoU leaves out the pixels that both call background", **values)
        if _same(got, variants["both classes"]):
            fail(problem, "that is the mean of the IoUs of the two classes, background included; the foreground IoU "
                          "scores the cells only", **values)
        if _same(got, variants["per image"]):
            fail(problem, "you averaged the IoU of each image; the score of a stack pools its pixels, as if the images "
                          "were one (a one-pixel image then counts as little as its one pixel)", **values)
        if _same(got, variants["empty truth"]):
            fail(problem, "with no true cell, every predicted pixel is wrong, so the IoU is 0; only nothing predicted "
                          "on an image without cells is the open case", **values)
        if _same(got, variants["empty prediction"]):
            fail(problem, "with cells in the image and none predicted, every true pixel is missed, so the IoU is 0; "
                          "only nothing predicted on an image without cells is the open case", **values)
        fail(problem, "IoU = (pixels that both maps call foreground) / (pixels that either calls foreground)",
             "np.logical_and and np.logical_or give the two maps of any shape; .sum() counts their pixels",
             **values)
    empty = np.zeros((3, 3), np.int64)
    try:
        got = call(iou_fn, empty, empty.copy(), refuse=refuse)
    except ZeroDivisionError:
        got = "ZeroDivisionError"
    finite = isinstance(got, (int, float, np.integer, np.floating, torch.Tensor)) and bool(np.isfinite(float(got)))
    if not finite or not _same(float(got), 1.0):
        fail("two empty masks (no cell in the image, none predicted): foreground_iou gave {got!r}, which is not "
             "the score of a right answer",
             "with no foreground in either map the union is empty and the formula is 0 / 0: decide what an answer "
             "that rightly finds no cell in an image without cells should score",
             "IoU runs from 0 (nothing right) to 1 (everything right): where on that scale is an empty prediction "
             "of an image without cells?",
             got=_plain(got))
    return passed("✓ foreground_iou matches unet_lib.metrics.iou on single images, a stack (pixels pooled), an "
                  "empty truth and two empty masks")


# -- matching cells ------------------------------------------------------------------------------

def _count_cases() -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """The true cells (two touching 3x3 cells and a 2x2 one) and the predictions the check scores."""
    instances = np.zeros((8, 10), np.int64)
    instances[1:4, 1:4], instances[1:4, 4:7], instances[5:7, 1:3] = 1, 2, 3
    perfect = np.choose(instances, [0, 5, 9, 2])                    # same cells, other ids
    part = perfect.copy()
    part[1:3, 5:7] = 0                                              # cell 2: 5 of its 9 pixels, IoU 5/9 = 0.56
    grown = perfect.copy()
    grown[0, 0:5], grown[1:4, 0] = 5, 5                             # cell 1 and 8 pixels more: IoU 9/17 = 0.53
    merged = np.zeros_like(instances)
    merged[1:4, 0:7], merged[5:7, 1:3] = 1, 2                      # the touching pair as one blob
    half = np.zeros_like(instances)
    half[1:4, 1:4], half[5:7, 1:2] = 1, 2                           # cell 3 half found: IoU exactly 0.5
    shifted = np.zeros_like(instances)
    shifted[2:5, 2:5] = 1                                           # IoU 4/14 with cell 1, 2/16 with cell 2
    speck = np.where(instances == 3, 0, perfect)
    speck[6, 2] = 7                                                 # cell 3 only as a 1-px speck: IoU 1/4
    cases = [("the same cells with other ids", perfect), ("cell 2 found in part (IoU 0.56)", part),
             ("cell 1 found with 8 pixels too many (IoU 0.53)", grown), ("the touching pair merged into one blob", merged),
             ("cell 3 found half (IoU exactly 0.5)", half), ("a shifted cell (IoU 0.29)", shifted),
             ("cells 1 and 2 found, cell 3 only as a one-pixel speck", speck), ("nothing", np.zeros_like(instances))]
    return instances, cases


def _count_variant(pred: np.ndarray, instances: np.ndarray, mistake: str, threshold: float = 0.5) -> int:
    """What a plausible wrong ``count_matches`` returns: matching by equal ids, counting the
    background as a cell, any overlap, at IoU >= 0.5, dividing by one cell's area only, or (with
    ``mistake="strict"``) at IoU > ``threshold`` above one half."""
    matched = 0
    low = 0 if mistake == "background" else 1
    for g in range(low, int(instances.max()) + 1):
        true_cell = instances == g
        if not true_cell.any():
            continue
        for p in np.unique(pred):
            if p < low or (mistake == "by id" and p != g):
                continue
            pred_cell = pred == p
            inter = (true_cell & pred_cell).sum()
            score = {"true area": inter / true_cell.sum(), "predicted area": inter / pred_cell.sum()}.get(
                mistake, inter / (true_cell | pred_cell).sum())
            if (mistake == "any overlap" and inter > 0) or (mistake == "inclusive" and score >= 0.5) or \
                    (mistake not in ("any overlap", "inclusive") and score > threshold):
                matched += 1
                break
    return matched


@learner_check
def check_count_matches(count_matches: Callable) -> CheckPassed:
    """``count_matches(pred_instances, instances)`` must count the true cells that a predicted cell
    matches at IoU > 0.5 (strictly: the course's rule, under which a match is unique); compared
    with ``instance_scores(...).tp``, which it may not call."""
    from ..metrics import instance_scores
    instances, cases = _count_cases()
    got = {}
    for what, pred in cases:
        result = call(count_matches, pred.copy(), instances.copy(), refuse={"instance_scores": instance_scores})
        if isinstance(result, bool) or not isinstance(result, (int, np.integer)):
            fail("{what}: count_matches returned {got!r}; expected a whole number of cells",
                 "count the matched true cells: an int", what=what, got=_plain(result))
        got[what] = int(result)
    expected = {what: instance_scores(pred, instances).tp for what, pred in cases}
    if got == expected:
        return passed("✓ count_matches agrees with unet_lib.metrics.instance_scores on {n} cases, the tie at "
                      "IoU 0.5 included", n=len(cases))
    wrong = next(what for what, _ in cases if got[what] != expected[what])
    problem = T("{what}: count_matches gave {got}; {expected} of the 3 true cells are matched")
    values = dict(what=wrong, got=got[wrong], expected=expected[wrong])

    def gives(mistake: str, threshold: float = 0.5) -> bool:
        return got == {what: _count_variant(pred, instances, mistake, threshold) for what, pred in cases}

    if gives("background"):
        fail(problem, "label 0 is the background, not a cell: the background of the prediction overlaps the true "
                      "background by far more than half, so counting it adds one match to every case", **values)
    if gives("by id"):
        fail(problem, "match by overlap, not by equal ids: the ids of a prediction are arbitrary (here 5, 9 and 2 "
                      "for the true 1, 2 and 3)", **values)
    if gives("any overlap"):
        fail(problem, "overlap alone is not a match: a blob over two touching cells overlaps both, yet its IoU "
                      "with each is below one half", **values)
    if gives("inclusive"):
        fail(problem, "a match needs IoU above 0.5, strictly: a cell found exactly half is not found (and at "
                      "exactly 0.5 one predicted cell could claim two true cells)", **values)
    if gives("strict", 0.54) or gives("strict", 0.6):   # any threshold from 0.53 up, a pixel-identical match included
        fail(problem, "a cell found in part still counts: the rule is IoU above one half, not a perfect outline "
                      "nor a stricter threshold", **values)
    if gives("true area"):
        fail(problem, "you divided the overlap by the true cell's area: a blob that covers a cell and much more "
                      "would match it; IoU divides by the union of the two cells", **values)
    if gives("predicted area"):
        fail(problem, "you divided the overlap by the predicted cell's area: a one-pixel speck inside a cell would "
                      "match it; IoU divides by the union of the two cells", **values)
    fail(problem, "for each true cell: is there a predicted cell whose IoU with it is above 0.5? Above one half "
                  "there can be at most one",
         "a true cell is the pixels with one label > 0 in instances; its IoU with a predicted cell is |p and g| / "
         "|p or g| (np.unique lists the labels)", **values)


# -- a shifted window ----------------------------------------------------------------------------

def _shift_change_reference(model: UNet, image: torch.Tensor, size: int, shift: int,
                            mistake: str | None = None) -> float:
    """What ``shift_change`` must return (``mistake=None``), or what a known mistake returns."""
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
        diff = first - second
    elif mistake == "reversed":                                                         # pixel (i + s) of the second
        diff = first[: n - shift, : n - shift] - second[shift:, shift:]
    else:
        diff = first[shift:, shift:] - second[: n - shift, : n - shift]
    if mistake == "signed":                                                             # no abs(): the largest rise
        return diff.max().item()
    if mistake == "signed, other way":                                                  # no abs(): the largest fall
        return (-diff).max().item()
    return (diff.abs().mean() if mistake == "mean" else diff.abs().max()).item()


@cached(maxsize=1)
def _shift_case() -> tuple[UNet, torch.Tensor, int, tuple[int, ...]]:
    """The course model (eval mode, CPU), a 164x164 toy image, the window size (140: a 52x52
    output) and the shifts: 2**depth, 1, half of it, twice it. On this image (seed 1) the largest
    change is a fall for shift 1 (0.42 against a rise of 0.31) and a rise for shift 4 (0.087
    against 0.051), so a signed maximum fails whichever way round it subtracts."""
    from ..checkpoint import load_checkpoint
    from ..data import ToyCells
    from ..train import COURSE_CHECKPOINT
    model = load_checkpoint(COURSE_CHECKPOINT).model.cpu().eval()
    image = ToyCells(1, size=164, seed=1)[0]["image"]                  # (1, 164, 164)
    size, step = model.min_input_size() + 6 * 2**model.depth, 2**model.depth
    return model, image, size, (step, 1, step // 2, 2 * step)          # 8, 1, 4, 16 for depth 3


@cached(maxsize=64)
def _shift_measured(shift: int, mistake: str | None = None) -> float:
    """``_shift_change_reference`` on the check's case, computed once per process."""
    model, image, size, _ = _shift_case()
    return _shift_change_reference(model, image, size, shift, mistake)


@learner_check
def check_shift_change(shift_change: Callable) -> CheckPassed:
    """``shift_change(model, image, size, shift)`` must return the largest change of a
    valid-padding model's P(cell) at the same image pixel when its ``size`` x ``size`` input window
    moves ``shift`` px down and right. The model arrives in training mode, as from training.
    Compared with the check's own measurement on the course checkpoint, for shifts that are and
    are not multiples of 2**depth. No library function computes it, so none is refused."""
    model, image, size, shifts = _shift_case()
    step = 2**model.depth
    results = {}
    for shift in shifts:
        # a copy in training mode, as a model arrives from training; the check's own model stays untouched
        got = call(shift_change, copy.deepcopy(model).train(), image.clone(), size, shift)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, torch.Tensor):
            fail("shift_change(model, image, {size}, {shift}) returned a tensor of shape {shape}; expected one float",
                 "the question asks for the largest absolute difference: one number, as a Python float",
                 size=size, shift=shift, shape=tuple(got.shape))
        if isinstance(got, bool) or not isinstance(got, (int, float, np.integer, np.floating)):
            fail("shift_change(model, image, {size}, {shift}) returned {got!r}; expected one float",
                 "the question asks for the largest absolute difference: one number, as a Python float",
                 size=size, shift=shift, got=_plain(got))
        expected = _shift_measured(shift)
        if abs(got - expected) <= 1e-5:
            results[shift] = expected
            continue
        problem = T("shift_change(model, image, {size}, {shift}) = {got:.6f}, not what the check measures with the "
                    "method of the text")
        values = dict(size=size, shift=shift, got=float(got))

        def gives(mistake: str) -> bool:
            return abs(got - _shift_measured(shift, mistake)) <= 1e-5

        if gives("train mode"):
            fail(problem, "the model predicted in training mode: there BatchNorm normalises each window with that "
                          "window's own statistics, so even a perfect shift changes the output. In which mode does "
                          "a model predict?", "a module's eval() switches BatchNorm to its running statistics",
                 **values)
        if gives("unaligned"):
            fail(problem, "you compared output pixels with the same index in both windows, but the second window "
                          "starts {shift} px further down and right: which output pixel of the second window looks at "
                          "the same image pixel as output pixel (i, j) of the first?",
                 "the second window's output pixel (i, j) sees what the first window's pixel (i + {shift}, "
                 "j + {shift}) sees; compare only the pixels that both windows cover", **values)
        if gives("reversed"):
            fail(problem, "the alignment goes the wrong way: the second window starts further down and right, so its "
                          "pixel (i, j) lies further down and right in the image than the first window's pixel (i, j)",
                 **values)
        if gives("logits"):
            fail(problem, "you compared raw scores (logits); the question is about P(cell), the probability the "
                          "softmax over the classes gives", **values)
        if gives("padded"):
            fail(problem, "each window was mirror-padded at its own border (padded_forward), so the pixels near that "
                          "border see a mirror instead of the image, whatever the shift: run the model on the window "
                          "itself", **values)
        if gives("signed") or gives("signed, other way"):
            fail(problem, "a change can go either way, up or down: the largest change is the largest absolute "
                          "difference", **values)
        if gives("mean"):
            fail(problem, "that is the mean change; the question is the largest one, over every pixel both windows "
                          "predict", **values)
        fail(problem, "two input windows of the image, {shift} px apart down and right; P(cell) of each (softmax over "
                      "the classes, in the mode a model predicts in); then the largest absolute difference between "
                      "the output pixels that see the same image pixel",
             "a window needs a batch dimension for the model; the output of a {size} px window is smaller than "
             "the window, and the two outputs overlap in all but {shift} rows and columns", **values)
    aligned = [s for s in shifts if s % step == 0]
    others = [s for s in shifts if s % step]
    if max(results[s] for s in aligned) < 1e-4 and min(results[s] for s in others) > 1e-2:
        return passed("✓ shift_change matches the check's own measurement on the course model: shifts of {aligned} "
                      "px (multiples of 2**depth = {step}) change P(cell) by less than 1e-4, shifts of {others} px "
                      "by up to {changes}", aligned=" and ".join(map(str, aligned)), step=step,
                      others=" and ".join(map(str, others)),
                      changes=" and ".join(f"{results[s]:.2f}" for s in others))
    return passed("✓ shift_change matches the check's own measurement on the course model")
