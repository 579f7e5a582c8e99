"""The checks of notebook 02, contracting path: ``check_contracting_parameters``, ``check_receptive_field``."""

import inspect
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..blocks import DoubleConv, Down
from ..model import UNet, receptive_field
from ._core import CheckPassed, T, call, fail, learner_check, passed

__all__ = ['check_contracting_parameters', 'check_receptive_field']

# copying the library's answer out of its source file, from inside the learner's function
SOURCE_SHORTCUTS = {
    "inspect.getsource": inspect.getsource,
    "inspect.getsourcelines": inspect.getsourcelines,
}

# "without building a model": no module may be built or read during the learner's call, and the
# library's own count is refused; the course's classes are named as the learner wrote them
CONTRACTING_SHORTCUTS = {
    "UNet": UNet,                                         # UNet(...), by any name, on any device
    "UNet.count_parameters": UNet.count_parameters,       # the library's own count (named as itself)
    "DoubleConv": DoubleConv,
    "Down": Down,
    "nn.Conv2d": nn.Conv2d,
    "nn.Module.__init__": nn.Module.__init__,             # any other layer or model built, on any device
    "nn.Module.__getattr__": nn.Module.__getattr__,       # a layer or weight read from a model built earlier
    "nn.Module.parameters": nn.Module.parameters,
    "nn.Module.named_parameters": nn.Module.named_parameters,
    "nn.Module.state_dict": nn.Module.state_dict,
    "nn.Module.modules": nn.Module.modules,
    "nn.Module.named_modules": nn.Module.named_modules,
    "nn.Module.children": nn.Module.children,
    "nn.Module.named_children": nn.Module.named_children,
    **SOURCE_SHORTCUTS,
}


def _fresh_rng() -> np.random.Generator:
    """A generator seeded afresh on every call (from the operating system): the case a check draws
    at random differs between runs, so that no table of the counts its messages printed passes."""
    return np.random.default_rng()


def _contracting_parameters(in_channels: int, base_channels: int, depth: int, batch_norm: bool = False,
                            bias: bool | None = None, norm_per_channel: int = 2, double: bool = True,
                            levels: int | None = None, convs: int = 2) -> int:
    """The parameters of inc and the downs, by arithmetic, with the mistakes the check recognises:
    each convolution has a bias unless BatchNorm follows it (``bias``), BatchNorm has a scale and
    a shift per channel (``norm_per_channel``)."""
    bias = (not batch_norm) if bias is None else bias
    per_channel = bias + (norm_per_channel if batch_norm else 0)

    def block(c_in: int, c_out: int) -> int:
        return 9 * c_in * c_out + 9 * c_out * c_out * (convs - 1) + per_channel * c_out * convs
    widths = [base_channels * (2**level if double else 1) for level in range(depth + 2)]
    n = block(in_channels, widths[0])
    return n + sum(block(widths[k], widths[k + 1]) for k in range(depth if levels is None else levels))


@learner_check
def check_contracting_parameters(contracting_parameters: Callable[..., int]) -> CheckPassed:
    """``contracting_parameters(in_channels, base_channels, depth, batch_norm)`` must count the
    parameters of a U-Net's contracting path, ``inc`` and every ``Down`` (the last is the
    bottleneck), as the model has them, without building a model (building or reading any module
    during the call is refused). Five fixed configurations and a sixth drawn afresh on every run."""
    cases = [(1, 64, 4, False), (3, 8, 2, False), (1, 4, 0, False), (1, 16, 3, True), (2, 5, 3, True)]
    rng, drawn = _fresh_rng(), cases[0]
    while drawn in cases:   # 3 x 7 x 4 x 2 = 168 configurations, one of them a fixed case
        drawn = (int(rng.integers(2, 5)), int(rng.integers(3, 10)), int(rng.integers(1, 5)), bool(rng.integers(2)))
    cases.append(drawn)
    for in_channels, base_channels, depth, batch_norm in cases:
        with torch.device("meta"):   # shapes without memory: the paper's network in no time
            model = UNet(in_channels=in_channels, base_channels=base_channels, depth=depth, batch_norm=batch_norm)
        expected = sum(p.numel() for part in (model.inc, *model.downs) for p in part.parameters())
        args = (in_channels, base_channels, depth)
        values = dict(in_channels=in_channels, base_channels=base_channels, depth=depth, batch_norm=batch_norm)
        try:
            inspect.signature(contracting_parameters).bind(*args, batch_norm)
        except (TypeError, ValueError) as e:
            fail("{name} cannot be called as {name}(in_channels, base_channels, depth, batch_norm): {error}",
                 "keep the exercise's signature: contracting_parameters(in_channels, base_channels, depth, "
                 "batch_norm=False)", name=getattr(contracting_parameters, "__name__", "the answer"), error=str(e))
        got = call(contracting_parameters, *args, batch_norm, refuse=CONTRACTING_SHORTCUTS)
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
            fail("contracting_parameters({in_channels}, {base_channels}, {depth}, batch_norm={batch_norm}) = {got!r}; "
                 "expected an int", "return the count as an int", got=got, **values)
        if got == expected:
            continue
        problem = ("contracting_parameters({in_channels}, {base_channels}, {depth}, batch_norm={batch_norm}) = "
                   "{got:,}; the model's inc and downs have {expected:,}")
        values.update(got=int(got), expected=expected)
        whole = UNet.count_parameters(in_channels=in_channels, base_channels=base_channels, depth=depth,
                                      batch_norm=batch_norm)
        if got == whole:
            fail(problem, "that is the whole U-Net; count only the contracting path: inc and the downs", **values)
        if batch_norm:
            if got == _contracting_parameters(*args):
                fail(problem, "with batch_norm=True each DoubleConv is built differently: read section 2's source "
                              "of DoubleConv again", **values)
            if got == _contracting_parameters(*args, batch_norm=True, bias=True):
                fail(problem, "a convolution followed by BatchNorm has no bias: BatchNorm's own shift takes its place",
                     **values)
            if got in (_contracting_parameters(*args, batch_norm=True, norm_per_channel=4),
                       _contracting_parameters(*args, batch_norm=True, bias=True, norm_per_channel=4)):
                fail(problem, "BatchNorm learns two numbers per channel, a scale and a shift; its running mean and "
                              "variance are buffers, updated by counting, not learned parameters", **values)
        if got == _contracting_parameters(*args, batch_norm=batch_norm, bias=False, norm_per_channel=2):
            fail(problem, "each convolution also has one bias per output channel (unless BatchNorm follows it)",
                 **values)
        if got == _contracting_parameters(*args, batch_norm=batch_norm, double=False):
            fail(problem, "each Down doubles the channels: how many channels does level k have?", **values)
        if got == _contracting_parameters(*args, batch_norm=batch_norm, levels=depth + 1):
            fail(problem, "there are depth Downs after inc, not depth + 1", **values)
        if got == _contracting_parameters(*args, batch_norm=batch_norm, levels=max(depth - 1, 0)):
            fail(problem, "there are depth Downs after inc (the last one is the bottleneck)", **values)
        if got == _contracting_parameters(*args, batch_norm=batch_norm, convs=1):
            fail(problem, "every DoubleConv has two 3x3 convolutions: c_in -> c_out, then c_out -> c_out", **values)
        if got == _contracting_parameters(base_channels, base_channels, depth, batch_norm=batch_norm):
            fail(problem, "the first convolution reads the image: in_channels, not base_channels", **values)
        fail(problem,
             "count one convolution first: a 3x3 convolution from c_in to c_out channels has a 3x3 kernel for every "
             "pair of input and output channels, and a bias per output channel; max-pooling learns nothing",
             "level k of the contracting path has base_channels * 2**k channels; inc reads in_channels",
             **values)
    return passed("✓ contracting_parameters matches the model for six configurations, the paper's and the course "
                  "model's (BatchNorm) included, one of them drawn at random on every run")


def _probe_ready(module: nn.Module) -> nn.Module:
    """``module`` with positive weights and biases: every ReLU stays on, so the gradient reaches
    every input pixel the output depends on."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.abs() + 1e-3)
    return module.eval()


def _he_positive(module: nn.Module) -> nn.Module:
    """``module`` initialised as ``UNet`` initialises it (He weights, zero biases), then made positive
    as the follow-up of exercise 2 makes the paper's network: |weight| + 1e-3, biases 1e-3. Every
    ReLU is on at a zero input, but only just: a signed input switches many of them off."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                m.weight.abs_().add_(1e-3)
                m.bias.fill_(1e-3)
    return module.eval()


def _gated_row(width: int) -> nn.Module:
    """A 1x1 convolution and a ReLU, then a 1 x ``width`` convolution: every input pixel passes its
    own ReLU, which is on at a zero input (bias 1e-3) and off where the input is negative."""
    block = _probe_ready(nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU(), nn.Conv2d(1, 1, (1, width))))
    with torch.no_grad():
        block[0].bias.fill_(1e-3)
    return block


def _dependence(block: nn.Module, in_channels: int, size: int, pixel: tuple[int, int] | None = None) -> torch.Tensor:
    """(H, W) bool: the input pixels that output pixel ``pixel`` (the centre) of channel 0 depends on."""
    x = torch.zeros(1, in_channels, size, size, requires_grad=True)
    y = block(x)
    i, j = pixel if pixel is not None else (y.shape[-2] // 2, y.shape[-1] // 2)
    y[0, 0, i, j].backward()
    return x.grad[0].abs().sum(0) > 0


def _span(on: torch.Tensor) -> int:
    """From the first to the last index where ``on`` (1-D bool) is true, both included."""
    at = on.nonzero()
    return int(at.max() - at.min() + 1)


def _window_width(block: nn.Module, in_channels: int, size: int, pixel: tuple[int, int] | None = None) -> int:
    """The check's own measurement: from the first to the last input column that output pixel
    ``pixel`` (the centre) depends on, both included."""
    return _span(_dependence(block, in_channels, size, pixel).any(dim=0))


RECEPTIVE_FIELD_SHORTCUTS = {
    "unet_lib.receptive_field": receptive_field,
    "the check's own measurement": _window_width,
    **SOURCE_SHORTCUTS,
}

TRAP_SEEDS = (1, 2, 3)   # a block whose ReLUs a signed probe switches off is measured after each of these seeds


def _drawn_block(rng: np.random.Generator) -> tuple[str, Callable[[], nn.Module], int, int]:
    """A block drawn afresh on every run: a dilated convolution with a random kernel width, a ReLU
    and a 3x3 convolution, on a random number of input channels and a random size."""
    in_channels, kernel_width, dilation = int(rng.integers(1, 4)), int(rng.choice([3, 5, 7])), int(rng.integers(1, 4))
    size = (kernel_width - 1) * dilation + 3 + int(rng.integers(2, 9))
    name = f"nn.Conv2d({in_channels}, 2, (3, {kernel_width}), dilation={dilation}), ReLU, nn.Conv2d(2, 1, 3)"
    return (name, lambda: nn.Sequential(nn.Conv2d(in_channels, 2, (3, kernel_width), dilation=dilation), nn.ReLU(),
                                        nn.Conv2d(2, 1, 3)), in_channels, size)


def _measure(measure_receptive_field: Callable, block: nn.Module, name: str, in_channels: int, size: int):
    """The learner's measurement, with the learner's own errors said in the check's words."""
    block.zero_grad()
    values = dict(name=name, in_channels=in_channels, size=size)
    try:
        got = call(measure_receptive_field, block, in_channels, size, refuse=RECEPTIVE_FIELD_SHORTCUTS)
    except NotImplementedError:       # the skeleton: call's message, as it is
        raise
    except (IndexError, RuntimeError) as error:
        fail("measure_receptive_field({name}, {in_channels}, {size}) raised {error}",
             T("the output of an unpadded block is smaller than its input: take the centre of the output, by the "
               "output's own size") if isinstance(error, IndexError) else
             T("print the shapes of your probe, of the block's output and of the input's gradient for this block; "
               "a gradient that is zero everywhere means that no path from the input reached the output pixel"),
             error=f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}", **values)
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
        fail("measure_receptive_field({name}, {in_channels}, {size}) = {got!r}; expected an int (a width in "
             "input columns)", "return the width as an int", got=got, **values)
    return int(got)


@learner_check
def check_receptive_field(measure_receptive_field: Callable[[nn.Module, int, int], int]) -> CheckPassed:
    """``measure_receptive_field(block, in_channels, size)`` must measure how wide the window of
    input pixels is that the centre output pixel (channel 0) of ``block`` depends on, on a
    (1, in_channels, size, size) input: from its first to its last input column, both included.
    Compared with the check's own gradient measurement on blocks the learner has not seen: seven
    fixed ones; five whose ReLUs a signed (random) probe switches off, each measured after three
    seeds (a signed draw that is the same on every call passes the DoubleConv with probability about
    0.62 and each row with 1/4: all five about once in 400); and one drawn afresh on every run."""
    torch.manual_seed(0)
    cases = [
        ("nn.Conv2d(1, 1, 3)", lambda: nn.Conv2d(1, 1, 3), 1, 15),
        ("nn.Conv2d(1, 1, 5)", lambda: nn.Conv2d(1, 1, 5), 1, 15),
        ("DoubleConv(2, 4)", lambda: DoubleConv(2, 4), 2, 17),
        ("a 3x3 convolution with dilation=2", lambda: nn.Conv2d(1, 1, 3, dilation=2), 1, 15),
        ("nn.Conv2d(1, 1, (3, 7)), 3 rows by 7 columns", lambda: nn.Conv2d(1, 1, (3, 7)), 1, 15),
        ("three padded 3x3 convolutions", lambda: nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1) for _ in range(3)]),
         1, 16),
        ("DoubleConv, 2x2 average pooling, DoubleConv",
         lambda: nn.Sequential(DoubleConv(1, 2), nn.AvgPool2d(2), DoubleConv(2, 2)), 1, 36),
    ]
    traps = [
        ("DoubleConv(1, 1), He-initialised as in UNet, then |weight| + 1e-3 and biases 1e-3",
         lambda: _he_positive(DoubleConv(1, 1)), 1, 15),
        *[(f"a 1x1 convolution and a ReLU (bias 1e-3), then a 1x{width} convolution",
           lambda width=width: _gated_row(width), 1, size) for width, size in [(5, 11), (9, 15), (7, 16), (11, 18)]],
    ]
    plan = [(case, False) for case in cases] + [(case, True) for case in traps] + [(_drawn_block(_fresh_rng()), False)]
    for (name, make, in_channels, size), trap in plan:
        block = make() if trap else _probe_ready(make())
        expected = _window_width(block, in_channels, size)
        values = dict(name=name, in_channels=in_channels, size=size, expected=expected)
        if trap:
            widths = []
            for seed in TRAP_SEEDS:
                torch.manual_seed(seed)
                widths.append(_measure(measure_receptive_field, block, name, in_channels, size))
            if widths != [expected] * len(widths):
                fail("measure_receptive_field({name}, {in_channels}, {size}) gave {widths} on three calls, each after "
                     "another random seed; the centre output pixel's window is {expected} input columns wide",
                     "your probe switched some of the block's ReLUs off: where the input is negative, the "
                     "pre-activations behind it can be negative too, and a ReLU that is off passes no gradient "
                     "back. The block's weights and biases are positive: which input leaves every ReLU on?",
                     "probe with an input that has no negative values: with positive weights and biases every "
                     "pre-activation is then positive, whatever the seed",
                     widths=widths, **values)
            continue
        got = _measure(measure_receptive_field, block, name, in_channels, size)
        values["got"] = got
        if got == expected:
            continue
        problem = ("measure_receptive_field({name}, {in_channels}, {size}) = {got}; the centre output pixel's window "
                   "is {expected} input columns wide (from its first to its last column, both included)")
        block.zero_grad()
        on = _dependence(block, in_channels, size)
        block.zero_grad()
        corner = _window_width(block, in_channels, size, pixel=(0, 0))
        if got == expected - 1:
            fail(problem, "count both ends: a window from column a to column b is b - a + 1 columns wide", **values)
        if got == size:
            fail(problem, "that is the whole input: the window of ONE output pixel, not of all the outputs together",
                 "the gradient of a sum of outputs reaches every input pixel that any of them depends on", **values)
        if got == int(on.any(dim=0).sum()):
            fail(problem, "you counted the columns that matter; the window also spans the columns between them that "
                          "do not (a dilated convolution reads every other column)", **values)
        if got == _span(on.any(dim=1)):
            fail(problem, "that is the window's height, in rows; the width is along the last dimension, the columns",
                 **values)
        if got == _span(on.flatten()):
            fail(problem, "that is a span of the flattened input, whose index runs along each row and then on to the "
                          "next row: keep the two dimensions apart and take the columns", **values)
        if got == corner:
            fail(problem, "take the centre output pixel: at a corner, part of the window falls outside the input "
                          "(into the padding)", **values)
        fail(problem,
             "the gradient of one output value with respect to the input is non-zero exactly on the input pixels it "
             "depends on (notebook 01, section 5); the window runs from the first to the last such column",
             "give the input requires_grad=True, call .backward() on one output value, and look at where the "
             "input's .grad is non-zero",
             **values)
    return passed("✓ measure_receptive_field agrees with the gradient on thirteen blocks: padded, dilated, non-square "
                  "and pooled ones, five whose ReLUs a signed probe would switch off, and one drawn at random on every "
                  "run")
