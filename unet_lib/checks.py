"""Learner checks for the notebooks' exercises.

Each ``check_*`` takes the learner's function or class, compares it with ``unet_lib`` on a few
small cases, and either returns a short ``CheckPassed`` message or raises ``CheckError`` whose
message names what is wrong and gives a hint where to look. An exercise that is still a
skeleton raises ``NotImplementedError`` with a message that says which function to fill in.
"""

import functools
import os
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .baselines import otsu_threshold
from .blocks import DoubleConv, center_crop
from .model import UNet

__all__ = [
    "CheckError", "CheckPassed",
    "check_context_margin", "check_double_conv", "check_up_conv", "check_center_crop", "check_output_size",
    "check_unet_forward",
    "check_otsu_threshold",
    "check_record_output",
    "check_instances_to_mask", "check_border_term",
    "check_touching_pairs", "check_warp_image", "check_class_balance", "check_border_weight_share",
    "check_convolutionalize", "check_contracting_parameters", "check_receptive_field", "check_up_forward",
    "check_overlap_counts",
    "check_merged_per_skip", "check_tune_peak_footprint",
    "check_rank_shard", "check_steps_per_epoch",
    "check_interior_border_classes", "check_postprocess",
    "check_train_step", "check_lr_sweep", "check_iou", "check_count_matches", "check_shift_change",
    "check_smallest_valid_input", "check_touching_share",
]


class CheckError(AssertionError):
    """The learner's answer is wrong; the message says what and how to find it."""


class CheckPassed(str):
    """A check's success message; shows without quotes in a notebook."""

    def __repr__(self) -> str:
        return str(self)


def _own_rng(check: Callable) -> Callable:
    """Run ``check`` with torch's and numpy's global random states saved and restored: a check
    seeds its own cases, and must not reseed the learner's notebook (which would make the
    cells after it draw different numbers than without the check)."""
    @functools.wraps(check)
    def run(*args, **kwargs):
        numpy_state = np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):   # devices=[]: the CPU generator; CUDA is untouched
                return check(*args, **kwargs)
        except NotImplementedError as error:
            friendly = _skeleton_method_error(error)
            if friendly is None:
                raise
            raise friendly from None
        finally:
            np.random.set_state(numpy_state)
    return run


# NotImplementedError raised in these folders is torch's or the course's own, not the learner's
_LIBRARY_DIRS = tuple(os.path.dirname(m.__file__) + os.sep for m in (torch, np))
_COURSE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _skeleton_method_error(error: NotImplementedError) -> NotImplementedError | None:
    """The friendly skeleton message for a NotImplementedError that the learner's code raised
    outside ``_call``: a skeleton method, such as ``forward``, that torch calls from deep inside
    ``nn.Module.__call__``. None when the error came from torch, numpy or the course (or
    ``_call`` has already made it friendly)."""
    if "is still the exercise skeleton" in str(error):
        return None
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return None
    filename = os.path.abspath(tb.tb_frame.f_code.co_filename)
    if filename.startswith(_LIBRARY_DIRS) or filename.startswith(_COURSE_DIR):
        return None
    name = getattr(tb.tb_frame.f_code, "co_qualname", tb.tb_frame.f_code.co_name)
    return NotImplementedError(
        f"`{name}` is still the exercise skeleton: replace `raise NotImplementedError` "
        f"with your code, run that cell, then run this check again")


def _fail(problem: str, hint: str) -> None:
    raise CheckError(f"{problem}\nHint: {hint}")


def _call(fn: Callable, *args):
    """Call the learner's code; a skeleton's NotImplementedError becomes a message that says
    what to do, without a stack trace from inside the check."""
    name = getattr(fn, "__name__", repr(fn))
    try:
        return fn(*args)
    except NotImplementedError:
        raise NotImplementedError(
            f"`{name}` is still the exercise skeleton: replace `raise NotImplementedError` "
            f"with your code, run that cell, then run this check again") from None


def _check_float32(module: nn.Module, what: str) -> None:
    """A float64 (or half) module fails on the check's float32 inputs deep inside torch; say so."""
    dtypes = sorted({str(p.dtype) for p in module.parameters()} - {"torch.float32"})
    if dtypes:
        _fail(f"{what} has {', '.join(dtypes)} parameters; the inputs here, like images, are torch.float32",
              "leave dtype at its default (do not pass dtype=torch.float64 or call .double() / .half())")


@_own_rng
def check_context_margin(context_margin: Callable[[int], int]) -> CheckPassed:
    """``context_margin(depth)`` must give how many pixels a valid-padding U-Net with ``depth``
    poolings loses on each side: (input size - output size) / 2."""
    for depth in (0, 1, 2, 3, 4):
        model = UNet(depth=depth, base_channels=1)
        n = model.min_input_size()
        expected = (n - model.output_size(n)) // 2
        got = _call(context_margin, depth)
        if got != expected:
            if got == 2 * expected:
                hint = "that is both sides together; the question is about one side"
            elif depth == 0:
                hint = "with depth=0 the U-Net is a single DoubleConv: two unpadded 3x3 convolutions"
            else:
                hint = ("count every DoubleConv: the first, one per level down, one per level up; "
                        "a 3x3 convolution k levels down removes 2**k input pixels per side")
            _fail(f"context_margin({depth}) = {got!r}; a depth-{depth} U-Net loses {expected} pixels per side", hint)
    return CheckPassed("✓ context_margin matches the U-Net's output sizes for depth 0 to 4")


@_own_rng
def check_double_conv(cls: Callable[[int, int], nn.Module]) -> CheckPassed:
    """``cls(in_channels, out_channels)`` must build the paper's double convolution. Compared by
    what the block computes with the library's weights, whatever order its layers were created in."""
    torch.manual_seed(0)
    block = _call(cls, 3, 8)
    if not isinstance(block, nn.Module):
        _fail(f"{cls.__name__}(3, 8) is a {type(block).__name__}, not an nn.Module",
              "subclass nn.Module (or nn.Sequential)")
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in block.modules()):
        _fail(f"{cls.__name__}(3, 8) has a BatchNorm layer; the paper's block has none",
              "two unpadded 3x3 convolutions, each followed by a ReLU, and nothing else "
              "(the course's DoubleConv(batch_norm=True) adds BatchNorm; this exercise is the paper's block)")
    reference = DoubleConv(3, 8)
    n_params, n_expected = sum(p.numel() for p in block.parameters()), sum(p.numel() for p in reference.parameters())
    if n_params != n_expected:
        _fail(f"{cls.__name__}(3, 8) has {n_params} parameters; the paper's block has {n_expected} "
              f"(3*8*3*3 + 8 for the first convolution, 8*8*3*3 + 8 for the second)",
              "two nn.Conv2d with kernel_size=3, the second from out_channels to out_channels")
    _check_float32(block, f"{cls.__name__}(3, 8)")
    x = torch.randn(2, 3, 17, 19)
    with torch.no_grad():
        y = block(x)
    if tuple(y.shape) != (2, 8, 13, 15):
        hint = ("the paper's convolutions are unpadded: use padding=0"
                if tuple(y.shape[-2:]) == (17, 19) else "two unpadded 3x3 convolutions remove 2 pixels per side")
        _fail(f"a (2, 3, 17, 19) input gave shape {tuple(y.shape)}; expected (2, 8, 13, 15)", hint)
    # the library's weights, each into the convolution of the same role (3 -> 8 first, 8 -> 8 second),
    # whatever order the layers were created (registered) in: the same function gives the same output
    convs = {m.in_channels: m for m in block.modules() if isinstance(m, nn.Conv2d)}
    if sorted(convs) != [3, 8] or any(c.weight.shape[1:] != (c.in_channels, 3, 3) for c in convs.values()):
        _fail(f"{cls.__name__}(3, 8) does not hold one 3 -> 8 and one 8 -> 8 nn.Conv2d with 3x3 kernels",
              "two nn.Conv2d with kernel_size=3: in_channels -> out_channels, then out_channels -> out_channels")
    with torch.no_grad():
        for conv, ref in zip((convs[3], convs[8]), (reference[0], reference[2])):
            conv.weight.copy_(ref.weight)
            if conv.bias is not None:
                conv.bias.copy_(ref.bias)
        y, expected = block(x), reference(x)
    if (y < 0).any():
        _fail("the output has negative values", "each convolution is followed by a ReLU, the last one too")
    if not torch.allclose(y, expected, atol=1e-5):
        _fail("with the library's weights your block computes different values",
              "apply them in this order: conv (in -> out), ReLU, conv (out -> out), ReLU")
    return CheckPassed(f"✓ {cls.__name__}: shapes, parameter count and values match DoubleConv")


@_own_rng
def check_up_conv(make_up_conv: Callable[[int], nn.Module]) -> CheckPassed:
    """``make_up_conv(in_channels)`` must return the paper's up-convolution: (B, C, H, W) ->
    (B, C/2, 2H, 2W) with a learned 2x2 kernel."""
    for c in (4, 16):
        layer = _call(make_up_conv, c)
        if not isinstance(layer, nn.Module):
            _fail(f"make_up_conv({c}) returned a {type(layer).__name__}, not an nn.Module",
                  "return the layer itself: nn.ConvTranspose2d(...)")
        _check_float32(layer, f"make_up_conv({c})")
        x = torch.randn(1, c, 5, 7)
        with torch.no_grad():
            y = layer(x)
        if tuple(y.shape) != (1, c // 2, 10, 14):
            if y.shape[1] != c // 2:
                hint = "the up-convolution halves the channels: out_channels = in_channels // 2"
            else:
                hint = "kernel_size=2 with stride=2 doubles H and W exactly"
            _fail(f"make_up_conv({c}) maps (1, {c}, 5, 7) to {tuple(y.shape)}; expected (1, {c // 2}, 10, 14)", hint)
        n_params, n_expected = sum(p.numel() for p in layer.parameters()), c * (c // 2) * 4 + c // 2
        if n_params != n_expected:
            _fail(f"make_up_conv({c}) has {n_params} parameters; a 2x2 up-convolution from {c} to {c // 2} "
                  f"channels has {n_expected}", "use nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)")
    return CheckPassed("✓ make_up_conv doubles H and W and halves the channels with a learned 2x2 kernel")


@_own_rng
def check_center_crop(crop: Callable) -> CheckPassed:
    """``crop(x, size)`` must crop the last two dimensions of x to (h, w) around the centre."""
    x = torch.arange(2 * 3 * 12 * 10, dtype=torch.float32).reshape(2, 3, 12, 10)
    for size in [(8, 6), (4, 10), (12, 10), (7, 5), (1, 1)]:
        got = _call(crop, x, size)
        expected = center_crop(x, size)
        if not isinstance(got, torch.Tensor):
            _fail(f"crop(x, {size}) returned a {type(got).__name__}", "return a torch.Tensor")
        if tuple(got.shape) != tuple(expected.shape):
            hint = ("crop only the last two dimensions; keep batch and channels"
                    if got.ndim != 4 or tuple(got.shape[:2]) != (2, 3) else
                    "rows and columns are swapped: size = (h, w), and H is x.shape[-2]"
                    if tuple(got.shape[-2:]) == tuple(expected.shape[-2:])[::-1] else
                    "with an odd difference, (H - h) // 2 rows go on top and the rest at the bottom; "
                    "slice top:top + h rather than top:H - top")
            _fail(f"crop(x of shape {tuple(x.shape)}, {size}) has shape {tuple(got.shape)}; "
                  f"expected {tuple(expected.shape)}", hint)
        if got.dtype != x.dtype:   # torch.equal below would not notice
            _fail(f"crop(x, {size}) has dtype {got.dtype}; x has {x.dtype}",
                  "cropping only selects pixels: slice x and return it without converting")
        if not torch.equal(got, expected):
            _fail(f"crop(x, {size}) has the right shape but not the centre of x",
                  "top = (H - h) // 2 and left = (W - w) // 2; check that rows and columns are not swapped")
    return CheckPassed("✓ crop matches center_crop on even and odd differences")


@_own_rng
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
                got, raised = _call(output_size, n, depth), None
            except ValueError as e:   # like UNet.output_size; the exercise asks for None
                raised = e
            if raised is not None:
                _fail(f"output_size({n}, depth={depth}) raised ValueError: {raised}",
                      "return None where the input size is not valid, rather than raising")
            if got != expected:
                if expected is None:
                    hint = ("every max-pool needs an even size, and every size must stay >= 1"
                            if got is not None else "")
                    _fail(f"output_size({n}, depth={depth}) = {got!r}, but {n} is not a valid input size", hint)
                hint = ("each DoubleConv removes 4 pixels; count the first one, one per level down "
                        "and one per level up")
                _fail(f"output_size({n}, depth={depth}) = {got!r}; expected {expected}", hint)
    return CheckPassed("✓ output_size agrees with UNet.output_size for depths 1, 2 and 4")


@_own_rng
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
                got = _call(unet_forward, model, x)
        except NotImplementedError:   # a skeleton (a RuntimeError too): _call's message stands
            raise
        except (RuntimeError, ValueError) as error:
            _fail(f"{what} raised {type(error).__name__}: {str(error).splitlines()[0]}",
                  "going down, append x to skips *before* each down block; going up, the deepest skip goes "
                  "to the first up block: for up, skip in zip(model.ups, reversed(skips)): x = up(x, skip)")
        finally:
            handle.remove()
        if calls:
            _fail(f"{what} calls model(x) itself", "build the pass from the blocks: model.inc, each of "
                  "model.downs, each of model.ups with its skip, model.outc")
        with torch.no_grad():
            expected = model(x)
        if not isinstance(got, torch.Tensor):
            _fail(f"{what} returned a {type(got).__name__}", "return the output of model.outc, a tensor")
        if tuple(got.shape) != tuple(expected.shape):
            if got.shape[1:] == (base_channels, *expected.shape[2:]):
                hint = "finish with model.outc: the 1x1 convolution from base_channels to the class scores"
            else:
                hint = "inc, then every down, then every up with its skip, then outc: each block exactly once"
            _fail(f"{what} has shape {tuple(got.shape)}; model(x) has {tuple(expected.shape)}", hint)
        if not torch.allclose(got, expected, atol=1e-5):
            _fail(f"{what} has the right shape but different values from model(x)",
                  "store the skip before each down block (the output of inc is the first skip), and pair "
                  "the ups with the skips in reverse: zip(model.ups, reversed(skips))")
    return CheckPassed("✓ unet_forward equals model(x) for depths 0 to 3: the U is in your loop")


@_own_rng
def check_otsu_threshold(otsu: Callable) -> CheckPassed:
    """``otsu(image)`` must return Otsu's threshold t of a numpy image (foreground = image > t):
    the largest background value of the split with the largest between-class variance."""
    rng = np.random.default_rng(0)
    bimodal = np.concatenate([rng.normal(60, 10, 700), rng.normal(170, 25, 300)]).clip(0, 255)
    cases = [
        ("np.array([7, 1, 6, 2])", np.array([7, 1, 6, 2])),
        ("np.array([0, 0, 0, 4, 4, 10])", np.array([0, 0, 0, 4, 4, 10])),
        ("a bimodal uint8 image, 40x25, 70% dark", bimodal.astype(np.uint8).reshape(40, 25)),
        ("a bimodal float image, 40x25", (bimodal / 255).astype(np.float32).reshape(40, 25)),
    ]
    for name, image in cases:
        got = _call(otsu, image.copy())
        expected = otsu_threshold(image)
        if isinstance(got, np.ndarray) and got.size == 1:
            got = got.item()
        if not isinstance(got, (int, float, np.integer, np.floating)):
            _fail(f"otsu({name}) returned a {type(got).__name__}; expected one number",
                  "return the threshold t itself, e.g. float(values[k]), not the foreground mask")
        got = float(got)
        if np.isclose(got, expected, rtol=1e-6, atol=1e-9):
            continue
        values = np.unique(image.astype(np.float64))
        above = values[values > expected].min()
        if np.isclose(got, above, rtol=1e-6):
            hint = ("that is the smallest foreground value; return the largest *background* value, so "
                    "that the foreground is image > t")
        elif expected < got < above:
            hint = ("a value between the two classes splits the pixels the same way, but return the "
                    "largest background value itself so that your answer can be compared exactly")
        else:
            hint = ("try every split between consecutive distinct values (np.unique(image, return_counts=True)) "
                    "and keep the one with the largest omega_0 * omega_1 * (mu_0 - mu_1)^2, where omega_k is "
                    "the fraction of pixels in class k and mu_k their mean value")
        _fail(f"otsu({name}) = {got:g}; Otsu's threshold is {expected:g}", hint)
    return CheckPassed("✓ otsu matches unet_lib.baselines.otsu_threshold on hand-worked and bimodal images")


@_own_rng
def check_record_output(record_output: Callable) -> CheckPassed:
    """``record_output(model, x, block)`` must run ``model`` once on ``x`` (B, C, H, W) and return
    what its submodule ``block`` produced, (B, C', h, w), caught with a forward hook that is
    removed afterwards. Compared with ``unet_lib.widgets.feature_maps`` on every block."""
    from .model import named_blocks
    from .widgets import feature_maps   # imported here: checks need not load ipywidgets otherwise

    torch.manual_seed(0)
    model = UNet(depth=2, base_channels=4).eval()
    images = torch.rand(2, 1, 40, 40, generator=torch.Generator().manual_seed(0))
    fms = [feature_maps(model, image) for image in images]
    x = torch.stack([fm.input for fm in fms])                    # (2, 1, H_in, W_in), mirror-padded
    for name, block in named_blocks(model):
        expected = torch.stack([fm.maps[name] for fm in fms])    # (2, C', h, w)
        inputs: list[torch.Tensor] = []
        passes: list[int] = []
        spies = [block.register_forward_pre_hook(lambda m, args: inputs.append(args[0])),
                 model.register_forward_pre_hook(lambda m, args: passes.append(1))]
        hooks_before = len(block._forward_hooks)
        try:
            got = _call(record_output, model, x.clone(), block)
        finally:
            for spy in spies:
                spy.remove()
        if len(block._forward_hooks) > hooks_before:
            _fail(f"after record_output(model, x, model.{name}) a forward hook is still attached to the block",
                  "register_forward_hook returns a handle; call handle.remove() when the model has run "
                  "(in a `finally:` so that it is removed even when the model raises)")
        if len(passes) != 1:
            _fail(f"record_output(model, x, model.{name}) ran the model {len(passes)} times; expected once",
                  "register the hook, run model(x) once, remove the hook, return what the hook kept")
        if not isinstance(got, torch.Tensor):
            _fail(f"record_output(model, x, model.{name}) returned a {type(got).__name__}; expected a tensor",
                  "the hook is called as hook(module, inputs, output); keep `output` (e.g. in a list or dict)")
        got = got.detach()
        if inputs and got.shape == inputs[0].shape and torch.equal(got, inputs[0]) and got.shape != expected.shape:
            _fail(f"record_output(model, x, model.{name}) returned the block's input, not its output",
                  "the hook's arguments are (module, inputs, output): the third one is what the block produced")
        if got.shape != expected.shape:
            hint = ("keep the batch dimension: the model ran on a batch of 2" if got.shape == expected.shape[1:]
                    else "return the block's output, as the hook receives it")
            _fail(f"record_output(model, x, model.{name}) has shape {tuple(got.shape)}; "
                  f"the block's output has shape {tuple(expected.shape)}", hint)
        if not torch.allclose(got, expected, atol=1e-5):
            _fail(f"record_output(model, x, model.{name}) has the right shape but different values",
                  "return the output of this run of the model on x, unchanged (no normalising or cropping)")
    return CheckPassed("✓ record_output catches every block's output with a forward hook and removes the hook")


def _as_array(value, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The learner's (H, W) answer as a float numpy array, or a CheckError that says what came back."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        _fail(f"{name} returned a {type(value).__name__}; expected a numpy array of shape {shape}",
              "return the (H, W) array itself")
    if value.shape != shape:
        _fail(f"{name} returned shape {value.shape}; expected {shape}", "one value per pixel, (H, W)")
    return value.astype(np.float64)


def _ground_truth_cases() -> list[tuple[str, np.ndarray]]:
    side_by_side = np.array([[1, 1, 2, 2, 0],
                             [1, 1, 2, 2, 0],
                             [0, 0, 0, 0, 0]])
    diagonal = np.array([[1, 1, 0, 0],
                         [1, 1, 0, 0],
                         [0, 0, 3, 3],
                         [0, 0, 3, 3]])
    apart = np.array([[5, 5, 0, 7, 7],
                      [5, 5, 0, 7, 7]])
    from .data import draw_cells
    _, toy = draw_cells(40, np.random.default_rng(1), n_cells=(8, 8), radius=(5.0, 8.0))
    return [("two cells side by side", side_by_side), ("two cells touching at a corner", diagonal),
            ("two cells one pixel apart (ids 5 and 7)", apart), ("a 40x40 toy-cells image", toy)]


@_own_rng
def check_instances_to_mask(instances_to_mask: Callable) -> CheckPassed:
    """``instances_to_mask(instances)`` must turn an (H, W) label image into the paper's mask:
    1 on cells, 0 on background and on every cell pixel that has a pixel of *another* cell
    among its 8 neighbours. Compared with ``unet_lib.data.instances_to_mask``."""
    from .data import instances_to_mask as reference
    for name, instances in _ground_truth_cases():
        got = _as_array(_call(instances_to_mask, instances.copy()), f"instances_to_mask({name})", instances.shape)
        expected = reference(instances)
        if np.array_equal(got, expected):
            continue
        if not np.isin(got, (0, 1)).all():
            _fail(f"instances_to_mask({name}) contains values other than 0 and 1: "
                  f"{', '.join(f'{v:g}' for v in np.unique(got)[:6])}",
                  "return the semantic mask (1 = cell, 0 = background), not the instance ids")
        if name == "two cells touching at a corner" and np.array_equal(got, instances > 0):
            _fail(f"instances_to_mask({name}) keeps the two cells connected diagonally",
                  "look at all 8 neighbours, the diagonal ones too (e.g. a 3x3 window)")
        if np.array_equal(got, instances > 0):
            _fail(f"instances_to_mask({name}) is just instances > 0: the touching cells are merged",
                  "set every cell pixel to 0 that has a neighbour belonging to a different cell")
        cut, should_cut = (instances > 0) & (got == 0), (instances > 0) & (expected == 0)
        if (cut & ~should_cut).any():
            _fail(f"instances_to_mask({name}) removes cell pixels that touch no other cell",
                  "only a neighbour from a *different cell* counts; background neighbours do not "
                  "(a pixel at the edge of a lone cell stays 1)")
        missed = should_cut & ~cut
        if missed.any():
            _fail(f"instances_to_mask({name}) keeps {int(missed.sum())} border pixel(s) between touching cells",
                  "cut both sides of a contact: a pixel of cell a next to cell b, and the pixel of b next to a")
        _fail(f"instances_to_mask({name}) differs from the library's mask", "compare your output with "
              "unet_lib.data.instances_to_mask on the same input")
    return CheckPassed("✓ instances_to_mask cuts the borders between touching cells, diagonals included, "
                       "and nothing else")


def _touching_pairs(instances: np.ndarray) -> set[tuple[int, int]]:
    """The pairs (a, b), a < b, of cells with a pixel of b among the 8 neighbours of a pixel of a."""
    H, W = instances.shape
    padded = np.pad(instances, 1)
    pairs = set()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            neighbour = padded[1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W]      # (H, W)
            contact = (instances > 0) & (neighbour > 0) & (instances != neighbour)
            pairs.update((int(min(a, b)), int(max(a, b))) for a, b in zip(instances[contact], neighbour[contact]))
    return pairs


@_own_rng
def check_touching_pairs(touching_pairs: Callable) -> CheckPassed:
    """``touching_pairs(instances)`` must return the set of pairs (a, b), a < b, of cells that
    touch: a pixel of cell a has a pixel of cell b among its 8 neighbours."""
    cases = _ground_truth_cases()
    three = np.zeros((5, 9), np.int64)
    three[1:4, 0:3], three[1:4, 3:6], three[1:4, 6:9] = 4, 9, 2          # 4 | 9 | 2: two contacts
    cases.insert(3, ("three cells in a row (ids 4, 9, 2)", three))
    cases.append(("an image without cells", np.zeros((4, 5), np.int64)))
    for name, instances in cases:
        got = _call(touching_pairs, instances.copy())
        expected = _touching_pairs(instances)
        try:
            pairs = [tuple(int(v) for v in pair) for pair in got]
        except TypeError:
            _fail(f"touching_pairs({name}) returned {got!r}; expected a set of pairs of cell ids",
                  "return a set of tuples (a, b), e.g. {(1, 2), (2, 5)}")
        if any(len(pair) != 2 for pair in pairs):
            _fail(f"touching_pairs({name}) returned {got!r}: every element must be one pair (a, b)",
                  "add (a, b) for each contact, not single ids or longer tuples")
        if set(pairs) == expected and all(a < b for a, b in pairs):
            continue
        if any(0 in pair for pair in pairs):
            _fail(f"touching_pairs({name}) contains a pair with 0", "0 is the background, not a cell: "
                  "only a neighbour that belongs to *another cell* is a contact")
        if any(a == b for a, b in pairs):
            _fail(f"touching_pairs({name}) contains a cell paired with itself",
                  "only neighbours with a *different* id count")
        if {(min(p), max(p)) for p in pairs} == expected:
            _fail(f"touching_pairs({name}) = {sorted(pairs)}; expected {sorted(expected)}",
                  "each pair once, smaller id first: add (min(a, b), max(a, b))")
        missing, extra = sorted(expected - set(pairs)), sorted(set(pairs) - expected)
        if name == "two cells touching at a corner" and missing:
            _fail(f"touching_pairs({name}) misses the contact {missing[0]}",
                  "look at all 8 neighbours, the diagonal ones too")
        if extra:
            _fail(f"touching_pairs({name}) has pairs that do not touch: {extra[:5]}",
                  "a contact is a pixel of a and a pixel of b that are *neighbours* (at most one step apart, "
                  "diagonals included); a background pixel between them means no contact")
        _fail(f"touching_pairs({name}) misses {len(missing)} contact(s), e.g. {missing[:5]}",
              "for every cell pixel, look at its 8 neighbours (np.roll or slicing of a padded copy), "
              "and keep the pairs of different non-zero ids")
    return CheckPassed("✓ touching_pairs finds every contact, diagonals included, each pair once")


def _warp(image: np.ndarray, displacement: np.ndarray, sign: float = 1.0, order: int = 1,
          swap: bool = False, mode: str = "reflect") -> np.ndarray:
    """``image`` sampled at x + sign * displacement(x): the reference (the defaults) and the
    learner's likely mistakes, for ``check_warp_image``."""
    from scipy import ndimage
    H, W = image.shape
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    d = displacement[::-1] if swap else displacement
    coords = np.stack([rows + sign * d[0], cols + sign * d[1]])                    # (2, H, W)
    return ndimage.map_coordinates(image, coords, order=order, mode=mode)


@_own_rng
def check_warp_image(warp_image: Callable) -> CheckPassed:
    """``warp_image(image, displacement)`` must return the (H, W) image whose pixel x takes the
    value of ``image`` at x + displacement(x) (rows ``displacement[0]``, columns
    ``displacement[1]``), interpolated linearly, reflected at the border: the image half of
    ``unet_lib.augment.elastic_deform``."""
    from scipy import ndimage

    from .augment import elastic_deform, elastic_displacement
    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.random((20, 24)), 1.0)            # (H, W), smooth like a micrograph
    shift = np.stack([np.full((20, 24), 2.0), np.full((20, 24), -3.0)])
    half = np.stack([np.full((20, 24), 0.5), np.full((20, 24), 0.25)])
    _, field = elastic_displacement((20, 24), rng, grid=3, sigma=4.0)
    cases = [("a shift by (2, -3) px", shift), ("a shift by (0.5, 0.25) px", half),
             ("an elastic field (grid 3, sigma 4)", field)]
    for name, displacement in cases:
        got = _as_array(_call(warp_image, image.copy(), displacement.copy()), f"warp_image(image, {name})",
                        image.shape)
        expected = elastic_deform(image, np.zeros(image.shape, np.int64), displacement)[0]
        if np.allclose(got, expected, atol=1e-6):
            continue
        mistakes = [
            (dict(sign=-1.0), "content moves *against* the arrows: output pixel x takes its value from "
                              "x + displacement(x), not x - displacement(x)"),
            (dict(swap=True), "displacement[0] moves along the rows (down), displacement[1] along the columns"),
            (dict(order=0), "interpolate the image linearly (order=1); nearest neighbour is for labels"),
            (dict(order=3), "map_coordinates interpolates with cubic splines by default (order=3): pass order=1"),
        ]
        for kwargs, hint in mistakes:
            if np.allclose(got, _warp(image, displacement, **kwargs), atol=1e-6):
                _fail(f"warp_image(image, {name}) differs from the paper's warp", hint)
        H, W = image.shape
        rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
        inside = ((rows + displacement[0] >= 0) & (rows + displacement[0] <= H - 1)
                  & (cols + displacement[1] >= 0) & (cols + displacement[1] <= W - 1))
        if np.allclose(got[inside], expected[inside], atol=1e-6):
            _fail(f"warp_image(image, {name}) is right where it samples inside the image, wrong where it "
                  "samples outside", "reflect at the border: map_coordinates(..., mode='reflect')")
        worst = np.unravel_index(np.abs(got - expected).argmax(), got.shape)
        _fail(f"warp_image(image, {name}) differs at pixel {tuple(map(int, worst))}: {got[worst]:.4g}, "
              f"expected {expected[worst]:.4g}",
              "sample the image at (row + displacement[0], column + displacement[1]) for every pixel: "
              "scipy.ndimage.map_coordinates(image, coords, order=1, mode='reflect')")
    return CheckPassed("✓ warp_image samples at x + displacement(x), linearly, reflected at the border: "
                       "as elastic_deform does")


@_own_rng
def check_border_term(border_term: Callable) -> CheckPassed:
    """``border_term(instances, w0, sigma)`` must return the second term of Eq. 2,
    w0 * exp(-(d1 + d2)^2 / (2 sigma^2)), on background pixels (0 on cells, 0 everywhere with fewer
    than two cells), as an (H, W) array. Compared with ``unet_lib.weights.border_term_naive``."""
    from scipy import ndimage

    from .weights import border_term_naive
    two = np.array([[1, 0, 0, 2]])
    rng = np.random.default_rng(0)
    three = np.zeros((14, 17), np.int64)
    three[2:6, 1:5], three[9:13, 3:8], three[3:8, 10:15] = 1, 4, 9
    from .data import draw_cells, separate_touching
    toy = separate_touching(draw_cells(40, rng, n_cells=(6, 6), radius=(5.0, 8.0))[1])
    one = np.zeros((6, 7), np.int64)
    one[2:4, 2:5] = 3
    cases = [("[[1, 0, 0, 2]]", two, 10.0, 5.0), ("three cells, 14x17", three, 10.0, 5.0),
             ("three cells, 14x17, w0=4, sigma=2", three, 4.0, 2.0), ("a 40x40 toy-cells image", toy, 10.0, 5.0),
             ("a single cell", one, 10.0, 5.0), ("an empty image", np.zeros((5, 6), np.int64), 10.0, 5.0)]
    for name, instances, w0, sigma in cases:
        got = _as_array(_call(border_term, instances.copy(), w0, sigma), f"border_term({name})", instances.shape)
        expected = border_term_naive(instances, w0, sigma).astype(np.float64)
        if np.allclose(got, expected, atol=1e-3):
            continue
        if expected.max() == 0:
            _fail(f"border_term({name}) is not 0 everywhere",
                  "with fewer than two cells there is no second-nearest cell (no d2): return zeros")
        if np.any(got[instances > 0] != 0):
            _fail(f"border_term({name}) is non-zero on cell pixels",
                  "the border term applies to background pixels only (instances == 0)")
        distances = np.sort(np.stack([ndimage.distance_transform_edt(instances != i)
                                      for i in np.unique(instances[instances > 0])]), axis=0)
        d1, d2 = distances[0], distances[1]
        background = instances == 0
        variants = {
            "(d1 + d2)^2 / sigma^2": (np.exp(-(d1 + d2) ** 2 / sigma**2),
                                      "the denominator is 2 * sigma^2"),
            "(d1 + d2)^2 / (2 * sigma)": (np.exp(-(d1 + d2) ** 2 / (2 * sigma)),
                                          "square sigma: the denominator is 2 * sigma^2 (sigma**2 in Python), "
                                          "not 2 * sigma"),
            "(d1^2 + d2^2)": (np.exp(-(d1**2 + d2**2) / (2 * sigma**2)),
                              "square the sum: (d1 + d2)^2, not d1^2 + d2^2"),
            "2 * d1": (np.exp(-(2 * d1) ** 2 / (2 * sigma**2)),
                       "d2 is the distance to the *second*-nearest cell: sort the per-cell distances "
                       "and take the two smallest"),
            "no w0": (np.exp(-(d1 + d2) ** 2 / (2 * sigma**2)) / w0, "multiply by w0"),
        }
        for formula, (value, hint) in variants.items():
            if np.allclose(got, np.where(background, w0 * value, 0), atol=1e-3):
                _fail(f"border_term({name}) computes the exponent with {formula}", hint)
        worst = np.unravel_index(np.abs(got - expected).argmax(), got.shape)
        _fail(f"border_term({name}) differs at pixel {tuple(map(int, worst))}: {got[worst]:.4g}, expected "
              f"{expected[worst]:.4g} (d1 = {d1[worst]:.3g}, d2 = {d2[worst]:.3g})",
              "d_i is the Euclidean distance to the nearest pixel of cell i: "
              "scipy.ndimage.distance_transform_edt(instances != i), one per cell; w0 and sigma are arguments")
    return CheckPassed("✓ border_term matches Eq. 2's border term on hand-made and toy cells, "
                       "with one cell and with none")


@_own_rng
def check_class_balance(class_balance: Callable) -> CheckPassed:
    """``class_balance(mask)`` must return w_c of Eq. 2 as an (H, W) map for a 0/1 mask:
    w_c = n_pixels / (2 * count_c), so that both classes carry the same total weight.
    Compared with ``unet_lib.weights.class_weight_map``."""
    from .data import draw_cells, instances_to_mask
    from .weights import class_weight_map
    rng = np.random.default_rng(0)
    cases = [("[[0, 0, 0, 1]]", np.array([[0, 0, 0, 1]])),
             ("a random 6x7 mask", (rng.random((6, 7)) < 0.3).astype(np.int64)),
             ("a 40x40 toy-cells mask", instances_to_mask(draw_cells(40, rng, n_cells=(6, 6), radius=(5.0, 8.0))[1])),
             ("a mask without cells, 3x4", np.zeros((3, 4), np.int64))]
    for name, mask in cases:
        got = _as_array(_call(class_balance, mask.copy()), f"class_balance({name})", mask.shape)
        expected = class_weight_map(mask).astype(np.float64)
        if np.allclose(got, expected, rtol=1e-5):
            continue
        if not np.all(np.isfinite(got)):
            _fail(f"class_balance({name}) contains inf or nan",
                  "a class with no pixels has no weight to compute: divide only by the counts of the classes "
                  "present (or by np.maximum(count, 1))")
        counts = {c: (mask == c).sum() for c in (0, 1)}
        count = np.where(mask == 1, counts[1], counts[0]).astype(np.float64)
        variants = [
            (count / (2 * mask.size), "the rarer class gets the *larger* weight: w_c = n_pixels / (2 * count_c)"),
            (count / mask.size, "the rarer class gets the *larger* weight: w_c = n_pixels / (2 * count_c)"),
            (mask.size / count, "divide by the number of classes too: w_c = n_pixels / (2 * count_c), so that "
                                "the mean weight over the image is 1"),
            (1 / count, "multiply by the number of pixels: w_c = n_pixels / (2 * count_c)"),
        ]
        for value, hint in variants:
            if np.allclose(got, value, rtol=1e-5):
                _fail(f"class_balance({name}) gives the classes the weights "
                      f"{', '.join(f'{v:.3g}' for v in np.unique(got))}; expected "
                      f"{', '.join(f'{v:.3g}' for v in np.unique(expected))}", hint)
        _fail(f"class_balance({name}) differs from w_c: {', '.join(f'{v:.3g}' for v in np.unique(got)[:4])}; "
              f"expected {', '.join(f'{v:.3g}' for v in np.unique(expected))}",
              "every pixel of class c gets n_pixels / (2 * count_c), where count_c = (mask == c).sum()")
    return CheckPassed("✓ class_balance gives both classes the same total weight, as class_weight_map does")


@_own_rng
def check_border_weight_share(border_weight_share: Callable) -> CheckPassed:
    """``border_weight_share(instances, sigma)`` must return the share of the total weight of the
    paper's weight map (``unet_weight_map`` of the separated cells, w0 = 10, the given sigma) that
    lies on the separating-border pixels (``touching_borders`` of the original instances)."""
    from .data import draw_cells, separate_touching, touching_borders
    from .weights import class_weight_map, unet_weight_map

    def share(weights: np.ndarray, borders: np.ndarray) -> float:
        return float(weights[borders].sum() / weights.sum())

    rng = np.random.default_rng(0)
    images = [draw_cells(64, rng, n_cells=(10, 10), radius=(6.0, 10.0))[1] for _ in range(2)]
    for k, instances in enumerate(images):
        borders = touching_borders(instances)
        separated = separate_touching(instances)
        for sigma in (2.0, 5.0, 10.0):
            what = f"border_weight_share(toy image {k}, sigma={sigma:g})"
            got = _call(border_weight_share, instances.copy(), sigma)
            if isinstance(got, torch.Tensor) and got.numel() == 1 or isinstance(got, np.ndarray) and got.size == 1:
                got = got.item()
            if not isinstance(got, (int, float, np.integer, np.floating)):
                _fail(f"{what} returned a {type(got).__name__}; expected one number",
                      "return weight_map[borders].sum() / weight_map.sum() as a float")
            got = float(got)
            expected = share(unet_weight_map(separated, sigma=sigma), borders)
            if abs(got - expected) <= 1e-4 * max(abs(expected), 1e-3):
                continue
            variants = [
                (share(unet_weight_map(separated), borders),
                 "pass sigma on: unet_weight_map(separated, sigma=sigma)"),
                (share(unet_weight_map(instances, sigma=sigma), borders),
                 "compute the weight map from separate_touching(instances): in the paper's mask the "
                 "border pixels are background, and the border term is added on background pixels only"),
                (float(borders.mean()), "that is the share of the *pixels*; the question is the share of the "
                                        "*weight*: weight_map[borders].sum() / weight_map.sum()"),
                (0.0, "find the borders on the original instances: touching_borders(separated) is empty, "
                      "since separated cells no longer touch"),
                (share(class_weight_map((separated > 0).astype(np.int64)), borders),
                 "use the whole weight map, w_c plus the border term: unet_weight_map"),
            ]
            for value, hint in variants:
                if abs(got - value) <= 1e-4 * max(abs(value), 1e-3):
                    _fail(f"{what} = {got:.4f}; expected {expected:.4f}", hint)
            _fail(f"{what} = {got:.4f}; expected {expected:.4f}",
                  "borders = touching_borders(instances); weight_map = unet_weight_map(separate_touching("
                  "instances), sigma=sigma); return weight_map[borders].sum() / weight_map.sum()")
    return CheckPassed("✓ border_weight_share agrees with unet_weight_map on two toy images for sigma 2, 5 and 10")


# -- notebook 07: training; notebook 08: evaluation ------------------------------------------

def _train_step_case():
    """A tiny model, two copies of it with SGD, and one batch of toy cells."""
    import copy

    from .data import ToyCells
    torch.manual_seed(0)
    model = UNet(depth=1, base_channels=4)
    twin = copy.deepcopy(model)
    data = ToyCells(2, size=32, seed=0, n_cells=(2, 4), radius=(4.0, 7.0))
    batch = {k: torch.stack([data[i][k] for i in range(2)]) for k in ("image", "instances", "mask", "weight_map")}
    return model, twin, batch


def _watch_training(model: nn.Module) -> tuple[list, list, list]:
    """Hooks on ``model`` that record what one call of the learner's train_step did: the input
    sizes the model ran on, and whether backward reached the parameters. Returns (input sizes,
    backward flags, handles to remove)."""
    sizes: list[tuple[int, int]] = []
    backward: list[bool] = []
    handles = [model.register_forward_pre_hook(lambda module, args: sizes.append(tuple(args[0].shape[-2:])))]
    handles += [p.register_hook(lambda grad: backward.append(True)) for p in model.parameters()]
    return sizes, backward, handles


@_own_rng
def check_train_step(train_step: Callable) -> CheckPassed:
    """``train_step(model, optimizer, batch)`` must do one optimisation step with the paper's
    weighted loss on the mirror-padded batch and return the loss as a float; compared with
    ``unet_lib.train.train_step`` over two steps."""
    from .train import train_step as reference
    model, twin, batch = _train_step_case()
    opt, opt_twin = (torch.optim.SGD(m.parameters(), lr=0.1) for m in (model, twin))
    h, w = batch["image"].shape[-2:]
    unpadded_hint = (f"logits = padded_forward(model, batch['image']): it mirror-pads the image by the context "
                     f"margin, so that every pixel of the mask gets a prediction (do not crop the mask instead: "
                     f"the loss must cover every pixel)")
    for step in (1, 2):
        sizes, backward, handles = _watch_training(model)
        try:
            try:
                got = _call(train_step, model, opt, batch)
            except (ValueError, RuntimeError) as error:
                if (h, w) in sizes:   # the model ran on the unpadded image: its output is smaller than the mask
                    _fail(f"train_step ran the model on the unpadded {h}x{w} image; a valid-padding U-Net's "
                          f"output is smaller than its input, so the logits do not cover the {h}x{w} mask "
                          f"({type(error).__name__}: {str(error).splitlines()[0][:120]})", unpadded_hint)
                raise
        finally:
            for handle in handles:
                handle.remove()
        expected = reference(twin, opt_twin, batch)
        unweighted = reference(_train_step_case()[0], torch.optim.SGD([torch.zeros(1)], lr=0.0), batch, False) \
            if step == 1 else None
        if isinstance(got, torch.Tensor):
            _fail(f"train_step returned a tensor ({got!r}); expected a float",
                  "return loss.item(): a float, and no reference to the graph that holds every activation")
        if not isinstance(got, float):
            _fail(f"train_step returned {got!r}; expected the loss as a float", "return loss.item()")
        if (h, w) in sizes:
            _fail(f"step {step}: train_step ran the model on the unpadded {h}x{w} image, so its loss leaves out "
                  f"the pixels near the border (a valid-padding U-Net's output is smaller than its input)",
                  unpadded_hint)
        if abs(got - expected) > 1e-4 * max(1.0, abs(expected)):
            if unweighted is not None and abs(got - unweighted) < 1e-4 * max(1.0, abs(unweighted)):
                _fail(f"step {step}: loss {got:.4f} is the unweighted cross-entropy; expected {expected:.4f}",
                      "pass batch['weight_map'] to weighted_cross_entropy: the weight map is the point")
            _fail(f"step {step}: train_step returned loss {got:.4f}; expected {expected:.4f}",
                  "logits = padded_forward(model, batch['image']); loss = weighted_cross_entropy(logits, "
                  "batch['mask'], batch['weight_map']); return the loss computed before the update")
        changed = any(not torch.equal(p, q) for p, q in zip(model.parameters(), _train_step_case()[0].parameters()))
        if not changed:
            grads = [p.grad for p in model.parameters()]
            if backward and all(g is None or not g.any() for g in grads):
                _fail("the model's weights did not change: loss.backward() ran, but the gradients were zero "
                      "when optimizer.step() came",
                      "optimizer.zero_grad() after loss.backward() erases the gradients just computed, so "
                      "step has nothing to do: call zero_grad() first, then backward(), then step()")
            if not backward:
                _fail("the model's weights did not change, and no gradient reached them",
                      "call loss.backward() on the loss, then optimizer.step()")
            _fail("the model's weights did not change", "call optimizer.step() after loss.backward()")
        for (name, p), q in zip(model.named_parameters(), twin.parameters()):
            if not torch.allclose(p, q, atol=1e-5):
                hint = ("the second step differs: gradients add up across steps unless you call "
                        "optimizer.zero_grad() before loss.backward()" if step == 2 else
                        "one backward and one optimizer.step() per call, on the loss you return")
                _fail(f"after step {step} the weights ({name}) differ from the library's", hint)
    return CheckPassed("✓ train_step: same loss and same weights as unet_lib.train.train_step over two steps")


def _lr_sweep_reference(lrs, batch, steps: int, seed: int, mistake: str | None = None) -> list[float]:
    """What ``lr_sweep`` must return (``mistake=None``), or what a known mistake returns."""
    from .train import train_step
    losses = []
    model = None
    if mistake == "seed once":
        torch.manual_seed(seed)
    for lr in lrs:
        if mistake == "seed once":
            model = UNet(**_LR_SWEEP_MODEL)
        elif model is None or mistake != "one model":
            torch.manual_seed(seed)
            model = UNet(**_LR_SWEEP_MODEL)
        optimizer = (torch.optim.SGD if mistake == "sgd" else torch.optim.Adam)(model.parameters(), lr=lr)
        step_losses = [train_step(model, optimizer, batch, weighted=mistake != "unweighted") for _ in range(steps)]
        losses.append(step_losses[0] if mistake == "first loss" else step_losses[-1])
    return losses


# the tiny model of the learning-rate exercise (notebook 07): the course model's design, 4 channels
_LR_SWEEP_MODEL = dict(depth=1, base_channels=4, batch_norm=True)


@_own_rng
def check_lr_sweep(lr_sweep: Callable) -> CheckPassed:
    """``lr_sweep(lrs, batch, steps, seed)`` must train, for each learning rate, a fresh
    ``UNet(depth=1, base_channels=4, batch_norm=True)`` built right after ``torch.manual_seed(seed)``
    with Adam for ``steps`` calls of ``train_step`` on ``batch``, and return the loss of each run's
    last step. Compared with the check's own runs (within 1e-3, relative): too small, good and too
    large learning rates."""
    _, _, batch = _train_step_case()
    lrs, steps, seed = (1e-5, 0.1, 10.0), 6, 3
    torch.manual_seed(12345)   # a learner who does not seed gets other weights, the same every time
    got = _call(lr_sweep, list(lrs), batch, steps, seed)
    if isinstance(got, (torch.Tensor, np.ndarray)):
        got = got.tolist()
    if not isinstance(got, (list, tuple)) or len(got) != len(lrs):
        _fail(f"lr_sweep({list(lrs)}, batch, {steps}, {seed}) returned {got!r}; expected a list of {len(lrs)} floats",
              "one loss per learning rate, in the order of lrs")
    if not all(isinstance(v, (int, float, np.floating)) for v in got):
        _fail(f"lr_sweep returned {got!r}; expected floats",
              "record the float that train_step returns (or loss.item()), not the tensor")
    expected = _lr_sweep_reference(lrs, batch, steps, seed)

    def same(a, b) -> bool:
        return all(abs(x - y) <= 1e-3 * max(1.0, abs(y)) for x, y in zip(a, b))

    if same(got, expected):
        start = _lr_sweep_reference(lrs[:1], batch, 1, seed)[0]   # the loss before any update
        seen = []
        if abs(got[0] - start) < 0.01 * start:
            seen.append(f"lr = {lrs[0]:g} moves the loss by less than 1%")
        if got[1] < 0.5 * start:
            seen.append(f"lr = {lrs[1]:g} more than halves it")
        if got[2] > got[1]:
            seen.append(f"lr = {lrs[2]:g} ends higher than lr = {lrs[1]:g}")
        return CheckPassed(f"✓ lr_sweep matches the check's own runs ({steps} Adam steps from the same weights at "
                           f"lr = {', '.join(f'{lr:g}' for lr in lrs)})" + (": " + "; ".join(seen) if seen else ""))
    shown = ", ".join(f"{v:.4f}" for v in got)
    wanted = ", ".join(f"{v:.4f}" for v in expected)
    problem = f"lr_sweep({list(lrs)}, batch, steps={steps}, seed={seed}) = [{shown}]; expected [{wanted}]"
    hints = {
        "first loss": "these are the losses of the first step, before any update: return the loss of the last step",
        "one model": ("each learning rate continued training the previous one's model: build a fresh model for "
                      "every learning rate (torch.manual_seed(seed), then UNet(...), inside the loop)"),
        "seed once": ("only the first model starts from the seed's weights: call torch.manual_seed(seed) inside the "
                      "loop, right before building each model, so that every learning rate starts from the same "
                      "weights (otherwise you compare initialisations, not learning rates)"),
        "sgd": "use torch.optim.Adam(model.parameters(), lr=lr): the course trains with Adam",
        "unweighted": "use the weighted loss (train_step's default, or weighted_cross_entropy with batch['weight_map'])",
    }
    for mistake, hint in hints.items():
        if same(got, _lr_sweep_reference(lrs, batch, steps, seed, mistake)):
            _fail(problem, hint)
    if abs(got[0] - expected[0]) > 1e-3 * max(1.0, abs(expected[0])):
        hint = (f"the first run already differs: torch.manual_seed(seed) right before "
                f"UNet(depth=1, base_channels=4, batch_norm=True), Adam with lr, then {steps} train_step calls "
                f"on batch; return the last loss")
    else:
        hint = "a new model, after torch.manual_seed(seed), and a new Adam optimizer for every learning rate"
    _fail(problem, hint)


@_own_rng
def check_iou(iou_fn: Callable) -> CheckPassed:
    """``iou_fn(pred, mask)`` must give the foreground IoU of two 0/1 numpy arrays, 1.0 when both
    are empty; compared with ``unet_lib.metrics.iou``."""
    from .metrics import iou
    rng = np.random.default_rng(0)
    cases = [(rng.integers(0, 2, (6, 7)), rng.integers(0, 2, (6, 7))) for _ in range(3)]
    cases.append((np.eye(4, dtype=np.int64), np.ones((4, 4), np.int64)))
    cases.append((np.zeros((3, 3), np.int64), np.ones((3, 3), np.int64)))
    for pred, mask in cases:
        got, expected = _call(iou_fn, pred, mask), iou(pred, mask)
        if got is None or not np.isscalar(got) and not isinstance(got, (float, np.floating)):
            _fail(f"iou returned {got!r}; expected a number", "return |pred AND mask| / |pred OR mask|")
        if abs(float(got) - expected) > 1e-9:
            dice = 2 * (pred & mask).sum() / (pred.sum() + mask.sum())
            hint = ("that is the Dice score 2|A and B| / (|A| + |B|); IoU divides by the union |A or B|"
                    if abs(float(got) - dice) < 1e-9 else
                    "intersection: both 1; union: either 1 (np.logical_and / np.logical_or), then divide")
            _fail(f"iou(pred, mask) = {float(got):.4f} for pred={pred.tolist()}, mask={mask.tolist()}; "
                  f"expected {expected:.4f}", hint)
    empty = np.zeros((3, 3), np.int64)
    try:
        got = _call(iou_fn, empty, empty)
    except ZeroDivisionError:
        got = "ZeroDivisionError"
    if got == "ZeroDivisionError" or not np.isfinite(float(got)) or float(got) != 1.0:
        _fail(f"iou of two empty masks gave {got!r}; expected 1.0",
              "when the union is empty there was nothing to find and nothing was found: return 1.0")
    return CheckPassed("✓ iou matches unet_lib.metrics.iou, also for empty masks")


@_own_rng
def check_count_matches(count_matches: Callable) -> CheckPassed:
    """``count_matches(pred_instances, instances)`` must count the one-to-one matches at
    IoU >= 0.5 between predicted and true cells; compared with ``instance_scores(...).tp``."""
    from .metrics import instance_scores
    instances = np.zeros((8, 10), np.int64)
    instances[1:4, 1:4], instances[1:4, 4:7], instances[5:7, 1:3] = 1, 2, 3
    perfect = np.choose(instances, [0, 5, 9, 2])                    # same cells, other ids
    merged = np.zeros_like(instances)
    merged[1:4, 0:7], merged[5:7, 1:3] = 1, 2                      # the touching pair as one blob
    half = np.zeros_like(instances)
    half[1:4, 1:4], half[5:7, 1:2] = 1, 2                           # cell 3 half found: IoU 0.5
    shifted = np.zeros_like(instances)
    shifted[2:5, 2:5] = 1                                           # IoU 4/14 with cell 1
    cases = [("the same cells with other ids", perfect), ("the touching pair merged", merged),
             ("a cell found half (IoU exactly 0.5)", half), ("a shifted cell (IoU 0.29)", shifted),
             ("nothing", np.zeros_like(instances))]
    for what, pred in cases:
        got, expected = _call(count_matches, pred, instances), instance_scores(pred, instances).tp
        if not isinstance(got, (int, np.integer)):
            _fail(f"count_matches returned {got!r}; expected an int", "count the matched pairs")
        if got != expected:
            hints = {
                "the same cells with other ids": "match by overlap, not by equal ids: ids are arbitrary",
                "the touching pair merged": "a blob covering two cells has IoU < 0.5 with each: no match",
                "a cell found half (IoU exactly 0.5)": "the threshold is inclusive: IoU >= 0.5 matches",
                "a shifted cell (IoU 0.29)": "a little overlap is not a match: compute IoU = |p and g| / |p or g|",
                "nothing": "with no predicted cells there is nothing to match; skip label 0 (background)",
            }
            _fail(f"{what}: count_matches gave {got}; expected {expected}", hints[what])
    return CheckPassed("✓ count_matches agrees with unet_lib.metrics.instance_scores")


# -- notebooks 01 to 03: the fully convolutional idea, the contracting path, the expansive path --

@_own_rng
def check_convolutionalize(convolutionalize: Callable) -> CheckPassed:
    """``convolutionalize(linear, channels, size)`` must return the ``nn.Conv2d`` that computes
    what the fully connected ``linear`` computes on a flattened (channels, size, size) map, at
    every position of a larger map (Long et al. 2015). Compared with ``linear`` applied to every
    window of a random feature map."""
    torch.manual_seed(0)
    for channels, size, out_features in [(3, 4, 2), (2, 5, 3)]:
        linear = nn.Linear(channels * size * size, out_features)
        layer = _call(convolutionalize, linear, channels, size)
        what = f"convolutionalize(nn.Linear({channels * size * size}, {out_features}), {channels}, {size})"
        if not isinstance(layer, nn.Module):
            _fail(f"{what} returned a {type(layer).__name__}, not an nn.Module", "return an nn.Conv2d")
        _check_float32(layer, what)
        f = torch.randn(1, channels, size + 3, size + 2)                       # (1, C, H, W), not square
        windows = f.unfold(2, size, 1).unfold(3, size, 1)                      # (1, C, 4, 3, size, size)
        windows = windows.permute(0, 2, 3, 1, 4, 5).flatten(3)                 # (1, 4, 3, C * size * size)
        with torch.no_grad():
            expected = linear(windows).permute(0, 3, 1, 2)                    # (1, out, 4, 3)
            try:
                got = layer(f)
            except RuntimeError as e:
                _fail(f"{what} fails on a ({channels}, {size + 3}, {size + 2}) map: {str(e).splitlines()[0]}",
                      f"nn.Conv2d(in_channels={channels}, out_channels={out_features}, kernel_size={size})")
        if tuple(got.shape) != tuple(expected.shape):
            _fail(f"on a (1, {channels}, {size + 3}, {size + 2}) map {what} gives shape {tuple(got.shape)}; "
                  f"expected {tuple(expected.shape)}, one output per {size}x{size} window",
                  f"kernel_size={size} (the window that linear reads), stride 1 and no padding")
        if torch.allclose(got, expected, atol=1e-5):
            continue
        bias = linear.bias.view(1, -1, 1, 1)
        if torch.allclose(got, expected - bias, atol=1e-5):
            _fail(f"{what} computes linear's numbers without its bias", "copy linear.bias into the conv's bias")
        _fail(f"{what} computes different numbers than linear on the same window",
              "nn.Flatten flattens (channels, height, width) in that order: "
              "conv.weight = linear.weight.view(out_features, channels, size, size)")
    return CheckPassed("✓ convolutionalize: one convolution computes the fully connected layer at every position")


def _contracting_parameters(in_channels: int, base_channels: int, depth: int, bias: bool = True,
                            double: bool = True, levels: int | None = None, convs: int = 2) -> int:
    """The parameters of inc and the downs, by arithmetic, with the mistakes the check recognises."""
    def block(c_in: int, c_out: int) -> int:
        return 9 * c_in * c_out + 9 * c_out * c_out * (convs - 1) + bias * c_out * convs
    widths = [base_channels * (2**level if double else 1) for level in range(depth + 2)]
    n = block(in_channels, widths[0])
    return n + sum(block(widths[k], widths[k + 1]) for k in range(depth if levels is None else levels))


@_own_rng
def check_contracting_parameters(contracting_parameters: Callable[[int, int, int], int]) -> CheckPassed:
    """``contracting_parameters(in_channels, base_channels, depth)`` must count the parameters of
    a U-Net's contracting path, ``inc`` and every ``Down`` (the last is the bottleneck), as the
    model has them."""
    for in_channels, base_channels, depth in [(1, 64, 4), (3, 8, 2), (1, 4, 0), (2, 5, 3)]:
        with torch.device("meta"):   # shapes without memory: the paper's network in no time
            model = UNet(in_channels=in_channels, base_channels=base_channels, depth=depth)
        expected = sum(p.numel() for part in (model.inc, *model.downs) for p in part.parameters())
        got = _call(contracting_parameters, in_channels, base_channels, depth)
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
            _fail(f"contracting_parameters({in_channels}, {base_channels}, {depth}) = {got!r}; expected an int",
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
        _fail(f"contracting_parameters({in_channels}, {base_channels}, {depth}) = {got:,}; "
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


@_own_rng
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
        got = _call(measure_receptive_field, block, in_channels, size)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
            _fail(f"measure_receptive_field({name}) = {got!r}; expected an int (a width in pixels)",
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
        _fail(f"measure_receptive_field({name}, {in_channels}, {size}) = {got}; "
              f"the centre output pixel depends on {expected} input columns", hint)
    return CheckPassed("✓ measure_receptive_field agrees with the gradient on six blocks, padded, dilated and "
                       "pooled ones included")


@_own_rng
def check_up_forward(up_forward: Callable) -> CheckPassed:
    """``up_forward(up, x, skip)`` must compute one step of the expansive path with the layers of
    the ``Up`` block ``up`` (upsample, crop the skip, concatenate, DoubleConv), as ``Up.forward``
    does, without calling ``up(x, skip)``."""
    from .blocks import Up
    torch.manual_seed(0)
    cases = [("Up(8, 4), even crop", Up(8, 4), (2, 8, 5, 6), (2, 4, 18, 20)),
             ("Up(8, 4), odd crop", Up(8, 4), (1, 8, 4, 4), (1, 4, 13, 11)),
             ("Up(6, 3, padding='same', upsampling='bilinear')", Up(6, 3, padding="same", upsampling="bilinear"),
              (1, 6, 3, 5), (1, 3, 6, 10))]

    def blocked(*args, **kwargs):
        _fail("up_forward called up(x, skip), which runs the library's Up.forward",
              "write the steps yourself with up.up, center_crop, torch.cat and up.conv")

    for name, up, x_shape, skip_shape in cases:
        x, skip = torch.randn(x_shape), torch.randn(skip_shape)
        with torch.no_grad():
            expected = Up.forward(up, x, skip)
            up.forward = blocked                     # an instance attribute: up(x, skip) lands here
            try:
                got = _call(up_forward, up, x, skip)
            except NotImplementedError:              # the skeleton: _call's message, as it is
                raise
            except RuntimeError as e:
                _fail(f"{name}: up_forward raised {str(e).splitlines()[0]!r}",
                      "x = up.up(x) first; then crop the skip to x's size, center_crop(skip, x.shape[-2:]), "
                      "and concatenate along the channels (dim=1) before up.conv")
            finally:
                del up.forward
        if not isinstance(got, torch.Tensor):
            _fail(f"{name}: up_forward returned a {type(got).__name__}", "return the output of up.conv")
        if tuple(got.shape) != tuple(expected.shape):
            hint = ("that is the concatenation: finish with up.conv (the level's DoubleConv)"
                    if got.shape[1] == x_shape[1] else "x = up.up(x); skip = center_crop(skip, x.shape[-2:]); "
                    "x = torch.cat([skip, x], dim=1); return up.conv(x)")
            _fail(f"{name}: x {x_shape}, skip {skip_shape} gave shape {tuple(got.shape)}; "
                  f"expected {tuple(expected.shape)}", hint)
        if torch.allclose(got, expected, atol=1e-5):
            continue
        with torch.no_grad():
            y = up.up(x)
            swapped = up.conv(torch.cat([y, center_crop(skip, y.shape[-2:])], dim=1))
        if torch.allclose(got, swapped, atol=1e-5):
            _fail(f"{name}: the skip and the upsampled map are concatenated in the other order",
                  "unet_lib's Up puts the skip first, torch.cat([skip, x], dim=1): the order decides which "
                  "input channels of up.conv read which map")
        _fail(f"{name}: right shape, different values",
              "crop the centre of the skip (center_crop keeps the middle; with an odd difference the extra "
              "row goes at the bottom), not a corner")
    return CheckPassed("✓ up_forward: upsample, centre crop, skip first, DoubleConv; same output as Up")


@_own_rng
def check_overlap_counts(overlap_counts: Callable[[int, int, int], torch.Tensor]) -> CheckPassed:
    """``overlap_counts(kernel_size, stride, size)`` must return the (H_out, W_out) map of how many
    input pixels write into each output pixel of a transposed convolution with that kernel size and
    stride, on a size x size input (Odena et al. 2016). Compared with a transposed convolution of a
    kernel of ones over an input of ones."""
    import torch.nn.functional as F
    for kernel_size, stride, size in [(2, 2, 3), (3, 2, 3), (4, 2, 4), (3, 1, 3), (5, 3, 2)]:
        expected = F.conv_transpose2d(torch.ones(1, 1, size, size), torch.ones(1, 1, kernel_size, kernel_size),
                                      stride=stride)[0, 0].numpy()
        what = f"overlap_counts(kernel_size={kernel_size}, stride={stride}, size={size})"
        got = _call(overlap_counts, kernel_size, stride, size)
        if isinstance(got, torch.Tensor):
            got = got.detach().cpu().numpy()
        if not isinstance(got, np.ndarray):
            _fail(f"{what} returned a {type(got).__name__}; expected a tensor of shape {expected.shape}",
                  "return the (H_out, W_out) map itself")
        if got.shape != expected.shape:
            hint = ("drop the batch and channel dimensions: return y[0, 0]" if got.squeeze().shape == expected.shape
                    else "a transposed convolution makes (size - 1) * stride + kernel_size pixels per side")
            _fail(f"{what} has shape {got.shape}; expected {expected.shape}", hint)
        if np.allclose(got, expected):
            continue
        if np.ptp(got - expected) < 1e-6:
            hint = "no bias (bias=False): the bias adds the same number to every pixel"
        elif not np.allclose(got, np.round(got)):
            hint = "counts are whole numbers: a kernel of ones (weight.fill_(1)) on an input of ones"
        else:
            hint = (f"nn.ConvTranspose2d(1, 1, {kernel_size}, stride={stride}, bias=False) with weights of ones, "
                    f"applied to torch.ones(1, 1, {size}, {size})")
        _fail(f"{what} differs from the number of input pixels that reach each output pixel", hint)
    return CheckPassed("✓ overlap_counts: uneven where the stride does not divide the kernel size, even where it does")
# -- notebook 09: what each skip carries; notebook 10: a setting chosen on the left half ----------

@functools.lru_cache(maxsize=1)
def _skip_case() -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Two 96x96 toy-cell images (seed 4) and their instances: the data of ``check_merged_per_skip``."""
    from .data import ToyCells
    cells = ToyCells(2, size=96, seed=4)
    return tuple(cells[i]["image"] for i in range(2)), tuple(cells[i]["instances"] for i in range(2))


@functools.lru_cache(maxsize=8)
def _skip_experiment(experiment: str) -> dict[str, int]:
    """{Up block: merged cells over ``_skip_case``'s images} for the course model: ``"expected"``
    (one skip block-averaged at a time), or one of the mistakes that ``check_merged_per_skip``
    recognises. One batched forward pass per block; computed once per process."""
    from .metrics import instance_scores, label_instances
    from .tiling import padded_forward
    from .widgets import average_skips

    images, instances = _skip_case()
    model = _course_model()
    names = [f"ups[{j}]" for j in range(len(model.ups))]

    def zero_one(name: str):
        up = model.ups[names.index(name)]
        return [up.register_forward_pre_hook(lambda m, args: (args[0], torch.zeros_like(args[1])))]

    def merged(handles, which: tuple[int, ...] = (0, 1)) -> int:
        try:
            with torch.no_grad():
                preds = padded_forward(model, torch.stack(images)).argmax(1)   # (2, H, W)
        finally:
            for handle in handles:
                handle.remove()
        return sum(instance_scores(label_instances(preds[i]), instances[i]).merged for i in which)

    if experiment == "all at once":
        return dict.fromkeys(names, merged(average_skips(model)))
    if experiment == "no hooks":
        return dict.fromkeys(names, merged([]))
    hooks, which = {"expected": (lambda n: average_skips(model, [n]), (0, 1)),
                    "first image only": (lambda n: average_skips(model, [n]), (0,)),
                    "zeroed": (zero_one, (0, 1))}[experiment]
    return {n: merged(hooks(n), which) for n in names}


def _course_model() -> UNet:
    """A fresh copy of the course model (notebook 07's checkpoint), in eval mode, on the CPU."""
    from .train import COURSE_CHECKPOINT, load_checkpoint
    return load_checkpoint(COURSE_CHECKPOINT).model.eval()


@_own_rng
def check_merged_per_skip(merged_per_skip: Callable) -> CheckPassed:
    """``merged_per_skip(model, images, instances)`` must block-average one skip connection at a
    time (``unet_lib.widgets.average_skips(model, [name])``), predict every image, and return
    {Up block name: merged cells summed over the images}; the hooks removed afterwards. Run on
    the course model and two toy-cell images, against the same experiment done here."""
    images, instances = _skip_case()
    model = _course_model()
    got = _call(merged_per_skip, model, [image.clone() for image in images], [i.clone() for i in instances])
    expected = _skip_experiment("expected")   # after the learner's call: a skeleton fails fast
    left = {name: len(up._forward_pre_hooks) for name, up in zip(expected, model.ups) if up._forward_pre_hooks}
    if left:
        _fail(f"after merged_per_skip(model, ...) {', '.join(left)} still {'has' if len(left) == 1 else 'have'} "
              f"a forward pre-hook: the next experiment (and every later use of the model) runs with a skip "
              f"still averaged", "average_skips returns the hooks' handles: call handle.remove() on each "
              "after predicting, before the next block (in a `finally:`)")
    if not isinstance(got, dict):
        _fail(f"merged_per_skip returned a {type(got).__name__}; expected a dict",
              f"return {{block name: merged cells}}, one entry per Up block: {', '.join(expected)}")
    if sorted(map(str, got)) != sorted(expected):
        _fail(f"merged_per_skip returned the keys {sorted(map(str, got))}; expected {list(expected)}",
              "one entry per Up block, named as in named_blocks(model): 'ups[0]', 'ups[1]', ...")
    got = {str(k): v for k, v in got.items()}
    for name, value in got.items():
        if isinstance(value, (float, np.floating)) and not float(value).is_integer():
            _fail(f"merged_per_skip(...)['{name}'] = {value:.4g}; expected a count of merged cells",
                  "count cells: instance_scores(label_instances(pred), instances[i]).merged, summed over images")
        if not isinstance(value, (int, np.integer, float, np.floating)):
            _fail(f"merged_per_skip(...)['{name}'] is a {type(value).__name__}; expected an int",
                  "count cells: instance_scores(label_instances(pred), instances[i]).merged, summed over images")
    got = {k: int(v) for k, v in got.items()}
    if got == expected:
        return CheckPassed(f"✓ merged_per_skip: {', '.join(f'{k} {v}' for k, v in expected.items())} merged "
                           f"cells on the check's two images, as the same experiment here; hooks removed")
    hints = {
        "all at once": "you averaged every skip at once: average_skips(model) hooks all Up blocks; pass one "
                       "name, average_skips(model, [name]), to change one skip at a time",
        "no hooks": "every value is what the model merges with all skips intact: predict while the hooks are "
                    "in place (between average_skips(...) and handle.remove())",
        "zeroed": "those are the counts with one skip set to zero; the exercise block-averages it: "
                  "average_skips(model, [name])",
        "first image only": "those are the counts of the first image only: add up the merged cells over "
                            "all images",
    }
    for mistake, hint in hints.items():
        if got == _skip_experiment(mistake) != expected:
            _fail(f"merged_per_skip gave {got}; the experiment gives {expected}", hint)
    _fail(f"merged_per_skip gave {got}; the experiment gives {expected}",
          "for each Up block: handles = average_skips(model, [name]); for each image, "
          "pred = feature_maps(model, image).logits.argmax(0) and add "
          "instance_scores(label_instances(pred), instances[i]).merged; then remove the handles")


def _split_scores(labels: np.ndarray, instances: np.ndarray) -> dict[str, "object"]:
    """Instance scores of a label image on the left half, the right half and the whole image;
    the halves are cut at column W // 2 after labelling the whole image."""
    from .metrics import instance_scores
    half = instances.shape[1] // 2
    return {"left": instance_scores(labels[:, :half], instances[:, :half]),
            "right": instance_scores(labels[:, half:], instances[:, half:]),
            "whole": instance_scores(labels, instances)}


@functools.lru_cache(maxsize=1)
def _footprint_data() -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Notebook 10's real image transposed (its top half becomes the left half), its instances,
    and three footprints: the data of ``check_tune_peak_footprint``."""
    from .data import load_real_nuclei
    image, instances = load_real_nuclei()
    return np.ascontiguousarray(image.T), np.ascontiguousarray(instances.T), (3, 7, 15)


@functools.lru_cache(maxsize=1)
def _footprint_case() -> tuple[np.ndarray, np.ndarray, tuple[int, ...], dict[int, dict]]:
    """``_footprint_data`` and {footprint: _split_scores of classical_instances with it}; once per process."""
    from .baselines import classical_instances
    image, instances, footprints = _footprint_data()
    table = {f: _split_scores(classical_instances(image, peak_footprint=f), instances) for f in footprints}
    return image, instances, footprints, table


@_own_rng
def check_tune_peak_footprint(tune_peak_footprint: Callable) -> CheckPassed:
    """``tune_peak_footprint(image, instances, footprints)`` must choose the watershed's
    ``peak_footprint`` of ``classical_instances`` by instance F1 on the left half (columns <
    W // 2) and return ``(footprint, F1 on the right half)``. Run on notebook 10's image
    transposed, against the same experiment done here."""
    image, instances, footprints = _footprint_data()
    got = _call(tune_peak_footprint, image.copy(), instances.copy(), footprints)
    table = _footprint_case()[3]   # after the learner's call: a skeleton fails fast
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        _fail(f"tune_peak_footprint returned {got!r}; expected a pair (footprint, F1 on the right half)",
              "return chosen, f1_right: the footprint chosen on the left half and its instance F1 on the right")
    chosen, f1 = got
    if not isinstance(f1, (float, int, np.floating, np.integer)):
        _fail(f"tune_peak_footprint returned {f1!r} as its F1; expected a number", "InstanceScores.f1 is a float")
    f1 = float(f1)

    def best(part: str) -> int:
        return max(footprints, key=lambda f: table[f][part].f1)   # the first of equally good ones

    right, left = best("right"), best("left")
    what = (f"tune_peak_footprint(image, instances, {footprints}) = ({chosen!r}, {f1:.3f}); "
            f"the left half chooses {left}, whose F1 on the right half is {table[left]['right'].f1:.3f}")
    if chosen not in footprints:
        _fail(what, f"return the chosen footprint itself, one of {footprints}")
    if chosen != left:
        if chosen == right != left:
            _fail(what, "you chose on the right half, the evaluation half: a setting chosen on the pixels it is "
                        "scored on gives an optimistic score. Choose by the F1 on the left half (columns < W // 2)")
        _fail(what, "compute instance_scores(labels[:, :W // 2], instances[:, :W // 2]).f1 for every footprint "
                    "and keep the footprint with the largest (the first of equally good ones)")
    expected = table[left]["right"].f1
    if abs(f1 - expected) <= 1e-6:
        return CheckPassed(f"✓ tune_peak_footprint chooses {left} on the left half and reports its F1 on the "
                           f"right half, {expected:.3f}, as the same experiment here")
    if abs(f1 - table[left]["left"].f1) <= 1e-6:
        hint = ("that is its F1 on the left half, where it was chosen; report the F1 on the right half, "
                "which played no part in the choice")
    elif abs(f1 - table[left]["whole"].f1) <= 1e-6:
        hint = "that is its F1 on the whole image; score the right half only: columns W // 2 and beyond"
    else:
        hint = ("label the whole image with classical_instances(image, peak_footprint=f), then cut both label "
                "images at W // 2, as notebook 10's score() does: instance_scores(labels[:, W // 2:], "
                "instances[:, W // 2:]).f1")
    _fail(f"tune_peak_footprint reports F1 {f1:.3f} for footprint {left}; on the right half it is "
          f"{expected:.3f}", hint)
# (n_samples, world_size): divisible, padded (n not a multiple of world_size), more ranks than samples
_SHARD_CASES = [(12, 2), (10, 4), (7, 3), (3, 4), (9, 1)]


@_own_rng
def check_rank_shard(rank_shard: Callable) -> CheckPassed:
    """``rank_shard(n_samples, world_size, rank, epoch, seed)`` must list the sample indices that
    rank ``rank`` is given in epoch ``epoch``, in order; compared with torch's
    ``DistributedSampler(range(n_samples), world_size, rank, shuffle=True, seed=seed)`` after
    ``set_epoch(epoch)``, as ``fit`` uses it."""
    from torch.utils.data import DistributedSampler
    for n, world_size in _SHARD_CASES:
        for epoch, seed in ((0, 0), (1, 0), (3, 7)):
            for rank in range(world_size):
                sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
                sampler.set_epoch(epoch)
                expected = list(sampler)
                got = _call(rank_shard, n, world_size, rank, epoch, seed)
                try:
                    got = [int(i) for i in got]
                except (TypeError, ValueError):
                    _fail(f"rank_shard returned {got!r}; expected a list of sample indices",
                          "return a list of ints, e.g. permutation[...].tolist()")
                if got == expected:
                    continue
                where = f"rank {rank} of {world_size}, {n} samples, epoch {epoch}, seed {seed}"
                if len(got) != len(expected):
                    hint = (f"every rank gets the same number of samples, ceil({n} / {world_size}) = {len(expected)}: "
                            f"the permutation is padded at its end by repeating its first indices"
                            if len(got) < len(expected) else
                            f"each rank gets ceil(n_samples / world_size) = {len(expected)} samples, no more")
                elif sorted(got) == sorted(expected):
                    hint = ("the right samples in the wrong order: rank r takes every world_size-th index of the "
                            "padded permutation, starting at r, in the order of the permutation")
                elif epoch > 0 and got == _call(rank_shard, n, world_size, rank, 0, seed):
                    hint = "a new order every epoch: the permutation's generator is seeded with seed + epoch"
                else:
                    hint = ("the permutation is torch.randperm(n_samples, generator=g) with g = torch.Generator() "
                            "seeded (manual_seed) with seed + epoch; print list(sampler) of a real "
                            "DistributedSampler beside yours to see where they part")
                _fail(f"{where}: rank_shard gave {got}; DistributedSampler gives {expected}", hint)
    return CheckPassed("✓ rank_shard gives every rank the samples that DistributedSampler gives it, "
                       "padded, epoch after epoch")


def _fit_steps(n: int, batch_size: int, world_size: int) -> int:
    """The number of batches in one epoch of ``fit``'s loader on each of ``world_size`` ranks."""
    from torch.utils.data import DataLoader, DistributedSampler
    if world_size == 1:
        return len(DataLoader(range(n), batch_size=batch_size, shuffle=True, drop_last=n >= batch_size))
    sampler = DistributedSampler(range(n), num_replicas=world_size, rank=0, shuffle=True, seed=0)
    return len(DataLoader(range(n), batch_size=batch_size, sampler=sampler, drop_last=len(sampler) >= batch_size))


@_own_rng
def check_steps_per_epoch(steps_per_epoch: Callable) -> CheckPassed:
    """``steps_per_epoch(n_samples, batch_size, world_size)`` must give the optimizer steps in one
    epoch of ``fit`` with ``world_size`` processes and ``batch_size`` per process; compared with
    the length of a loader built as ``fit`` builds it."""
    cases = [(64, 4, 1), (64, 4, 2), (64, 4, 8), (100, 8, 4), (30, 4, 4), (10, 4, 4), (3, 4, 1), (5, 2, 3)]
    for n, batch_size, world_size in cases:
        got, expected = _call(steps_per_epoch, n, batch_size, world_size), _fit_steps(n, batch_size, world_size)
        if not isinstance(got, (int, np.integer)):
            _fail(f"steps_per_epoch returned {got!r}; expected an int", "count whole steps: use // or math.ceil")
        if got == expected:
            continue
        shard = -(-n // world_size)   # each rank's samples
        if got == 0 and shard < batch_size:
            hint = ("a rank with fewer samples than batch_size still takes one step: fit drops the incomplete "
                    "last batch only when there is a full one")
        elif got == n // (batch_size * world_size) or got == n // world_size // batch_size:
            hint = (f"each rank's part is ceil({n} / {world_size}) = {shard} samples (the sampler pads), "
                    f"not {n // world_size}")
        elif got == -(-shard // batch_size):
            hint = "fit's loader drops an incomplete last batch (drop_last) when a rank has at least one full batch"
        elif got == n // batch_size or got == shard * world_size // batch_size:
            hint = "batch_size is per process: in one step the ranks together take world_size x batch_size samples"
        else:
            hint = ("build the loader of the exercise text (a DistributedSampler and a DataLoader) for this case "
                    "and print len(loader) beside your number")
        _fail(f"{n} samples, batch_size {batch_size} per process, {world_size} processes: steps_per_epoch gave "
              f"{got}; fit takes {expected} steps per epoch", hint)
    return CheckPassed("✓ steps_per_epoch counts the steps of fit's epochs for any number of processes")
@_own_rng
def check_interior_border_classes(interior_border: Callable) -> CheckPassed:
    """``interior_border(instances, width)`` must turn (H, W) instances into three classes: 0 =
    background, 1 = interior, 2 = every cell pixel with a pixel of another label (background or
    another cell) within ``width`` pixels, a (2 width + 1) x (2 width + 1) square; the image's
    edge does not count as another label. Compared with ``unet_lib.data.interior_border_classes``."""
    from .data import interior_border_classes as reference
    big = np.zeros((14, 14), np.int64)
    big[2:12, 2:12] = 4                                                   # one 10x10 cell
    cases = [(name, instances, width) for name, instances in _ground_truth_cases() for width in (1, 2)]
    cases.insert(0, ("one 10x10 cell (id 4) in a 14x14 image", big, 2))
    for name, instances, width in cases:
        call = f"interior_border({name}, width={width})"
        got = _as_array(_call(interior_border, instances.copy(), width), call, instances.shape)
        expected = reference(instances, width)
        if np.array_equal(got, expected):
            continue
        if not np.isin(got, (0, 1, 2)).all():
            _fail(f"{call} contains values other than 0, 1 and 2: {', '.join(f'{v:g}' for v in np.unique(got)[:6])}",
                  "return the class of each pixel (0 background, 1 interior, 2 border), not instance ids")
        if ((got > 0) != (instances > 0)).any():
            _fail(f"{call} changes which pixels are cells: {int(((got > 0) != (instances > 0)).sum())} pixel(s) "
                  f"differ from instances > 0",
                  "the border ring lies inside each cell; background pixels stay 0, every cell pixel is 1 or 2")
        if np.array_equal(got, reference(instances, 1)) and width != 1 or \
                np.array_equal(got, reference(instances, width + 1)):
            _fail(f"{call} draws a ring of the wrong thickness",
                  "a pixel is border when another label lies within `width` pixels: a window of side 2 * width + 1")
        missing = (got == 1) & (expected == 2)
        if np.array_equal(got, _cross_window_classes(instances, width)):
            _fail(f"{call} misses {int(missing.sum())} border pixel(s), e.g. at diagonal contacts",
                  "use the whole square window (all 8 neighbours for width=1), not only the 4 straight ones")
        near_background = _near(instances == 0, width) & missing
        if near_background.any() and not ((got == 2) & (expected == 1)).any():
            _fail(f"{call} misses the border along the background ({int(near_background.sum())} pixel(s))",
                  "every cell gets a ring, not only where it touches another cell: background counts as "
                  "another label")
        _fail(f"{call} differs from the library in {int((got != expected).sum())} pixel(s)",
              "class 2 where scipy.ndimage.maximum_filter or minimum_filter of the labels over a (2 width + 1) "
              "square (mode='nearest') differs from the label; class 1 on the other cell pixels")
    return CheckPassed("✓ interior_border matches unet_lib.data.interior_border_classes for widths 1 and 2")


def _cross_window_classes(instances: np.ndarray, width: int) -> np.ndarray:
    """The three classes with a cross-shaped window (4 straight neighbours, repeated): a common slip."""
    from scipy import ndimage
    labels = np.asarray(instances, np.int64)
    footprint = ndimage.iterate_structure(ndimage.generate_binary_structure(2, 1), width)
    other = ((ndimage.maximum_filter(labels, footprint=footprint, mode="nearest") != labels)
             | (ndimage.minimum_filter(labels, footprint=footprint, mode="nearest") != labels))
    return np.where(labels == 0, 0, np.where(other, 2, 1))


def _near(background: np.ndarray, width: int) -> np.ndarray:
    """Pixels within ``width`` (square window) of a True pixel of ``background``."""
    from scipy import ndimage
    return ndimage.maximum_filter(background.astype(np.uint8), size=2 * width + 1, mode="nearest") > 0


@_own_rng
def check_postprocess(postprocess: Callable, min_f1: float = 0.70) -> CheckPassed:
    """``postprocess(labels)`` must turn the raw Otsu labels of the real nuclei image
    (``otsu_instances``: hundreds of specks, touching nuclei merged) into nuclei: an (H, W) label
    image scored on the held-out right half (columns 256-511) with an instance F1 of at least
    ``min_f1``. Raw, the labels score 0.11 there."""
    from .data import load_real_nuclei
    from .baselines import otsu_instances
    from .metrics import instance_scores
    image, instances = load_real_nuclei()
    raw = otsu_instances(image)                                            # (512, 512) int64
    got = _call(postprocess, raw.copy())
    if isinstance(got, torch.Tensor):
        got = got.detach().cpu().numpy()
    got = np.asarray(got)
    if got.shape != raw.shape:
        _fail(f"postprocess returned shape {got.shape}; expected {raw.shape}", "return one label per pixel, (H, W)")
    if got.dtype == bool or (got.size and got.max() <= 1):
        _fail("postprocess returned a foreground mask (only 0 and 1): every nucleus is the same object",
              "return labels: a distinct id per nucleus, 0 = background (e.g. scipy.ndimage.label of a mask)")
    if not np.issubdtype(got.dtype, np.integer):
        _fail(f"postprocess returned dtype {got.dtype}; expected integer labels", "return an integer label image")
    right = np.s_[:, 256:]
    s = instance_scores(got[right], instances[right])
    sizes = np.bincount(got[right].ravel())[1:]
    specks = int(((sizes > 0) & (sizes < 20)).sum())
    if s.f1 >= min_f1:
        return CheckPassed(f"✓ instance F1 on the held-out right half: {s.f1:.2f} (raw Otsu: 0.11; merged "
                           f"{s.merged}, split {s.split}, objects under 20 px: {specks})")
    if specks > 10:
        hint = (f"{specks} objects under 20 pixels remain: remove them (unet_lib.baselines.remove_small_objects); "
                f"choose the size on the left half, where the median nucleus has ~440 px")
    elif s.merged > 5:
        hint = (f"{s.merged} nuclei are merged with a neighbour: split the foreground at the waists with "
                f"unet_lib.baselines.watershed_split (and fill holes first, scipy.ndimage.binary_fill_holes)")
    else:
        hint = ("score your steps on the left half (columns 0-255) one at a time with "
                "unet_lib.metrics.instance_scores, as in section 6")
    _fail(f"instance F1 on the held-out right half is {s.f1:.2f} (merged {s.merged}, split {s.split}, "
          f"objects under 20 px: {specks}); the check asks for at least {min_f1:.2f}", hint)
def _shift_change_reference(model: UNet, image: torch.Tensor, size: int, shift: int,
                            mistake: str | None = None) -> float:
    """What ``shift_change`` must return (``mistake=None``), or what a known mistake returns."""
    from .tiling import padded_forward
    import copy
    model = copy.deepcopy(model).train(mistake == "train mode")   # a copy: training mode updates BatchNorm's statistics
    forward = (lambda x: padded_forward(model, x)) if mistake == "padded" else model
    with torch.no_grad():
        first = forward(image[None, :, :size, :size])                                   # (1, K, n, n)
        second = forward(image[None, :, shift : shift + size, shift : shift + size])
    if mistake != "logits":
        first, second = first.softmax(1), second.softmax(1)
    first, second = first[0, 1], second[0, 1]                                           # (n, n) P(cell)
    n = first.shape[-1]
    if mistake == "unaligned":
        return (first - second).abs().max().item()
    return (first[shift:, shift:] - second[: n - shift, : n - shift]).abs().max().item()


@_own_rng
def check_shift_change(shift_change: Callable) -> CheckPassed:
    """``shift_change(model, image, size, shift)`` must return the largest change of a
    valid-padding model's P(cell) between two ``size`` x ``size`` input windows of ``image`` that
    are ``shift`` px apart (down and right), compared pixel by pixel where they predict the same
    place. Compared with the check's own computation on the course checkpoint, for shifts that are
    and are not multiples of 2**depth."""
    import copy

    from .checkpoint import load_checkpoint
    from .data import ToyCells
    from .train import COURSE_CHECKPOINT
    model = load_checkpoint(COURSE_CHECKPOINT).model.cpu()
    image = ToyCells(1, size=164, seed=5)[0]["image"]                  # (1, 164, 164)
    size, step = model.min_input_size() + 6 * 2**model.depth, 2**model.depth   # 140 -> a 52x52 output
    shifts = (step, 1, step // 2, 2 * step)                            # 8, 1, 4, 16 for depth 3
    results = {}
    for shift in shifts:
        # a copy in training mode, as a model arrives from training: the learner's code must switch to
        # eval mode, and a forward pass in training mode must not change the check's model
        got = _call(shift_change, copy.deepcopy(model).train(), image.clone(), size, shift)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if not isinstance(got, (int, float, np.floating)):
            _fail(f"shift_change(model, image, {size}, {shift}) returned {got!r}; expected one float",
                  "return the largest absolute difference as a float: diff.abs().max().item()")
        expected = _shift_change_reference(model, image, size, shift)
        if abs(got - expected) <= 1e-5:
            results[shift] = expected
            continue
        problem = f"shift_change(model, image, {size}, {shift}) = {got:.6f}; expected {expected:.6f}"
        hints = {
            "train mode": ("call model.eval() first: in training mode BatchNorm normalises each window with its own "
                           "statistics, so even a perfect shift changes the output"),
            "unaligned": (f"compare the pixels that see the same input: pixel (i, j) of the second window's output is "
                          f"pixel (i + {shift}, j + {shift}) of the first's, e.g. first[{shift}:, {shift}:] against "
                          f"second[:n - {shift}, :n - {shift}]"),
            "logits": "compare probabilities: softmax over the classes (dim 1), then channel 1 is P(cell)",
            "padded": ("run model(window) directly: padded_forward mirrors each window at its own border, so the "
                       "pixels near it change whatever the shift"),
        }
        for mistake, hint in hints.items():
            if abs(got - _shift_change_reference(model, image, size, shift, mistake)) <= 1e-5:
                _fail(problem, hint)
        _fail(problem, f"windows image[:, :{size}, :{size}] and image[:, {shift}:{shift + size}, {shift}:{shift + size}], "
                       "each with a batch dimension; P(cell) = model(window).softmax(1)[0, 1]; then the largest "
                       "absolute difference over the aligned pixels")
    aligned = [s for s in shifts if s % step == 0]
    others = [s for s in shifts if s % step]
    facts = ""
    if max(results[s] for s in aligned) < 1e-4 and min(results[s] for s in others) > 1e-2:
        facts = (f": shifts of {' and '.join(map(str, aligned))} px (multiples of 2**depth = {step}) change P(cell) "
                 f"by less than 1e-4, shifts of {' and '.join(map(str, others))} px by more than 0.01")
    return CheckPassed(f"✓ shift_change matches the check's own computation on the course model{facts}")



def _first_runs(model: UNet, n: int) -> bool:
    try:
        model.output_size(n)
    except ValueError:
        return False
    return True


@_own_rng
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
            got = _call(smallest_valid_input, model)
        except NotImplementedError:
            raise
        except (ValueError, RuntimeError) as error:
            _fail(f"{what} raised {type(error).__name__}: {str(error).splitlines()[0]}",
                  "UNet refuses a size it cannot pool evenly with a ValueError: catch it "
                  "(try: model(x) except ValueError: continue) and try the next n")
        if got is None and model.in_channels != 1:
            _fail(f"{what} returned None: no size worked", "the model takes model.in_channels channels: "
                  "try torch.zeros(1, model.in_channels, n, n), not 1 channel")
        if isinstance(got, (torch.Tensor, np.integer)) and np.ndim(got) == 0:
            got = int(got)
        if not isinstance(got, int) or isinstance(got, bool):
            _fail(f"{what} returned {got!r}; expected an int, the side length n",
                  "return the first n for which model(torch.zeros(1, model.in_channels, n, n)) runs")
        if got == expected:
            found.append(got)
            continue
        problem = f"{what} = {got}; the smallest size that runs is {expected}"
        if got == 572:
            _fail(problem, "572 is the paper's tile for depth 4, not the smallest valid size, and not the "
                           "answer for other depths: try n = 1, 2, 3, ... on the model itself")
        if got == model.output_size(expected):
            _fail(problem, f"{got} is the *output* size of the smallest input: return n, the input's side")
        if got == expected + step:
            _fail(problem, f"off by one step of 2**depth = {step}: you skipped the first size that works; "
                           "start at n = 1 and return the first n whose forward pass runs")
        if model.padding == "same" and got == UNet(depth=model.depth, base_channels=1).min_input_size():
            _fail(problem, "that is the answer for valid padding; this model pads its convolutions "
                           "(padding='same') and has other sizes: measure on the model you are given, "
                           "do not compute a formula")
        first_pool = (4 if model.padding == "valid" else 0) + 2
        if model.depth > 1 and got == first_pool:
            _fail(problem, "the first max-pool accepts it, but every one of the depth max-pools needs an "
                           "even size: run the whole model, not only its first level")
        if not _first_runs(model, got):
            _fail(problem + f", and model(x) raises ValueError for n = {got}",
                  "return only a size for which the forward pass runs (the first n where model(x) raises "
                  "no error)")
        _fail(problem, f"a smaller size, {expected}, also runs: start at n = 1 and try every n in turn")
    return CheckPassed(f"✓ smallest_valid_input finds {', '.join(map(str, found))} for the five models, as "
                       f"UNet.valid_input_sizes does")


@functools.lru_cache(maxsize=32)
def _touching_cells(touching: float, n_samples: int, seed: int) -> tuple[tuple[int, float], ...]:
    """(cells, touching_fraction) of each image of ``ToyCells(n_samples, seed=seed, touching=touching)``."""
    from .data import ToyCells, touching_fraction
    cells = ToyCells(n_samples, seed=seed, touching=touching)
    out = []
    for i in range(n_samples):
        instances = cells[i]["instances"]
        out.append((len(np.unique(instances.numpy())) - 1, touching_fraction(instances)))
    return tuple(out)


def _touching_share(touching: float, n_samples: int, seed: int) -> float:
    per_image = _touching_cells(touching, n_samples, seed)
    return sum(n * f for n, f in per_image) / sum(n for n, _ in per_image)


@_own_rng
def check_touching_share(touching_share: Callable) -> CheckPassed:
    """``touching_share(touching, n_samples, seed)`` must return the fraction of all the cells of
    ``ToyCells(n_samples, seed=seed, touching=touching)`` that touch another cell (touching cells
    over all images / cells over all images), measured with ``touching_fraction``. Run for
    settings and seeds the notebook does not use, against the same experiment here, within 0.001."""
    tolerance = 1e-3
    cases = [(0.0, 6, 11), (0.4, 6, 11), (1.0, 6, 11), (0.4, 3, 5)]
    measured = []
    for touching, n_samples, seed in cases:
        what = f"touching_share({touching}, n_samples={n_samples}, seed={seed})"
        got = _call(touching_share, touching, n_samples, seed)
        try:
            value = float(got)
        except (TypeError, ValueError):
            _fail(f"{what} returned {type(got).__name__}; expected one float, a fraction of cells",
                  "pool all images: return touching cells / all cells as a float")
        expected = _touching_share(touching, n_samples, seed)
        if abs(value - expected) <= tolerance:
            measured.append(value)
            continue
        problem = f"{what} = {value:.4g}; the experiment gives {expected:.4f}"
        per_image = _touching_cells(touching, n_samples, seed)
        cells = sum(n for n, _ in per_image)
        mistakes = [
            (100 * expected, "return a fraction in [0, 1], not a percentage"),
            (round(expected * cells), f"that is the number of touching cells; divide by all cells ({cells})"),
            (float(np.mean([f for _, f in per_image])), "that is the mean of the per-image fractions, which "
             "gives an image with 3 cells the weight of one with 12: add up touching cells and all cells over "
             "the images first, then divide"),
            (_touching_share(touching, 1, seed), "that is the first image only: measure all n_samples images"),
            (_touching_share(0.7, n_samples, seed), "that is ToyCells' default touching=0.7: pass "
             "touching=touching to ToyCells"),
            (_touching_share(touching, n_samples, 0), "that is seed 0: pass seed=seed to ToyCells"),
        ]
        if n_samples != 16:
            mistakes.append((_touching_share(touching, 16, seed), "that is 16 images: use n_samples"))
        for wrong, hint in mistakes:
            if abs(value - wrong) <= tolerance and abs(wrong - expected) > tolerance:
                _fail(problem, hint)
        _fail(problem, "cells = ToyCells(n_samples, seed=seed, touching=touching); for each image, "
                       "n = number of cell ids (np.unique without 0) and f = touching_fraction(instances); "
                       "return sum(n * f) / sum(n)")
    return CheckPassed(f"✓ touching_share: {measured[0]:.2f}, {measured[1]:.2f} and {measured[2]:.2f} of the "
                       f"cells touch at touching = 0, 0.4 and 1 (6 images, seed 11), as the same experiment here")
