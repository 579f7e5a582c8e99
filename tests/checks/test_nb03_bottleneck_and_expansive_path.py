"""Tests for unet_lib.checks.nb03_bottleneck_and_expansive_path: ``check_up_forward``, ``check_overlap_counts``, ``check_up_conv`` both ways.

Each check passes the library's implementation (or a correct one worked out here) and fails
deliberately broken versions with the intended message."""

import pytest
import torch
from checktools import assert_passes, assert_skeleton_is_friendly
from torch import nn

from unet_lib import UNet, Up, center_crop
from unet_lib.checks import (
    CheckError,
    check_overlap_counts,
    check_up_conv,
    check_up_forward,
)


def make_up_conv(in_channels: int) -> nn.Module:
    return nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)


def test_check_up_conv_passes_the_library_layer():
    assert_passes(check_up_conv, make_up_conv)
    assert_passes(check_up_conv, lambda c: UNet(depth=1, base_channels=c // 2).ups[0].up)   # the one in UNet


BROKEN_UP_CONV = {
    "channels kept (wrong shape)": (lambda c: nn.ConvTranspose2d(c, c, 2, stride=2),
                                    r"make_up_conv\(4\) maps \(1, 4, 5, 7\) to \(1, 4, 10, 14\); expected "
                                    r"\(1, 2, 10, 14\)\nHint: the up-convolution halves the channels"),
    "3x3 kernel (off by one)": (lambda c: nn.ConvTranspose2d(c, c // 2, 3, stride=2),
                                r"to \(1, 2, 11, 15\); expected \(1, 2, 10, 14\)\nHint: kernel_size=2 with stride=2"),
    "bilinear (no learned 2x2 kernel)": (
        lambda c: nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(c, c // 2, 1)),
        r"make_up_conv\(4\) has 10 parameters; a 2x2 up-convolution from 4 to 2 channels has 34\n"
        r"Hint: use nn.ConvTranspose2d"),
    "float64 (wrong dtype)": (lambda c: make_up_conv(c).double(), r"make_up_conv\(4\) has torch.float64 parameters"),
    "a function, not a layer": (lambda c: (lambda x: x), r"make_up_conv\(4\) returned a function, not an nn.Module"),
}


@pytest.mark.parametrize("answer, match", BROKEN_UP_CONV.values(), ids=BROKEN_UP_CONV.keys())
def test_check_up_conv_fails_a_broken_layer(answer, match):
    with pytest.raises(CheckError, match=match):
        check_up_conv(answer)


def up_forward(up: Up, x: torch.Tensor, skip: torch.Tensor, mistake: str | None = None) -> torch.Tensor:
    x = up.up(x)
    if mistake == "top-left crop":
        skip = skip[..., : x.shape[-2], : x.shape[-1]]
    elif mistake != "no crop":
        skip = center_crop(skip, x.shape[-2:])
    x = torch.cat([x, skip] if mistake == "swapped" else [skip, x], dim=1)
    return x if mistake == "no conv" else up.conv(x)


def test_check_up_forward_passes_a_correct_answer():
    assert_passes(check_up_forward, up_forward)
    assert_skeleton_is_friendly(check_up_forward, "up_forward")


BROKEN_UP_FORWARD = {
    "swapped": (lambda u, x, s: up_forward(u, x, s, "swapped"), r"concatenated in the other order\n"
                                                                r"Hint: unet_lib's Up puts the skip first"),
    "top-left crop": (lambda u, x, s: up_forward(u, x, s, "top-left crop"), r"right shape, different values\n"
                                                                            r"Hint: crop the centre"),
    "no crop": (lambda u, x, s: up_forward(u, x, s, "no crop"), r"up_forward raised .*\nHint: x = up.up\(x\) first"),
    "no conv": (lambda u, x, s: up_forward(u, x, s, "no conv"), r"gave shape \(2, 8, 10, 12\); expected \(2, 4, 6, 8\)"
                                                                r"\nHint: that is the concatenation"),
    "calls the library": (lambda u, x, s: u(x, s), r"called up\(x, skip\).*\nHint: write the steps yourself"),
}


@pytest.mark.parametrize("answer, match", BROKEN_UP_FORWARD.values(), ids=BROKEN_UP_FORWARD.keys())
def test_check_up_forward_fails_a_broken_step(answer, match):
    with pytest.raises(CheckError, match=match):
        check_up_forward(answer)


def overlap_counts(kernel_size: int, stride: int, size: int, bias: float = 0.0, keep_dims: bool = False):
    layer = nn.ConvTranspose2d(1, 1, kernel_size, stride=stride, bias=bias != 0.0)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        if bias:
            layer.bias.fill_(bias)
        y = layer(torch.ones(1, 1, size, size))
    return y if keep_dims else y[0, 0]


def test_overlap_counts_by_hand():
    # kernel 3, stride 2, 2 inputs per side: the middle column is painted by both
    assert overlap_counts(3, 2, 2)[0].tolist() == [1, 1, 2, 1, 1]
    assert overlap_counts(2, 2, 3).eq(1).all()                    # the paper's up-convolution: no overlap


def test_check_overlap_counts_passes_a_correct_answer():
    assert_passes(check_overlap_counts, overlap_counts)
    assert_passes(check_overlap_counts, lambda k, s, n: overlap_counts(k, s, n).numpy())
    assert_skeleton_is_friendly(check_overlap_counts, "overlap_counts")


BROKEN_OVERLAP_COUNTS = {
    "bias": (lambda k, s, n: overlap_counts(k, s, n, bias=0.5), r"differs .*\nHint: no bias"),
    "random weights": (lambda k, s, n: nn.ConvTranspose2d(1, 1, k, stride=s, bias=False)(torch.ones(1, 1, n, n))[0, 0],
                       r"differs .*\nHint: counts are whole numbers"),
    "batch dimensions kept": (lambda k, s, n: overlap_counts(k, s, n, keep_dims=True),
                              r"has shape \(1, 1, 6, 6\); expected \(6, 6\)\nHint: drop the batch"),
    "stride ignored": (lambda k, s, n: overlap_counts(k, 1, n), r"stride=2, size=3\) has shape \(4, 4\); "
                                                                r"expected \(6, 6\)\nHint: .*\(size - 1\) \* stride"),
    "a list": (lambda k, s, n: overlap_counts(k, s, n).tolist(), r"returned a list"),
}


@pytest.mark.parametrize("answer, match", BROKEN_OVERLAP_COUNTS.values(), ids=BROKEN_OVERLAP_COUNTS.keys())
def test_check_overlap_counts_fails_a_broken_map(answer, match):
    with torch.no_grad(), pytest.raises(CheckError, match=match):
        check_overlap_counts(answer)
