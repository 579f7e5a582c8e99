"""Tests for unet_lib.blocks: shapes, parameter counts, crop, and the error paths."""

import numpy as np
import pytest
import torch
from torch import nn

from unet_lib.blocks import DoubleConv, Down, OutConv, Up, center_crop


def numpy_center_crop(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Independent oracle: the centre window by explicit index lists."""
    H, W = a.shape[-2:]
    rows = np.arange(H)[(H - h) // 2:][:h]
    cols = np.arange(W)[(W - w) // 2:][:w]
    return a[..., rows[:, None], cols[None, :]]


@pytest.mark.parametrize("shape", [(2, 3, 12, 10), (1, 1, 7, 9), (4, 5)])
@pytest.mark.parametrize("size", [(4, 4), (3, 5), (1, 1), (4, 5)])
def test_center_crop_matches_numpy(shape, size):
    x = torch.arange(int(np.prod(shape)), dtype=torch.float32).reshape(shape)
    got = center_crop(x, size)
    assert tuple(got.shape) == shape[:-2] + size
    np.testing.assert_array_equal(got.numpy(), numpy_center_crop(x.numpy(), *size))


def test_center_crop_by_hand():
    x = torch.arange(16).reshape(4, 4)
    assert center_crop(x, 2).tolist() == [[5, 6], [9, 10]]
    # odd difference: the extra row and column go at the bottom and right
    assert center_crop(x, 3).tolist() == [[0, 1, 2], [4, 5, 6], [8, 9, 10]]


def test_center_crop_int_size_and_identity():
    x = torch.randn(1, 2, 6, 6)
    assert torch.equal(center_crop(x, 6), x)


@pytest.mark.parametrize("size", [(9, 4), (4, 11), (0, 3)])
def test_center_crop_rejects_impossible_sizes(size):
    with pytest.raises(ValueError, match=r"cannot crop a 8x10 map to .*between 1x1 and 8x10"):
        center_crop(torch.zeros(1, 1, 8, 10), size)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("memory_format", [torch.channels_last, torch.contiguous_format])
def test_center_crop_keeps_the_memory_format(memory_format, batch):
    # a U-Net skip is cropped, concatenated and convolved, and also feeds the next layer: a layout
    # change anywhere costs conversions (with channels_last, also for a batch of one)
    x = torch.randn(batch, 3, 8, 8).contiguous(memory_format=memory_format).requires_grad_()
    skip = x * 1                                                 # a non-leaf, like a ReLU output
    grads = []
    skip.register_hook(grads.append)
    crop = center_crop(skip, 4)
    torch.testing.assert_close(crop, x[..., 2:6, 2:6])
    up = torch.randn(batch, 3, 4, 4).contiguous(memory_format=memory_format)
    assert torch.cat([crop, up], dim=1).is_contiguous(memory_format=memory_format)
    upstream = torch.randn(batch, 3, 4, 4)
    crop.backward(upstream)
    expected = torch.zeros(batch, 3, 8, 8)
    expected[..., 2:6, 2:6] = upstream
    torch.testing.assert_close(grads[0], expected)
    assert grads[0].is_contiguous(memory_format=memory_format)


@pytest.mark.parametrize("padding,expected", [("valid", (11, 6)), ("same", (15, 10))])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_double_conv_shapes(padding, expected, batch_norm):
    block = DoubleConv(3, 4, padding=padding, batch_norm=batch_norm)
    assert block(torch.randn(2, 3, 15, 10)).shape == (2, 4, *expected)


def test_double_conv_parameter_count_and_order():
    plain = DoubleConv(3, 4)
    assert sum(p.numel() for p in plain.parameters()) == (3 * 4 * 9 + 4) + (4 * 4 * 9 + 4)
    assert [type(m) for m in plain] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU]
    bn = DoubleConv(3, 4, batch_norm=True)
    # conv -> BN -> ReLU, and no conv bias in front of BatchNorm
    assert [type(m) for m in bn] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * 2
    assert all(m.bias is None for m in bn if isinstance(m, nn.Conv2d))


def test_double_conv_output_is_nonnegative():
    assert (DoubleConv(1, 4)(torch.randn(1, 1, 9, 9)) >= 0).all()


@pytest.mark.parametrize("padding,expected", [("valid", 6), ("same", 10)])
def test_down_halves_then_convolves(padding, expected):
    assert Down(4, 8, padding)(torch.randn(1, 4, 20, 20)).shape == (1, 8, expected, expected)


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
@pytest.mark.parametrize("padding,expected", [("valid", (10, 14)), ("same", (14, 18))])
def test_up_shapes(upsampling, padding, expected):
    up = Up(8, 4, padding=padding, upsampling=upsampling)
    x = torch.randn(2, 8, 7, 9)
    skip = torch.randn(2, 4, 19, 23)            # larger than 2H x 2W: cropped
    assert up(x, skip).shape == (2, 4, *expected)


def test_up_convolution_halves_channels_with_2x2_kernel():
    up = Up(8, 4)
    assert isinstance(up.up, nn.ConvTranspose2d)
    assert tuple(up.up.weight.shape) == (8, 4, 2, 2)


def test_up_concatenates_skip_first():
    """The skip's channels come first in the concatenation: changing only the skip changes
    only what the first half of the input channels of the DoubleConv sees."""
    up = Up(4, 2)
    x, skip = torch.randn(1, 4, 5, 5), torch.randn(1, 2, 10, 10)
    with torch.no_grad():
        up.conv[0].weight[:, 2:] = 0    # ignore the upsampled half
        base = up(x, skip)
        assert torch.equal(base, up(torch.randn(1, 4, 5, 5), skip))


def test_out_conv_returns_raw_logits():
    out = OutConv(4, 3)
    y = out(torch.randn(1, 4, 5, 5) * 10)
    assert y.shape == (1, 3, 5, 5)
    assert (y < 0).any()      # no ReLU, no softmax


@pytest.mark.parametrize("kwargs,match", [
    (dict(padding="full"), r"padding='full' is not supported; use one of 'valid', 'same'"),
])
def test_double_conv_rejects_unknown_padding(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DoubleConv(1, 2, **kwargs)


def test_up_rejects_unknown_upsampling():
    with pytest.raises(ValueError, match=r"upsampling='nearest' is not supported; use one of 'transpose', 'bilinear'"):
        Up(4, 2, upsampling="nearest")


# -- property tests (hypothesis) ---------------------------------------------------------------

from hypothesis import given, settings, strategies as st   # noqa: E402


@settings(max_examples=25, deadline=None)
@given(H=st.integers(1, 20), W=st.integers(1, 20), data=st.data(), channels_last=st.booleans())
def test_property_center_crop_equals_the_index_oracle(H, W, data, channels_last):
    h, w = data.draw(st.integers(1, H)), data.draw(st.integers(1, W))
    x = torch.randn(2, 3, H, W)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = center_crop(x, (h, w))
    assert out.shape == (2, 3, h, w)
    np.testing.assert_array_equal(out.numpy(), numpy_center_crop(x.numpy(), h, w))


@pytest.mark.parametrize("call, error, match", [
    (lambda: center_crop(torch.zeros(4, 4), 2.5), TypeError, r"size must be an integer, got 2.5"),
    (lambda: center_crop(torch.zeros(4, 4), (2, "a")), TypeError, r"size\[1\] must be an integer, got 'a' \(str\)"),
    (lambda: center_crop(np.zeros((4, 4)), 2), TypeError, r"x must be a torch.Tensor, got ndarray .*torch.from_numpy"),
    (lambda: center_crop(torch.zeros(4), 2), ValueError, r"x must have at least 2 dimensions"),
    (lambda: DoubleConv(0, 2), ValueError, "in_channels must be an integer >= 1, got 0"),
    (lambda: DoubleConv(1, 2.0), TypeError, "out_channels must be an integer >= 1, got 2.0"),
    (lambda: DoubleConv(1, 2, batch_norm="yes"), TypeError, "batch_norm must be True or False, got 'yes'"),
    (lambda: Up(1, 2), ValueError, "in_channels must be an integer >= 2"),
    (lambda: OutConv(4, 0), ValueError, "num_classes must be an integer >= 1, got 0"),
])
def test_more_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()
