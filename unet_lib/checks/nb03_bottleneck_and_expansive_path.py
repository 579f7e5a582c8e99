"""The checks of notebook 03, bottleneck and expansive path: ``check_up_forward``, ``check_overlap_counts``."""

import inspect
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import Up, center_crop
from ..viz import painted_kernels
from ._core import CheckPassed, call, fail, learner_check, passed

__all__ = ['check_up_forward', 'check_overlap_counts']

# copying the library's answer out of its source file, from inside the learner's function
SOURCE_SHORTCUTS = {
    "inspect.getsource": inspect.getsource,
    "inspect.getsourcelines": inspect.getsourcelines,
}

# Up.forward by its code: up(x, skip), up.forward(x, skip) and Up.forward(up, x, skip) alike
UP_FORWARD_SHORTCUTS = {"Up.forward": Up.forward, **SOURCE_SHORTCUTS}


@learner_check
def check_up_forward(up_forward: Callable) -> CheckPassed:
    """``up_forward(up, x, skip)`` must compute one step of the expansive path with the layers of
    the ``Up`` block ``up``, as ``Up.forward`` does, without running ``Up.forward`` (in any form)."""
    torch.manual_seed(0)
    cases = [("Up(8, 4), even crop", Up(8, 4), (2, 8, 5, 6), (2, 4, 18, 20)),
             ("Up(8, 4), odd crop", Up(8, 4), (1, 8, 4, 4), (1, 4, 13, 11)),
             ("Up(6, 3, padding='same', upsampling='bilinear')", Up(6, 3, padding="same", upsampling="bilinear"),
              (1, 6, 3, 5), (1, 3, 6, 10))]
    for name, up, x_shape, skip_shape in cases:
        x, skip = torch.randn(x_shape), torch.randn(skip_shape)
        values = dict(case=name, x_shape=x_shape, skip_shape=skip_shape)
        with torch.no_grad():
            expected = Up.forward(up, x, skip)
            try:
                got = call(up_forward, up, x, skip, refuse=UP_FORWARD_SHORTCUTS)
            except NotImplementedError:      # the skeleton: call's message, as it is
                raise
            except RuntimeError as e:
                if "channels" in str(e):     # a convolution given the wrong number of channels
                    fail("{case}: up_forward raised {error!r}",
                         "the level's DoubleConv, up.conv, reads {channels} channels: the skip's and the upsampled "
                         "map's, side by side. Along which dimension of (B, C, H, W) did you join them, and did "
                         "each of the two go through the layer meant for it?",
                         error=str(e).splitlines()[0], channels=up.conv[0].in_channels, **values)
                fail("{case}: up_forward raised {error!r}",
                     "after the up-convolution, x and the skip differ in size (the valid convolutions below made x's "
                     "map smaller): which of the two must be cut, and to what, before they can be joined along the "
                     "channels?",
                     "center_crop(map, size) keeps the middle of a map (notebook 04); torch.cat joins tensors along "
                     "the dimension you name",
                     error=str(e).splitlines()[0], **values)
        if not isinstance(got, torch.Tensor):
            fail("{case}: up_forward returned a {kind}", "return the output of the level's DoubleConv",
                 kind=type(got).__name__, **values)
        if tuple(got.shape) != tuple(expected.shape):
            values.update(got=tuple(got.shape), expected=tuple(expected.shape))
            problem = "{case}: x {x_shape}, skip {skip_shape} gave shape {got}; expected {expected}"
            upsampled = up.up(x).shape[-2:]
            if got.shape[1] == 2 * (x_shape[1] // 2) and got.shape[-2:] == upsampled:
                fail(problem, "that is the concatenation: the step ends with the level's DoubleConv, up.conv",
                     **values)
            if got.shape[-2:] == skip.shape[-2:] or got.shape[-2:] == tuple(s - 4 for s in skip.shape[-2:]):
                fail(problem,
                     "your output has the skip's size: the skip is cut to the upsampled map, not the upsampled map "
                     "grown to the skip (the skip's border has no counterpart in x)", **values)
            fail(problem,
                 "compare the shape after each step with section 2's printout: the up-convolution doubles H and W and "
                 "halves the channels, the skip is cut to that size, and the level's DoubleConv gives out_channels",
                 "up.up is the up-convolution and up.conv the level's DoubleConv; print the shape after each of your "
                 "steps", **values)
        if torch.allclose(got, expected, atol=1e-5):
            continue
        with torch.no_grad():
            y = up.up(x)
            swapped = up.conv(torch.cat([y, center_crop(skip, y.shape[-2:])], dim=1))
        if torch.allclose(got, swapped, atol=1e-5):
            fail("{case}: the skip and the upsampled map are concatenated in the other order",
                 "unet_lib's Up puts the skip's channels first: the order decides which input channels of up.conv "
                 "read which map", **values)
        fail("{case}: right shape, different values",
             "the skip's border is cut evenly from all sides, so that its centre lines up with the upsampled map; "
             "with an odd difference, center_crop leaves the extra row at the bottom",
             "compare your cropped skip with center_crop(skip, size) for this case", **values)
    return passed("✓ up_forward: upsample, centre crop, skip first, DoubleConv; same output as Up")


def _aten_ops(*names: str) -> dict[str, object]:
    """The C functions behind ``torch.ops.aten.<name>`` and its overloads, which a call through
    the op's Python object runs (the profile hook sees them by identity)."""
    found = {}
    for name in names:
        packet = getattr(torch.ops.aten, name)
        found[f"torch.ops.aten.{name}"] = packet._op
        for overload in packet.overloads():
            found[f"torch.ops.aten.{name}.{overload}"] = getattr(packet, overload)._op
    return found


# torch's transposed convolution (and fold, its twin, and the gradient of a convolution, which is
# the same computation) measures the counts: the exercise is to count the footprints. The course's
# figure helper painted_kernels runs it too, and is named as itself.
OVERLAP_SHORTCUTS = {
    "unet_lib.viz.painted_kernels": painted_kernels,
    "torch.conv_transpose2d": torch.conv_transpose2d,   # F.conv_transpose2d and nn.ConvTranspose2d's forward
    "torch.conv_transpose1d": torch.conv_transpose1d,
    "torch.conv_transpose3d": torch.conv_transpose3d,
    "torch.convolution": torch.convolution,             # with transposed=True
    "torch._convolution": torch._convolution,
    **_aten_ops("convolution", "_convolution", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "col2im",
                "convolution_backward"),
    "nn.ConvTranspose2d": nn.ConvTranspose2d,
    "nn.ConvTranspose1d": nn.ConvTranspose1d,
    "F.fold": F.fold,
    "torch.nn.grad.conv2d_input": torch.nn.grad.conv2d_input,
    "torch.Tensor.backward": torch.Tensor.backward,     # the gradient of a convolution or of F.unfold
    "torch.autograd.backward": torch.autograd.backward,
    "torch.autograd.grad": torch.autograd.grad,
    **SOURCE_SHORTCUTS,
}


def _fresh_rng() -> np.random.Generator:
    """A generator seeded afresh on every call (from the operating system): the case a check draws
    at random differs between runs, so that no table of what its messages printed passes."""
    return np.random.default_rng()


def _counts(kernel_size: int, stride: int, size: int, add: bool = False) -> np.ndarray:
    """Footprints covering each output pixel, by counting: input pixel i paints output pixels
    i * stride ... i * stride + kernel_size - 1 in each direction (the rows' counts times the
    columns' counts; ``add``: plus, a wrong version)."""
    per_side = np.zeros((size - 1) * stride + kernel_size, dtype=np.int64)
    for i in range(size):
        per_side[i * stride: i * stride + kernel_size] += 1
    return per_side[:, None] + per_side[None, :] if add else per_side[:, None] * per_side[None, :]


@learner_check
def check_overlap_counts(overlap_counts: Callable[[int, int, int], torch.Tensor]) -> CheckPassed:
    """``overlap_counts(kernel_size, stride, size)`` must return the (H_out, W_out) map of how many
    input pixels' kernel footprints cover each output pixel of a transposed convolution with that
    kernel size and stride, on a size x size input (Odena et al. 2016), by counting the footprints:
    torch's transposed convolution, which would measure it, is refused. Compared with torch's
    transposed convolution of a kernel of ones over an input of ones on six fixed cases and a
    seventh drawn afresh on every run; the maps of all seven are compared as a whole with the wrong
    counts a learner may make, so that the hint names the mistake."""
    cases = [(2, 2, 3), (3, 2, 3), (4, 2, 4), (3, 1, 3), (5, 3, 2), (1, 2, 3)]
    rng, drawn = _fresh_rng(), cases[0]
    while drawn in cases:   # 6 x 4 x 4 = 96 cases, four of them fixed ones
        drawn = (int(rng.integers(1, 7)), int(rng.integers(1, 5)), int(rng.integers(2, 6)))
    cases.append(drawn)
    got, expected = {}, {}
    for case in cases:
        kernel_size, stride, size = case
        expected[case] = F.conv_transpose2d(torch.ones(1, 1, size, size), torch.ones(1, 1, kernel_size, kernel_size),
                                            stride=stride)[0, 0].numpy()
        values = dict(kernel_size=kernel_size, stride=stride, size=size, expected=expected[case].shape)
        answer = call(overlap_counts, kernel_size, stride, size, refuse=OVERLAP_SHORTCUTS)
        if isinstance(answer, torch.Tensor):
            answer = answer.detach().cpu().numpy()
        if not isinstance(answer, np.ndarray):
            fail("overlap_counts(kernel_size={kernel_size}, stride={stride}, size={size}) returned a {kind}; "
                 "expected a tensor or array of shape {expected}",
                 "return the (H_out, W_out) map itself", kind=type(answer).__name__, **values)
        values["got"] = answer.shape
        if answer.shape != expected[case].shape:
            if answer.squeeze().shape == expected[case].shape:
                fail("overlap_counts(kernel_size={kernel_size}, stride={stride}, size={size}) has shape {got}; "
                     "expected {expected}", "return the (H_out, W_out) map, without batch or channel dimensions",
                     **values)
            fail("overlap_counts(kernel_size={kernel_size}, stride={stride}, size={size}) has shape {got}; "
                 "expected {expected}",
                 "the output reaches as far as the last input pixel's footprint: where does it start, and how wide "
                 "is it?",
                 "input pixel i's footprint starts at output pixel i * stride",
                 **values)
        got[case] = answer.astype(np.float64)
    wrong = [case for case in cases if not np.allclose(got[case], expected[case])]
    if not wrong:
        return passed("✓ overlap_counts: one footprint per pixel where the kernel size equals the stride, an even "
                      "interior where the stride divides it, a grid where it does not (seven cases, one of them "
                      "drawn at random on every run)")
    case = wrong[0]
    kernel_size, stride, size = case
    off = np.argwhere(~np.isclose(got[case], expected[case]))
    i, j = (int(v) for v in off[0])
    values = dict(kernel_size=kernel_size, stride=stride, size=size, n=len(off), total=expected[case].size, row=i,
                  col=j, got=float(got[case][i, j]), expected=float(expected[case][i, j]))
    problem = ("overlap_counts(kernel_size={kernel_size}, stride={stride}, size={size}) is wrong at {n} of {total} "
               "output pixels; the first is row {row}, column {col}: {got:g}, where the number of footprints that "
               "cover it is {expected:g}")
    if all(np.allclose(got[c], _counts(*c, add=True)) for c in cases):
        fail(problem, "a footprint covers a pixel only if it covers both its row and its column: how do the counts "
                      "along the rows and along the columns combine?", **values)
    if all(np.ptp(got[c] - expected[c]) < 1e-6 for c in cases):
        fail(problem, "off by the same number everywhere: count footprints only, with nothing added", **values)
    if not all(np.allclose(got[c], np.round(got[c])) for c in cases):
        fail(problem, "counts are whole numbers: each footprint that covers a pixel adds exactly 1", **values)
    fail(problem,
         "each input pixel paints a kernel_size x kernel_size footprint; neighbouring input pixels paint "
         "stride pixels apart. Draw the footprints of a 2-pixel input along one side and count",
         "draw one row: with kernel_size 3 and stride 2, input pixel 0 paints output columns 0, 1 and 2, and "
         "input pixel 1 paints columns 2, 3 and 4, so column 2 is covered twice. Which columns does input "
         "pixel i paint, and how does a pixel's count in 2-D follow from its row's and its column's?",
         **values)
