"""The checks of notebook 03, bottleneck and expansive path: ``check_up_forward``, ``check_overlap_counts``, ``check_up_conv``."""

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..blocks import center_crop
from ._core import CheckPassed, call, check_float32, fail, learner_check

__all__ = ['check_up_forward', 'check_overlap_counts', 'check_up_conv']


@learner_check
def check_up_conv(make_up_conv: Callable[[int], nn.Module]) -> CheckPassed:
    """``make_up_conv(in_channels)`` must return the paper's up-convolution: (B, C, H, W) ->
    (B, C/2, 2H, 2W) with a learned 2x2 kernel."""
    for c in (4, 16):
        layer = call(make_up_conv, c)
        if not isinstance(layer, nn.Module):
            fail(f"make_up_conv({c}) returned a {type(layer).__name__}, not an nn.Module",
                  "return the layer itself: nn.ConvTranspose2d(...)")
        check_float32(layer, f"make_up_conv({c})")
        x = torch.randn(1, c, 5, 7)
        with torch.no_grad():
            y = layer(x)
        if tuple(y.shape) != (1, c // 2, 10, 14):
            if y.shape[1] != c // 2:
                hint = "the up-convolution halves the channels: out_channels = in_channels // 2"
            else:
                hint = "kernel_size=2 with stride=2 doubles H and W exactly"
            fail(f"make_up_conv({c}) maps (1, {c}, 5, 7) to {tuple(y.shape)}; expected (1, {c // 2}, 10, 14)", hint)
        n_params, n_expected = sum(p.numel() for p in layer.parameters()), c * (c // 2) * 4 + c // 2
        if n_params != n_expected:
            fail(f"make_up_conv({c}) has {n_params} parameters; a 2x2 up-convolution from {c} to {c // 2} "
                  f"channels has {n_expected}", "use nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)")
    return CheckPassed("✓ make_up_conv doubles H and W and halves the channels with a learned 2x2 kernel")


@learner_check
def check_up_forward(up_forward: Callable) -> CheckPassed:
    """``up_forward(up, x, skip)`` must compute one step of the expansive path with the layers of
    the ``Up`` block ``up`` (upsample, crop the skip, concatenate, DoubleConv), as ``Up.forward``
    does, without calling ``up(x, skip)``."""
    from ..blocks import Up
    torch.manual_seed(0)
    cases = [("Up(8, 4), even crop", Up(8, 4), (2, 8, 5, 6), (2, 4, 18, 20)),
             ("Up(8, 4), odd crop", Up(8, 4), (1, 8, 4, 4), (1, 4, 13, 11)),
             ("Up(6, 3, padding='same', upsampling='bilinear')", Up(6, 3, padding="same", upsampling="bilinear"),
              (1, 6, 3, 5), (1, 3, 6, 10))]

    def blocked(*args, **kwargs):
        fail("up_forward called up(x, skip), which runs the library's Up.forward",
              "write the steps yourself with up.up, center_crop, torch.cat and up.conv")

    for name, up, x_shape, skip_shape in cases:
        x, skip = torch.randn(x_shape), torch.randn(skip_shape)
        with torch.no_grad():
            expected = Up.forward(up, x, skip)
            up.forward = blocked                     # an instance attribute: up(x, skip) lands here
            try:
                got = call(up_forward, up, x, skip)
            except NotImplementedError:              # the skeleton: _call's message, as it is
                raise
            except RuntimeError as e:
                fail(f"{name}: up_forward raised {str(e).splitlines()[0]!r}",
                      "x = up.up(x) first; then crop the skip to x's size, center_crop(skip, x.shape[-2:]), "
                      "and concatenate along the channels (dim=1) before up.conv")
            finally:
                del up.forward
        if not isinstance(got, torch.Tensor):
            fail(f"{name}: up_forward returned a {type(got).__name__}", "return the output of up.conv")
        if tuple(got.shape) != tuple(expected.shape):
            hint = ("that is the concatenation: finish with up.conv (the level's DoubleConv)"
                    if got.shape[1] == x_shape[1] else "x = up.up(x); skip = center_crop(skip, x.shape[-2:]); "
                    "x = torch.cat([skip, x], dim=1); return up.conv(x)")
            fail(f"{name}: x {x_shape}, skip {skip_shape} gave shape {tuple(got.shape)}; "
                  f"expected {tuple(expected.shape)}", hint)
        if torch.allclose(got, expected, atol=1e-5):
            continue
        with torch.no_grad():
            y = up.up(x)
            swapped = up.conv(torch.cat([y, center_crop(skip, y.shape[-2:])], dim=1))
        if torch.allclose(got, swapped, atol=1e-5):
            fail(f"{name}: the skip and the upsampled map are concatenated in the other order",
                  "unet_lib's Up puts the skip first, torch.cat([skip, x], dim=1): the order decides which "
                  "input channels of up.conv read which map")
        fail(f"{name}: right shape, different values",
              "crop the centre of the skip (center_crop keeps the middle; with an odd difference the extra "
              "row goes at the bottom), not a corner")
    return CheckPassed("✓ up_forward: upsample, centre crop, skip first, DoubleConv; same output as Up")


@learner_check
def check_overlap_counts(overlap_counts: Callable[[int, int, int], torch.Tensor]) -> CheckPassed:
    """``overlap_counts(kernel_size, stride, size)`` must return the (H_out, W_out) map of how many
    input pixels write into each output pixel of a transposed convolution with that kernel size and
    stride, on a size x size input (Odena et al. 2016). Compared with a transposed convolution of a
    kernel of ones over an input of ones."""
    import torch.nn.functional as F
    for kernel_size, stride, size in [(2, 2, 3), (3, 2, 3), (4, 2, 4), (3, 1, 3), (5, 3, 2)]:
        expected = F.conv_transpose2d(torch.ones(1, 1, size, size), torch.ones(1, 1, kernel_size, kernel_size),
                                      stride=stride)[0, 0].numpy()
        what = f"overlap_counts(kernel_size={kernel_size}, stride={stride}, size={size})"
        got = call(overlap_counts, kernel_size, stride, size)
        if isinstance(got, torch.Tensor):
            got = got.detach().cpu().numpy()
        if not isinstance(got, np.ndarray):
            fail(f"{what} returned a {type(got).__name__}; expected a tensor of shape {expected.shape}",
                  "return the (H_out, W_out) map itself")
        if got.shape != expected.shape:
            hint = ("drop the batch and channel dimensions: return y[0, 0]" if got.squeeze().shape == expected.shape
                    else "a transposed convolution makes (size - 1) * stride + kernel_size pixels per side")
            fail(f"{what} has shape {got.shape}; expected {expected.shape}", hint)
        if np.allclose(got, expected):
            continue
        if np.ptp(got - expected) < 1e-6:
            hint = "no bias (bias=False): the bias adds the same number to every pixel"
        elif not np.allclose(got, np.round(got)):
            hint = "counts are whole numbers: a kernel of ones (weight.fill_(1)) on an input of ones"
        else:
            hint = (f"nn.ConvTranspose2d(1, 1, {kernel_size}, stride={stride}, bias=False) with weights of ones, "
                    f"applied to torch.ones(1, 1, {size}, {size})")
        fail(f"{what} differs from the number of input pixels that reach each output pixel", hint)
    return CheckPassed("✓ overlap_counts: uneven where the stride does not divide the kernel size, even where it does")
