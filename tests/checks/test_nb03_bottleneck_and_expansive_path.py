"""Tests for unet_lib.checks.nb03_bottleneck_and_expansive_path: ``check_up_forward``, ``check_overlap_counts`` both ways.

Each check passes a correct answer worked out here, refuses the shortcuts however they are
reached, and fails deliberately broken versions with the intended message and staged hints."""

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from checktools import assert_passes, assert_skeleton_is_friendly
from torch import nn

from unet_lib import Up, center_crop
from unet_lib.checks import CheckError, check_overlap_counts, check_up_forward
from unet_lib.checks import nb03_bottleneck_and_expansive_path as nb03
from unet_lib.viz import painted_kernels


def up_forward(up: Up, x: torch.Tensor, skip: torch.Tensor, mistake: str | None = None) -> torch.Tensor:
    x = up.up(x)
    if mistake == "top-left crop":
        skip = skip[..., : x.shape[-2], : x.shape[-1]]
    elif mistake == "extra row at the top":
        dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
        top, left = -(-dh // 2), -(-dw // 2)
        skip = skip[..., top: top + x.shape[-2], left: left + x.shape[-1]]
    elif mistake == "x grown to the skip":
        x = F.interpolate(x, size=skip.shape[-2:])
    elif mistake != "no crop":
        skip = center_crop(skip, x.shape[-2:])
    x = torch.cat([x, skip] if mistake == "swapped" else [skip, x], dim=-1 if mistake == "joined along the width" else 1)
    return x if mistake == "no conv" else up.conv(x)


def test_check_up_forward_passes_a_correct_answer():
    assert_passes(check_up_forward, up_forward)
    assert_skeleton_is_friendly(check_up_forward, "up_forward")


SHORTCUTS_UP_FORWARD = {
    "up(x, skip)": lambda u, x, s: u(x, s),
    "up.forward(x, skip)": lambda u, x, s: u.forward(x, s),
    "Up.forward(up, x, skip)": lambda u, x, s: Up.forward(u, x, s),
    "Up.forward renamed": lambda u, x, s, step=Up.forward: step(u, x, s),
    "through a container": lambda u, x, s: nn.ModuleList([u])[0](x, s),
}


@pytest.mark.parametrize("answer", SHORTCUTS_UP_FORWARD.values(), ids=SHORTCUTS_UP_FORWARD.keys())
def test_check_up_forward_refuses_up_forward_however_it_is_reached(answer):
    with pytest.raises(CheckError, match=r"^`<lambda>` called `Up.forward`, which already does what this exercise asks "
                                         r"you to write\nHint: write it yourself"):
        check_up_forward(answer)


def _copied_from_the_source(up, x, skip):
    namespace = {"center_crop": center_crop, "torch": torch}
    exec(inspect.getsource(Up.forward).replace("    def ", "def ", 1), namespace)   # the library's lines, run
    return up_forward(up, x, skip)


def test_check_up_forward_refuses_reading_the_librarys_source():
    with pytest.raises(CheckError, match=r"^`_copied_from_the_source` called `inspect.getsource`, which already does "):
        check_up_forward(_copied_from_the_source)


BROKEN_UP_FORWARD = {
    "swapped": (lambda u, x, s: up_forward(u, x, s, "swapped"), r"concatenated in the other order\n"
                                                                r"Hint: unet_lib's Up puts the skip's channels first"),
    "top-left crop": (lambda u, x, s: up_forward(u, x, s, "top-left crop"),
                      r"^Up\(8, 4\), even crop: right shape, different values\nHint 1 of 2: the skip's border is cut "
                      r"evenly"),
    "extra row at the top": (lambda u, x, s: up_forward(u, x, s, "extra row at the top"),
                             r"^Up\(8, 4\), odd crop: right shape, different values\nHint 1 of 2"),
    "no crop": (lambda u, x, s: up_forward(u, x, s, "no crop"),
                r"^Up\(8, 4\), even crop: up_forward raised 'Sizes of tensors must match.*\nHint 1 of 2: after the "
                r"up-convolution, x and the skip differ in size"),
    "no conv": (lambda u, x, s: up_forward(u, x, s, "no conv"),
                r"gave shape \(2, 8, 10, 12\); expected \(2, 4, 6, 8\)\nHint: that is the concatenation"),
    "x grown to the skip": (lambda u, x, s: up_forward(u, x, s, "x grown to the skip"),
                            r"gave shape \(2, 4, 14, 16\); expected \(2, 4, 6, 8\)\nHint: your output has the skip's "
                            r"size"),
    "x not upsampled": (lambda u, x, s: u.conv(torch.cat([center_crop(s, x.shape[-2:]), x[:, : s.shape[1]]], 1)),
                        r"gave shape \(2, 4, 1, 2\); expected \(2, 4, 6, 8\)\nHint 1 of 2: compare the shape after "
                        r"each step"),
    "a list": (lambda u, x, s: [up_forward(u, x, s)], r"up_forward returned a list\nHint: return the output"),
    "joined along the width": (lambda u, x, s: up_forward(u, x, s, "joined along the width"),
                               r"^Up\(8, 4\), even crop: up_forward raised .*to have 8 channels, but got 4 channels "
                               r"instead'\nHint: the level's DoubleConv, up.conv, reads 8 channels: the skip's and the "
                               r"upsampled map's, side by side. Along which dimension"),
    "convolved before upsampling": (lambda u, x, s: u.up(u.conv(x)),
                                    r"^Up\(8, 4\), even crop: up_forward raised .*channels instead'\nHint: the level's "
                                    r"DoubleConv, up.conv, reads 8 channels"),
}


@pytest.mark.parametrize("answer, match", BROKEN_UP_FORWARD.values(), ids=BROKEN_UP_FORWARD.keys())
def test_check_up_forward_fails_a_broken_step(answer, match):
    with pytest.raises(CheckError, match=match) as info:
        check_up_forward(answer)
    assert "torch.cat([" not in str(info.value) and "x = up.up(x)" not in str(info.value)   # no solving line


def overlap_counts(kernel_size: int, stride: int, size: int, mistake: str | None = None):
    """By counting: input pixel i paints output pixels i * stride ... i * stride + kernel_size - 1."""
    n = (size - 1) * stride + kernel_size if mistake != "kernel overhang ignored" else size * stride
    per_side = torch.zeros(n, dtype=torch.int64)
    for i in range(size):
        start = i * (kernel_size if mistake == "kernel as the step" else stride)
        per_side[start: start + kernel_size] += 1
    counts = per_side[:, None] + per_side[None, :] if mistake == "added" else per_side[:, None] * per_side[None, :]
    if mistake == "plus one":
        counts = counts + 1
    if mistake == "batch dimensions kept":
        counts = counts[None, None]
    return counts


def overlap_counts_2d(kernel_size: int, stride: int, size: int) -> np.ndarray:
    """Another right answer: every footprint painted into the map, as the figure in section 3 draws it."""
    counts = np.zeros(((size - 1) * stride + kernel_size,) * 2)
    for i in range(size):
        for j in range(size):
            counts[i * stride: i * stride + kernel_size, j * stride: j * stride + kernel_size] += 1
    return counts


def overlap_counts_by_zero_insertion(kernel_size: int, stride: int, size: int) -> torch.Tensor:
    """Also right, and allowed: the footprints' start points placed every ``stride`` pixels (zero
    insertion) and a box of ones summed over them by a 2-D convolution padded by the kernel's
    overhang: it states where each footprint starts and how far it reaches, which is the exercise."""
    starts = torch.zeros(1, 1, (size - 1) * stride + 1, (size - 1) * stride + 1)
    starts[..., ::stride, ::stride] = 1
    return F.conv2d(starts, torch.ones(1, 1, kernel_size, kernel_size), padding=kernel_size - 1)[0, 0]


def test_overlap_counts_by_hand():
    # kernel 3, stride 2, 2 inputs per side: the middle column is painted by both
    assert overlap_counts(3, 2, 2)[0].tolist() == [1, 1, 2, 1, 1]
    assert overlap_counts(2, 2, 3).eq(1).all()                    # the paper's up-convolution: no overlap
    assert overlap_counts(4, 2, 4)[0].tolist() == [1, 1, 2, 2, 2, 2, 2, 2, 1, 1]   # even only in the interior
    assert torch.equal(overlap_counts(3, 2, 2), painted_kernels(torch.ones(2, 2), torch.ones(3, 3), 2).counts)


def test_check_overlap_counts_passes_a_correct_answer():
    assert_passes(check_overlap_counts, overlap_counts)
    assert_passes(check_overlap_counts, overlap_counts_2d)
    assert_passes(check_overlap_counts, overlap_counts_by_zero_insertion)
    assert_skeleton_is_friendly(check_overlap_counts, "overlap_counts")


def _by_layer(k, s, n):
    layer = nn.ConvTranspose2d(1, 1, k, stride=s, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        return layer(torch.ones(1, 1, n, n))[0, 0]


_LAYER = nn.ConvTranspose2d(1, 1, 2, stride=2, bias=False)   # built outside the learner's function


def _gradient_of(op: str, by: str = "backward"):
    """The counts as the gradient of a sum of stride-spaced windows (the adjoint of a convolution or
    of unfold is the transposed convolution or fold): right, but refused."""
    def answer(k, s, n):
        x = torch.zeros(1, 1, (n - 1) * s + k, (n - 1) * s + k, requires_grad=True)
        windows = F.conv2d(x, torch.ones(1, 1, k, k), stride=s) if op == "conv2d" else F.unfold(x, k, stride=s)
        if by == "backward":
            windows.sum().backward()
            return x.grad[0, 0]
        return torch.autograd.grad(windows.sum(), x)[0][0, 0]
    return answer


def test_the_gradient_answers_are_right_counts():
    """So that their refusal, not a wrong map, is what fails them."""
    for k, s, n in [(3, 2, 3), (4, 2, 4), (5, 3, 2)]:
        for answer in (_gradient_of("conv2d"), _gradient_of("unfold"), _gradient_of("conv2d", by="autograd.grad")):
            assert torch.equal(answer(k, s, n), overlap_counts(k, s, n).float())


SHORTCUTS_OVERLAP_COUNTS = {
    "nn.ConvTranspose2d with ones": (_by_layer, "nn.ConvTranspose2d"),
    "F.conv_transpose2d with ones": (lambda k, s, n: F.conv_transpose2d(torch.ones(1, 1, n, n), torch.ones(1, 1, k, k),
                                                                        stride=s)[0, 0], "torch.conv_transpose2d"),
    "a layer built earlier": (lambda k, s, n: _LAYER(torch.ones(1, 1, n, n))[0, 0], "nn.ConvTranspose2d"),
    "in one dimension": (lambda k, s, n: (lambda r: r[:, None] * r[None, :])(
        F.conv_transpose1d(torch.ones(1, 1, n), torch.ones(1, 1, k), stride=s)[0, 0]), "torch.conv_transpose1d"),
    "fold": (lambda k, s, n: F.fold(torch.ones(1, k * k, n * n), ((n - 1) * s + k,) * 2, k, stride=s)[0, 0], "F.fold"),
    "the gradient of a convolution": (lambda k, s, n: torch.nn.grad.conv2d_input(
        (1, 1, (n - 1) * s + k, (n - 1) * s + k), torch.ones(1, 1, k, k), torch.ones(1, 1, n, n), stride=s)[0, 0],
        "torch.nn.grad.conv2d_input"),
    "the course's figure helper": (lambda k, s, n: painted_kernels(torch.ones(n, n), torch.ones(k, k), s).counts
                                   if n * n <= 9 else overlap_counts_2d(k, s, n), "unet_lib.viz.painted_kernels"),
    "torch.convolution, transposed": (lambda k, s, n: torch.convolution(
        torch.ones(1, 1, n, n), torch.ones(1, 1, k, k), None, [s, s], [0, 0], [1, 1], True, [0, 0], 1)[0, 0],
        "torch.convolution"),
    "aten's convolution, transposed": (lambda k, s, n: torch.ops.aten.convolution(
        torch.ones(1, 1, n, n), torch.ones(1, 1, k, k), None, [s, s], [0, 0], [1, 1], True, [0, 0], 1)[0, 0],
        "torch.ops.aten.convolution"),
    "the gradient of a convolution, by backward": (_gradient_of("conv2d"), "torch.Tensor.backward"),
    "the gradient of unfold, by backward": (_gradient_of("unfold"), "torch.Tensor.backward"),
    "the gradient of a convolution, by autograd.grad": (_gradient_of("conv2d", by="autograd.grad"),
                                                        "torch.autograd.grad"),
}


@pytest.mark.parametrize("answer, shortcut", SHORTCUTS_OVERLAP_COUNTS.values(), ids=SHORTCUTS_OVERLAP_COUNTS.keys())
def test_check_overlap_counts_refuses_torchs_transposed_convolution(answer, shortcut):
    with torch.no_grad(), pytest.raises(CheckError, match=rf"^`\S+` called .*`{shortcut}`.*, which already does what "
                                                          r"this exercise asks you to write"):
        check_overlap_counts(answer)


BROKEN_OVERLAP_COUNTS = {
    "plus one everywhere": (lambda k, s, n: overlap_counts(k, s, n, "plus one"),
                            r"^overlap_counts\(kernel_size=2, stride=2, size=3\) is wrong at 36 of 36 output pixels; "
                            r"the first is row 0, column 0: 2, where the number of footprints that cover it is 1\n"
                            r"Hint: off by the same number"),
    "rows and columns added": (lambda k, s, n: overlap_counts(k, s, n, "added"),
                               r"is wrong at 36 of 36 output pixels.*\nHint: a footprint covers a pixel only if it "
                               r"covers both its row and its column"),
    "footprints a kernel apart": (lambda k, s, n: overlap_counts(k, s, n, "kernel as the step"),
                                  r"^overlap_counts\(kernel_size=3, stride=2, size=3\) is wrong at .*\nHint 1 of 2: "
                                  r"each input pixel paints a kernel_size x kernel_size footprint"),
    "the same count everywhere": (lambda k, s, n: torch.full(((n - 1) * s + k,) * 2, (-(-k // s)) ** 2),
                                  r"^overlap_counts\(kernel_size=3, stride=2, size=3\) is wrong at .*\nHint 1 of 2"),
    "random weights": (lambda k, s, n: torch.rand((n - 1) * s + k, (n - 1) * s + k),
                       r"is wrong at .*\nHint: counts are whole numbers"),
    "batch dimensions kept": (lambda k, s, n: overlap_counts(k, s, n, "batch dimensions kept"),
                              r"has shape \(1, 1, 6, 6\); expected \(6, 6\)\nHint: return the \(H_out, W_out\) map, "
                              r"without batch"),
    "the kernel's overhang ignored": (lambda k, s, n: overlap_counts(k, s, n, "kernel overhang ignored"),
                                      r"stride=2, size=3\) has shape \(6, 6\); expected \(7, 7\)\nHint 1 of 2: the "
                                      r"output reaches as far as the last input pixel's footprint"),
    "a list": (lambda k, s, n: overlap_counts(k, s, n).tolist(), r"returned a list"),
}


@pytest.mark.parametrize("answer, match", BROKEN_OVERLAP_COUNTS.values(), ids=BROKEN_OVERLAP_COUNTS.keys())
def test_check_overlap_counts_fails_a_broken_map(answer, match):
    with pytest.raises(CheckError, match=match) as info:
        check_overlap_counts(answer)
    assert "ones" not in str(info.value)   # the old hint: "a kernel of ones on an input of ones"


def test_check_overlap_counts_names_the_footprint_on_the_second_try():
    def wrong(k, s, n):
        return overlap_counts(k, s, n, "kernel as the step")

    assert "Hint 2 of 2" not in str(pytest.raises(CheckError, check_overlap_counts, wrong).value)
    second = str(pytest.raises(CheckError, check_overlap_counts, wrong).value)
    assert "Hint 2 of 2: draw one row: with kernel_size 3 and stride 2, input pixel 0 paints output columns 0, 1 and 2" \
        in second
    assert "i * stride" not in second   # a worked row, not the slice that solves it


class _Drawn:
    """A stand-in for the check's fresh generator: kernel_size 6, stride 4, size 5."""

    def __init__(self):
        self.values = iter([6, 4, 5])

    def integers(self, low, high=None):
        return next(self.values)


def test_check_overlap_counts_draws_a_new_case_on_every_run(monkeypatch):
    fixed = [(2, 2, 3), (3, 2, 3), (4, 2, 4), (3, 1, 3), (5, 3, 2), (1, 2, 3)]

    def table(k, s, n):   # every fixed map, as a table harvested from the messages would hold them
        return overlap_counts(k, s, n) if (k, s, n) in fixed else torch.zeros(((n - 1) * s + k,) * 2)

    drawn = set()
    for _ in range(6):
        with pytest.raises(CheckError, match=r"^overlap_counts\(kernel_size=\d, stride=\d, size=\d\) is wrong at") as info:
            check_overlap_counts(table)
        drawn.add(str(info.value).partition(" is wrong")[0])
    assert len(drawn) > 1, drawn   # 6 x 4 x 4 - 4 = 92 cases
    monkeypatch.setattr(nb03, "_fresh_rng", _Drawn)
    assert_passes(check_overlap_counts, overlap_counts)
    with pytest.raises(CheckError, match=r"^overlap_counts\(kernel_size=6, stride=4, size=5\) is wrong at 484 of 484 "):
        check_overlap_counts(table)
