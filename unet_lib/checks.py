"""Learner checks for the notebooks' exercises.

Each ``check_*`` takes the learner's function or class, compares it with ``unet_lib`` on a few
small cases, and either returns a short ``CheckPassed`` message or raises ``CheckError`` whose
message names what is wrong and gives a hint where to look. An exercise that is still a
skeleton raises ``NotImplementedError`` with a message that says which function to fill in.
"""

import functools
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
    "check_otsu_threshold",
    "check_record_output",
    "check_instances_to_mask", "check_border_term",
    "check_train_step", "check_lr_sweep", "check_iou", "check_count_matches", "check_shift_change",
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
        finally:
            np.random.set_state(numpy_state)
    return run


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
    """``cls(in_channels, out_channels)`` must build the paper's double convolution."""
    torch.manual_seed(0)
    block = _call(cls, 3, 8)
    if not isinstance(block, nn.Module):
        _fail(f"{cls.__name__}(3, 8) is a {type(block).__name__}, not an nn.Module",
              "subclass nn.Module (or nn.Sequential)")
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
    # same weights in the same order -> the same output, unless a ReLU is missing or misplaced
    for (name, p), q in zip(block.named_parameters(), reference.parameters()):
        if p.shape != q.shape:   # copy_ below would fail deep inside torch
            _fail(f"parameter `{name}` has shape {tuple(p.shape)}; the paper's block has {tuple(q.shape)} there",
                  "create the layers in the order they are applied: conv, ReLU, conv, ReLU")
    with torch.no_grad():
        for p, q in zip(block.parameters(), reference.parameters()):
            p.copy_(q)
        y, expected = block(x), reference(x)
    if (y < 0).any():
        _fail("the output has negative values", "each convolution is followed by a ReLU, the last one too")
    if not torch.allclose(y, expected, atol=1e-5):
        _fail("with the library's weights your block computes different values",
              "order: conv, ReLU, conv, ReLU; parameters in that order (weight then bias)")
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
