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
                                          r"has 824 parameters; the paper's block has 808"),
    "last ReLU missing (wrong values)": (lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3), nn.ReLU(), nn.Conv2d(o, o, 3)),
                                         r"the output has negative values\nHint: .*the last one too"),
    "ReLU before the convolution (wrong values)": (
        lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3), nn.ReLU(), nn.ReLU(), nn.Conv2d(o, o, 3), nn.Sigmoid()),
        r"with the library's weights your block computes different values\nHint: order: conv, ReLU, conv, ReLU"),
    "layers created out of order": (DefinedOutOfOrder,
                                    r"parameter `conv2.weight` has shape \(8, 8, 3, 3\); the paper's block has "
                                    r"\(8, 3, 3, 3\) there\nHint: create the layers in the order they are applied"),
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
                "no 2": (d1 + d2) ** 2 / sigma**2, "squares": (d1**2 + d2**2) / (2 * sigma**2),
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
