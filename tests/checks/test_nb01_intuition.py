"""Tests for unet_lib.checks.nb01_intuition: ``check_context_margin``, ``check_convolutionalize`` both ways.

Each check passes a correct answer worked out here, refuses the library's shortcuts however they
are reached, and fails deliberately broken versions with the intended message and staged hints."""

import pytest
import torch
from checktools import assert_passes, assert_skeleton_is_friendly
from torch import nn

from unet_lib import UNet, block_shapes, receptive_field
from unet_lib import context_margin as library_context_margin
from unet_lib.checks import CheckError, check_context_margin, check_convolutionalize
from unet_lib.model import _output_side


def context_margin(depth: int) -> int:
    """2 px for the first DoubleConv, then 2 * 2**k per DoubleConv k levels down, on both paths."""
    return 6 * 2**depth - 4


def test_context_margin_by_hand_and_by_the_library():
    assert context_margin(4) == (572 - 388) // 2 == 92   # the paper's Fig. 1
    assert context_margin(0) == 2                           # one DoubleConv: two 3x3 convolutions
    for depth in range(6):
        model = UNet(depth=depth, base_channels=1)
        n = model.min_input_size()
        assert context_margin(depth) == (n - model.output_size(n)) // 2


def context_margin_by_levels(depth: int) -> int:
    """The same, written as a learner would: every DoubleConv at its level, in input pixels."""
    return 2 + sum(2 * 2**level for level in range(1, depth + 1)) + sum(2 * 2**level for level in range(depth))


def test_check_context_margin_passes_a_correct_answer():
    assert_passes(check_context_margin, context_margin)
    assert_passes(check_context_margin, context_margin_by_levels)
    assert_skeleton_is_friendly(check_context_margin, "context_margin")


def _by_the_model(depth: int) -> int:
    model = UNet(depth=depth, base_channels=1)
    n = model.min_input_size()
    return (n - model.output_size(n)) // 2


SHORTCUTS_CONTEXT_MARGIN = {
    "UNet.output_size and min_input_size": (_by_the_model, "UNet"),
    "valid_input_sizes": (lambda d: (UNet(depth=d).valid_input_sizes()[0] - 1) // 2, "UNet"),
    "unet_lib.context_margin": (lambda d: library_context_margin(UNet(depth=d, base_channels=1)), "UNet"),
    "a model built outside, its method unbound": (
        lambda d, models={k: UNet(depth=k, base_channels=1) for k in range(6)}: library_context_margin(models[d]),
        "unet_lib.context_margin"),
    "the private size arithmetic": (lambda d: (188 - _output_side(188, d, "valid")) // 2 if d == 4 else 6 * 2**d - 4,
                                    "unet_lib.model._output_side"),
    "the receptive field": (lambda d, models={k: UNet(depth=k, base_channels=1) for k in range(6)}:
                            receptive_field(models[d], 2 * (6 * 2**d - 4) + 2**d + 8)[0] // 2,
                            "unet_lib.receptive_field"),
    "block_shapes": (lambda d, models={k: UNet(depth=k, base_channels=1) for k in range(6)}:
                     (models[d].min_input_size() - block_shapes(models[d], torch.zeros(1, 1, models[d].min_input_size(),
                                                                models[d].min_input_size()))[-1][1][-1]) // 2,
                     "UNet"),
}


@pytest.mark.parametrize("answer, shortcut", SHORTCUTS_CONTEXT_MARGIN.values(), ids=SHORTCUTS_CONTEXT_MARGIN.keys())
def test_check_context_margin_refuses_the_librarys_size_arithmetic(answer, shortcut):
    with pytest.raises(CheckError, match=rf"^`\S+` called .*`{shortcut}`.*, which already does what this exercise "
                                         r"asks you to write\nHint: write it yourself"):
        check_context_margin(answer)


BROKEN_CONTEXT_MARGIN = {
    "both sides": (lambda depth: 2 * context_margin(depth),
                   r"^context_margin\(0\) = 4; a depth-0 U-Net loses 2 pixels on each side\n"
                   r"Hint: that is both sides together"),
    "contracting path only": (lambda depth: 2 + 2**(depth + 2) - 4,
                              r"^context_margin\(1\) = 6; a depth-1 U-Net loses 8 pixels on each side\n"
                              r"Hint: the expansive path loses pixels too"),
    "every level worth one input pixel": (lambda depth: 2 + 4 * depth,
                                          r"^context_margin\(1\) = 6; .*\nHint: a pixel removed k levels down is not "
                                          r"one input pixel"),
    "the way up counted one level too deep": (lambda depth: 8 * 2**depth - 6,
                                              r"^context_margin\(1\) = 10; .*\nHint: on the way up, the DoubleConv of "
                                              r"a step works after the up-convolution"),
    "one pixel per DoubleConv": (lambda depth: context_margin(depth) // 2,
                                 r"^context_margin\(0\) = 1; .*\nHint: every DoubleConv has two unpadded 3x3 "
                                 r"convolutions"),
    "depth 0 forgotten": (lambda depth: 0 if depth == 0 else context_margin(depth),
                          r"^context_margin\(0\) = 0; .*\nHint: with depth=0 the U-Net is a single DoubleConv"),
    "right to depth 4 only": (lambda depth: context_margin(depth) if depth < 5 else 156,
                              r"^context_margin\(5\) = 156; a depth-5 U-Net loses 188 pixels on each side\n"
                              r"Hint 1 of 2: which layers remove pixels"),
    "wrong type": (lambda depth: str(context_margin(depth)), r"^context_margin\(0\) = '2'; expected an int"),
    "nothing returned": (lambda depth: None, r"^context_margin\(0\) = None; expected an int"),
}


@pytest.mark.parametrize("answer, match", BROKEN_CONTEXT_MARGIN.values(), ids=BROKEN_CONTEXT_MARGIN.keys())
def test_check_context_margin_fails_a_broken_answer(answer, match):
    with pytest.raises(CheckError, match=match):
        check_context_margin(answer)


def test_check_context_margin_hints_come_in_stages_and_never_print_the_formula():
    def unknown(depth):
        return context_margin(depth) + (1 if depth == 3 else 0)

    first = pytest.raises(CheckError, check_context_margin, unknown).value
    assert "Hint 1 of 2" in str(first) and "Hint 2 of 2" not in str(first)
    second = str(pytest.raises(CheckError, check_context_margin, unknown).value)
    assert "Hint 2 of 2: an unpadded 3x3 convolution removes 1 pixel" in second
    assert "6 * 2" not in second and "return" not in second


def convolutionalize(linear: nn.Linear, channels: int, size: int, mistake: str | None = None) -> nn.Module:
    out = linear.out_features
    conv = nn.Conv2d(channels, out, kernel_size=size, stride=size if mistake == "stride" else 1)
    with torch.no_grad():
        weight = linear.weight.view(out, channels, size, size)
        if mistake == "channels last":
            weight = linear.weight.view(out, size, size, channels).permute(0, 3, 1, 2)
        elif mistake == "rows and columns swapped":
            weight = weight.transpose(2, 3)
        elif mistake == "weights shuffled":
            weight = weight.flip(1)
        conv.weight.copy_(weight)
        if mistake != "the conv's own bias":
            conv.bias.copy_(torch.zeros(out) if mistake == "no bias" else linear.bias)
    return conv


def test_check_convolutionalize_passes_a_correct_answer():
    assert_passes(check_convolutionalize, convolutionalize)
    assert_skeleton_is_friendly(check_convolutionalize, "convolutionalize")


class SlidingWindow(nn.Module):
    """Right numbers, but section 2's sliding window: linear on every unfolded window."""

    def __init__(self, linear, size):
        super().__init__()
        self.linear, self.size = linear, size

    def forward(self, f):
        windows = f.unfold(2, self.size, 1).unfold(3, self.size, 1).permute(0, 2, 3, 1, 4, 5).flatten(3)
        return self.linear(windows).permute(0, 3, 1, 2)


@pytest.mark.parametrize("mistake, match", [
    ("no bias", r"has linear's weights in the right places, but not linear's bias\nHint 1 of 2: linear adds its bias "
                r"after the weighted sum"),
    ("the conv's own bias", r"has linear's weights in the right places, but not linear's bias"),
    ("channels last", r"reads the window in another order than nn.Flatten lays it out: its numbers are linear's with "
                      r"the window flattened as \(rows, columns, channels\)\nHint 1 of 2: nn.Flatten turns"),
    ("rows and columns swapped", r"flattened as \(channels, columns, rows\)"),
    ("weights shuffled", r"computes different numbers than linear on the same window\nHint 1 of 2: each output of "
                         r"linear is a weighted sum"),
    ("stride", r"gives shape \(1, 2, 1, 1\); expected \(1, 2, 4, 3\), one output per 4x4 window\n"
               r"Hint 1 of 2: every window position counts"),
    ("the linear layer", r"returned a Linear; the exercise asks for one nn.Conv2d\nHint: linear itself reads one "
                         r"flattened window"),
    ("in and out swapped", r"fails on a \(1, 3, 7, 6\) map: .*\nHint 1 of 2: the layer must read the map's 3 "
                           r"channels"),
    ("the sliding window", r"returned a SlidingWindow; the exercise asks for one nn.Conv2d\nHint: a module that "
                           r"applies linear to every window"),
    ("not a layer", r"returned a Tensor, not a layer"),
])
def test_check_convolutionalize_fails_a_broken_answer(mistake, match):
    answers = {"the linear layer": lambda linear, c, s: linear,
               "the sliding window": lambda linear, c, s: SlidingWindow(linear, s),
               "not a layer": lambda linear, c, s: linear.weight.detach(),
               "in and out swapped": lambda linear, c, s: nn.Conv2d(linear.out_features, c, s)}
    answer = answers.get(mistake, lambda linear, c, s: convolutionalize(linear, c, s, mistake))
    with pytest.raises(CheckError, match=match) as info:
        check_convolutionalize(answer)
    assert ".view(" not in str(info.value) and "copy_" not in str(info.value)   # no hint prints the solving line


def test_check_convolutionalize_names_a_tool_only_on_the_second_try():
    def wrong(linear, c, s):
        return convolutionalize(linear, c, s, "weights shuffled")

    assert "arange" not in str(pytest.raises(CheckError, check_convolutionalize, wrong).value)
    assert "Hint 2 of 2: find nn.Flatten's order: flatten torch.arange" in \
        str(pytest.raises(CheckError, check_convolutionalize, wrong).value)
