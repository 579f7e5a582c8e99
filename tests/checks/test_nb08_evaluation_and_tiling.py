"""Tests for unet_lib.checks.nb08_evaluation_and_tiling: ``check_iou``, ``check_count_matches``, ``check_shift_change`` both ways.

Each check passes a correct answer worked out here, refuses the library's function of the same job
however it is reached, and fails deliberately broken versions with the intended message."""

import re

import numpy as np
import pytest
import torch
from checktools import assert_passes, assert_skeleton_is_friendly

import unet_lib
from unet_lib.checks import (
    CheckError,
    check_count_matches,
    check_iou,
    check_shift_change,
)
from unet_lib.checks import nb08_evaluation_and_tiling as nb08
from unet_lib.checks.nb08_evaluation_and_tiling import _iou_cases
from unet_lib.metrics import class_scores, confusion_matrix, dice, instance_scores, iou
from unet_lib.tiling import padded_forward

# -- foreground IoU --------------------------------------------------------------------------------


def iou_by_hand(pred, mask):
    union = np.logical_or(pred, mask).sum()
    return 1.0 if union == 0 else np.logical_and(pred, mask).sum() / union


def iou_in_float32(pred, mask):
    """A right IoU computed in float32 (off by about 1e-8 from the float64 reference)."""
    p, m = np.asarray(pred, np.float32), np.asarray(mask, np.float32)
    inter = (p * m).sum()
    union = p.sum() + m.sum() - inter
    return 1.0 if union == 0 else inter / union


def iou_in_torch(pred, mask):
    """A right IoU in torch: a float32 tensor of one element."""
    p, m = torch.as_tensor(pred).bool(), torch.as_tensor(mask).bool()
    union = (p | m).sum()
    return torch.tensor(1.0) if union == 0 else (p & m).sum() / union


def test_check_iou_passes_a_hand_written_iou():
    assert_passes(check_iou, iou_by_hand)
    assert_passes(check_iou, lambda p, m: float(iou_by_hand(torch.as_tensor(p).numpy(), m)))   # a float
    assert_skeleton_is_friendly(check_iou, "iou_by_hand")


@pytest.mark.parametrize("answer", [iou_in_float32, iou_in_torch], ids=["numpy float32", "torch"])
def test_check_iou_passes_a_right_iou_computed_in_float32(answer):
    pred, mask = _iou_cases()[0][1:]
    assert abs(float(answer(pred, mask)) - iou(pred, mask)) > 1e-9   # not bit-identical to the float64 reference
    assert_passes(check_iou, answer)


def _safe(fn):
    """A formula that returns 1.0 when it would divide by zero, so that only its formula is wrong."""
    def answer(p, m):
        with np.errstate(invalid="ignore", divide="ignore"):
            value = fn(np.asarray(p, bool), np.asarray(m, bool))
        return 1.0 if not np.isfinite(value) else float(value)
    return answer


def per_image(p, m):
    return float(np.mean([iou_by_hand(a, b) for a, b in zip(p, m)])) if p.ndim == 3 else iou_by_hand(p, m)


BROKEN_IOU = {
    "the library's iou": (lambda p, m: iou(p, m), r"called `unet_lib.metrics.iou`, which already does what this "
                                                  r"exercise asks you to write\nHint: write it yourself"),
    "iou renamed": (lambda p, m: (lambda f: f(p, m))(unet_lib.iou), r"called `unet_lib.metrics.iou`"),
    "from Dice": (lambda p, m: (lambda d: d / (2 - d))(dice(p, m)), r"called `unet_lib.metrics.dice`"),
    "from a confusion matrix": (lambda p, m: class_scores(confusion_matrix(p, m, 2))[0][1],
                                r"called `unet_lib.metrics.class_scores`"),
    "Dice": (_safe(lambda p, m: 2 * (p & m).sum() / (p.sum() + m.sum())), r"\nHint: that is the Dice score"),
    "recall": (_safe(lambda p, m: (p & m).sum() / m.sum()), r"\nHint: you divided the overlap by the true foreground"),
    "precision": (_safe(lambda p, m: (p & m).sum() / p.sum()),
                  r"\nHint: you divided the overlap by the predicted foreground"),
    "pixel accuracy": (lambda p, m: float((p == m).mean()), r"\nHint: that is the share of pixels on which the two "
                                                            r"maps agree, background included"),
    "both classes": (_safe(lambda p, m: ((p & m).sum() / (p | m).sum() + (~p & ~m).sum() / (~p | ~m).sum()) / 2),
                     r"\nHint: that is the mean of the IoUs of the two classes"),
    "per image": (per_image, r"a stack of two 5x5 images \(bool\): foreground_iou gave 0.7500; the foreground IoU "
                             r"is 0.5455\nHint: you averaged the IoU of each image"),
    "1 - IoU": (lambda p, m: 1 - iou_by_hand(p, m), r"gave .*\nHint 1 of 2: IoU = \(pixels that both maps call "
                                                    r"foreground\)"),
    "0 for empty masks": (lambda p, m: iou_by_hand(p, m) if np.logical_or(p, m).any() else 0.0,
                          r"two empty masks \(no cell in the image, none predicted\): foreground_iou gave 0.0, which "
                          r"is not the score of a right answer\nHint 1 of 2: .*0 / 0"),
    "0 / 0": (lambda p, m: np.logical_and(p, m).sum() / np.logical_or(p, m).sum(),
              r"two empty masks .*: foreground_iou gave nan, which is not the score of a right answer"),
    "1 for an empty truth": (lambda p, m: 1.0 if not np.any(m) else iou_by_hand(p, m),
                             r"cells predicted on an image without cells: foreground_iou gave 1.0000; the foreground "
                             r"IoU is 0.0000\nHint: with no true cell, every predicted pixel is wrong"),
    "1 for an empty prediction": (lambda p, m: 1.0 if not np.any(p) else iou_by_hand(p, m),
                                  r"nothing predicted against a full 3x3 mask: foreground_iou gave 1.0000; .*\nHint: "
                                  r"with cells in the image and none predicted, every true pixel is missed"),
    "a tuple": (lambda p, m: ((p & m).sum(), (p | m).sum()), r"returned \(.*\); expected one number"),
}


@pytest.mark.parametrize("answer, match", BROKEN_IOU.values(), ids=BROKEN_IOU.keys())
def test_check_iou_fails_a_broken_iou(answer, match):
    with np.errstate(invalid="ignore", divide="ignore"):
        with pytest.raises(CheckError, match=match):
            check_iou(answer)


def test_check_iou_never_names_the_score_of_two_empty_masks():
    for _ in range(3):   # every stage of the hints
        with pytest.raises(CheckError, match=r"two empty masks") as info:
            check_iou(lambda p, m: iou_by_hand(p, m) if np.logical_or(p, m).any() else 0.0)
    assert "Hint 2 of 2: IoU runs from 0" in str(info.value)
    assert "1.0" not in str(info.value) and "return 1" not in str(info.value)


def test_check_iou_hints_come_in_stages():
    with pytest.raises(CheckError) as first:
        check_iou(lambda p, m: 1 - iou_by_hand(p, m))
    assert "np.logical_and" not in str(first.value)
    with pytest.raises(CheckError, match=r"Hint 2 of 2: np.logical_and and np.logical_or"):
        check_iou(lambda p, m: 1 - iou_by_hand(p, m))


# -- matching cells --------------------------------------------------------------------------------

def count_matches_by_hand(pred_instances, instances, mistake=None, threshold=0.5):
    """Matched true cells; ``mistake`` makes one of the plausible wrong versions, ``threshold`` a
    stricter rule than IoU > 0.5."""
    low = 0 if mistake == "background" else 1
    matched = 0
    for g in np.unique(instances[instances >= low]):
        for p in np.unique(pred_instances[pred_instances >= low]):
            if mistake == "by id" and p != g:
                continue
            a, b = pred_instances == p, instances == g
            inter = (a & b).sum()
            score = inter / {"true area": b.sum(), "predicted area": a.sum()}.get(mistake, (a | b).sum())
            if score > threshold or (mistake == "inclusive" and score == 0.5) or (mistake == "any overlap" and inter):
                matched += 1
                break
    return float(matched) if mistake == "float" else matched


def test_check_count_matches_passes_a_hand_written_count():
    assert_passes(check_count_matches, count_matches_by_hand)
    assert_skeleton_is_friendly(check_count_matches, "count_matches_by_hand")


BROKEN_COUNT = {
    "the library": (lambda p, g: instance_scores(p, g).tp, r"called `instance_scores`, which already does"),
    "the library, its fields": (lambda p, g: unet_lib.metrics.instance_scores(g, p).tp, r"called `instance_scores`"),
    "background counted": ("background", r"the same cells with other ids: count_matches gave 4; 3 of the 3 true cells "
                                         r"are matched\nHint: label 0 is the background, not a cell"),
    "by id": ("by id", r"other ids: count_matches gave 0; 3 .*\nHint: match by overlap, not by equal ids"),
    "any overlap": ("any overlap", r"merged into one blob: count_matches gave 3; 1 .*\nHint: overlap alone is not "
                                   r"a match"),
    "IoU >= 0.5": ("inclusive", r"cell 3 found half \(IoU exactly 0.5\): count_matches gave 2; 1 of the 3 .*\n"
                                r"Hint: a match needs IoU above 0.5, strictly"),
    "over the true area": ("true area", r"\nHint: you divided the overlap by the true cell's area"),
    "over the predicted area": ("predicted area", r"\nHint: you divided the overlap by the predicted cell's area"),
    "a float": ("float", r"the same cells with other ids: count_matches returned 3.0; expected a whole number"),
    "IoU > 0.6": (lambda p, g: count_matches_by_hand(p, g, threshold=0.6),
                  r"cell 2 found in part \(IoU 0.56\): count_matches gave 2; 3 of the 3 true cells are matched\n"
                  r"Hint: a cell found in part still counts"),
    "IoU > 0.9": (lambda p, g: count_matches_by_hand(p, g, threshold=0.9), r"\nHint: a cell found in part still counts"),
    "IoU > 0.54": (lambda p, g: count_matches_by_hand(p, g, threshold=0.54),
                   r"cell 1 found with 8 pixels too many \(IoU 0.53\): count_matches gave 2; 3 .*\n"
                   r"Hint: a cell found in part still counts"),
    "pixel-identical cells only": (lambda p, g: sum(any(((p == q) == (g == c)).all() for q in np.unique(p[p > 0]))
                                                    for c in np.unique(g[g > 0])),
                                   r"cell 2 found in part .*\nHint: a cell found in part still counts"),
    "IoU > 0.25": (lambda p, g: sum(any(((p == q) & (g == c)).sum() / ((p == q) | (g == c)).sum() > 0.25
                                        for q in np.unique(p[p > 0])) for c in np.unique(g[g > 0])),
                   r"merged into one blob: count_matches gave 3; 1 .*\nHint 1 of 2: for each true cell"),
}


@pytest.mark.parametrize("answer, match", BROKEN_COUNT.values(), ids=BROKEN_COUNT.keys())
def test_check_count_matches_fails_a_broken_count(answer, match):
    if isinstance(answer, str):
        mistake = answer
        answer = lambda p, g: count_matches_by_hand(p, g, mistake)   # noqa: E731
    with pytest.raises(CheckError, match=match):
        check_count_matches(answer)


# -- a shifted window ------------------------------------------------------------------------------

def shift_change_by_hand(model, image, size, shift, mistake=None):
    if mistake != "train mode":
        model.eval()
    run = (lambda x: padded_forward(model, x)) if mistake == "padded" else model
    with torch.no_grad():
        first = run(image[None, :, :size, :size])
        second = run(image[None, :, shift:shift + size, shift:shift + size])
    if mistake != "logits":
        first, second = first.softmax(1), second.softmax(1)
    first, second = first[0, 1], second[0, 1]
    n = first.shape[-1]
    if mistake == "unaligned":
        return float((first - second).abs().max())
    if mistake == "reversed":
        return float((first[:n - shift, :n - shift] - second[shift:, shift:]).abs().max())
    change = first[shift:, shift:] - second[:n - shift, :n - shift]
    if mistake == "signed":
        return float(change.max())
    if mistake == "signed, other way":
        return float((second[:n - shift, :n - shift] - first[shift:, shift:]).max())
    diff = change.abs()
    return diff if mistake == "tensor" else float(diff.max()) if mistake != "mean" else float(diff.mean())


def test_check_shift_change_passes_a_hand_written_shift_change():
    result = check_shift_change(shift_change_by_hand)
    assert "shifts of 8 and 16 px (multiples of 2**depth = 8) change P(cell) by less than 1e-4" in result
    # the pass message answers the notebook's "predict first": 1 px moves P(cell) more than 4 px
    one_px, four_px = map(float, re.search(r"shifts of 1 and 4 px by up to (\d\.\d\d) and (\d\.\d\d)", result).groups())
    assert one_px > four_px > 0.01
    assert_skeleton_is_friendly(check_shift_change, "shift_change")


@pytest.mark.parametrize("mistake, match", [
    ("train mode", r"not what the check measures.*\nHint 1 of 2: the model predicted in training mode"),
    ("unaligned", r"\nHint 1 of 2: you compared output pixels with the same index in both windows"),
    ("reversed", r"\nHint: the alignment goes the wrong way"),
    ("logits", r"\nHint: you compared raw scores \(logits\)"),
    ("padded", r"\nHint: each window was mirror-padded at its own border"),
    ("mean", r"\nHint: that is the mean change"),
    ("signed", r"shift_change\(model, image, 140, 1\) = .*\nHint: a change can go either way"),
    ("signed, other way", r"shift_change\(model, image, 140, 4\) = .*\nHint: a change can go either way"),
    ("tensor", r"returned a tensor of shape \(\d+, \d+\); expected one float"),
    ("twice the shift", r"shift_change\(model, image, 140, 1\) = .*\nHint 1 of 2: two input windows"),
])
def test_check_shift_change_fails_a_broken_shift_change(mistake, match):
    if mistake == "twice the shift":
        answer = lambda model, image, size, shift: shift_change_by_hand(model, image, size, 2 * shift)  # noqa: E731
    else:
        answer = lambda model, image, size, shift: shift_change_by_hand(model, image, size, shift, mistake)  # noqa: E731
    with pytest.raises(CheckError, match=match) as info:
        check_shift_change(answer)
    assert "expected 0." not in str(info.value)   # an experiment: the expected value is never printed


@pytest.mark.parametrize("answer, helper", [
    (lambda model, image, size, shift: nb08._shift_measured(shift), "_shift_measured"),
    (lambda model, image, size, shift: nb08._shift_change_reference(model.eval(), image, size, shift),
     "_shift_change_reference"),
], ids=["its cached measurement", "its reference"])
def test_check_shift_change_refuses_the_checks_own_answer(answer, helper):
    nb08._shift_measured(8)   # the cache holds the answer: a cache hit runs no frame of the helper itself
    with pytest.raises(CheckError, match=rf"called `unet_lib.checks.{helper}`"):
        check_shift_change(answer)


def test_check_shift_change_never_prints_the_solving_slices():
    for _ in range(3):   # every stage of the hints
        with pytest.raises(CheckError) as info:
            check_shift_change(lambda model, image, size, shift: shift_change_by_hand(model, image, size, shift, "unaligned"))
    assert "[8:" not in str(info.value) and "n - 8" not in str(info.value)
