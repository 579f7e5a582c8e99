"""The checks of notebook 02, contracting path: ``check_contracting_parameters``, ``check_receptive_field``, ``check_double_conv``."""

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..blocks import DoubleConv
from ..model import UNet
from ._core import CheckPassed, call, check_float32, fail, learner_check

__all__ = ['check_contracting_parameters', 'check_receptive_field', 'check_double_conv']


@learner_check
def check_double_conv(cls: Callable[[int, int], nn.Module]) -> CheckPassed:
    """``cls(in_channels, out_channels)`` must build the paper's double convolution. Compared by
    what the block computes with the library's weights, whatever order its layers were created in."""
    torch.manual_seed(0)
    block = call(cls, 3, 8)
    if not isinstance(block, nn.Module):
        fail(f"{cls.__name__}(3, 8) is a {type(block).__name__}, not an nn.Module",
              "subclass nn.Module (or nn.Sequential)")
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in block.modules()):
        fail(f"{cls.__name__}(3, 8) has a BatchNorm layer; the paper's block has none",
              "two unpadded 3x3 convolutions, each followed by a ReLU, and nothing else "
              "(the course's DoubleConv(batch_norm=True) adds BatchNorm; this exercise is the paper's block)")
    reference = DoubleConv(3, 8)
    n_params, n_expected = sum(p.numel() for p in block.parameters()), sum(p.numel() for p in reference.parameters())
    if n_params != n_expected:
        fail(f"{cls.__name__}(3, 8) has {n_params} parameters; the paper's block has {n_expected} "
              f"(3*8*3*3 + 8 for the first convolution, 8*8*3*3 + 8 for the second)",
              "two nn.Conv2d with kernel_size=3, the second from out_channels to out_channels")
    check_float32(block, f"{cls.__name__}(3, 8)")
    x = torch.randn(2, 3, 17, 19)
    with torch.no_grad():
        y = block(x)
    if tuple(y.shape) != (2, 8, 13, 15):
        hint = ("the paper's convolutions are unpadded: use padding=0"
                if tuple(y.shape[-2:]) == (17, 19) else "two unpadded 3x3 convolutions remove 2 pixels per side")
        fail(f"a (2, 3, 17, 19) input gave shape {tuple(y.shape)}; expected (2, 8, 13, 15)", hint)
    # the library's weights, each into the convolution of the same role (3 -> 8 first, 8 -> 8 second),
    # whatever order the layers were created (registered) in: the same function gives the same output
    convs = {m.in_channels: m for m in block.modules() if isinstance(m, nn.Conv2d)}
    if sorted(convs) != [3, 8] or any(c.weight.shape[1:] != (c.in_channels, 3, 3) for c in convs.values()):
        fail(f"{cls.__name__}(3, 8) does not hold one 3 -> 8 and one 8 -> 8 nn.Conv2d with 3x3 kernels",
              "two nn.Conv2d with kernel_size=3: in_channels -> out_channels, then out_channels -> out_channels")
    with torch.no_grad():
        for conv, ref in zip((convs[3], convs[8]), (reference[0], reference[2])):
            conv.weight.copy_(ref.weight)
            if conv.bias is not None:
                conv.bias.copy_(ref.bias)
        y, expected = block(x), reference(x)
    if (y < 0).any():
        fail("the output has negative values", "each convolution is followed by a ReLU, the last one too")
    if not torch.allclose(y, expected, atol=1e-5):
        fail("with the library's weights your block computes different values",
              "apply them in this order: conv (in -> out), ReLU, conv (out -> out), ReLU")
    return CheckPassed(f"✓ {cls.__name__}: shapes, parameter count and values match DoubleConv")


def _contracting_parameters(in_channels: int, base_channels: int, depth: int, bias: bool = True,
                            double: bool = True, levels: int | None = None, convs: int = 2) -> int:
    """The parameters of inc and the downs, by arithmetic, with the mistakes the check recognises."""
    def block(c_in: int, c_out: int) -> int:
        return 9 * c_in * c_out + 9 * c_out * c_out * (convs - 1) + bias * c_out * convs
    widths = [base_channels * (2**level if double else 1) for level in range(depth + 2)]
    n = block(in_channels, widths[0])
    return n + sum(block(widths[k], widths[k + 1]) for k in range(depth if levels is None else levels))


@learner_check
def check_contracting_parameters(contracting_parameters: Callable[[int, int, int], int]) -> CheckPassed:
    """``contracting_parameters(in_channels, base_channels, depth)`` must count the parameters of
    a U-Net's contracting path, ``inc`` and every ``Down`` (the last is the bottleneck), as the
    model has them."""
    for in_channels, base_channels, depth in [(1, 64, 4), (3, 8, 2), (1, 4, 0), (2, 5, 3)]:
        with torch.device("meta"):   # shapes without memory: the paper's network in no time
            model = UNet(in_channels=in_channels, base_channels=base_channels, depth=depth)
        expected = sum(p.numel() for part in (model.inc, *model.downs) for p in part.parameters())
        got = call(contracting_parameters, in_channels, base_channels, depth)
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
            fail(f"contracting_parameters({in_channels}, {base_channels}, {depth}) = {got!r}; expected an int",
                  "return the count as an int")
        if got == expected:
            continue
        args = (in_channels, base_channels, depth)
        hints = [
            (UNet.count_parameters(in_channels=in_channels, base_channels=base_channels, depth=depth),
             "that is the whole U-Net; count only the contracting path: inc and the downs"),
            (_contracting_parameters(*args, bias=False), "each convolution also has one bias per output channel"),
            (_contracting_parameters(*args, double=False), "each Down doubles the channels: level k has "
                                                           "base_channels * 2**k"),
            (_contracting_parameters(*args, levels=depth + 1), "there are depth Downs after inc, not depth + 1"),
            (_contracting_parameters(*args, levels=max(depth - 1, 0)), "there are depth Downs after inc "
                                                                       "(the last one is the bottleneck)"),
            (_contracting_parameters(*args, convs=1), "every DoubleConv has two 3x3 convolutions: "
                                                      "c_in -> c_out, then c_out -> c_out"),
            (_contracting_parameters(base_channels, base_channels, depth), "the first convolution reads the "
                                                                           "image: in_channels, not base_channels"),
        ]
        hint = next((h for value, h in hints if got == value),
                    "a 3x3 convolution from c_in to c_out has 9 * c_in * c_out weights and c_out biases; "
                    "max-pooling has none")
        fail(f"contracting_parameters({in_channels}, {base_channels}, {depth}) = {got:,}; "
              f"the model's inc and downs have {expected:,}", hint)
    return CheckPassed("✓ contracting_parameters matches the model for four configurations, the paper's included")


def _probe_ready(module: nn.Module) -> nn.Module:
    """``module`` with positive weights and biases: every ReLU stays on, so the gradient reaches
    every input pixel the output depends on."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.abs() + 1e-3)
    return module.eval()


def _window_width(block: nn.Module, in_channels: int, size: int, pixel: tuple[int, int] | None = None) -> int:
    """The check's own measurement: input columns that output pixel ``pixel`` (the centre) depends on."""
    x = torch.zeros(1, in_channels, size, size, requires_grad=True)
    y = block(x)
    i, j = pixel if pixel is not None else (y.shape[-2] // 2, y.shape[-1] // 2)
    y[0, 0, i, j].backward()
    cols = (x.grad[0].abs().sum(0) > 0).any(dim=0).nonzero()
    return int(cols.max() - cols.min() + 1)


@learner_check
def check_receptive_field(measure_receptive_field: Callable[[nn.Module, int, int], int]) -> CheckPassed:
    """``measure_receptive_field(block, in_channels, size)`` must measure how many input columns
    the centre output pixel of ``block`` depends on, on a (1, in_channels, size, size) input.
    Compared with the check's own gradient measurement on blocks the learner has not seen."""
    torch.manual_seed(0)
    cases = [
        ("nn.Conv2d(1, 1, 3)", lambda: nn.Conv2d(1, 1, 3), 1, 15),
        ("nn.Conv2d(1, 1, 5)", lambda: nn.Conv2d(1, 1, 5), 1, 15),
        ("DoubleConv(2, 4)", lambda: DoubleConv(2, 4), 2, 17),
        ("a 3x3 convolution with dilation=2", lambda: nn.Conv2d(1, 1, 3, dilation=2), 1, 15),
        ("three padded 3x3 convolutions", lambda: nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1) for _ in range(3)]),
         1, 16),
        ("DoubleConv, 2x2 average pooling, DoubleConv",
         lambda: nn.Sequential(DoubleConv(1, 2), nn.AvgPool2d(2), DoubleConv(2, 2)), 1, 36),
    ]
    for name, make, in_channels, size in cases:
        block = _probe_ready(make())
        expected = _window_width(block, in_channels, size)
        got = call(measure_receptive_field, block, in_channels, size)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
            fail(f"measure_receptive_field({name}) = {got!r}; expected an int (a width in pixels)",
                  "count the input columns whose gradient is non-zero: int(cols.max() - cols.min() + 1)")
        if got == expected:
            continue
        block.zero_grad()
        corner = _window_width(block, in_channels, size, pixel=(0, 0))
        if got == expected - 1:
            hint = "count both ends of the window: last column - first column + 1"
        elif got == size:
            hint = ("that is the whole input: take the gradient of ONE output pixel, "
                    "y[0, 0, i, j].backward(), not of the sum of all outputs")
        elif got == corner:
            hint = ("take the centre output pixel (H_out // 2, W_out // 2): at the corner part of "
                    "the window falls outside the input, into the padding")
        else:
            hint = ("x = torch.zeros(1, in_channels, size, size, requires_grad=True); y = block(x); "
                    "y[0, 0, H_out // 2, W_out // 2].backward(); then the columns where x.grad is non-zero")
        fail(f"measure_receptive_field({name}, {in_channels}, {size}) = {got}; "
              f"the centre output pixel depends on {expected} input columns", hint)
    return CheckPassed("✓ measure_receptive_field agrees with the gradient on six blocks, padded, dilated and "
                       "pooled ones included")
