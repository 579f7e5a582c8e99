"""The checks of notebook 01, intuition: ``check_context_margin``, ``check_convolutionalize``."""

import dis
import types
from collections.abc import Callable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from ..model import UNet, _output_side, _valid_sizes_rule, block_shapes, receptive_field
from ..tiling import _valid_margin, context_margin
from ._core import CheckPassed, T, call, check_float32, fail, learner_check, passed

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

SHOWN_DEPTHS = range(5)   # the margins a message may print: the U at the top shows depth 4, the rest follows by hand
FIXED_DEPTHS = range(6)   # compared on every run; one more depth is drawn afresh (DRAWN_DEPTHS)
# drawn afresh on every run, never printed: no table of printed answers passes, and a table built
# beforehand must guess it; up to 7, so that a learner's simulation with one-channel layers stays
# quick (depth 7: a 1,532x1,532 input at the least)
DRAWN_DEPTHS = range(6, 8)


def _fresh_rng() -> np.random.Generator:
    """A generator seeded afresh on every call (from the operating system): the depth the check
    draws differs between runs, so that no table of the margins its messages printed passes."""
    return np.random.default_rng()


def _network_margin(depth: int) -> int:
    """Pixels per side that a valid U-Net of ``depth`` loses, from the network's own size arithmetic
    (what ``UNet.min_input_size`` and ``UNet.output_size`` compute, without building a model)."""
    n = _valid_sizes_rule(depth, "valid")[0]
    return (n - _output_side(n, depth, "valid")) // 2


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


def _numbers(value: object) -> set[int]:
    """The whole numbers a container holds (one level of nesting), or none for anything else."""
    if isinstance(value, Mapping):
        items = list(value.values())
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
    elif isinstance(value, (np.ndarray, torch.Tensor)) and 0 < value.ndim <= 2 and len(value) < 10_000:
        items = value.tolist()
    else:
        return set()
    flat = [x for item in items for x in (item if isinstance(item, (list, tuple)) else [item])]
    return {int(x) for x in flat if isinstance(x, (int, float, np.integer, np.floating))
            and not isinstance(x, bool) and float(x).is_integer()}


def _codes(fn: types.FunctionType) -> list[types.CodeType]:
    """The code of ``fn`` and of every function and comprehension defined inside it."""
    codes = [fn.__code__]
    for code in codes:   # grows while it is read: nested code inside nested code
        codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    return codes


def _contents(cell: types.CellType) -> object:
    """What a closure cell holds, or None while it is still empty."""
    try:
        return cell.cell_contents
    except ValueError:
        return None


def _unwrapped(fn: object) -> object:
    """The function inside ``functools.cache`` and other wrappers that keep it as ``__wrapped__``."""
    while callable(fn) and hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    return fn


def _tables(fn: object) -> Iterator[tuple[str, set[int]]]:
    """(name, the whole numbers it holds) for everything ``fn`` can read its answers from without
    computing them: the constants of its code (a literal table), and, unless its code stores into a
    container (a memo it fills itself), its defaults, its closure and the globals its code names;
    the learner's own functions it names are followed."""
    seen: set[int] = set()
    stack = [fn]
    while stack:
        fn = _unwrapped(stack.pop())
        if id(fn) in seen or not isinstance(fn, types.FunctionType):
            continue
        seen.add(id(fn))
        codes = _codes(fn)
        constants = [c for code in codes for c in code.co_consts]
        constants += [x for c in constants if isinstance(c, (tuple, frozenset)) for x in c]
        yield f"the constants of {fn.__name__}", _numbers(constants)
        if any(i.opname == "STORE_SUBSCR" for code in codes for i in dis.get_instructions(code)):
            continue                                                # a memo the function fills itself
        named = {name: fn.__globals__[name] for code in codes for name in code.co_names if name in fn.__globals__}
        named.update((name, _contents(cell)) for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()))
        named.update((f"the default of {name}", value) for name, value in zip(
            fn.__code__.co_varnames[fn.__code__.co_argcount - len(fn.__defaults__ or ()):], fn.__defaults__ or ()))
        named.update((f"the default of {name}", value) for name, value in (fn.__kwdefaults__ or {}).items())
        for name, value in named.items():
            function = _unwrapped(value)
            if isinstance(function, types.FunctionType):
                if function.__module__.partition(".")[0] not in ("unet_lib", "torch", "numpy"):
                    stack.append(function)
            else:
                yield name, _numbers(value)


@learner_check
def check_context_margin(context_margin: Callable[[int], int]) -> CheckPassed:
    """``context_margin(depth)`` must give how many pixels a valid-padding U-Net with ``depth``
    poolings loses on each side: (input size - output size) / 2, worked out from the architecture
    (the library's size arithmetic is refused). The answers for depths 0 to 5 and one more depth,
    drawn afresh on every run, are compared as a whole with the wrong sums a learner may make, so
    that the hint names the mistake. A message prints the expected margin only for depths 0 to 4;
    a table of answers (in the function's constants, defaults, closure or the globals it names)
    is refused."""
    drawn = int(_fresh_rng().choice(DRAWN_DEPTHS))
    depths = [*FIXED_DEPTHS, drawn]
    expected = {depth: _network_margin(depth) for depth in depths}
    got = {}
    for depth in depths:
        try:
            got[depth] = call(context_margin, depth, refuse=CONTEXT_MARGIN_SHORTCUTS)
        except (KeyError, IndexError) as error:
            _refuse_tables(context_margin, expected)
            fail("context_margin({depth}) raised {kind}: {error}",
                 "the function must work for any depth, also one this notebook does not show: the check asks "
                 "one more, drawn afresh on every run; work the margin out from the architecture",
                 depth=depth, kind=type(error).__name__, error=str(error))
        if isinstance(got[depth], bool) or not isinstance(got[depth], (int, np.integer)):
            fail("context_margin({depth}) = {got!r}; expected an int (pixels on one side)",
                 "return the number of pixels as an int", depth=depth, got=got[depth])
    _refuse_tables(context_margin, expected)
    wrong = [d for d in depths if got[d] != expected[d]]
    if not wrong:
        return passed("✓ context_margin matches the U-Net's output sizes for depths 0 to 5 and one more, drawn "
                      "on this run")
    depth = wrong[0]
    problem = T("context_margin({depth}) = {got}; a depth-{depth} U-Net loses {expected} pixels on each side") \
        if depth in SHOWN_DEPTHS else T("context_margin({depth}) = {got}, which does not continue the pattern of "
                                        "depths 0 to 4")
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
         "poolings one pixel stands for 2**k input pixels",
         **values)


def _refuse_tables(context_margin: Callable[[int], int], expected: Mapping[int, int]) -> None:
    """Fail when ``context_margin`` can read the margins of three or more depths from a table."""
    margins = {margin: depth for depth, margin in expected.items() if depth > 0}   # depth 0's 2 is any small number
    for name, numbers in _tables(context_margin):
        held = sorted(margins[n] for n in numbers if n in margins)
        if len(held) >= 3:
            fail("context_margin reads its answers from a table ({name} holds the margins of depths {depths}) "
                 "instead of working them out",
                 "a table holds only the depths it was built for, and the check asks one it does not name, drawn "
                 "afresh on every run; work the margin out from the architecture: which layers remove pixels, and "
                 "how many input pixels does one pixel stand for after k poolings?",
                 name=name, depths=", ".join(map(str, held)))


# torch's own convolution of an nn.Conv2d, taken when this module is imported: the check computes
# what the learner's layer does from its weight and bias, whatever its forward has been made to do
_CONV2D_FORWARD = nn.Conv2d._conv_forward
# what makes a module compute its own way instead of the convolution of its weights
_OWN_WAY = ("forward", "_conv_forward", "__call__", "_call_impl")


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
    window of a random, non-square feature map; the layer's output is computed from its weight and
    bias by torch's convolution, and a subclass of nn.Conv2d, a replaced forward or a forward hook
    (the sliding window hidden inside a convolution) is refused."""
    sliding_window = T("a layer that applies linear window by window (in a loop, through unfold, or inside an "
                       "nn.Conv2d of its own making) is section 2's sliding window again; the point is one "
                       "convolution whose weight and bias compute the same numbers")
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
                 "every window position of a larger map" if isinstance(layer, nn.Linear) else sliding_window,
                 what=what, kind=type(layer).__name__)
        if type(layer) is not nn.Conv2d:
            fail("{what} returned a {kind}, a subclass of nn.Conv2d; the exercise asks for an nn.Conv2d itself",
                 sliding_window, what=what, kind=type(layer).__name__)
        replaced = [name for name in _OWN_WAY if name in vars(layer)]
        hooks = len(layer._forward_hooks) + len(layer._forward_pre_hooks)
        if replaced or hooks:
            fail(T("{what} returned an nn.Conv2d whose {name} was replaced; the exercise asks for the convolution "
                   "itself") if replaced else
                 T("{what} returned an nn.Conv2d with forward hooks ({hooks}); the exercise asks for the convolution "
                   "itself"),
                 sliding_window, what=what, name=(replaced or ["forward"])[0], hooks=hooks)
        check_float32(layer, what)
        h, w = size + 3, size + 2                                              # not square
        f = torch.randn(1, channels, h, w)                                     # (1, C, H, W)
        windows = f.unfold(2, size, 1).unfold(3, size, 1)                      # (1, C, 4, 3, size, size)
        windows = windows.permute(0, 2, 3, 1, 4, 5).flatten(3)                 # (1, 4, 3, C * size * size)
        values = dict(what=what, channels=channels, h=h, w=w, size=size, out=out_features)
        with torch.no_grad():
            expected = linear(windows).permute(0, 3, 1, 2)                    # (1, out, 4, 3)
            try:
                got = _CONV2D_FORWARD(layer, f, layer.weight, layer.bias)      # the convolution of its weights
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
            turned = layouts["(channels, rows, columns)"].flip(2, 3)          # rows and columns reversed
            flipped = torch.allclose(got, nn.functional.conv2d(f, turned, linear.bias), atol=1e-5)
        if flipped:
            fail("{what} computes linear's numbers with the kernel turned by 180 degrees: rows and columns reversed",
                 "nn.Conv2d does not flip its kernel: it computes a cross-correlation, in which weight[o, c, i, j] "
                 "multiplies the window's value at (c, i, j), as linear's weight does",
                 **values)
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
