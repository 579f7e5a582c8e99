"""Tests for unet_lib.checks: every learner check both ways.

Each check passes the library's implementation (or a correct one worked out here) and fails
deliberately broken versions with the intended message: the problem and the hint. A skeleton
(the exercise edition's ``raise NotImplementedError``) gives the friendly message of ``_call``.

Layout, so that the file stays appendable: one section per check, each with a test that the
correct version passes, a dict ``BROKEN_<CHECK>`` of {case: (broken version, regex the
message must match)} with one parameterised test over it, and a skeleton case in
``test_skeleton_gets_the_friendly_message``'s style (``assert_skeleton_is_friendly``).
Add a new check's section at the end of the file.
"""

import functools

import numpy as np
import pytest
import torch
from torch import nn

from unet_lib import DoubleConv, UNet, center_crop, checks
from unet_lib.checks import (
    CheckError, CheckPassed, check_center_crop, check_context_margin, check_double_conv,
    check_output_size, check_up_conv,
)


def skeleton(name: str):
    """A function like the exercise edition's skeleton of ``name``."""
    def fn(*args):
        raise NotImplementedError(f"Exercise `{name}`: replace this line with your code")
    fn.__name__ = fn.__qualname__ = name
    return fn


def assert_passes(check, answer) -> None:
    result = check(answer)
    assert isinstance(result, CheckPassed) and result.startswith("✓")
    assert repr(result) == str(result)   # shows without quotes in a notebook


def assert_skeleton_is_friendly(check, name: str) -> None:
    with pytest.raises(NotImplementedError, match=rf"^`{name}` is still the exercise skeleton: replace "
                                                  r"`raise NotImplementedError` with your code"):
        check(skeleton(name))


def test_check_error_is_an_assertion_error_with_a_hint():
    from unet_lib.checks import _fail
    with pytest.raises(AssertionError, match=r"^it is wrong\nHint: look here$"):
        _fail("it is wrong", "look here")
    assert issubclass(CheckError, AssertionError)   # pytest and nbval report it as a failed check


CHECKS = sorted(name for name in checks.__all__ if name.startswith("check_"))


@pytest.mark.parametrize("check", CHECKS)
def test_skeleton_gets_the_friendly_message(check):
    """Every check, present and future, calls the learner's code through `_call` first."""
    assert_skeleton_is_friendly(getattr(checks, check), "my_answer")


def _draws_after(call) -> tuple[float, float]:
    """torch's and numpy's next global random numbers after seeding both and running ``call``."""
    torch.manual_seed(123)
    np.random.seed(123)
    call()
    return torch.rand(1).item(), np.random.rand()


@pytest.mark.parametrize("check", CHECKS)
def test_checks_leave_the_learners_global_rng_alone(check):
    def run():
        with pytest.raises(NotImplementedError):
            getattr(checks, check)(skeleton("my_answer"))
    assert _draws_after(run) == _draws_after(lambda: None)


def test_a_passing_check_leaves_the_global_rng_alone():
    # check_double_conv seeds its own case and builds the learner's block (which draws weights)
    assert _draws_after(lambda: check_double_conv(DoubleConv)) == _draws_after(lambda: None)


@pytest.mark.parametrize("check", CHECKS)
def test_every_check_is_tested_both_ways_here(check):
    tests = {name: fn for name, fn in globals().items() if name.startswith(f"test_{check}_")}
    assert any(name.startswith(f"test_{check}_passes") for name in tests), \
        f"no test_{check}_passes_...: show that the check passes the library's implementation"
    assert any(mark.name == "parametrize" for name, fn in tests.items() if not name.startswith(f"test_{check}_passes")
               for mark in getattr(fn, "pytestmark", [])), \
        f"no parameterised test_{check}_...: show that the check fails broken versions with the intended message"


# -- check_context_margin ----------------------------------------------------------------------

def context_margin(depth: int) -> int:
    """2 px for the first DoubleConv, then 2 * 2**k per DoubleConv k levels down, on both paths."""
    return 6 * 2**depth - 4


def test_context_margin_by_hand_and_by_the_library():
    assert context_margin(4) == (572 - 388) // 2 == 92   # the paper's Fig. 1
    assert context_margin(0) == 2                           # one DoubleConv: two 3x3 convolutions
    for depth in range(5):
        model = UNet(depth=depth, base_channels=1)
        n = model.min_input_size()
        assert context_margin(depth) == (n - model.output_size(n)) // 2


def test_check_context_margin_passes_a_correct_answer():
    assert_passes(check_context_margin, context_margin)


BROKEN_CONTEXT_MARGIN = {
    "both sides": (lambda depth: 2 * context_margin(depth),
                   r"context_margin\(0\) = 4; a depth-0 U-Net loses 2 pixels per side\n"
                   r"Hint: that is both sides together"),
    "contracting path only": (lambda depth: 2 + 2**(depth + 2) - 4,
                              r"context_margin\(1\) = 6; a depth-1 U-Net loses 8 pixels per side\n"
                              r"Hint: count every DoubleConv"),
    "depth 0 forgotten": (lambda depth: 0 if depth == 0 else context_margin(depth),
                          r"context_margin\(0\) = 0; .*\nHint: with depth=0 the U-Net is a single DoubleConv"),
    "wrong type": (lambda depth: str(context_margin(depth)), r"context_margin\(0\) = '2'; "),
    "nothing returned": (lambda depth: None, r"context_margin\(0\) = None; "),
}


@pytest.mark.parametrize("answer, match", BROKEN_CONTEXT_MARGIN.values(), ids=BROKEN_CONTEXT_MARGIN.keys())
def test_check_context_margin_fails_a_broken_answer(answer, match):
    with pytest.raises(CheckError, match=match):
        check_context_margin(answer)


# -- check_double_conv -------------------------------------------------------------------------

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


# -- check_up_conv -----------------------------------------------------------------------------

def make_up_conv(in_channels: int) -> nn.Module:
    return nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)


def test_check_up_conv_passes_the_library_layer():
    assert_passes(check_up_conv, make_up_conv)
    assert_passes(check_up_conv, lambda c: UNet(depth=1, base_channels=c // 2).ups[0].up)   # the one in UNet


BROKEN_UP_CONV = {
    "channels kept (wrong shape)": (lambda c: nn.ConvTranspose2d(c, c, 2, stride=2),
                                    r"make_up_conv\(4\) maps \(1, 4, 5, 7\) to \(1, 4, 10, 14\); expected "
                                    r"\(1, 2, 10, 14\)\nHint: the up-convolution halves the channels"),
    "3x3 kernel (off by one)": (lambda c: nn.ConvTranspose2d(c, c // 2, 3, stride=2),
                                r"to \(1, 2, 11, 15\); expected \(1, 2, 10, 14\)\nHint: kernel_size=2 with stride=2"),
    "bilinear (no learned 2x2 kernel)": (
        lambda c: nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(c, c // 2, 1)),
        r"make_up_conv\(4\) has 10 parameters; a 2x2 up-convolution from 4 to 2 channels has 34\n"
        r"Hint: use nn.ConvTranspose2d"),
    "float64 (wrong dtype)": (lambda c: make_up_conv(c).double(), r"make_up_conv\(4\) has torch.float64 parameters"),
    "a function, not a layer": (lambda c: (lambda x: x), r"make_up_conv\(4\) returned a function, not an nn.Module"),
}


@pytest.mark.parametrize("answer, match", BROKEN_UP_CONV.values(), ids=BROKEN_UP_CONV.keys())
def test_check_up_conv_fails_a_broken_layer(answer, match):
    with pytest.raises(CheckError, match=match):
        check_up_conv(answer)


# -- check_center_crop -------------------------------------------------------------------------

def test_check_center_crop_passes_the_library_crop():
    assert_passes(check_center_crop, center_crop)


def _top_left(x, size):
    return (x.shape[-2] - size[0]) // 2, (x.shape[-1] - size[1]) // 2


BROKEN_CENTER_CROP = {
    "delta from each side (off by one on odd differences)": (
        lambda x, size: x[..., _top_left(x, size)[0] : x.shape[-2] - _top_left(x, size)[0],
                          _top_left(x, size)[1] : x.shape[-1] - _top_left(x, size)[1]],
        r"crop\(x of shape \(2, 3, 12, 10\), \(7, 5\)\) has shape \(2, 3, 8, 6\); expected \(2, 3, 7, 5\)\n"
        r"Hint: with an odd difference"),
    "rounded up (off by one, wrong values)": (
        lambda x, size: x[..., (x.shape[-2] - size[0] + 1) // 2 : (x.shape[-2] - size[0] + 1) // 2 + size[0],
                          (x.shape[-1] - size[1] + 1) // 2 : (x.shape[-1] - size[1] + 1) // 2 + size[1]],
        r"crop\(x, \(7, 5\)\) has the right shape but not the centre of x"),
    "top-left corner (wrong values)": (lambda x, size: x[..., : size[0], : size[1]],
                                       r"crop\(x, \(8, 6\)\) has the right shape but not the centre"),
    "rows and columns swapped": (
        lambda x, size: x[..., _top_left(x, size)[1] : _top_left(x, size)[1] + size[1],
                          _top_left(x, size)[0] : _top_left(x, size)[0] + size[0]],
        r"has shape \(2, 3, 6, 8\); expected \(2, 3, 8, 6\)\nHint: rows and columns are swapped"),
    "batch and channels cropped (wrong shape)": (
        lambda x, size: x[_top_left(x, size)[0] : _top_left(x, size)[0] + size[0]],
        r"expected \(2, 3, 8, 6\)\nHint: crop only the last two dimensions"),
    "float64 (wrong dtype)": (lambda x, size: center_crop(x, size).double(),
                              r"crop\(x, \(8, 6\)\) has dtype torch.float64; x has torch.float32"),
    "numpy (wrong type)": (lambda x, size: center_crop(x, size).numpy(), r"returned a ndarray\nHint: return a torch.Tensor"),
}


@pytest.mark.parametrize("answer, match", BROKEN_CENTER_CROP.values(), ids=BROKEN_CENTER_CROP.keys())
def test_check_center_crop_fails_a_broken_crop(answer, match):
    with pytest.raises(CheckError, match=match):
        check_center_crop(answer)


# -- check_output_size -------------------------------------------------------------------------

@functools.cache
def _unet(depth: int) -> UNet:
    return UNet(depth=depth, base_channels=1)


def output_size(input_size: int, depth: int) -> int | None:
    """The library's answer, with None for an invalid size."""
    try:
        return _unet(depth).output_size(input_size)
    except ValueError:
        return None


def by_formula(n: int, depth: int, check_valid: bool = True, shrink: int = 4, up: bool = True) -> int | None:
    n -= shrink
    for _ in range(depth):
        if check_valid and (n < 2 or n % 2):
            return None
        n = n // 2 - shrink
    if check_valid and n < 1:
        return None
    for _ in range(depth if up else 0):
        n = 2 * n - shrink
        if check_valid and n < 1:
            return None
    return n


def test_output_size_by_hand():
    # depth 1, 20 px: 20 - 4 = 16, pool 8, 8 - 4 = 4, up 8, 8 - 4 = 4
    assert output_size(20, 1) == by_formula(20, 1) == 4
    # 13 - 4 = 9 is odd: the max-pool cannot halve it
    assert output_size(13, 1) is None and by_formula(13, 1) is None
    assert output_size(572, 4) == by_formula(572, 4) == 388   # the paper's Fig. 1
    assert [n for n in range(1, 300) if by_formula(n, 2) is not None] == \
        [n for n in range(1, 300) if output_size(n, 2) is not None]


def test_check_output_size_passes_a_correct_answer():
    assert_passes(check_output_size, output_size)
    assert_passes(check_output_size, by_formula)


def raises_like_the_library(n: int, depth: int) -> int:
    return _unet(depth).output_size(n)


BROKEN_OUTPUT_SIZE = {
    "no validity check": (lambda n, depth: by_formula(n, depth, check_valid=False),
                          r"output_size\(1, depth=1\) = -16, but 1 is not a valid input size\n"
                          r"Hint: every max-pool needs an even size"),
    "2 pixels per DoubleConv (one side only)": (lambda n, depth: by_formula(n, depth, shrink=2),
                                                r"output_size\(18, depth=1\) = 10; expected 2\n"
                                                r"Hint: each DoubleConv removes 4 pixels"),
    "raises instead of None": (raises_like_the_library,
                               r"output_size\(1, depth=1\) raised ValueError: input size 1 is not valid.*\n"
                               r"Hint: return None where the input size is not valid"),
    "contracting path only": (lambda n, depth: by_formula(n, depth, up=False),
                              r"output_size\(18, depth=1\) = 3; expected 2"),
    "wrong type": (lambda n, depth: None if output_size(n, depth) is None else str(output_size(n, depth)),
                   r"output_size\(18, depth=1\) = '2'; expected 2"),
}


@pytest.mark.parametrize("answer, match", BROKEN_OUTPUT_SIZE.values(), ids=BROKEN_OUTPUT_SIZE.keys())
def test_check_output_size_fails_a_broken_answer(answer, match):
    with pytest.raises(CheckError, match=match):
        check_output_size(answer)


# -- check_record_output (notebook 09) --------------------------------------------------------

from unet_lib.checks import check_record_output  # noqa: E402  (appended section)


def record_output(model, x, block):
    """The exercise's solution: a forward hook that keeps the block's output, removed afterwards."""
    kept = []
    handle = block.register_forward_hook(lambda module, inputs, output: kept.append(output))
    try:
        model(x)
    finally:
        handle.remove()
    return kept[0]


def test_check_record_output_passes_a_correct_answer():
    assert_passes(check_record_output, record_output)
    assert_skeleton_is_friendly(check_record_output, "record_output")


def keeps_the_hook(model, x, block):
    kept = []
    block.register_forward_hook(lambda module, inputs, output: kept.append(output))
    model(x)
    return kept[0]


def runs_twice(model, x, block):
    model(x)
    return record_output(model, x, block)


def keeps_the_input(model, x, block):
    kept = []
    handle = block.register_forward_hook(lambda module, inputs, output: kept.append(inputs[0]))
    model(x)
    handle.remove()
    return kept[0]


def keeps_all_arguments(model, x, block):
    kept = []
    handle = block.register_forward_hook(lambda *arguments: kept.append(arguments))
    model(x)
    handle.remove()
    return kept[0]


BROKEN_RECORD_OUTPUT = {
    "hook not removed": (keeps_the_hook, r"a forward hook is still attached to the block\nHint: .*handle.remove\(\)"),
    "two forward passes": (runs_twice, r"ran the model 2 times; expected once"),
    "the block's input": (keeps_the_input, r"model.inc\) returned the block's input, not its output\n"
                                           r"Hint: the hook's arguments are \(module, inputs, output\)"),
    "the hook's arguments": (keeps_all_arguments, r"returned a tuple; expected a tensor\n"
                                                  r"Hint: the hook is called as hook\(module, inputs, output\)"),
    "batch dimension dropped": (lambda m, x, b: record_output(m, x, b)[0],
                                r"has shape \(4, 76, 76\); the block's output has shape \(2, 4, 76, 76\)\n"
                                r"Hint: keep the batch dimension"),
    "normalised": (lambda m, x, b: record_output(m, x, b).sigmoid(), r"right shape but different values"),
}


@pytest.mark.parametrize("answer, match", BROKEN_RECORD_OUTPUT.values(), ids=BROKEN_RECORD_OUTPUT.keys())
def test_check_record_output_fails_a_broken_answer(answer, match):
    with pytest.raises(CheckError, match=match):
        check_record_output(answer)


# -- check_otsu_threshold (notebook 10) --------------------------------------------------------

from unet_lib.baselines import otsu_threshold  # noqa: E402  (appended section)
from unet_lib.checks import check_otsu_threshold  # noqa: E402


def _otsu_split(image, score):
    """The best split between consecutive distinct values by ``score(n0, n1, mu0, mu1)``:
    returns (largest background value, smallest foreground value)."""
    values = np.unique(np.asarray(image, dtype=np.float64))
    x = np.asarray(image, dtype=np.float64).ravel()
    scores = [score((x <= t).sum(), (x > t).sum(), x[x <= t].mean(), x[x > t].mean()) for t in values[:-1]]
    k = int(np.argmax(scores))
    return values[k], values[k + 1]


def _otsu_by_hand(image):
    return _otsu_split(image, lambda n0, n1, mu0, mu1: n0 * n1 * (mu0 - mu1) ** 2)[0]


def test_check_otsu_threshold_passes_the_library_and_a_by_hand_version():
    assert_passes(check_otsu_threshold, otsu_threshold)
    assert_passes(check_otsu_threshold, _otsu_by_hand)
    assert_skeleton_is_friendly(check_otsu_threshold, "otsu")


@pytest.mark.parametrize("broken, match", [
    (lambda image: sum(_otsu_split(image, lambda n0, n1, mu0, mu1: n0 * n1 * (mu0 - mu1) ** 2)) / 2,
     r"otsu\(np.array\(\[7, 1, 6, 2\]\)\) = 4; Otsu's threshold is 2\nHint: a value between the two classes"),
    (lambda image: _otsu_split(image, lambda n0, n1, mu0, mu1: n0 * n1 * (mu0 - mu1) ** 2)[1],
     r"= 6; Otsu's threshold is 2\nHint: that is the smallest foreground value"),
    (lambda image: _otsu_split(image, lambda n0, n1, mu0, mu1: (mu0 - mu1) ** 2)[0],      # no class weights
     r"bimodal uint8 image.*\nHint: try every split.*omega_0 \* omega_1"),
    (lambda image: image > _otsu_by_hand(image),
     r"returned a ndarray; expected one number\nHint: return the threshold t itself"),
])
def test_check_otsu_threshold_names_the_mistake(broken, match):
    with pytest.raises(CheckError, match=match):
        check_otsu_threshold(broken)



# -- check_instances_to_mask (notebook 05) -------------------------------------------------------

from scipy import ndimage  # noqa: E402

from unet_lib.checks import check_border_term, check_instances_to_mask  # noqa: E402
from unet_lib.data import instances_to_mask  # noqa: E402
from unet_lib.weights import border_term, border_term_naive  # noqa: E402


def mask_by_pixel_loop(instances):
    """The separating borders pixel by pixel: a correct answer written independently."""
    mask = (instances > 0).astype(np.int64)
    H, W = instances.shape
    for y in range(H):
        for x in range(W):
            window = instances[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]
            if instances[y, x] and np.any((window > 0) & (window != instances[y, x])):
                mask[y, x] = 0
    return mask


def test_check_instances_to_mask_passes_correct_answers():
    assert_passes(check_instances_to_mask, instances_to_mask)
    assert_passes(check_instances_to_mask, mask_by_pixel_loop)
    assert_passes(check_instances_to_mask, lambda instances: torch.from_numpy(instances_to_mask(instances)))
    assert_skeleton_is_friendly(check_instances_to_mask, "instances_to_mask")


def cut_four_neighbours(instances):
    footprint = ndimage.generate_binary_structure(2, 1)
    other = np.where(instances == 0, instances.max() + 1, instances)
    larger = ndimage.maximum_filter(instances, footprint=footprint) > instances
    smaller = ndimage.minimum_filter(other, footprint=footprint) < instances
    return ((instances > 0) & ~(larger | smaller)).astype(np.int64)


def cut_one_side(instances):
    # only the cell with the smaller id gives up its border pixels
    larger = ndimage.maximum_filter(instances, size=3) > instances
    return ((instances > 0) & ~larger).astype(np.int64)


BROKEN_INSTANCES_TO_MASK = {
    "no borders": (lambda instances: (instances > 0).astype(int), r"just instances > 0.*\nHint: set every cell pixel"),
    "ids": (lambda instances: instances * instances_to_mask(instances), r"values other than 0 and 1: 0, 1, 2\nHint: return the semantic"),
    "eroded": (lambda instances: ndimage.binary_erosion(instances > 0).astype(int), r"touch no other cell\nHint: only a"),
    "4 neighbours": (cut_four_neighbours, r"touching at a corner\) keeps the two cells connected diagonally\nHint: .*8"),
    "one side": (cut_one_side, r"keeps \d+ border pixel\(s\).*\nHint: cut both sides"),
    "wrong shape": (lambda instances: instances_to_mask(instances)[1:], r"returned shape .*; expected"),
}


@pytest.mark.parametrize("answer, match", BROKEN_INSTANCES_TO_MASK.values(), ids=BROKEN_INSTANCES_TO_MASK.keys())
def test_check_instances_to_mask_fails_a_broken_answer(answer, match):
    with pytest.raises(CheckError, match=match):
        check_instances_to_mask(answer)


# -- check_border_term (notebook 06) --------------------------------------------------------------

def border_term_by_formula(instances, w0, sigma, variant="paper"):
    """Eq. 2's border term from per-cell distance transforms, with deliberate mistakes."""
    ids = np.unique(instances[instances > 0])
    if len(ids) < 2:
        return np.zeros(instances.shape) if variant != "no d2 check" else np.full(instances.shape, w0)
    d = np.sort(np.stack([ndimage.distance_transform_edt(instances != i) for i in ids]), axis=0)
    d1, d2 = d[0], d[1]
    exponent = {"paper": (d1 + d2) ** 2 / (2 * sigma**2), "no d2 check": (d1 + d2) ** 2 / (2 * sigma**2),
                "no 2": (d1 + d2) ** 2 / sigma**2, "sigma": (d1 + d2) ** 2 / (2 * sigma), "squares": (d1**2 + d2**2) / (2 * sigma**2),
                "d1 twice": (2 * d1) ** 2 / (2 * sigma**2), "hard-coded": (d1 + d2) ** 2 / 50}[variant]
    term = w0 * np.exp(-exponent)
    return term if variant == "everywhere" else np.where(instances == 0, term, 0)


def test_check_border_term_passes_correct_answers():
    assert_passes(check_border_term, border_term_naive)
    assert_passes(check_border_term, border_term)
    assert_passes(check_border_term, border_term_by_formula)
    assert_skeleton_is_friendly(check_border_term, "border_term")


def everywhere(instances, w0, sigma):
    ids = np.unique(instances[instances > 0])
    if len(ids) < 2:
        return np.zeros(instances.shape)
    d = np.sort(np.stack([ndimage.distance_transform_edt(instances != i) for i in ids]), axis=0)
    return w0 * np.exp(-(d[0] + d[1]) ** 2 / (2 * sigma**2))


BROKEN_BORDER_TERM = {
    "on cells too": (everywhere, r"non-zero on cell pixels\nHint: .*background pixels only"),
    "sigma^2": (lambda i, w0, s: border_term_by_formula(i, w0, s, "no 2"), r"with \(d1 \+ d2\)\^2 / sigma\^2\nHint: .*2 \* sigma\^2"),
    "sigma, not squared": (lambda i, w0, s: border_term_by_formula(i, w0, s, "sigma"),
                           r"with \(d1 \+ d2\)\^2 / \(2 \* sigma\)\nHint: square sigma"),
    "squares": (lambda i, w0, s: border_term_by_formula(i, w0, s, "squares"), r"d1\^2 \+ d2\^2\)\nHint: square the sum"),
    "d1 twice": (lambda i, w0, s: border_term_by_formula(i, w0, s, "d1 twice"), r"2 \* d1\nHint: d2 is the distance to the \*second\*"),
    "no w0": (lambda i, w0, s: border_term_by_formula(i, w0, s) / w0, r"no w0\nHint: multiply by w0"),
    "single cell": (lambda i, w0, s: border_term_by_formula(i, w0, s, "no d2 check"), r"a single cell\) is not 0 everywhere\nHint: .*no d2"),
    "hard-coded sigma": (lambda i, w0, s: border_term_by_formula(i, w0, s, "hard-coded"), r"w0=4, sigma=2\) differs at pixel .*\nHint: .*arguments"),
    "a list": (lambda i, w0, s: border_term_naive(i, w0, s).tolist(), r"returned a list; expected a numpy array"),
}


@pytest.mark.parametrize("answer, match", BROKEN_BORDER_TERM.values(), ids=BROKEN_BORDER_TERM.keys())
def test_check_border_term_fails_a_broken_answer(answer, match):
    with pytest.raises(CheckError, match=match):
        check_border_term(answer)


# -- notebooks 07 and 08: train_step, iou, count_matches ---------------------------------------

from unet_lib.checks import check_count_matches, check_iou, check_train_step  # noqa: E402
from unet_lib.losses import weighted_cross_entropy  # noqa: E402
from unet_lib.metrics import instance_scores, iou  # noqa: E402
from unet_lib.tiling import padded_forward  # noqa: E402
from unet_lib.train import train_step  # noqa: E402


def train_step_by_hand(model, optimizer, batch, mistake=None):
    if mistake in ("unpadded", "cropped mask"):
        logits = model(batch["image"])                                   # smaller than the mask
    else:
        logits = padded_forward(model, batch["image"])
    mask, weight_map = batch["mask"], None if mistake == "unweighted" else batch["weight_map"]
    if mistake == "cropped mask":                                        # what the loss's error message suggests
        mask, weight_map = center_crop(mask, logits.shape[-2:]), center_crop(weight_map, logits.shape[-2:])
    loss = weighted_cross_entropy(logits, mask, weight_map)
    if mistake not in ("no zero_grad", "zero_grad after backward"):
        optimizer.zero_grad()
    if mistake != "no backward":
        loss.backward()
    if mistake == "zero_grad after backward":
        optimizer.zero_grad()
    if mistake != "no step":
        optimizer.step()
    return loss if mistake == "tensor" else loss.item()


def test_check_train_step_passes_the_library_and_a_hand_written_step():
    assert_passes(check_train_step, train_step)
    assert_passes(check_train_step, train_step_by_hand)
    assert_skeleton_is_friendly(check_train_step, "train_step")


@pytest.mark.parametrize("mistake, match", [
    ("unweighted", r"unweighted cross-entropy.*\nHint: pass batch\['weight_map'\]"),
    ("no zero_grad", r"after step 2 the weights .* differ.*\nHint: .*optimizer.zero_grad\(\)"),
    ("no step", r"weights did not change\nHint: call optimizer.step\(\) after loss.backward\(\)"),
    ("no backward", r"no gradient reached them\nHint: call loss.backward\(\)"),
    ("zero_grad after backward", r"gradients were zero when optimizer.step\(\) came\nHint: optimizer.zero_grad\(\) "
                                 r"after loss.backward\(\) erases the gradients just computed.*zero_grad\(\) first"),
    ("unpadded", r"ran the model on the unpadded 32x32 image.*ValueError.*\nHint: logits = padded_forward"),
    ("cropped mask", r"ran the model on the unpadded 32x32 image, so its loss leaves out.*\nHint: logits = padded_forward"
                     r".*do not crop the mask"),
    ("tensor", r"returned a tensor .*\nHint: return loss.item\(\)"),
])
def test_check_train_step_fails_a_broken_step(mistake, match):
    with pytest.raises(CheckError, match=match):
        check_train_step(lambda m, o, b: train_step_by_hand(m, o, b, mistake))


def iou_by_hand(pred, mask):
    union = np.logical_or(pred, mask).sum()
    return 1.0 if union == 0 else np.logical_and(pred, mask).sum() / union


def test_check_iou_passes_the_library_and_a_hand_written_iou():
    assert_passes(check_iou, iou)
    assert_passes(check_iou, iou_by_hand)
    assert_skeleton_is_friendly(check_iou, "iou_by_hand")


@pytest.mark.parametrize("answer, match", [
    (lambda p, m: 2 * (p & m).sum() / max(p.sum() + m.sum(), 1), r"expected .*\nHint: that is the Dice score"),
    (lambda p, m: (p & m).sum() / max(m.sum(), 1), r"expected .*\nHint: intersection: both 1; union: either 1"),
    (lambda p, m: (p & m).sum() / (p | m).sum() if (p | m).any() else 0.0,
     r"two empty masks gave 0.0; expected 1.0\nHint: .*nothing to find"),
    (lambda p, m: (p & m).sum() / (p | m).sum(), r"two empty masks gave .*; expected 1.0"),
])
def test_check_iou_fails_a_broken_iou(answer, match):
    with np.errstate(invalid="ignore", divide="ignore"):
        with pytest.raises(CheckError, match=match):
            check_iou(answer)


def count_matches_by_hand(pred_instances, instances, threshold=0.5, strict=False, by_id=False):
    matched = 0
    for g in np.unique(instances[instances > 0]):
        for p in np.unique(pred_instances[pred_instances > 0]):
            if by_id and p != g:
                continue
            a, b = pred_instances == p, instances == g
            score = (a & b).sum() / (a | b).sum()
            if score > threshold or (score == threshold and not strict):
                matched += 1
                break
    return matched


def test_check_count_matches_passes_the_library_and_a_hand_written_count():
    assert_passes(check_count_matches, lambda p, g: instance_scores(p, g).tp)
    assert_passes(check_count_matches, count_matches_by_hand)
    assert_skeleton_is_friendly(check_count_matches, "count_matches_by_hand")


@pytest.mark.parametrize("answer, match", [
    (lambda p, g: count_matches_by_hand(p, g, strict=True), r"IoU exactly 0.5.*\nHint: the threshold is inclusive"),
    (lambda p, g: count_matches_by_hand(p, g, by_id=True), r"other ids: .*\nHint: match by overlap"),
    (lambda p, g: count_matches_by_hand(p, g, threshold=0.0), r"merged: .*\nHint: a blob covering two cells"),
    (lambda p, g: float(count_matches_by_hand(p, g)), r"returned 3.0; expected an int"),
])
def test_check_count_matches_fails_a_broken_count(answer, match):
    with pytest.raises(CheckError, match=match):
        check_count_matches(answer)



# -- a skeleton method (notebooks 02, 04): the friendly message, not torch's traceback --------------

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


# -- check_unet_forward (notebook 04) ------------------------------------------------------------

from unet_lib.checks import (  # noqa: E402
    check_border_weight_share, check_class_balance, check_touching_pairs, check_unet_forward, check_warp_image,
)


def unet_forward_by_hand(model, x, mistake=None):
    x = model.inc(x)
    skips = []
    for down in model.downs:
        if mistake != "skip after down":
            skips.append(x)
        x = down(x)
        if mistake == "skip after down":
            skips.append(x)
    order = skips if mistake == "skips not reversed" else list(reversed(skips))
    for up, skip in zip(model.ups, order):
        x = up(x, skip)
    return x if mistake == "no outc" else model.outc(x)


def test_check_unet_forward_passes_the_blocks_in_a_u():
    assert_passes(check_unet_forward, unet_forward_by_hand)
    assert_skeleton_is_friendly(check_unet_forward, "unet_forward")


BROKEN_UNET_FORWARD = {
    "calls the model": (lambda m, x: m(x), r"calls model\(x\) itself\nHint: build the pass from the blocks"),
    "no outc": (lambda m, x: unet_forward_by_hand(m, x, "no outc"), r"has shape .*\nHint: finish with model.outc"),
    "skips not reversed": (lambda m, x: unet_forward_by_hand(m, x, "skips not reversed"),
                           r"raised RuntimeError: .*\nHint: going down, append x to skips \*before\*"),
    "skip after down": (lambda m, x: unet_forward_by_hand(m, x, "skip after down"),
                        r"raised ValueError: .*\nHint: .*reversed\(skips\)"),
    "a list": (lambda m, x: [unet_forward_by_hand(m, x)], r"returned a list\nHint: return the output of model.outc"),
    "the skip added, not concatenated": (
        lambda m, x: unet_forward_by_hand(m, x) + 0.1, r"right shape but different values from model\(x\)"),
}


@pytest.mark.parametrize("answer, match", BROKEN_UNET_FORWARD.values(), ids=BROKEN_UNET_FORWARD.keys())
def test_check_unet_forward_fails_a_broken_forward(answer, match):
    with pytest.raises(CheckError, match=match):
        check_unet_forward(answer)


# -- check_touching_pairs (notebook 05) ----------------------------------------------------------

def touching_pairs_by_loop(instances, neighbours=8, ordered=True, keep_background=False):
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)] + ([(-1, -1), (-1, 1), (1, -1), (1, 1)] if neighbours == 8 else [])
    H, W = instances.shape
    pairs = set()
    for r in range(H):
        for c in range(W):
            for dr, dc in steps:
                if 0 <= r + dr < H and 0 <= c + dc < W:
                    a, b = int(instances[r, c]), int(instances[r + dr, c + dc])
                    if a != b and a > 0 and (b > 0 or keep_background):
                        pairs.add((min(a, b), max(a, b)) if ordered else (a, b))
    return pairs


def test_check_touching_pairs_passes_a_loop_over_pixels():
    assert_passes(check_touching_pairs, touching_pairs_by_loop)
    assert_passes(check_touching_pairs, lambda i: sorted(touching_pairs_by_loop(i)))   # a list of pairs is fine
    assert_skeleton_is_friendly(check_touching_pairs, "touching_pairs")


def test_touching_pairs_reference_by_hand():
    from unet_lib.checks import _touching_pairs
    row = np.array([[4, 4, 9, 9, 2, 2]])
    assert _touching_pairs(row) == {(4, 9), (2, 9)}
    assert _touching_pairs(np.array([[1, 0], [0, 3]])) == {(1, 3)}
    assert _touching_pairs(np.array([[5, 0, 7]])) == set()


BROKEN_TOUCHING_PAIRS = {
    "4-neighbourhood": (lambda i: touching_pairs_by_loop(i, neighbours=4), r"corner\) misses the contact \(1, 3\)\n"
                        r"Hint: look at all 8 neighbours"),
    "both orders": (lambda i: touching_pairs_by_loop(i, ordered=False), r"expected \[\(1, 2\)\]\nHint: each pair once"),
    "background as a cell": (lambda i: touching_pairs_by_loop(i, keep_background=True),
                             r"contains a pair with 0\nHint: 0 is the background"),
    "one id per contact": (lambda i: {int(v) for v in np.unique(i[i > 0])}, r"expected a set of pairs"),
    "across a gap": (lambda i: touching_pairs_by_loop(i) | ({(5, 7)} if {5, 7} <= set(np.unique(i)) else set()),
                     r"one pixel apart \(ids 5 and 7\)\) has pairs that do not touch: \[\(5, 7\)\]"),
}


@pytest.mark.parametrize("answer, match", BROKEN_TOUCHING_PAIRS.values(), ids=BROKEN_TOUCHING_PAIRS.keys())
def test_check_touching_pairs_fails_broken_pairs(answer, match):
    with pytest.raises(CheckError, match=match):
        check_touching_pairs(answer)


# -- check_warp_image (notebook 05) --------------------------------------------------------------

from unet_lib.augment import elastic_deform  # noqa: E402
from unet_lib.checks import _warp  # noqa: E402


def test_check_warp_image_passes_elastic_deform_and_map_coordinates():
    assert_passes(check_warp_image, lambda im, d: elastic_deform(im, np.zeros(im.shape, np.int64), d)[0])
    assert_passes(check_warp_image, _warp)
    assert_skeleton_is_friendly(check_warp_image, "warp_image")


def test_warp_moves_content_against_the_displacement():
    image = np.zeros((5, 5))
    image[2, 3] = 1.0
    shifted = _warp(image, np.stack([np.zeros((5, 5)), np.ones((5, 5))]))   # every arrow points right by 1
    assert shifted[2, 2] == 1.0 and shifted.sum() == 1.0                       # the bright pixel moved left


BROKEN_WARP_IMAGE = {
    "minus the displacement": (lambda im, d: _warp(im, d, sign=-1.0), r"Hint: content moves \*against\* the arrows"),
    "rows and columns swapped": (lambda im, d: _warp(im, d, swap=True), r"Hint: displacement\[0\] moves along the rows"),
    "nearest neighbour": (lambda im, d: _warp(im, d, order=0), r"Hint: interpolate the image linearly"),
    "scipy's default order": (lambda im, d: _warp(im, d, order=3), r"Hint: map_coordinates interpolates with cubic"),
    "zeros outside": (lambda im, d: _warp(im, d, mode="constant"), r"wrong where it samples outside\nHint: reflect"),
    "the displacement itself": (lambda im, d: d[0], r"differs at pixel .*\nHint: sample the image at"),
    "a torch tensor of the wrong shape": (lambda im, d: torch.from_numpy(im)[None], r"returned shape \(1, 20, 24\)"),
}


@pytest.mark.parametrize("answer, match", BROKEN_WARP_IMAGE.values(), ids=BROKEN_WARP_IMAGE.keys())
def test_check_warp_image_fails_a_broken_warp(answer, match):
    with pytest.raises(CheckError, match=match):
        check_warp_image(answer)


# -- check_class_balance (notebook 06) -----------------------------------------------------------

from unet_lib.weights import class_weight_map  # noqa: E402


def class_balance_by_counts(mask, mistake=None):
    counts = np.bincount(mask.ravel(), minlength=2).astype(np.float64)
    if mistake != "zero count":
        counts = np.maximum(counts, 1)
    with np.errstate(divide="ignore"):
        weights = {None: mask.size / (2 * counts), "zero count": mask.size / (2 * counts),
                   "inverted": counts / (2 * mask.size), "no 2": mask.size / counts}[mistake]
    return weights[mask]


def test_check_class_balance_passes_the_library_and_counts():
    assert_passes(check_class_balance, class_weight_map)
    assert_passes(check_class_balance, class_balance_by_counts)
    assert mask_weights_by_hand() == (2 / 3, 2.0)
    assert_skeleton_is_friendly(check_class_balance, "class_balance")


def mask_weights_by_hand():
    """[[0, 0, 0, 1]]: 4 pixels, 3 background -> 4 / (2 * 3); 1 cell -> 4 / (2 * 1)."""
    w = class_weight_map(np.array([[0, 0, 0, 1]]))
    return (pytest.approx(float(w[0, 0])), float(w[0, 3]))


BROKEN_CLASS_BALANCE = {
    "inverted": (lambda m: class_balance_by_counts(m, "inverted"), r"\nHint: the rarer class gets the \*larger\*"),
    "no factor 2": (lambda m: class_balance_by_counts(m, "no 2"), r"\nHint: divide by the number of classes too"),
    "absent class": (lambda m: class_balance_by_counts(m, "zero count") * np.where(m.sum() == 0, np.inf, 1.0),
                     r"without cells, 3x4\) contains inf or nan\nHint: a class with no pixels"),
    "all ones": (lambda m: np.ones(m.shape), r"differs from w_c: 1; expected 0.667, 2\nHint: every pixel of class c"),
    "per class, not per pixel": (lambda m: class_weight_map(m)[0], r"returned shape \(4,\); expected \(1, 4\)"),
}


@pytest.mark.parametrize("answer, match", BROKEN_CLASS_BALANCE.values(), ids=BROKEN_CLASS_BALANCE.keys())
def test_check_class_balance_fails_broken_weights(answer, match):
    with pytest.raises(CheckError, match=match):
        check_class_balance(answer)


# -- check_border_weight_share (notebook 06) -----------------------------------------------------

from unet_lib.data import separate_touching, touching_borders  # noqa: E402
from unet_lib.weights import unet_weight_map  # noqa: E402


def border_weight_share_by_hand(instances, sigma, mistake=None):
    separated = separate_touching(instances)
    borders = touching_borders(separated if mistake == "borders of the separated cells" else instances)
    source = instances if mistake == "not separated" else separated
    weights = unet_weight_map(source, sigma=5.0 if mistake == "sigma ignored" else sigma)
    if mistake == "pixel share":
        return float(borders.mean())
    return float(weights[borders].sum() / weights.sum())


def test_check_border_weight_share_passes_the_weight_map():
    assert_passes(check_border_weight_share, border_weight_share_by_hand)
    assert_passes(check_border_weight_share, lambda i, s: np.float32(border_weight_share_by_hand(i, s)))
    assert_skeleton_is_friendly(check_border_weight_share, "border_weight_share")


BROKEN_BORDER_WEIGHT_SHARE = {
    "sigma ignored": (lambda i, s: border_weight_share_by_hand(i, s, "sigma ignored"),
                      r"sigma=2\) = .*\nHint: pass sigma on"),
    "not separated": (lambda i, s: border_weight_share_by_hand(i, s, "not separated"),
                      r"\nHint: compute the weight map from separate_touching"),
    "pixel share": (lambda i, s: border_weight_share_by_hand(i, s, "pixel share"), r"\nHint: that is the share of the \*pixels\*"),
    "borders of the separated cells": (lambda i, s: border_weight_share_by_hand(i, s, "borders of the separated cells"),
                                       r"\nHint: find the borders on the original instances"),
    "a percentage": (lambda i, s: 100 * border_weight_share_by_hand(i, s), r"= \d+\.\d+; expected 0\.\d+\nHint: borders ="),
    "the weight map": (lambda i, s: unet_weight_map(separate_touching(i), sigma=s), r"returned a ndarray; expected one number"),
}


@pytest.mark.parametrize("answer, match", BROKEN_BORDER_WEIGHT_SHARE.values(), ids=BROKEN_BORDER_WEIGHT_SHARE.keys())
def test_check_border_weight_share_fails_a_broken_share(answer, match):
    with pytest.raises(CheckError, match=match):
        check_border_weight_share(answer)

# -- notebooks 01 to 03: convolutionalize, contracting_parameters, receptive_field, up_forward,
#    overlap_counts ----------------------------------------------------------------------------

from unet_lib import Up  # noqa: E402
from unet_lib.checks import (  # noqa: E402
    check_contracting_parameters, check_convolutionalize, check_overlap_counts, check_receptive_field,
    check_up_forward,
)


def test_check_double_conv_passes_layers_created_in_another_order():
    assert_passes(check_double_conv, DefinedOutOfOrder)   # registration order is not application order


def convolutionalize(linear: nn.Linear, channels: int, size: int, mistake: str | None = None) -> nn.Module:
    out = linear.out_features
    conv = nn.Conv2d(channels, out, kernel_size=size if mistake != "stride" else size,
                     stride=size if mistake == "stride" else 1)
    with torch.no_grad():
        weight = linear.weight.view(out, channels, size, size)
        if mistake == "channels last":
            weight = linear.weight.view(out, size, size, channels).permute(0, 3, 1, 2)
        conv.weight.copy_(weight)
        conv.bias.copy_(torch.zeros(out) if mistake == "no bias" else linear.bias)
    return conv


def test_check_convolutionalize_passes_a_correct_answer():
    assert_passes(check_convolutionalize, convolutionalize)
    assert_skeleton_is_friendly(check_convolutionalize, "convolutionalize")


@pytest.mark.parametrize("mistake, match", [
    ("no bias", r"without its bias\nHint: copy linear.bias"),
    ("channels last", r"different numbers than linear on the same window\nHint: nn.Flatten flattens \(channels, "
                      r"height, width\)"),
    ("stride", r"gives shape \(1, 2, 1, 1\); expected \(1, 2, 4, 3\).*\nHint: kernel_size=4 .*stride 1"),
    ("the linear layer", r"fails on a \(3, 7, 6\) map: .*\nHint: nn.Conv2d\(in_channels=3"),
])
def test_check_convolutionalize_fails_a_broken_answer(mistake, match):
    answer = (lambda linear, c, s: linear) if mistake == "the linear layer" else \
        (lambda linear, c, s: convolutionalize(linear, c, s, mistake))
    with pytest.raises(CheckError, match=match):
        check_convolutionalize(answer)


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
    "no biases": (lambda i, b, d: checks._contracting_parameters(i, b, d, bias=False),
                  r"= 18,838,080; the model's inc and downs have 18,842,048\nHint: .*one bias per output channel"),
    "no doubling": (lambda i, b, d: checks._contracting_parameters(i, b, d, double=False),
                    r"\nHint: each Down doubles the channels"),
    "one Down too many": (lambda i, b, d: checks._contracting_parameters(i, b, d, levels=d + 1),
                          r"\nHint: there are depth Downs after inc, not depth \+ 1"),
    "one conv per level": (lambda i, b, d: checks._contracting_parameters(i, b, d, convs=1),
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
    assert measure_receptive_field(checks._probe_ready(DoubleConv(1, 1)), 1, 11) == 5
    block = checks._probe_ready(nn.Sequential(DoubleConv(1, 1), nn.AvgPool2d(2), DoubleConv(1, 1)))
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


def up_forward(up: Up, x: torch.Tensor, skip: torch.Tensor, mistake: str | None = None) -> torch.Tensor:
    x = up.up(x)
    if mistake == "top-left crop":
        skip = skip[..., : x.shape[-2], : x.shape[-1]]
    elif mistake != "no crop":
        skip = center_crop(skip, x.shape[-2:])
    x = torch.cat([x, skip] if mistake == "swapped" else [skip, x], dim=1)
    return x if mistake == "no conv" else up.conv(x)


def test_check_up_forward_passes_a_correct_answer():
    assert_passes(check_up_forward, up_forward)
    assert_skeleton_is_friendly(check_up_forward, "up_forward")


BROKEN_UP_FORWARD = {
    "swapped": (lambda u, x, s: up_forward(u, x, s, "swapped"), r"concatenated in the other order\n"
                                                                r"Hint: unet_lib's Up puts the skip first"),
    "top-left crop": (lambda u, x, s: up_forward(u, x, s, "top-left crop"), r"right shape, different values\n"
                                                                            r"Hint: crop the centre"),
    "no crop": (lambda u, x, s: up_forward(u, x, s, "no crop"), r"up_forward raised .*\nHint: x = up.up\(x\) first"),
    "no conv": (lambda u, x, s: up_forward(u, x, s, "no conv"), r"gave shape \(2, 8, 10, 12\); expected \(2, 4, 6, 8\)"
                                                                r"\nHint: that is the concatenation"),
    "calls the library": (lambda u, x, s: u(x, s), r"called up\(x, skip\).*\nHint: write the steps yourself"),
}


@pytest.mark.parametrize("answer, match", BROKEN_UP_FORWARD.values(), ids=BROKEN_UP_FORWARD.keys())
def test_check_up_forward_fails_a_broken_step(answer, match):
    with pytest.raises(CheckError, match=match):
        check_up_forward(answer)


def overlap_counts(kernel_size: int, stride: int, size: int, bias: float = 0.0, keep_dims: bool = False):
    layer = nn.ConvTranspose2d(1, 1, kernel_size, stride=stride, bias=bias != 0.0)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        if bias:
            layer.bias.fill_(bias)
        y = layer(torch.ones(1, 1, size, size))
    return y if keep_dims else y[0, 0]


def test_overlap_counts_by_hand():
    # kernel 3, stride 2, 2 inputs per side: the middle column is painted by both
    assert overlap_counts(3, 2, 2)[0].tolist() == [1, 1, 2, 1, 1]
    assert overlap_counts(2, 2, 3).eq(1).all()                    # the paper's up-convolution: no overlap


def test_check_overlap_counts_passes_a_correct_answer():
    assert_passes(check_overlap_counts, overlap_counts)
    assert_passes(check_overlap_counts, lambda k, s, n: overlap_counts(k, s, n).numpy())
    assert_skeleton_is_friendly(check_overlap_counts, "overlap_counts")


BROKEN_OVERLAP_COUNTS = {
    "bias": (lambda k, s, n: overlap_counts(k, s, n, bias=0.5), r"differs .*\nHint: no bias"),
    "random weights": (lambda k, s, n: nn.ConvTranspose2d(1, 1, k, stride=s, bias=False)(torch.ones(1, 1, n, n))[0, 0],
                       r"differs .*\nHint: counts are whole numbers"),
    "batch dimensions kept": (lambda k, s, n: overlap_counts(k, s, n, keep_dims=True),
                              r"has shape \(1, 1, 6, 6\); expected \(6, 6\)\nHint: drop the batch"),
    "stride ignored": (lambda k, s, n: overlap_counts(k, 1, n), r"stride=2, size=3\) has shape \(4, 4\); "
                                                                r"expected \(6, 6\)\nHint: .*\(size - 1\) \* stride"),
    "a list": (lambda k, s, n: overlap_counts(k, s, n).tolist(), r"returned a list"),
}


@pytest.mark.parametrize("answer, match", BROKEN_OVERLAP_COUNTS.values(), ids=BROKEN_OVERLAP_COUNTS.keys())
def test_check_overlap_counts_fails_a_broken_map(answer, match):
    with torch.no_grad(), pytest.raises(CheckError, match=match):
        check_overlap_counts(answer)
# -- check_merged_per_skip (notebook 09) ---------------------------------------------------------

from unet_lib.checks import check_merged_per_skip  # noqa: E402  (appended section)
from unet_lib.metrics import label_instances  # noqa: E402
from unet_lib.widgets import average_skips, feature_maps  # noqa: E402


def merged_per_skip(model, images, instances):
    """The exercise's solution: one skip block-averaged at a time, merged cells over all images."""
    merged = {}
    for j in range(len(model.ups)):
        name = f"ups[{j}]"
        handles = average_skips(model, [name])
        try:
            preds = [feature_maps(model, image).logits.argmax(0) for image in images]
        finally:
            for handle in handles:
                handle.remove()
        merged[name] = sum(instance_scores(label_instances(p), t).merged for p, t in zip(preds, instances))
    return merged


def test_check_merged_per_skip_passes_a_correct_answer():
    assert_passes(check_merged_per_skip, merged_per_skip)
    assert_skeleton_is_friendly(check_merged_per_skip, "merged_per_skip")


def _experiment(name: str):
    """A broken answer that returns what the mistake ``name`` gives (computed once by the check)."""
    return lambda model, images, instances: checks._skip_experiment(name)


def leaves_the_hooks(model, images, instances):
    average_skips(model, ["ups[1]"])
    return checks._skip_experiment("expected")


BROKEN_MERGED_PER_SKIP = {
    "hooks left on the model": (leaves_the_hooks, r"ups\[1\] still has a forward pre-hook.*\n"
                                                  r"Hint: average_skips returns the hooks' handles"),
    "every skip at once": (_experiment("all at once"), r"gave \{'ups\[0\]': 18, .*\nHint: you averaged every "
                                                       r"skip at once"),
    "no hooks while predicting": (_experiment("no hooks"), r"Hint: every value is what the model merges with all "
                                                           r"skips intact"),
    "zeroed, not averaged": (_experiment("zeroed"), r"Hint: those are the counts with one skip set to zero"),
    "first image only": (_experiment("first image only"), r"Hint: those are the counts of the first image only"),
    "other keys": (lambda m, x, y: {0: 0, 1: 9, 2: 2}, r"returned the keys \['0', '1', '2'\]; expected "
                                                       r"\['ups\[0\]', 'ups\[1\]', 'ups\[2\]'\]"),
    "a list": (lambda m, x, y: [0, 9, 2], r"returned a list; expected a dict"),
    "IoU, not counts": (lambda m, x, y: {"ups[0]": 0.9, "ups[1]": 0.8, "ups[2]": 0.85},
                        r"\['ups\[0\]'\] = 0.9; expected a count of merged cells"),
    "off by one": (lambda m, x, y: {k: v + 1 for k, v in checks._skip_experiment("expected").items()},
                   r"gave \{'ups\[0\]': 1, 'ups\[1\]': 10, 'ups\[2\]': 3\}; the experiment gives "
                   r"\{'ups\[0\]': 0, 'ups\[1\]': 9, 'ups\[2\]': 2\}\nHint: for each Up block"),
}


@pytest.mark.parametrize("answer, match", BROKEN_MERGED_PER_SKIP.values(), ids=BROKEN_MERGED_PER_SKIP.keys())
def test_check_merged_per_skip_fails_a_broken_answer(answer, match):
    with pytest.raises(CheckError, match=match):
        check_merged_per_skip(answer)


# -- check_tune_peak_footprint (notebook 10) -----------------------------------------------------

from unet_lib.baselines import classical_instances  # noqa: E402  (appended section)
from unet_lib.checks import check_tune_peak_footprint  # noqa: E402


def tune_peak_footprint(image, instances, footprints):
    """The exercise's solution: choose on the left half, report the F1 on the right half."""
    half = image.shape[1] // 2
    f1 = {}
    for f in footprints:
        labels = classical_instances(image, peak_footprint=f)
        f1[f] = (instance_scores(labels[:, :half], instances[:, :half]).f1,
                 instance_scores(labels[:, half:], instances[:, half:]).f1)
    chosen = max(footprints, key=lambda f: f1[f][0])
    return chosen, f1[chosen][1]


def test_check_tune_peak_footprint_passes_a_correct_answer():
    assert_passes(check_tune_peak_footprint, tune_peak_footprint)
    assert_skeleton_is_friendly(check_tune_peak_footprint, "tune_peak_footprint")


def _footprint_answer(choose_on: str, report: str = "right", key=lambda s: s.f1):
    """A (cheap) answer that chooses on one part and reports a score of another, from the table
    the check computed once."""
    def answer(image, instances, footprints):
        table = checks._footprint_case()[3]
        chosen = max(footprints, key=lambda f: table[f][choose_on].f1)
        return chosen, key(table[chosen][report])
    return answer


def test_the_footprint_case_tells_the_halves_apart():
    """The check's case must make choosing on the right half or the whole image visible."""
    _, _, footprints, table = checks._footprint_case()
    best = {part: max(footprints, key=lambda f: table[f][part].f1) for part in ("left", "right", "whole")}
    assert best["left"] != best["right"]
    assert len({table[best["left"]][part].f1 for part in ("left", "right", "whole")}) == 3


BROKEN_TUNE_PEAK_FOOTPRINT = {
    "chosen on the right half": (_footprint_answer("right"), r"Hint: you chose on the right half, the evaluation "
                                                             r"half"),
    "reports the left half": (_footprint_answer("left", "left"), r"Hint: that is its F1 on the left half, where "
                                                                 r"it was chosen"),
    "reports the whole image": (_footprint_answer("left", "whole"), r"Hint: that is its F1 on the whole image"),
    "reports precision": (_footprint_answer("left", "right", key=lambda s: s.tp / (s.tp + s.fp)),
                          r"reports F1 0.\d+ for footprint 7; on the right half it is 0.812\nHint: label the whole "
                          r"image"),
    "returns only the footprint": (lambda image, instances, footprints: 7, r"returned 7; expected a pair"),
    "returns a footprint not offered": (lambda image, instances, footprints: (11, 0.8),
                                        r"Hint: return the chosen footprint itself, one of \(3, 7, 15\)"),
}


@pytest.mark.parametrize("answer, match", BROKEN_TUNE_PEAK_FOOTPRINT.values(), ids=BROKEN_TUNE_PEAK_FOOTPRINT.keys())
def test_check_tune_peak_footprint_fails_a_broken_answer(answer, match):
    with pytest.raises(CheckError, match=match):
        check_tune_peak_footprint(answer)
# -- notebook 12: several processes ------------------------------------------------------------

from unet_lib.checks import check_rank_shard, check_steps_per_epoch  # noqa: E402


def rank_shard_by_hand(n, world_size, rank, epoch, seed, pad=True, stride=True, reseed=True):
    g = torch.Generator().manual_seed(seed + (epoch if reseed else 0))
    order = torch.randperm(n, generator=g).tolist()
    total = -(-n // world_size) * world_size
    if pad:
        order += (order * total)[: total - n]
    if stride:
        return order[rank::world_size]
    part = len(order) // world_size
    return order[rank * part:(rank + 1) * part]


def test_check_rank_shard_passes_a_hand_written_shard():
    assert_passes(check_rank_shard, rank_shard_by_hand)
    assert_skeleton_is_friendly(check_rank_shard, "rank_shard_by_hand")


@pytest.mark.parametrize("answer, match", [
    (lambda n, w, r, e, s: rank_shard_by_hand(n, w, r, e, s, pad=False),
     r"rank \d of 4, 10 samples.*\nHint: every rank gets the same number of samples, ceil\(10 / 4\) = 3: .*padded"),
    (lambda n, w, r, e, s: rank_shard_by_hand(n, w, r, e, s, stride=False),
     r"rank 0 of 2, 12 samples.*\nHint: the permutation is torch.randperm"),
    (lambda n, w, r, e, s: sorted(rank_shard_by_hand(n, w, r, e, s)), r"\nHint: the right samples in the wrong order"),
    (lambda n, w, r, e, s: rank_shard_by_hand(n, w, r, e, s, reseed=False),
     r"epoch 1, seed 0: .*\nHint: a new order every epoch: .*seed \+ epoch"),
    (lambda n, w, r, e, s: list(range(r, n, w)), r"\nHint: the permutation is torch.randperm"),
    (lambda n, w, r, e, s: None, r"returned None; expected a list of sample indices"),
])
def test_check_rank_shard_fails_a_broken_shard(answer, match):
    with pytest.raises(CheckError, match=match):
        check_rank_shard(answer)


def steps_per_epoch_by_hand(n, batch_size, world_size, pad=True, drop_last=True, per_process=True):
    shard = -(-n // world_size) if pad else n // world_size
    if not per_process:
        return max(1, shard * world_size // batch_size)
    if shard < batch_size:
        return 1 if drop_last else -(-shard // batch_size)
    return shard // batch_size if drop_last else -(-shard // batch_size)


def test_check_steps_per_epoch_passes_a_hand_written_count():
    assert_passes(check_steps_per_epoch, steps_per_epoch_by_hand)
    assert_skeleton_is_friendly(check_steps_per_epoch, "steps_per_epoch_by_hand")


@pytest.mark.parametrize("answer, match", [
    (lambda n, b, w: steps_per_epoch_by_hand(n, b, w, pad=False),
     r"30 samples, batch_size 4 per process, 4 processes: steps_per_epoch gave 1; fit takes 2.*\n"
     r"Hint: .*ceil\(30 / 4\) = 8"),
    (lambda n, b, w: steps_per_epoch_by_hand(n, b, w, drop_last=False), r"gave 4; fit takes 3.*\nHint: .*drop_last"),
    (lambda n, b, w: -(-n // w) // b, r"10 samples.* gave 0; fit takes 1.*\nHint: a rank with fewer samples"),
    (lambda n, b, w: n // b, r"64 samples, batch_size 4 per process, 2 processes: .*gave 16; fit takes 8.*\nHint: "
                             r"batch_size is per process"),
    (lambda n, b, w: n / (b * w), r"returned 16.0; expected an int"),
])
def test_check_steps_per_epoch_fails_a_broken_count(answer, match):
    with pytest.raises(CheckError, match=match):
        check_steps_per_epoch(answer)
# -- check_interior_border_classes and check_postprocess (notebook 11) ---------------------------

from unet_lib.baselines import otsu_instances, remove_small_objects, watershed_split  # noqa: E402
from unet_lib.checks import check_interior_border_classes, check_postprocess  # noqa: E402
from unet_lib.data import interior_border_classes  # noqa: E402


def interior_border_by_loop(instances, width):
    """Three classes pixel by pixel: a correct answer written independently."""
    h, w = instances.shape
    out = np.zeros((h, w), np.int64)
    for y in range(h):
        for x in range(w):
            if instances[y, x]:
                # mode='nearest': the window is clipped to the image, the edge is not another label
                window = instances[max(y - width, 0):y + width + 1, max(x - width, 0):x + width + 1]
                out[y, x] = 2 if np.any(window != instances[y, x]) else 1
    return out


def test_check_interior_border_classes_passes_correct_answers():
    assert_passes(check_interior_border_classes, interior_border_classes)
    assert_passes(check_interior_border_classes, interior_border_by_loop)
    assert_skeleton_is_friendly(check_interior_border_classes, "interior_border")


def _cross_window(instances, width):
    """Only the 4 straight neighbours (a cross), repeated width times: misses diagonal contacts."""
    labels = np.asarray(instances, np.int64)
    cross = ndimage.generate_binary_structure(2, 1)
    footprint = ndimage.iterate_structure(cross, width)
    other = ((ndimage.maximum_filter(labels, footprint=footprint, mode="nearest") != labels)
             | (ndimage.minimum_filter(labels, footprint=footprint, mode="nearest") != labels))
    return np.where(labels == 0, 0, np.where(other, 2, 1))


@pytest.mark.parametrize("broken, match", [
    (lambda instances, width: np.where(instances > 0, instances, 0),
     r"contains values other than 0, 1 and 2.*\nHint: return the class of each pixel"),
    (lambda instances, width: interior_border_classes(instances, width + 1),
     r"one 10x10 cell.*draws a ring of the wrong thickness\nHint: .*2 \* width \+ 1"),
    (lambda instances, width: np.where(instances > 0, np.where(instances_to_mask(instances) == 0, 2, 1), 0),
     r"misses the border along the background.*\nHint: every cell gets a ring"),
    (_cross_window, r"misses \d+ border pixel\(s\), e.g. at diagonal contacts\nHint: use the whole square window"),
    (lambda instances, width: np.where(ndimage.binary_dilation(instances > 0), 1, 0),
     r"changes which pixels are cells.*\nHint: the border ring lies inside each cell"),
])
def test_check_interior_border_classes_names_the_mistake(broken, match):
    with pytest.raises(CheckError, match=match):
        check_interior_border_classes(broken)


def _fill_filter_split(labels, min_size=30):
    foreground = ndimage.binary_fill_holes(remove_small_objects(labels, min_size) > 0)
    return watershed_split(foreground)


def test_check_postprocess_passes_a_size_filter_and_a_watershed():
    assert_passes(check_postprocess, _fill_filter_split)
    assert_skeleton_is_friendly(check_postprocess, "postprocess")


@pytest.mark.parametrize("broken, match", [
    (lambda labels: labels, r"instance F1 on the held-out right half is 0.11.*\nHint: \d+ objects under 20 pixels"),
    (lambda labels: remove_small_objects(labels, 30),
     r"is 0.62 \(merged 17.*\nHint: 17 nuclei are merged with a neighbour: split"),
    (lambda labels: labels > 0, r"returned a foreground mask \(only 0 and 1\)"),
    (lambda labels: labels[:256], r"returned shape \(256, 512\); expected \(512, 512\)"),
    (lambda labels: labels.astype(np.float32), r"returned dtype float32; expected integer labels"),
])
def test_check_postprocess_names_the_mistake(broken, match):
    with pytest.raises(CheckError, match=match):
        check_postprocess(broken)


def test_checks_of_notebook_11_leave_the_global_rng_alone():
    state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    check_interior_border_classes(interior_border_classes)
    check_postprocess(_fill_filter_split)
    assert torch.equal(state, torch.random.get_rng_state())
    assert np.array_equal(np_state, np.random.get_state()[1])
# -- check_lr_sweep (notebook 07) --------------------------------------------------------------

from unet_lib.checks import check_lr_sweep  # noqa: E402


def lr_sweep_by_hand(lrs, batch, steps, seed, mistake=None):
    losses = []
    if mistake == "seed once":
        torch.manual_seed(seed)
    model = None
    for lr in lrs:
        if mistake != "seed once" and mistake != "no seed" and (model is None or mistake != "one model"):
            torch.manual_seed(seed)
        if model is None or mistake != "one model":
            model = UNet(depth=1, base_channels=4, batch_norm=True)
        optimizer = (torch.optim.SGD if mistake == "sgd" else torch.optim.Adam)(model.parameters(), lr=lr)
        history = []
        for _ in range(steps):
            history.append(train_step_by_hand(model, optimizer, batch, "unweighted" if mistake == "unweighted" else None))
        losses.append(history[0] if mistake == "first loss" else history[-1])
    return [torch.tensor(v) for v in losses] if mistake == "tensors" else losses


def test_check_lr_sweep_passes_a_hand_written_sweep():
    result = check_lr_sweep(lr_sweep_by_hand)
    assert result.startswith("✓") and "lr = 1e-05 moves the loss by less than 1%" in result
    assert_skeleton_is_friendly(check_lr_sweep, "lr_sweep")


@pytest.mark.parametrize("mistake, match", [
    ("first loss", r"\nHint: these are the losses of the first step"),
    ("one model", r"\nHint: each learning rate continued training the previous one's model"),
    ("seed once", r"\nHint: only the first model starts from the seed's weights"),
    ("no seed", r"\nHint: the first run already differs: torch.manual_seed\(seed\)"),
    ("sgd", r"\nHint: use torch.optim.Adam"),
    ("unweighted", r"\nHint: use the weighted loss"),
    ("tensors", r"expected floats\nHint: record the float"),
])
def test_check_lr_sweep_fails_a_broken_sweep(mistake, match):
    with pytest.raises(CheckError, match=match):
        check_lr_sweep(lambda lrs, batch, steps, seed: lr_sweep_by_hand(lrs, batch, steps, seed, mistake))


# -- check_shift_change (notebook 08) ----------------------------------------------------------

from unet_lib.checks import check_shift_change  # noqa: E402


def shift_change_by_hand(model, image, size, shift, mistake=None):
    if mistake != "train mode":
        model.eval()
    run = (lambda x: padded_forward(model, x)) if mistake == "padded" else model
    with torch.no_grad():
        first = run(image[None, :, :size, :size])
        second = run(image[None, :, shift:shift + size, shift:shift + size])
    if mistake != "logits":
        first, second = first.softmax(1), second.softmax(1)
    first, second = first[0, 1], second[0, 1]
    n = first.shape[-1]
    if mistake == "unaligned":
        return float((first - second).abs().max())
    diff = (first[shift:, shift:] - second[:n - shift, :n - shift]).abs()
    return diff if mistake == "tensor" else float(diff.max()) if mistake != "mean" else float(diff.mean())


def test_check_shift_change_passes_a_hand_written_shift_change():
    result = check_shift_change(shift_change_by_hand)
    assert "shifts of 8 and 16 px (multiples of 2**depth = 8) change P(cell) by less than 1e-4" in result
    assert_skeleton_is_friendly(check_shift_change, "shift_change")


@pytest.mark.parametrize("mistake, match", [
    ("train mode", r"\nHint: call model.eval\(\) first"),
    ("unaligned", r"\nHint: compare the pixels that see the same input"),
    ("logits", r"\nHint: compare probabilities"),
    ("padded", r"\nHint: run model\(window\) directly"),
    ("tensor", r"(?s)returned tensor.*expected one float\nHint: return the largest"),
    ("mean", r"expected .*\nHint: windows image\[:, :140, :140\]"),
])
def test_check_shift_change_fails_a_broken_shift_change(mistake, match):
    with pytest.raises(CheckError, match=match):
        check_shift_change(lambda model, image, size, shift: shift_change_by_hand(model, image, size, shift, mistake))


# -- check_smallest_valid_input (notebook 04) --------------------------------------------------

from unet_lib.checks import check_smallest_valid_input  # noqa: E402


def smallest_valid_input_by_trying(model, max_size=1024, channels=None, start=1, skip_first=False):
    """Try n = start, start + 1, ... on the model itself; the mistakes are switched on by the arguments."""
    found = False
    for n in range(start, max_size + 1):
        x = torch.zeros(1, model.in_channels if channels is None else channels, n, n)
        try:
            with torch.no_grad():
                model(x)
        except ValueError:
            continue
        if skip_first and not found:
            found = True
            continue
        return n
    return None


def _valid_padding_formula(model):
    """The valid-padding answer, whatever the model's padding (a formula, not a measurement)."""
    return UNet(depth=model.depth, base_channels=1).valid_input_sizes(1, 1024)[0]


def _raises_on_invalid(model):
    for n in range(1, 1025):
        with torch.no_grad():
            model(torch.zeros(1, model.in_channels, n, n))   # no try: the first invalid size raises
        return n


def test_check_smallest_valid_input_passes_a_search():
    result = check_smallest_valid_input(smallest_valid_input_by_trying)
    assert "finds 18, 92, 380, 44, 8 for the five models" in result
    assert_skeleton_is_friendly(check_smallest_valid_input, "smallest_valid_input")


@pytest.mark.parametrize("broken, match", [
    (lambda model: 572, r"= 572; the smallest size that runs is 18\nHint: 572 is the paper's tile"),
    (lambda model: model.output_size(smallest_valid_input_by_trying(model)),
     r"= 2; the smallest.* 18\nHint: 2 is the \*output\* size"),
    (lambda model: smallest_valid_input_by_trying(model, skip_first=True),
     r"= 20; .* 18\nHint: off by one step of 2\*\*depth = 2"),
    (lambda model: smallest_valid_input_by_trying(model, channels=1),
     r"in_channels=3.* returned None.*\nHint: the model takes model.in_channels channels"),
    (_valid_padding_formula, r"padding='same'\)\) = 92; .* 8\nHint: that is the answer for valid padding"),
    (lambda model: 2 * model.depth + 8 if model.depth > 1 else 18,
     r"depth=3.* = 14; .* 92, and model\(x\) raises ValueError for n = 14\nHint: return only a size"),
    (lambda model: 6 if model.depth > 1 else 18, r"depth=3.* = 6; .*\nHint: the first max-pool accepts it"),
    (_raises_on_invalid, r"raised ValueError: input height 1 is not valid.*\nHint: UNet refuses .* catch it"),
    (lambda model: str(smallest_valid_input_by_trying(model)), r"returned '18'; expected an int"),
    (lambda model: smallest_valid_input_by_trying(model, start=19) if model.depth == 1 else 200,
     r"= 20; .* 18\nHint: off by one step"),
    (lambda model: smallest_valid_input_by_trying(model) + 32 if model.depth == 1 else 0,
     r"= 50; .* 18\nHint: a smaller size, 18, also runs"),
])
def test_check_smallest_valid_input_names_the_mistake(broken, match):
    with pytest.raises(CheckError, match=match):
        check_smallest_valid_input(broken)


# -- check_touching_share (notebook 05) --------------------------------------------------------

from unet_lib import ToyCells, touching_fraction  # noqa: E402
from unet_lib.checks import check_touching_share  # noqa: E402


def touching_share_by_hand(touching, n_samples=8, seed=0, mistake=None):
    cells = ToyCells(16 if mistake == "16 images" else n_samples, seed=0 if mistake == "seed 0" else seed,
                     touching=0.7 if mistake == "default touching" else touching)
    counts, fractions = [], []
    for i in range(1 if mistake == "first image" else len(cells)):
        instances = cells[i]["instances"]
        counts.append(len(np.unique(instances.numpy())) - 1)
        fractions.append(touching_fraction(instances))
    if mistake == "mean per image":
        return float(np.mean(fractions))
    touching_cells = sum(n * f for n, f in zip(counts, fractions))
    if mistake == "count":
        return round(touching_cells)
    share = touching_cells / sum(counts)
    return 100 * share if mistake == "percent" else [share] if mistake == "list" else share


def test_check_touching_share_passes_a_pooled_share():
    result = check_touching_share(touching_share_by_hand)
    assert result.startswith("✓ touching_share: 0.") and "at touching = 0, 0.4 and 1" in result
    assert_skeleton_is_friendly(check_touching_share, "touching_share")


@pytest.mark.parametrize("mistake, match", [
    ("percent", r"\nHint: return a fraction in \[0, 1\]"),
    ("count", r"\nHint: that is the number of touching cells; divide by all cells"),
    ("mean per image", r"\nHint: that is the mean of the per-image fractions"),
    ("first image", r"\nHint: that is the first image only"),
    ("default touching", r"touching_share\(0.0, .*\nHint: that is ToyCells' default touching=0.7"),
    ("seed 0", r"\nHint: that is seed 0: pass seed=seed"),
    ("16 images", r"\nHint: that is 16 images: use n_samples"),
    ("list", r"returned list; expected one float"),
])
def test_check_touching_share_names_the_mistake(mistake, match):
    with pytest.raises(CheckError, match=match):
        check_touching_share(lambda touching, n_samples, seed: touching_share_by_hand(touching, n_samples, seed, mistake))

