"""Tests for unet_lib.checks.nb04_skip_connections_and_full_unet: ``check_output_size``, ``check_unet_forward``, ``check_smallest_valid_input``, ``check_center_crop`` both ways.

Each check passes the library's implementation (or a correct one worked out here) and fails
deliberately broken versions with the intended message."""

import functools

import pytest
import torch
from checktools import assert_passes, assert_skeleton_is_friendly

from unet_lib import (
    UNet,
    center_crop,
)
from unet_lib.checks import (
    CheckError,
    check_center_crop,
    check_output_size,
    check_smallest_valid_input,
    check_unet_forward,
)


def test_check_center_crop_passes_the_library_crop():
    assert_passes(check_center_crop, center_crop)


def _top_left(x, size):
    return (x.shape[-2] - size[0]) // 2, (x.shape[-1] - size[1]) // 2


BROKEN_CENTER_CROP = {
    "delta from each side (off by one on odd differences)": (
        lambda x, size: x[..., _top_left(x, size)[0] : x.shape[-2] - _top_left(x, size)[0],
                          _top_left(x, size)[1] : x.shape[-1] - _top_left(x, size)[1]],
        r"crop\(x of shape \(2, 3, 12, 10\), \(7, 5\)\) has shape \(2, 3, 8, 6\); expected \(2, 3, 7, 5\)\n"
        r"Hint: with an odd difference"),
    "rounded up (off by one, wrong values)": (
        lambda x, size: x[..., (x.shape[-2] - size[0] + 1) // 2 : (x.shape[-2] - size[0] + 1) // 2 + size[0],
                          (x.shape[-1] - size[1] + 1) // 2 : (x.shape[-1] - size[1] + 1) // 2 + size[1]],
        r"crop\(x, \(7, 5\)\) has the right shape but not the centre of x"),
    "top-left corner (wrong values)": (lambda x, size: x[..., : size[0], : size[1]],
                                       r"crop\(x, \(8, 6\)\) has the right shape but not the centre"),
    "rows and columns swapped": (
        lambda x, size: x[..., _top_left(x, size)[1] : _top_left(x, size)[1] + size[1],
                          _top_left(x, size)[0] : _top_left(x, size)[0] + size[0]],
        r"has shape \(2, 3, 6, 8\); expected \(2, 3, 8, 6\)\nHint: rows and columns are swapped"),
    "batch and channels cropped (wrong shape)": (
        lambda x, size: x[_top_left(x, size)[0] : _top_left(x, size)[0] + size[0]],
        r"expected \(2, 3, 8, 6\)\nHint: crop only the last two dimensions"),
    "float64 (wrong dtype)": (lambda x, size: center_crop(x, size).double(),
                              r"crop\(x, \(8, 6\)\) has dtype torch.float64; x has torch.float32"),
    "numpy (wrong type)": (lambda x, size: center_crop(x, size).numpy(), r"returned a ndarray\nHint: return a torch.Tensor"),
}


@pytest.mark.parametrize("answer, match", BROKEN_CENTER_CROP.values(), ids=BROKEN_CENTER_CROP.keys())
def test_check_center_crop_fails_a_broken_crop(answer, match):
    with pytest.raises(CheckError, match=match):
        check_center_crop(answer)


@functools.cache
def _unet(depth: int) -> UNet:
    return UNet(depth=depth, base_channels=1)


def output_size(input_size: int, depth: int) -> int | None:
    """The library's answer, with None for an invalid size."""
    try:
        return _unet(depth).output_size(input_size)
    except ValueError:
        return None


def by_formula(n: int, depth: int, check_valid: bool = True, shrink: int = 4, up: bool = True) -> int | None:
    n -= shrink
    for _ in range(depth):
        if check_valid and (n < 2 or n % 2):
            return None
        n = n // 2 - shrink
    if check_valid and n < 1:
        return None
    for _ in range(depth if up else 0):
        n = 2 * n - shrink
        if check_valid and n < 1:
            return None
    return n


def test_output_size_by_hand():
    # depth 1, 20 px: 20 - 4 = 16, pool 8, 8 - 4 = 4, up 8, 8 - 4 = 4
    assert output_size(20, 1) == by_formula(20, 1) == 4
    # 13 - 4 = 9 is odd: the max-pool cannot halve it
    assert output_size(13, 1) is None and by_formula(13, 1) is None
    assert output_size(572, 4) == by_formula(572, 4) == 388   # the paper's Fig. 1
    assert [n for n in range(1, 300) if by_formula(n, 2) is not None] == \
        [n for n in range(1, 300) if output_size(n, 2) is not None]


def test_check_output_size_passes_a_correct_answer():
    assert_passes(check_output_size, output_size)
    assert_passes(check_output_size, by_formula)


def raises_like_the_library(n: int, depth: int) -> int:
    return _unet(depth).output_size(n)


BROKEN_OUTPUT_SIZE = {
    "no validity check": (lambda n, depth: by_formula(n, depth, check_valid=False),
                          r"output_size\(1, depth=1\) = -16, but 1 is not a valid input size\n"
                          r"Hint: every max-pool needs an even size"),
    "2 pixels per DoubleConv (one side only)": (lambda n, depth: by_formula(n, depth, shrink=2),
                                                r"output_size\(18, depth=1\) = 10; expected 2\n"
                                                r"Hint: each DoubleConv removes 4 pixels"),
    "raises instead of None": (raises_like_the_library,
                               r"output_size\(1, depth=1\) raised ValueError: input size 1 is not valid.*\n"
                               r"Hint: return None where the input size is not valid"),
    "contracting path only": (lambda n, depth: by_formula(n, depth, up=False),
                              r"output_size\(18, depth=1\) = 3; expected 2"),
    "wrong type": (lambda n, depth: None if output_size(n, depth) is None else str(output_size(n, depth)),
                   r"output_size\(18, depth=1\) = '2'; expected 2"),
}


@pytest.mark.parametrize("answer, match", BROKEN_OUTPUT_SIZE.values(), ids=BROKEN_OUTPUT_SIZE.keys())
def test_check_output_size_fails_a_broken_answer(answer, match):
    with pytest.raises(CheckError, match=match):
        check_output_size(answer)


def unet_forward_by_hand(model, x, mistake=None):
    x = model.inc(x)
    skips = []
    for down in model.downs:
        if mistake != "skip after down":
            skips.append(x)
        x = down(x)
        if mistake == "skip after down":
            skips.append(x)
    order = skips if mistake == "skips not reversed" else list(reversed(skips))
    for up, skip in zip(model.ups, order):
        x = up(x, skip)
    return x if mistake == "no outc" else model.outc(x)


def test_check_unet_forward_passes_the_blocks_in_a_u():
    assert_passes(check_unet_forward, unet_forward_by_hand)
    assert_skeleton_is_friendly(check_unet_forward, "unet_forward")


BROKEN_UNET_FORWARD = {
    "calls the model": (lambda m, x: m(x), r"calls model\(x\) itself\nHint: build the pass from the blocks"),
    "no outc": (lambda m, x: unet_forward_by_hand(m, x, "no outc"), r"has shape .*\nHint: finish with model.outc"),
    "skips not reversed": (lambda m, x: unet_forward_by_hand(m, x, "skips not reversed"),
                           r"raised RuntimeError: .*\nHint: going down, append x to skips \*before\*"),
    "skip after down": (lambda m, x: unet_forward_by_hand(m, x, "skip after down"),
                        r"raised ValueError: .*\nHint: .*reversed\(skips\)"),
    "a list": (lambda m, x: [unet_forward_by_hand(m, x)], r"returned a list\nHint: return the output of model.outc"),
    "the skip added, not concatenated": (
        lambda m, x: unet_forward_by_hand(m, x) + 0.1, r"right shape but different values from model\(x\)"),
}


@pytest.mark.parametrize("answer, match", BROKEN_UNET_FORWARD.values(), ids=BROKEN_UNET_FORWARD.keys())
def test_check_unet_forward_fails_a_broken_forward(answer, match):
    with pytest.raises(CheckError, match=match):
        check_unet_forward(answer)


def smallest_valid_input_by_trying(model, max_size=1024, channels=None, start=1, skip_first=False):
    """Try n = start, start + 1, ... on the model itself; the mistakes are switched on by the arguments."""
    found = False
    for n in range(start, max_size + 1):
        x = torch.zeros(1, model.in_channels if channels is None else channels, n, n)
        try:
            with torch.no_grad():
                model(x)
        except ValueError:
            continue
        if skip_first and not found:
            found = True
            continue
        return n
    return None


def _valid_padding_formula(model):
    """The valid-padding answer, whatever the model's padding (a formula, not a measurement)."""
    return UNet(depth=model.depth, base_channels=1).valid_input_sizes(1, 1024)[0]


def _raises_on_invalid(model):
    for n in range(1, 1025):
        with torch.no_grad():
            model(torch.zeros(1, model.in_channels, n, n))   # no try: the first invalid size raises
        return n


def test_check_smallest_valid_input_passes_a_search():
    result = check_smallest_valid_input(smallest_valid_input_by_trying)
    assert "finds 18, 92, 380, 44, 8 for the five models" in result
    assert_skeleton_is_friendly(check_smallest_valid_input, "smallest_valid_input")


@pytest.mark.parametrize("broken, match", [
    (lambda model: 572, r"= 572; the smallest size that runs is 18\nHint: 572 is the paper's tile"),
    (lambda model: model.output_size(smallest_valid_input_by_trying(model)),
     r"= 2; the smallest.* 18\nHint: 2 is the \*output\* size"),
    (lambda model: smallest_valid_input_by_trying(model, skip_first=True),
     r"= 20; .* 18\nHint: off by one step of 2\*\*depth = 2"),
    (lambda model: smallest_valid_input_by_trying(model, channels=1),
     r"in_channels=3.* returned None.*\nHint: the model takes model.in_channels channels"),
    (_valid_padding_formula, r"padding='same'\)\) = 92; .* 8\nHint: that is the answer for valid padding"),
    (lambda model: 2 * model.depth + 8 if model.depth > 1 else 18,
     r"depth=3.* = 14; .* 92, and model\(x\) raises ValueError for n = 14\nHint: return only a size"),
    (lambda model: 6 if model.depth > 1 else 18, r"depth=3.* = 6; .*\nHint: the first max-pool accepts it"),
    (_raises_on_invalid, r"raised ValueError: input height 1 is not valid.*\nHint: UNet refuses .* catch it"),
    (lambda model: str(smallest_valid_input_by_trying(model)), r"returned '18'; expected an int"),
    (lambda model: smallest_valid_input_by_trying(model, start=19) if model.depth == 1 else 200,
     r"= 20; .* 18\nHint: off by one step"),
    (lambda model: smallest_valid_input_by_trying(model) + 32 if model.depth == 1 else 0,
     r"= 50; .* 18\nHint: a smaller size, 18, also runs"),
])
def test_check_smallest_valid_input_names_the_mistake(broken, match):
    with pytest.raises(CheckError, match=match):
        check_smallest_valid_input(broken)
