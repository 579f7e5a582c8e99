"""Tests for unet_lib.checks.nb02_contracting_path: ``check_contracting_parameters``, ``check_receptive_field``, ``check_double_conv`` both ways.

Each check passes the library's implementation (or a correct one worked out here) and fails
deliberately broken versions with the intended message."""

import pytest
import torch
from checktools import assert_passes, assert_skeleton_is_friendly
from torch import nn

from unet_lib import DoubleConv, UNet
from unet_lib.checks import (
    CheckError,
    check_contracting_parameters,
    check_double_conv,
    check_receptive_field,
)
from unet_lib.checks import nb02_contracting_path as nb02


def test_check_double_conv_passes_the_library_block():
    assert_passes(check_double_conv, DoubleConv)
    assert_passes(check_double_conv, lambda c_in, c_out: nn.Sequential(   # written out by hand
        nn.Conv2d(c_in, c_out, 3), nn.ReLU(), nn.Conv2d(c_out, c_out, kernel_size=3), nn.ReLU(inplace=True)))


class DefinedOutOfOrder(nn.Module):
    """Right layers, applied in the right order, but created second-first."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3)

    def forward(self, x):
        return torch.relu(self.conv2(torch.relu(self.conv1(x))))


BROKEN_DOUBLE_CONV = {
    "same padding (wrong shape)": (lambda i, o: DoubleConv(i, o, padding="same"),
                                   r"a \(2, 3, 17, 19\) input gave shape \(2, 8, 17, 19\); expected \(2, 8, 13, 15\)"
                                   r"\nHint: the paper's convolutions are unpadded: use padding=0"),
    "5x5 kernels padded to the right shape": (
        lambda i, o: nn.Sequential(nn.Conv2d(i, o, 5, padding=1), nn.ReLU(), nn.Conv2d(o, o, 5, padding=1), nn.ReLU()),
        r"has 2216 parameters; the paper's block has 808 .*\nHint: two nn.Conv2d with kernel_size=3"),
    "one convolution": (lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3), nn.ReLU()),
                        r"has 224 parameters; the paper's block has 808"),
    "BatchNorm (not the paper's block)": (lambda i, o: DoubleConv(i, o, batch_norm=True),
                                          r"has a BatchNorm layer; the paper's block has none\nHint: .*"
                                          r"DoubleConv\(batch_norm=True\) adds BatchNorm"),
    "last ReLU missing (wrong values)": (lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3), nn.ReLU(), nn.Conv2d(o, o, 3)),
                                         r"the output has negative values\nHint: .*the last one too"),
    "ReLU before the convolution (wrong values)": (
        lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3), nn.ReLU(), nn.ReLU(), nn.Conv2d(o, o, 3), nn.Sigmoid()),
        r"with the library's weights your block computes different values\nHint: apply them in this order"),
    "ReLU only after the second convolution": (
        lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3), nn.Conv2d(o, o, 3), nn.ReLU()),
        r"computes different values\nHint: apply them in this order: conv \(in -> out\), ReLU"),
    "float64 (wrong dtype)": (lambda i, o: DoubleConv(i, o).double(),
                              r"has torch.float64 parameters; the inputs here, like images, are torch.float32"),
    "not a module": (lambda i, o: (lambda x: x), r"\(3, 8\) is a function, not an nn.Module"),
}


@pytest.mark.parametrize("answer, match", BROKEN_DOUBLE_CONV.values(), ids=BROKEN_DOUBLE_CONV.keys())
def test_check_double_conv_fails_a_broken_block(answer, match):
    with pytest.raises(CheckError, match=match):
        check_double_conv(answer)


class SkeletonForward(nn.Module):
    """An exercise class whose __init__ is filled in and whose forward is still the skeleton."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3)

    def forward(self, x):
        raise NotImplementedError("Exercise `SkeletonForward`: replace this line with your code")


def test_a_skeleton_forward_gets_the_friendly_message():
    with pytest.raises(NotImplementedError, match=r"^`SkeletonForward.forward` is still the exercise skeleton: "
                                                  r"replace `raise NotImplementedError`") as info:
        check_double_conv(SkeletonForward)
    assert info.value.__cause__ is None and info.value.__suppress_context__   # no torch traceback attached


def test_torchs_own_not_implemented_error_is_not_blamed_on_the_learner():
    class NoForward(nn.Module):   # forgot to define forward: torch's message says so
        def __init__(self, in_channels, out_channels):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, out_channels, 3)
            self.conv2 = nn.Conv2d(out_channels, out_channels, 3)

    with pytest.raises(NotImplementedError, match=r"missing the required \"forward\" function"):
        check_double_conv(NoForward)


def test_check_double_conv_passes_layers_created_in_another_order():
    assert_passes(check_double_conv, DefinedOutOfOrder)   # registration order is not application order


def contracting_parameters(in_channels: int, base_channels: int, depth: int) -> int:
    """By hand: a DoubleConv from c_in to c_out has 9 c_in c_out + 9 c_out^2 weights and 2 c_out biases."""
    def double_conv(c_in, c_out):
        return 9 * c_in * c_out + 9 * c_out * c_out + 2 * c_out
    widths = [base_channels * 2**k for k in range(depth + 1)]
    return double_conv(in_channels, widths[0]) + sum(double_conv(widths[k], widths[k + 1]) for k in range(depth))


def test_contracting_parameters_by_hand():
    assert contracting_parameters(1, 64, 0) == 37_568            # notebook 02's first DoubleConv
    model = UNet(in_channels=3, base_channels=4, depth=2)
    assert contracting_parameters(3, 4, 2) == sum(p.numel() for m in (model.inc, *model.downs) for p in m.parameters())


def test_check_contracting_parameters_passes_a_correct_answer():
    assert_passes(check_contracting_parameters, contracting_parameters)
    assert_skeleton_is_friendly(check_contracting_parameters, "contracting_parameters")


BROKEN_CONTRACTING_PARAMETERS = {
    "no biases": (lambda i, b, d: nb02._contracting_parameters(i, b, d, bias=False),
                  r"= 18,838,080; the model's inc and downs have 18,842,048\nHint: .*one bias per output channel"),
    "no doubling": (lambda i, b, d: nb02._contracting_parameters(i, b, d, double=False),
                    r"\nHint: each Down doubles the channels"),
    "one Down too many": (lambda i, b, d: nb02._contracting_parameters(i, b, d, levels=d + 1),
                          r"\nHint: there are depth Downs after inc, not depth \+ 1"),
    "one conv per level": (lambda i, b, d: nb02._contracting_parameters(i, b, d, convs=1),
                           r"\nHint: every DoubleConv has two 3x3 convolutions"),
    "the whole U-Net": (lambda i, b, d: UNet.count_parameters(in_channels=i, base_channels=b, depth=d),
                        r"= 31,030,658; .*\nHint: that is the whole U-Net"),
    "in_channels ignored": (lambda i, b, d: contracting_parameters(b, b, d),
                            r"\(1, 64, 4\) = 18,878,336; .*\nHint: the first convolution reads the image"),
    "a float": (lambda i, b, d: float(contracting_parameters(i, b, d)), r"= 18842048.0; expected an int"),
}


@pytest.mark.parametrize("answer, match", BROKEN_CONTRACTING_PARAMETERS.values(),
                         ids=BROKEN_CONTRACTING_PARAMETERS.keys())
def test_check_contracting_parameters_fails_a_broken_count(answer, match):
    with pytest.raises(CheckError, match=match):
        check_contracting_parameters(answer)


def measure_receptive_field(block: nn.Module, in_channels: int, size: int, pixel: str = "centre",
                            off_by_one: bool = False) -> int:
    """The gradient of one output pixel with respect to the input, non-zero where it depends on it."""
    x = torch.zeros(1, in_channels, size, size, requires_grad=True)
    y = block(x)
    if pixel == "all":
        y.sum().backward()
    else:
        i, j = (y.shape[-2] // 2, y.shape[-1] // 2) if pixel == "centre" else (0, 0)
        y[0, 0, i, j].backward()
    cols = x.grad[0].abs().sum(0).nonzero()[:, 1]
    return int(cols.max() - cols.min()) + (0 if off_by_one else 1)


def test_receptive_field_by_hand():
    # 3x3 then 3x3: 5; DoubleConv, pool, DoubleConv: 5 + 1 + 2 * 4 = 14 (notebook 02's growth rule)
    assert measure_receptive_field(nb02._probe_ready(DoubleConv(1, 1)), 1, 11) == 5
    block = nb02._probe_ready(nn.Sequential(DoubleConv(1, 1), nn.AvgPool2d(2), DoubleConv(1, 1)))
    assert measure_receptive_field(block, 1, 36) == 14


def test_check_receptive_field_passes_a_correct_answer():
    assert_passes(check_receptive_field, measure_receptive_field)
    assert_skeleton_is_friendly(check_receptive_field, "measure_receptive_field")


BROKEN_RECEPTIVE_FIELD = {
    "off by one": (lambda b, c, s: measure_receptive_field(b, c, s, off_by_one=True),
                   r"nn.Conv2d\(1, 1, 3\), 1, 15\) = 2; the centre output pixel depends on 3 input columns\n"
                   r"Hint: count both ends"),
    "all outputs": (lambda b, c, s: measure_receptive_field(b, c, s, pixel="all"),
                    r"= 15; .* 3 input columns\nHint: that is the whole input"),
    "corner pixel": (lambda b, c, s: measure_receptive_field(b, c, s, pixel="corner"),
                     r"three padded 3x3 convolutions, 1, 16\) = 4; .* 7 input columns\nHint: take the centre"),
    "by formula (a 3x3 stack only)": (lambda b, c, s: 5, r"nn.Conv2d\(1, 1, 3\), 1, 15\) = 5; .*\nHint: x = "),
    "a float": (lambda b, c, s: float(measure_receptive_field(b, c, s)), r"= 3.0; expected an int"),
}


@pytest.mark.parametrize("answer, match", BROKEN_RECEPTIVE_FIELD.values(), ids=BROKEN_RECEPTIVE_FIELD.keys())
def test_check_receptive_field_fails_a_broken_measurement(answer, match):
    with pytest.raises(CheckError, match=match):
        check_receptive_field(answer)
