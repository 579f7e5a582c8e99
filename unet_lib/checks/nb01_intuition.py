"""The checks of notebook 01, intuition: ``check_context_margin``, ``check_convolutionalize``."""

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..model import UNet, _output_side, _valid_sizes_rule, block_shapes, receptive_field
from ..tiling import _valid_margin, context_margin
from ._core import CheckPassed, call, check_float32, fail, learner_check, passed

__all__ = ['check_context_margin', 'check_convolutionalize']

# What already knows a U-Net's sizes: the exercise is to work the margin out from the architecture.
# UNet as a class: every method (output_size, min_input_size, valid_input_sizes, forward, __init__).
CONTEXT_MARGIN_SHORTCUTS = {
    "UNet": UNet,
    "unet_lib.context_margin": context_margin,
    "unet_lib.receptive_field": receptive_field,
    "unet_lib.block_shapes": block_shapes,
    "unet_lib.model._output_side": _output_side,
    "unet_lib.model._valid_sizes_rule": _valid_sizes_rule,
    "unet_lib.tiling._valid_margin": _valid_margin,
}


def _margin(depth: int, expansive: bool = True, scaled: bool = True, up_levels_shifted: bool = False) -> int:
    """Pixels per side that a valid U-Net loses, and the wrong sums the check recognises: each
    unpadded 3x3 convolution removes one pixel per side at its level, worth 2**level input pixels
    (1 when not ``scaled``); the expansive path's DoubleConvs work at levels depth - 1 ... 0 (1 ...
    depth when ``up_levels_shifted``)."""
    def worth(level: int) -> int:
        return 2 * (2**level if scaled else 1)                 # one DoubleConv: two convolutions
    margin = worth(0)                                                  # inc
    margin += sum(worth(level) for level in range(1, depth + 1))       # one DoubleConv per level down
    if expansive:
        levels = range(1, depth + 1) if up_levels_shifted else range(depth)
        margin += sum(worth(level) for level in levels)
    return margin


@learner_check
def check_context_margin(context_margin: Callable[[int], int]) -> CheckPassed:
    """``context_margin(depth)`` must give how many pixels a valid-padding U-Net with ``depth``
    poolings loses on each side: (input size - output size) / 2, worked out from the architecture
    (the library's size arithmetic is refused). The answers for depths 0 to 5 are compared as a
    whole with the wrong sums a learner may make, so that the hint names the mistake."""
    depths = range(6)
    expected, got = {}, {}
    for depth in depths:
        model = UNet(depth=depth, base_channels=1)
        n = model.min_input_size()
        expected[depth] = (n - model.output_size(n)) // 2
        got[depth] = call(context_margin, depth, refuse=CONTEXT_MARGIN_SHORTCUTS)
        if isinstance(got[depth], bool) or not isinstance(got[depth], (int, np.integer)):
            fail("context_margin({depth}) = {got!r}; expected an int (pixels on one side)",
                 "return the number of pixels as an int", depth=depth, got=got[depth])
    wrong = [d for d in depths if got[d] != expected[d]]
    if not wrong:
        return passed("✓ context_margin matches the U-Net's output sizes for depth 0 to 5")
    depth = wrong[0]
    problem = "context_margin({depth}) = {got}; a depth-{depth} U-Net loses {expected} pixels on each side"
    values = dict(depth=depth, got=int(got[depth]), expected=expected[depth])

    def made(mistake: Callable[[int], int]) -> bool:
        return all(got[d] == mistake(d) for d in depths)

    if made(lambda d: 2 * expected[d]):
        fail(problem, "that is both sides together; the question is about one side", **values)
    if wrong == [0]:
        fail(problem, "with depth=0 the U-Net is a single DoubleConv: what do two unpadded 3x3 convolutions "
                      "remove from each side?", **values)
    if made(lambda d: _margin(d, expansive=False)):
        fail(problem, "the expansive path loses pixels too: every step up ends with a DoubleConv", **values)
    if made(lambda d: _margin(d, scaled=False)):
        fail(problem, "a pixel removed k levels down is not one input pixel: after k 2x2 poolings, how many "
                      "input pixels does one pixel there stand for?", **values)
    if made(lambda d: _margin(d, up_levels_shifted=True)):
        fail(problem, "on the way up, the DoubleConv of a step works after the up-convolution has doubled the "
                      "map: at the finer level it climbs to, not at the level it came from", **values)
    if made(lambda d: expected[d] // 2):
        fail(problem, "every DoubleConv has two unpadded 3x3 convolutions, and each removes a pixel on each side",
             **values)
    fail(problem,
         "which layers remove pixels, and what is one pixel k levels down worth in input pixels? The U at the top "
         "of this notebook shows every size of the depth-4 network (572 in, 388 out)",
         "an unpadded 3x3 convolution removes 1 pixel on each side of the map it works on; after k 2x2 "
         "poolings one pixel stands for 2**k input pixels; count the first DoubleConv, one per level down "
         "and one per level up",
         **values)


def _layouts(linear: nn.Linear, channels: int, size: int) -> dict[str, torch.Tensor]:
    """linear's weights as a (out, C, size, size) kernel, read in nn.Flatten's (C, H, W) order and
    in the orders that a learner may assume instead."""
    out = linear.out_features
    w = linear.weight.detach()
    return {
        "(channels, rows, columns)": w.view(out, channels, size, size),
        "(rows, columns, channels)": w.view(out, size, size, channels).permute(0, 3, 1, 2),
        "(channels, columns, rows)": w.view(out, channels, size, size).transpose(2, 3),
        "(columns, rows, channels)": w.view(out, size, size, channels).permute(0, 3, 2, 1),
    }


@learner_check
def check_convolutionalize(convolutionalize: Callable) -> CheckPassed:
    """``convolutionalize(linear, channels, size)`` must return the ``nn.Conv2d`` that computes
    what the fully connected ``linear`` computes on a flattened (channels, size, size) map, at
    every position of a larger map (Long et al. 2015). Compared with ``linear`` applied to every
    window of a random, non-square feature map."""
    torch.manual_seed(0)
    for channels, size, out_features in [(3, 4, 2), (2, 5, 3)]:
        linear = nn.Linear(channels * size * size, out_features)
        layer = call(convolutionalize, linear, channels, size)
        what = f"convolutionalize(nn.Linear({channels * size * size}, {out_features}), {channels}, {size})"
        if not isinstance(layer, nn.Module):
            fail("{what} returned a {kind}, not a layer", "return an nn.Conv2d, which runs on a whole feature map",
                 what=what, kind=type(layer).__name__)
        if not isinstance(layer, nn.Conv2d):
            fail("{what} returned a {kind}; the exercise asks for one nn.Conv2d",
                 "linear itself reads one flattened window; the exercise asks for the layer that computes it at "
                 "every window position of a larger map" if isinstance(layer, nn.Linear) else
                 "a module that applies linear to every window is section 2's sliding window again; the point is "
                 "one convolution that computes the same numbers",
                 what=what, kind=type(layer).__name__)
        check_float32(layer, what)
        h, w = size + 3, size + 2                                              # not square
        f = torch.randn(1, channels, h, w)                                     # (1, C, H, W)
        windows = f.unfold(2, size, 1).unfold(3, size, 1)                      # (1, C, 4, 3, size, size)
        windows = windows.permute(0, 2, 3, 1, 4, 5).flatten(3)                 # (1, 4, 3, C * size * size)
        values = dict(what=what, channels=channels, h=h, w=w, size=size, out=out_features)
        with torch.no_grad():
            expected = linear(windows).permute(0, 3, 1, 2)                    # (1, out, 4, 3)
            try:
                got = layer(f)
            except RuntimeError as e:
                fail("{what} fails on a (1, {channels}, {h}, {w}) map: {error}",
                     "the layer must read the map's {channels} channels and give linear's {out} outputs at every "
                     "window position",
                     "an nn.Conv2d's weight has shape (out_channels, in_channels, kernel height, kernel width); "
                     "compare it with linear.weight's shape",
                     error=str(e).splitlines()[0], **values)
        if tuple(got.shape) != tuple(expected.shape):
            fail("on a (1, {channels}, {h}, {w}) map {what} gives shape {got}; expected {expected}, one output per "
                 "{size}x{size} window",
                 "every window position counts: neighbouring windows are one pixel apart, and none reaches past the "
                 "map's border",
                 "a convolution's output side is (side + 2 * padding - kernel_size) // stride + 1",
                 got=tuple(got.shape), expected=tuple(expected.shape), **values)
        if torch.allclose(got, expected, atol=1e-5):
            continue
        layouts = _layouts(linear, channels, size)
        right_weights = layer.weight.shape == layouts["(channels, rows, columns)"].shape and torch.allclose(
            layer.weight.detach(), layouts["(channels, rows, columns)"], atol=1e-6)
        if right_weights:   # so the bias is wrong: missing, zero, or the layer's own random one
            fail("{what} has linear's weights in the right places, but not linear's bias",
                 "linear adds its bias after the weighted sum; the convolution must add the same one",
                 "the convolution's bias holds one number per output channel, like linear.bias",
                 **values)
        with torch.no_grad():
            read_as = next((order for order, kernel in list(layouts.items())[1:]
                            if torch.allclose(got, nn.functional.conv2d(f, kernel, linear.bias), atol=1e-5)), None)
        if read_as is not None:
            fail("{what} reads the window in another order than nn.Flatten lays it out: its numbers are linear's "
                 "with the window flattened as {order}",
                 "nn.Flatten turns a (channels, size, size) map into one vector: which of the three indices changes "
                 "fastest along it?",
                 "flatten torch.arange(24.0).view(1, 2, 3, 4) with nn.Flatten() and read off the order",
                 order=read_as, **values)
        fail("{what} computes different numbers than linear on the same window",
             "each output of linear is a weighted sum of the window's channels x size x size values plus a bias; the "
             "convolution must give the same weight to the same (channel, row, column)",
             "find nn.Flatten's order: flatten torch.arange(24.0).view(1, 2, 3, 4) with nn.Flatten() and read off "
             "which index changes fastest",
             **values)
    return passed("✓ convolutionalize: one convolution computes the fully connected layer at every position")
