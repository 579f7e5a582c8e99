"""Tests for unet_lib.checks.nb08_evaluation_and_tiling: ``check_iou``, ``check_count_matches``, ``check_shift_change`` both ways.

Each check passes the library's implementation (or a correct one worked out here) and fails
deliberately broken versions with the intended message."""

import numpy as np
import pytest
import torch
from checktools import assert_passes, assert_skeleton_is_friendly

from unet_lib.checks import (
    CheckError,
    check_count_matches,
    check_iou,
    check_shift_change,
)
from unet_lib.metrics import instance_scores, iou
from unet_lib.tiling import padded_forward


def iou_by_hand(pred, mask):
    union = np.logical_or(pred, mask).sum()
    return 1.0 if union == 0 else np.logical_and(pred, mask).sum() / union


def test_check_iou_passes_the_library_and_a_hand_written_iou():
    assert_passes(check_iou, iou)
    assert_passes(check_iou, iou_by_hand)
    assert_skeleton_is_friendly(check_iou, "iou_by_hand")


@pytest.mark.parametrize("answer, match", [
    (lambda p, m: 2 * (p & m).sum() / max(p.sum() + m.sum(), 1), r"expected .*\nHint: that is the Dice score"),
    (lambda p, m: (p & m).sum() / max(m.sum(), 1), r"expected .*\nHint: intersection: both 1; union: either 1"),
    (lambda p, m: (p & m).sum() / (p | m).sum() if (p | m).any() else 0.0,
     r"two empty masks gave 0.0; expected 1.0\nHint: .*nothing to find"),
    (lambda p, m: (p & m).sum() / (p | m).sum(), r"two empty masks gave .*; expected 1.0"),
])
def test_check_iou_fails_a_broken_iou(answer, match):
    with np.errstate(invalid="ignore", divide="ignore"):
        with pytest.raises(CheckError, match=match):
            check_iou(answer)


def count_matches_by_hand(pred_instances, instances, threshold=0.5, strict=False, by_id=False):
    matched = 0
    for g in np.unique(instances[instances > 0]):
        for p in np.unique(pred_instances[pred_instances > 0]):
            if by_id and p != g:
                continue
            a, b = pred_instances == p, instances == g
            score = (a & b).sum() / (a | b).sum()
            if score > threshold or (score == threshold and not strict):
                matched += 1
                break
    return matched


def test_check_count_matches_passes_the_library_and_a_hand_written_count():
    assert_passes(check_count_matches, lambda p, g: instance_scores(p, g).tp)
    assert_passes(check_count_matches, count_matches_by_hand)
    assert_skeleton_is_friendly(check_count_matches, "count_matches_by_hand")


@pytest.mark.parametrize("answer, match", [
    (lambda p, g: count_matches_by_hand(p, g, strict=True), r"IoU exactly 0.5.*\nHint: the threshold is inclusive"),
    (lambda p, g: count_matches_by_hand(p, g, by_id=True), r"other ids: .*\nHint: match by overlap"),
    (lambda p, g: count_matches_by_hand(p, g, threshold=0.0), r"merged: .*\nHint: a blob covering two cells"),
    (lambda p, g: float(count_matches_by_hand(p, g)), r"returned 3.0; expected an int"),
])
def test_check_count_matches_fails_a_broken_count(answer, match):
    with pytest.raises(CheckError, match=match):
        check_count_matches(answer)


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
    diff = (first[shift:, shift:] - second[:n - shift, :n - shift]).abs()
    return diff if mistake == "tensor" else float(diff.max()) if mistake != "mean" else float(diff.mean())


def test_check_shift_change_passes_a_hand_written_shift_change():
    result = check_shift_change(shift_change_by_hand)
    assert "shifts of 8 and 16 px (multiples of 2**depth = 8) change P(cell) by less than 1e-4" in result
    assert_skeleton_is_friendly(check_shift_change, "shift_change")


@pytest.mark.parametrize("mistake, match", [
    ("train mode", r"\nHint: call model.eval\(\) first"),
    ("unaligned", r"\nHint: compare the pixels that see the same input"),
    ("logits", r"\nHint: compare probabilities"),
    ("padded", r"\nHint: run model\(window\) directly"),
    ("tensor", r"(?s)returned tensor.*expected one float\nHint: return the largest"),
    ("mean", r"expected .*\nHint: windows image\[:, :140, :140\]"),
])
def test_check_shift_change_fails_a_broken_shift_change(mistake, match):
    with pytest.raises(CheckError, match=match):
        check_shift_change(lambda model, image, size, shift: shift_change_by_hand(model, image, size, shift, mistake))
