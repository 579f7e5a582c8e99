"""The checks of notebook 01, intuition: ``check_context_margin``, ``check_convolutionalize``."""

from collections.abc import Callable

import torch
from torch import nn

from ..model import UNet
from ._core import CheckPassed, call, check_float32, fail, learner_check

__all__ = ['check_context_margin', 'check_convolutionalize']


@learner_check
def check_context_margin(context_margin: Callable[[int], int]) -> CheckPassed:
    """``context_margin(depth)`` must give how many pixels a valid-padding U-Net with ``depth``
    poolings loses on each side: (input size - output size) / 2."""
    for depth in (0, 1, 2, 3, 4):
        model = UNet(depth=depth, base_channels=1)
        n = model.min_input_size()
        expected = (n - model.output_size(n)) // 2
        got = call(context_margin, depth)
        if got != expected:
            if got == 2 * expected:
                hint = "that is both sides together; the question is about one side"
            elif depth == 0:
                hint = "with depth=0 the U-Net is a single DoubleConv: two unpadded 3x3 convolutions"
            else:
                hint = ("count every DoubleConv: the first, one per level down, one per level up; "
                        "a 3x3 convolution k levels down removes 2**k input pixels per side")
            fail(f"context_margin({depth}) = {got!r}; a depth-{depth} U-Net loses {expected} pixels per side", hint)
    return CheckPassed("✓ context_margin matches the U-Net's output sizes for depth 0 to 4")


@learner_check
def check_convolutionalize(convolutionalize: Callable) -> CheckPassed:
    """``convolutionalize(linear, channels, size)`` must return the ``nn.Conv2d`` that computes
    what the fully connected ``linear`` computes on a flattened (channels, size, size) map, at
    every position of a larger map (Long et al. 2015). Compared with ``linear`` applied to every
    window of a random feature map."""
    torch.manual_seed(0)
    for channels, size, out_features in [(3, 4, 2), (2, 5, 3)]:
        linear = nn.Linear(channels * size * size, out_features)
        layer = call(convolutionalize, linear, channels, size)
        what = f"convolutionalize(nn.Linear({channels * size * size}, {out_features}), {channels}, {size})"
        if not isinstance(layer, nn.Module):
            fail(f"{what} returned a {type(layer).__name__}, not an nn.Module", "return an nn.Conv2d")
        check_float32(layer, what)
        f = torch.randn(1, channels, size + 3, size + 2)                       # (1, C, H, W), not square
        windows = f.unfold(2, size, 1).unfold(3, size, 1)                      # (1, C, 4, 3, size, size)
        windows = windows.permute(0, 2, 3, 1, 4, 5).flatten(3)                 # (1, 4, 3, C * size * size)
        with torch.no_grad():
            expected = linear(windows).permute(0, 3, 1, 2)                    # (1, out, 4, 3)
            try:
                got = layer(f)
            except RuntimeError as e:
                fail(f"{what} fails on a ({channels}, {size + 3}, {size + 2}) map: {str(e).splitlines()[0]}",
                      f"nn.Conv2d(in_channels={channels}, out_channels={out_features}, kernel_size={size})")
        if tuple(got.shape) != tuple(expected.shape):
            fail(f"on a (1, {channels}, {size + 3}, {size + 2}) map {what} gives shape {tuple(got.shape)}; "
                  f"expected {tuple(expected.shape)}, one output per {size}x{size} window",
                  f"kernel_size={size} (the window that linear reads), stride 1 and no padding")
        if torch.allclose(got, expected, atol=1e-5):
            continue
        bias = linear.bias.view(1, -1, 1, 1)
        if torch.allclose(got, expected - bias, atol=1e-5):
            fail(f"{what} computes linear's numbers without its bias", "copy linear.bias into the conv's bias")
        fail(f"{what} computes different numbers than linear on the same window",
              "nn.Flatten flattens (channels, height, width) in that order: "
              "conv.weight = linear.weight.view(out_features, channels, size, size)")
    return CheckPassed("✓ convolutionalize: one convolution computes the fully connected layer at every position")
