"""Tests for unet_lib.checks.nb01_intuition: ``check_context_margin``, ``check_convolutionalize`` both ways.

Each check passes the library's implementation (or a correct one worked out here) and fails
deliberately broken versions with the intended message."""

import pytest
import torch
from checktools import assert_passes, assert_skeleton_is_friendly
from torch import nn

from unet_lib import UNet
from unet_lib.checks import (
    CheckError,
    check_context_margin,
    check_convolutionalize,
)


def context_margin(depth: int) -> int:
    """2 px for the first DoubleConv, then 2 * 2**k per DoubleConv k levels down, on both paths."""
    return 6 * 2**depth - 4


def test_context_margin_by_hand_and_by_the_library():
    assert context_margin(4) == (572 - 388) // 2 == 92   # the paper's Fig. 1
    assert context_margin(0) == 2                           # one DoubleConv: two 3x3 convolutions
    for depth in range(5):
        model = UNet(depth=depth, base_channels=1)
        n = model.min_input_size()
        assert context_margin(depth) == (n - model.output_size(n)) // 2


def test_check_context_margin_passes_a_correct_answer():
    assert_passes(check_context_margin, context_margin)


BROKEN_CONTEXT_MARGIN = {
    "both sides": (lambda depth: 2 * context_margin(depth),
                   r"context_margin\(0\) = 4; a depth-0 U-Net loses 2 pixels per side\n"
                   r"Hint: that is both sides together"),
    "contracting path only": (lambda depth: 2 + 2**(depth + 2) - 4,
                              r"context_margin\(1\) = 6; a depth-1 U-Net loses 8 pixels per side\n"
                              r"Hint: count every DoubleConv"),
    "depth 0 forgotten": (lambda depth: 0 if depth == 0 else context_margin(depth),
                          r"context_margin\(0\) = 0; .*\nHint: with depth=0 the U-Net is a single DoubleConv"),
    "wrong type": (lambda depth: str(context_margin(depth)), r"context_margin\(0\) = '2'; "),
    "nothing returned": (lambda depth: None, r"context_margin\(0\) = None; "),
}


@pytest.mark.parametrize("answer, match", BROKEN_CONTEXT_MARGIN.values(), ids=BROKEN_CONTEXT_MARGIN.keys())
def test_check_context_margin_fails_a_broken_answer(answer, match):
    with pytest.raises(CheckError, match=match):
        check_context_margin(answer)


def convolutionalize(linear: nn.Linear, channels: int, size: int, mistake: str | None = None) -> nn.Module:
    out = linear.out_features
    conv = nn.Conv2d(channels, out, kernel_size=size if mistake != "stride" else size,
                     stride=size if mistake == "stride" else 1)
    with torch.no_grad():
        weight = linear.weight.view(out, channels, size, size)
        if mistake == "channels last":
            weight = linear.weight.view(out, size, size, channels).permute(0, 3, 1, 2)
        conv.weight.copy_(weight)
        conv.bias.copy_(torch.zeros(out) if mistake == "no bias" else linear.bias)
    return conv


def test_check_convolutionalize_passes_a_correct_answer():
    assert_passes(check_convolutionalize, convolutionalize)
    assert_skeleton_is_friendly(check_convolutionalize, "convolutionalize")


@pytest.mark.parametrize("mistake, match", [
    ("no bias", r"without its bias\nHint: copy linear.bias"),
    ("channels last", r"different numbers than linear on the same window\nHint: nn.Flatten flattens \(channels, "
                      r"height, width\)"),
    ("stride", r"gives shape \(1, 2, 1, 1\); expected \(1, 2, 4, 3\).*\nHint: kernel_size=4 .*stride 1"),
    ("the linear layer", r"fails on a \(3, 7, 6\) map: .*\nHint: nn.Conv2d\(in_channels=3"),
])
def test_check_convolutionalize_fails_a_broken_answer(mistake, match):
    answer = (lambda linear, c, s: linear) if mistake == "the linear layer" else \
        (lambda linear, c, s: convolutionalize(linear, c, s, mistake))
    with pytest.raises(CheckError, match=match):
        check_convolutionalize(answer)
