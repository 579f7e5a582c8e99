"""The checks of notebook 04, skip connections and full unet: ``check_output_size``, ``check_unet_forward``, ``check_smallest_valid_input``, ``check_center_crop``."""

from collections.abc import Callable

import numpy as np
import torch

from ..blocks import center_crop
from ..model import UNet
from ._core import CheckPassed, call, fail, learner_check

__all__ = ['check_output_size', 'check_unet_forward', 'check_smallest_valid_input', 'check_center_crop']


@learner_check
def check_center_crop(crop: Callable) -> CheckPassed:
    """``crop(x, size)`` must crop the last two dimensions of x to (h, w) around the centre."""
    x = torch.arange(2 * 3 * 12 * 10, dtype=torch.float32).reshape(2, 3, 12, 10)
    for size in [(8, 6), (4, 10), (12, 10), (7, 5), (1, 1)]:
        got = call(crop, x, size)
        expected = center_crop(x, size)
        if not isinstance(got, torch.Tensor):
            fail(f"crop(x, {size}) returned a {type(got).__name__}", "return a torch.Tensor")
        if tuple(got.shape) != tuple(expected.shape):
            hint = ("crop only the last two dimensions; keep batch and channels"
                    if got.ndim != 4 or tuple(got.shape[:2]) != (2, 3) else
                    "rows and columns are swapped: size = (h, w), and H is x.shape[-2]"
                    if tuple(got.shape[-2:]) == tuple(expected.shape[-2:])[::-1] else
                    "with an odd difference, (H - h) // 2 rows go on top and the rest at the bottom; "
                    "slice top:top + h rather than top:H - top")
            fail(f"crop(x of shape {tuple(x.shape)}, {size}) has shape {tuple(got.shape)}; "
                  f"expected {tuple(expected.shape)}", hint)
        if got.dtype != x.dtype:   # torch.equal below would not notice
            fail(f"crop(x, {size}) has dtype {got.dtype}; x has {x.dtype}",
                  "cropping only selects pixels: slice x and return it without converting")
        if not torch.equal(got, expected):
            fail(f"crop(x, {size}) has the right shape but not the centre of x",
                  "top = (H - h) // 2 and left = (W - w) // 2; check that rows and columns are not swapped")
    return CheckPassed("✓ crop matches center_crop on even and odd differences")


@learner_check
def check_output_size(output_size: Callable[[int, int], int | None]) -> CheckPassed:
    """``output_size(input_size, depth)`` must give a valid-padding U-Net's output size, or
    None where ``input_size`` is not a valid input size."""
    for depth in (1, 2, 4):
        model = UNet(depth=depth, base_channels=1)
        cases = []
        for n in range(1, 260):
            try:
                expected = model.output_size(n)
            except ValueError:
                expected = None
            cases.append((n, expected))
        # valid sizes first, so that wrong arithmetic is reported as such, not as a wrong validity
        for n, expected in sorted(cases, key=lambda case: case[1] is None):
            try:
                got, raised = call(output_size, n, depth), None
            except ValueError as e:   # like UNet.output_size; the exercise asks for None
                raised = e
            if raised is not None:
                fail(f"output_size({n}, depth={depth}) raised ValueError: {raised}",
                      "return None where the input size is not valid, rather than raising")
            if got != expected:
                if expected is None:
                    hint = ("every max-pool needs an even size, and every size must stay >= 1"
                            if got is not None else "")
                    fail(f"output_size({n}, depth={depth}) = {got!r}, but {n} is not a valid input size", hint)
                hint = ("each DoubleConv removes 4 pixels; count the first one, one per level down "
                        "and one per level up")
                fail(f"output_size({n}, depth={depth}) = {got!r}; expected {expected}", hint)
    return CheckPassed("✓ output_size agrees with UNet.output_size for depths 1, 2 and 4")


@learner_check
def check_unet_forward(unet_forward: Callable) -> CheckPassed:
    """``unet_forward(model, x)`` must compute ``model(x)`` from the model's blocks
    (``model.inc``, ``model.downs``, ``model.ups``, ``model.outc``) without calling ``model``
    itself; compared with ``model(x)`` for valid U-Nets of depth 0 to 3, with odd widths."""
    for depth, base_channels in [(2, 4), (0, 3), (1, 5), (3, 2)]:
        torch.manual_seed(depth)
        model = UNet(depth=depth, base_channels=base_channels).eval()
        sizes = model.valid_input_sizes(1, 200)
        x = torch.randn(2, 1, sizes[1], sizes[2])                # (B, 1, H, W), H != W
        calls = []
        handle = model.register_forward_pre_hook(lambda module, args: calls.append(1))
        what = f"unet_forward(UNet(depth={depth}, base_channels={base_channels}), x of shape {tuple(x.shape)})"
        try:
            with torch.no_grad():
                got = call(unet_forward, model, x)
        except NotImplementedError:   # a skeleton (a RuntimeError too): _call's message stands
            raise
        except (RuntimeError, ValueError) as error:
            fail(f"{what} raised {type(error).__name__}: {str(error).splitlines()[0]}",
                  "going down, append x to skips *before* each down block; going up, the deepest skip goes "
                  "to the first up block: for up, skip in zip(model.ups, reversed(skips)): x = up(x, skip)")
        finally:
            handle.remove()
        if calls:
            fail(f"{what} calls model(x) itself", "build the pass from the blocks: model.inc, each of "
                  "model.downs, each of model.ups with its skip, model.outc")
        with torch.no_grad():
            expected = model(x)
        if not isinstance(got, torch.Tensor):
            fail(f"{what} returned a {type(got).__name__}", "return the output of model.outc, a tensor")
        if tuple(got.shape) != tuple(expected.shape):
            if got.shape[1:] == (base_channels, *expected.shape[2:]):
                hint = "finish with model.outc: the 1x1 convolution from base_channels to the class scores"
            else:
                hint = "inc, then every down, then every up with its skip, then outc: each block exactly once"
            fail(f"{what} has shape {tuple(got.shape)}; model(x) has {tuple(expected.shape)}", hint)
        if not torch.allclose(got, expected, atol=1e-5):
            fail(f"{what} has the right shape but different values from model(x)",
                  "store the skip before each down block (the output of inc is the first skip), and pair "
                  "the ups with the skips in reverse: zip(model.ups, reversed(skips))")
    return CheckPassed("✓ unet_forward equals model(x) for depths 0 to 3: the U is in your loop")


def _first_runs(model: UNet, n: int) -> bool:
    try:
        model.output_size(n)
    except ValueError:
        return False
    return True


@learner_check
def check_smallest_valid_input(smallest_valid_input: Callable) -> CheckPassed:
    """``smallest_valid_input(model)`` must find, by running ``model`` on n x n inputs for
    n = 1, 2, 3, ..., the smallest n for which the forward pass works. Run on U-Nets the notebook
    does not use (depth 5, three input channels, same padding) and compared with
    ``UNet.valid_input_sizes``; exact, since a size either runs or not."""
    cases = [("UNet(depth=1, base_channels=1)", UNet(depth=1, base_channels=1)),
             ("UNet(depth=3, base_channels=1)", UNet(depth=3, base_channels=1)),
             ("UNet(depth=5, base_channels=1)", UNet(depth=5, base_channels=1)),
             ("UNet(in_channels=3, depth=2, base_channels=1)", UNet(in_channels=3, depth=2, base_channels=1)),
             ("UNet(depth=3, base_channels=1, padding='same')", UNet(depth=3, base_channels=1, padding="same"))]
    found = []
    for name, model in cases:
        model.eval()
        expected = model.valid_input_sizes(1, 1024)[0]
        step = 2 ** model.depth
        what = f"smallest_valid_input({name})"
        try:
            got = call(smallest_valid_input, model)
        except NotImplementedError:
            raise
        except (ValueError, RuntimeError) as error:
            fail(f"{what} raised {type(error).__name__}: {str(error).splitlines()[0]}",
                  "UNet refuses a size it cannot pool evenly with a ValueError: catch it "
                  "(try: model(x) except ValueError: continue) and try the next n")
        if got is None and model.in_channels != 1:
            fail(f"{what} returned None: no size worked", "the model takes model.in_channels channels: "
                  "try torch.zeros(1, model.in_channels, n, n), not 1 channel")
        if isinstance(got, (torch.Tensor, np.integer)) and np.ndim(got) == 0:
            got = int(got)
        if not isinstance(got, int) or isinstance(got, bool):
            fail(f"{what} returned {got!r}; expected an int, the side length n",
                  "return the first n for which model(torch.zeros(1, model.in_channels, n, n)) runs")
        if got == expected:
            found.append(got)
            continue
        problem = f"{what} = {got}; the smallest size that runs is {expected}"
        if got == 572:
            fail(problem, "572 is the paper's tile for depth 4, not the smallest valid size, and not the "
                           "answer for other depths: try n = 1, 2, 3, ... on the model itself")
        if got == model.output_size(expected):
            fail(problem, f"{got} is the *output* size of the smallest input: return n, the input's side")
        if got == expected + step:
            fail(problem, f"off by one step of 2**depth = {step}: you skipped the first size that works; "
                           "start at n = 1 and return the first n whose forward pass runs")
        if model.padding == "same" and got == UNet(depth=model.depth, base_channels=1).min_input_size():
            fail(problem, "that is the answer for valid padding; this model pads its convolutions "
                           "(padding='same') and has other sizes: measure on the model you are given, "
                           "do not compute a formula")
        first_pool = (4 if model.padding == "valid" else 0) + 2
        if model.depth > 1 and got == first_pool:
            fail(problem, "the first max-pool accepts it, but every one of the depth max-pools needs an "
                           "even size: run the whole model, not only its first level")
        if not _first_runs(model, got):
            fail(problem + f", and model(x) raises ValueError for n = {got}",
                  "return only a size for which the forward pass runs (the first n where model(x) raises "
                  "no error)")
        fail(problem, f"a smaller size, {expected}, also runs: start at n = 1 and try every n in turn")
    return CheckPassed(f"✓ smallest_valid_input finds {', '.join(map(str, found))} for the five models, as "
                       f"UNet.valid_input_sizes does")
