"""Tests for unet_lib.checks.nb02_contracting_path: ``check_contracting_parameters``, ``check_receptive_field`` both ways.

Each check passes a correct answer worked out here, refuses the shortcuts however they are
reached, and fails deliberately broken versions with the intended message and staged hints."""

import inspect

import numpy as np
import pytest
import torch
from checktools import assert_passes, assert_skeleton_is_friendly, reference
from torch import nn

from unet_lib import DoubleConv, UNet, receptive_field
from unet_lib.checks import CheckError, check_contracting_parameters, check_receptive_field
from unet_lib.checks import nb02_contracting_path as nb02


def contracting_parameters(in_channels: int, base_channels: int, depth: int, batch_norm: bool = False) -> int:
    """By hand: a DoubleConv from c_in to c_out has 9 c_in c_out + 9 c_out^2 weights and, per
    convolution, c_out biases or (before BatchNorm) BatchNorm's c_out scales and c_out shifts."""
    per_channel = 2 if batch_norm else 1

    def double_conv(c_in, c_out):
        return 9 * c_in * c_out + 9 * c_out * c_out + 2 * per_channel * c_out
    widths = [base_channels * 2**k for k in range(depth + 1)]
    return double_conv(in_channels, widths[0]) + sum(double_conv(widths[k], widths[k + 1]) for k in range(depth))


def test_contracting_parameters_by_hand():
    assert contracting_parameters(1, 64, 0) == 37_568            # notebook 02's first DoubleConv
    for batch_norm in (False, True):
        model = UNet(in_channels=3, base_channels=4, depth=2, batch_norm=batch_norm)
        assert contracting_parameters(3, 4, 2, batch_norm) == \
            sum(p.numel() for m in (model.inc, *model.downs) for p in m.parameters())


def test_check_contracting_parameters_passes_a_correct_answer():
    assert_passes(check_contracting_parameters, contracting_parameters)
    assert_skeleton_is_friendly(check_contracting_parameters, "contracting_parameters")


def _built(i, b, d, batch_norm=False):
    model = UNet(in_channels=i, base_channels=b, depth=d, batch_norm=batch_norm)
    return sum(p.numel() for m in (model.inc, *model.downs) for p in m.parameters())


def _built_on_meta(i, b, d, batch_norm=False):
    with torch.device("meta"):
        return _built(i, b, d, batch_norm)


_BUILT_EARLIER = UNet(base_channels=2, depth=2)


def _layer_by_layer(i, b, d, batch_norm=False):
    return sum(m.weight.numel() + m.bias.numel() for m in [nn.Conv2d(i, b, 3), nn.Conv2d(b, b, 3)])


with torch.device("meta"):   # built outside the learner's function, as a learner could in an earlier cell
    _PREBUILT = {case: UNet(in_channels=case[0], base_channels=case[1], depth=case[2], batch_norm=case[3])
                 for case in [(1, 64, 4, False), (3, 8, 2, False), (1, 4, 0, False), (1, 16, 3, True),
                              (2, 5, 3, True)]}


def _state_dict_of_prebuilt(i, b, d, batch_norm=False):
    state = _PREBUILT[(i, b, d, batch_norm)].state_dict()
    return sum(v.numel() for k, v in state.items() if k.startswith(("inc.", "downs.")) and
               k.rpartition(".")[2] in ("weight", "bias"))


def _source_of_the_library(i, b, d, batch_norm=False):
    namespace = {}
    exec(inspect.getsource(UNet.count_parameters), namespace)   # the library's count, copied from its source
    return namespace["count_parameters"](in_channels=i, base_channels=b, depth=d, batch_norm=batch_norm)


SHORTCUTS_CONTRACTING = {
    "a model built": (_built, "UNet"),
    "a model built on the meta device": (_built_on_meta, "UNet"),
    "a DoubleConv built": (lambda i, b, d, batch_norm=False: sum(p.numel() for p in DoubleConv(i, b).parameters()),
                           "DoubleConv"),
    "layers built one by one": (_layer_by_layer, "nn.Conv2d"),
    "a BatchNorm built": (lambda i, b, d, batch_norm=False: nn.BatchNorm2d(b).weight.numel(), "nn.Module.__init__"),
    "the library's count": (lambda i, b, d, batch_norm=False: UNet.count_parameters(
        in_channels=i, base_channels=b, depth=d, batch_norm=batch_norm), "UNet.count_parameters"),
    "a model built earlier, read": (lambda i, b, d, batch_norm=False: sum(
        p.numel() for p in _BUILT_EARLIER.inc.parameters()), "nn.Module.__getattr__"),
    "a model built earlier, its state_dict": (_state_dict_of_prebuilt, "nn.Module.state_dict"),
    "a model built earlier, walked": (lambda i, b, d, batch_norm=False: len(list(_BUILT_EARLIER.modules())),
                                      "nn.Module.modules"),
    "the library's source, executed": (_source_of_the_library, "inspect.getsource"),
}


@pytest.mark.parametrize("answer, shortcut", SHORTCUTS_CONTRACTING.values(), ids=SHORTCUTS_CONTRACTING.keys())
def test_check_contracting_parameters_refuses_building_a_model(answer, shortcut):
    with pytest.raises(CheckError, match=rf"^`\S+` called `{shortcut}`(, `[^`]+`)*, which already does what this "
                                         r"exercise asks you to write\nHint: write it yourself"):
        check_contracting_parameters(answer)


def test_check_contracting_parameters_names_the_class_the_learner_built_not_its_insides():
    message = str(pytest.raises(CheckError, check_contracting_parameters, _built_on_meta).value)
    assert message.startswith("`_built_on_meta` called `UNet`, `nn.Module.__getattr__`, `nn.Module.parameters`, which "
                              "already does")   # built the model, read model.inc, counted its parameters
    assert "__init__" not in message and "count_parameters" not in message


def _drawn(case):
    """A stand-in for the check's fresh generator that draws ``case`` (in_channels, base_channels,
    depth, batch_norm)."""
    class Drawn:
        def __init__(self):
            self.values = iter([case[0], case[1], case[2], int(case[3])])

        def integers(self, low, high=None):
            return next(self.values)
    return Drawn


def test_check_contracting_parameters_draws_a_new_case_on_every_run():
    lookup = {case: contracting_parameters(*case) for case in _PREBUILT}   # every count the fixed cases print

    def table(i, b, d, batch_norm=False):
        return lookup.get((i, b, d, batch_norm), 0)

    drawn = set()
    for _ in range(5):
        with pytest.raises(CheckError, match=r"^contracting_parameters\(\d, \d, \d, batch_norm=(True|False)\) = 0; "
                                             r"the model's inc and downs have [\d,]+\n") as info:
            check_contracting_parameters(table)
        drawn.add(str(info.value).partition(")")[0])
    assert len(drawn) > 1, drawn   # 5 draws of 3 x 7 x 4 x 2 - 1 = 167 cases: all five the same once in 167**4


def test_check_contracting_parameters_counts_the_drawn_case_against_the_model(monkeypatch):
    monkeypatch.setattr(nb02, "_fresh_rng", _drawn((4, 9, 4, True)))
    assert_passes(check_contracting_parameters, contracting_parameters)
    with pytest.raises(CheckError, match=r"^contracting_parameters\(4, 9, 4, batch_norm=True\) = 0; the model's inc "
                                         r"and downs have 373,959\n"):
        check_contracting_parameters(lambda i, b, d, batch_norm=False: 0 if i == 4 else contracting_parameters(
            i, b, d, batch_norm))


def _broken(**mistake):
    return lambda i, b, d, batch_norm=False: reference(nb02._contracting_parameters)(i, b, d, batch_norm=batch_norm, **mistake)


BROKEN_CONTRACTING_PARAMETERS = {
    "no biases": (_broken(bias=False),
                  r"^contracting_parameters\(1, 64, 4, batch_norm=False\) = 18,838,080; the model's inc and downs have "
                  r"18,842,048\nHint: each convolution also has one bias"),
    "no doubling": (_broken(double=False), r"\nHint: each Down doubles the channels"),
    "one Down too many": (lambda i, b, d, batch_norm=False: reference(nb02._contracting_parameters)(i, b, d, batch_norm,
                                                                                        levels=d + 1),
                          r"\nHint: there are depth Downs after inc, not depth \+ 1"),
    "one Down too few": (lambda i, b, d, batch_norm=False: reference(nb02._contracting_parameters)(i, b, d, batch_norm,
                                                                                       levels=max(d - 1, 0)),
                         r"\nHint: there are depth Downs after inc \(the last one is the bottleneck\)"),
    "one conv per level": (_broken(convs=1), r"\nHint: every DoubleConv has two 3x3 convolutions"),
    "the whole U-Net": (lambda i, b, d, batch_norm=False: 31_030_658 if (i, b, d) == (1, 64, 4) else 0,
                        r"= 31,030,658; .*\nHint: that is the whole U-Net"),
    "in_channels ignored": (lambda i, b, d, batch_norm=False: contracting_parameters(b, b, d, batch_norm),
                            r"\(1, 64, 4, batch_norm=False\) = 18,878,336; .*\nHint: the first convolution reads the "
                            r"image"),
    "batch_norm ignored": (lambda i, b, d, batch_norm=False: contracting_parameters(i, b, d),
                           r"^contracting_parameters\(1, 16, 3, batch_norm=True\) = 293,232; the model's inc and downs "
                           r"have 293,712\nHint: with batch_norm=True each DoubleConv is built differently"),
    "BatchNorm added, the bias kept": (_broken(bias=True), r"batch_norm=True\) = .*\nHint: a convolution followed by "
                                                          r"BatchNorm has no bias"),
    "BatchNorm's running statistics counted": (_broken(norm_per_channel=4),
                                               r"batch_norm=True\) = .*\nHint: BatchNorm learns two numbers per "
                                               r"channel.*buffers"),
    "an unknown count": (lambda i, b, d, batch_norm=False: contracting_parameters(i, b, d, batch_norm) + 1,
                         r"= 18,842,049; .*\nHint 1 of 2: count one convolution first"),
    "a float": (lambda i, b, d, batch_norm=False: float(contracting_parameters(i, b, d)),
                r"= 18842048.0; expected an int"),
    "no batch_norm argument": (lambda i, b, d: contracting_parameters(i, b, d),
                               r"^<lambda> cannot be called as <lambda>\(in_channels, base_channels, depth, "
                               r"batch_norm\): too many positional arguments\nHint: keep the exercise's signature"),
}


@pytest.mark.parametrize("answer, match", BROKEN_CONTRACTING_PARAMETERS.values(),
                         ids=BROKEN_CONTRACTING_PARAMETERS.keys())
def test_check_contracting_parameters_fails_a_broken_count(answer, match):
    with pytest.raises(CheckError, match=match):
        check_contracting_parameters(answer)


def measure_receptive_field(block: nn.Module, in_channels: int, size: int, pixel: str = "centre",
                            mistake: str | None = None, probe=torch.zeros) -> int:
    """The gradient of one output pixel with respect to the input, non-zero where it depends on it."""
    x = probe(1, in_channels, size, size).requires_grad_(True)
    y = block(x)
    if pixel == "all":
        y.sum().backward()
    else:
        i, j = {"centre": (y.shape[-2] // 2, y.shape[-1] // 2), "corner": (0, 0),
                "the input's centre": (size // 2, size // 2)}[pixel]
        y[0, 0, i, j].backward()
    on = x.grad[0].abs().sum(0) > 0                      # (H, W)
    if mistake == "count":
        return int(on.any(dim=0).sum())
    if mistake == "flattened":
        at = on.flatten().nonzero()
        return int(at.max() - at.min()) + 1
    cols = on.nonzero()[:, 0 if mistake == "rows" else 1]
    return int(cols.max() - cols.min()) + (0 if mistake == "off by one" else 1)


def _one_signed_draw(b, c, s):
    """A signed probe that is the same on every call (its own generator, seeded inside)."""
    return measure_receptive_field(b, c, s, probe=lambda *shape: torch.randn(
        *shape, generator=torch.Generator().manual_seed(0)))


def test_receptive_field_by_hand():
    # 3x3 then 3x3: 5; DoubleConv, pool, DoubleConv: 5 + 1 + 2 * 4 = 14 (notebook 02's growth rule)
    assert measure_receptive_field(reference(nb02._probe_ready)(DoubleConv(1, 1)), 1, 11) == 5
    block = reference(nb02._probe_ready)(nn.Sequential(DoubleConv(1, 1), nn.AvgPool2d(2), DoubleConv(1, 1)))
    assert measure_receptive_field(block, 1, 36) == 14
    dilated = reference(nb02._probe_ready)(nn.Conv2d(1, 1, 3, dilation=2))   # reads columns -2, 0, 2: 3 of a 5-wide window
    assert measure_receptive_field(dilated, 1, 15) == 5 and measure_receptive_field(dilated, 1, 15, mistake="count") == 3


def test_check_receptive_field_passes_a_correct_answer():
    assert_passes(check_receptive_field, measure_receptive_field)
    assert_passes(check_receptive_field, lambda b, c, s: torch.tensor(measure_receptive_field(b, c, s)))
    assert_skeleton_is_friendly(check_receptive_field, "measure_receptive_field")


def _exec_the_librarys_source(b, c, s):
    source = inspect.getsource(receptive_field)   # to copy its core lines into the answer
    return measure_receptive_field(b, c, s) if source else 0


SHORTCUTS_RECEPTIVE_FIELD = {
    "the library's receptive_field": (lambda b, c, s: receptive_field(b, s)[0], "unet_lib.receptive_field"),
    "the check's own measurement": (lambda b, c, s: nb02._window_width(b, c, s), "the check's own measurement"),
    "the library's source read": (_exec_the_librarys_source, "inspect.getsource"),
}


@pytest.mark.parametrize("answer, shortcut", SHORTCUTS_RECEPTIVE_FIELD.values(), ids=SHORTCUTS_RECEPTIVE_FIELD.keys())
def test_check_receptive_field_refuses_a_ready_made_measurement(answer, shortcut):
    with pytest.raises(CheckError, match=rf"^`\S+` called `{shortcut}`, which already does what this exercise "
                                         r"asks you to write"):
        check_receptive_field(answer)


BROKEN_RECEPTIVE_FIELD = {
    "off by one": (lambda b, c, s: measure_receptive_field(b, c, s, mistake="off by one"),
                   r"^measure_receptive_field\(nn.Conv2d\(1, 1, 3\), 1, 15\) = 2; the centre output pixel's window is 3 "
                   r"input columns wide \(from its first to its last column, both included\)\nHint: count both ends"),
    "all outputs": (lambda b, c, s: measure_receptive_field(b, c, s, pixel="all"),
                    r"= 15; .* 3 input columns wide .*\nHint 1 of 2: that is the whole input"),
    "columns counted, not spanned": (lambda b, c, s: measure_receptive_field(b, c, s, mistake="count"),
                                     r"dilation=2, 1, 15\) = 3; the centre output pixel's window is 5 input columns "
                                     r"wide .*\nHint: you counted the columns that matter"),
    "rows measured": (lambda b, c, s: measure_receptive_field(b, c, s, mistake="rows"),
                      r"nn.Conv2d\(1, 1, \(3, 7\)\), 3 rows by 7 columns, 1, 15\) = 3; .* 7 input columns wide"
                      r".*\nHint: that is the window's height"),
    "corner pixel": (lambda b, c, s: measure_receptive_field(b, c, s, pixel="corner"),
                     r"three padded 3x3 convolutions, 1, 16\) = 4; .* 7 input columns wide .*\nHint: take the centre"),
    "by formula (a 3x3 stack only)": (lambda b, c, s: 5, r"nn.Conv2d\(1, 1, 3\), 1, 15\) = 5; .*\nHint 1 of 2: the "
                                                         r"gradient of one output value"),
    "a float": (lambda b, c, s: float(measure_receptive_field(b, c, s)), r"= 3.0; expected an int"),
    "a signed random probe": (lambda b, c, s: measure_receptive_field(b, c, s, probe=torch.randn),
                              r"^measure_receptive_field\(DoubleConv\(1, 1\), He-initialised .*, 1, 15\) gave \[\d, \d, "
                              r"\d\] on three calls, each after another random seed; the centre output pixel's window "
                              r"is 5 input columns wide\nHint 1 of 2: your probe switched some of the block's ReLUs off"),
    "one signed draw, the same on every call": (_one_signed_draw, r"gave \[(\d+), \1, \1\] on three calls.*\nHint 1 of 2: "
                                                                  r"your probe switched"),
    "a negative probe": (lambda b, c, s: measure_receptive_field(b, c, s, probe=lambda *shape: -torch.ones(*shape)),
                         r"^measure_receptive_field\(DoubleConv\(2, 4\), 2, 17\) raised RuntimeError: .*\nHint: print "
                         r"the shapes of your probe"),
    "the input's centre as the output's index": (
        lambda b, c, s: measure_receptive_field(b, c, s, pixel="the input's centre"),
        r"^measure_receptive_field\(DoubleConv, 2x2 average pooling, DoubleConv, 1, 36\) raised IndexError: .*\n"
        r"Hint: the output of an "
        r"unpadded block is smaller than its input"),
    "a span of the flattened input": (lambda b, c, s: measure_receptive_field(b, c, s, mistake="flattened"),
                                      r"^measure_receptive_field\(nn.Conv2d\(1, 1, 3\), 1, 15\) = 33; .*\nHint: that is "
                                      r"a span of the flattened input"),
}


@pytest.mark.parametrize("answer, match", BROKEN_RECEPTIVE_FIELD.values(), ids=BROKEN_RECEPTIVE_FIELD.keys())
def test_check_receptive_field_fails_a_broken_measurement(answer, match):
    with pytest.raises(CheckError, match=match) as info:
        check_receptive_field(answer)
    assert "backward()" not in str(info.value) and "max() -" not in str(info.value)   # no hint prints the recipe


def test_check_receptive_field_names_the_tool_on_the_second_try():
    def formula(b, c, s):
        return 5

    assert "requires_grad" not in str(pytest.raises(CheckError, check_receptive_field, formula).value)
    second = str(pytest.raises(CheckError, check_receptive_field, formula).value)
    assert "Hint 2 of 2: give the input requires_grad=True, call .backward() on one output value" in second


class _DrawnBlock:
    """A stand-in for the check's fresh generator: in_channels 2, kernel width 5, dilation 3, (5 - 1) * 3 + 3 + 4 = 19."""

    def __init__(self):
        self.integers_ = iter([2, 3, 4])

    def integers(self, low, high=None):
        return next(self.integers_)

    def choice(self, options):
        return 5


def _is_drawn(block: nn.Module) -> bool:
    """Whether ``block`` is the check's drawn block (no fixed one is a convolution to 2 channels, a ReLU
    and another convolution)."""
    return isinstance(block, nn.Sequential) and len(block) == 3 and isinstance(block[0], nn.Conv2d) \
        and block[0].out_channels == 2 and isinstance(block[1], nn.ReLU)


def test_check_receptive_field_measures_a_block_drawn_afresh_on_every_run(monkeypatch):
    def table(b, c, s):   # right on every fixed block, as a table harvested from the messages would be
        return 0 if _is_drawn(b) else measure_receptive_field(b, c, s)

    drawn = set()
    for _ in range(6):
        with pytest.raises(CheckError, match=r"^measure_receptive_field\(nn.Conv2d\(\d, 2, \(3, \d\), dilation=\d\), ReLU, "
                                             r"nn.Conv2d\(2, 1, 3\), \d, \d+\) = 0; the centre output pixel's window is "
                                             r"\d+ input columns wide") as info:
            check_receptive_field(table)
        drawn.add(str(info.value).partition(" = ")[0])
    assert len(drawn) > 1, drawn   # 3 x 3 x 3 x 7 = 189 blocks and sizes
    monkeypatch.setattr(nb02, "_fresh_rng", _DrawnBlock)
    assert_passes(check_receptive_field, measure_receptive_field)
    with pytest.raises(CheckError, match=r"^measure_receptive_field\(nn.Conv2d\(2, 2, \(3, 5\), dilation=3\), ReLU, "
                                         r"nn.Conv2d\(2, 1, 3\), 2, 19\) = 0; the centre output pixel's window is 15 "
                                         r"input columns wide"):
        check_receptive_field(table)
