"""The checks of notebook 04, skip connections and full unet: ``check_output_size``,
``check_unet_forward``, ``check_valid_sizes``.

Each refuses the library's twin of what it asks (by what runs during the learner's call, see
``_core.call``): ``UNet``'s own size arithmetic in the size exercises (its size methods, the context
margin, and the private helpers behind them), ``UNet.forward`` (``model(x)``, ``model.forward(x)``,
``UNet.forward(model, x)``) in all three, and ``inspect.getsource`` (the library's code read into
the learner's function and run from there is still the library's).
"""

import inspect
from collections.abc import Callable

import numpy as np
import torch

from .. import model as model_module
from .. import tiling
from ..model import UNet
from ._core import CheckError, CheckPassed, T, call, fail, learner_check, passed

__all__ = ['check_output_size', 'check_unet_forward', 'check_valid_sizes']

# the library's source, read and run from the learner's function (exec of inspect.getsource(UNet.forward))
_SOURCE_SHORTCUTS = {"inspect.getsource": inspect.getsource}


def _size_shortcuts(forward: bool = True) -> dict[str, object]:
    """What already knows a U-Net's valid sizes: every size method UNet inherits (``output_size``,
    ``valid_input_sizes``, ``min_input_size`` and the private ones behind them), the module-level
    arithmetic behind those (``_output_side``, ``_valid_sizes_rule``), the context margin and its
    helpers in ``unet_lib.tiling``; with ``forward``, ``model(x)`` too, which checks the size with
    that arithmetic before it runs."""
    size_methods = next(c for c in UNet.__mro__ if "output_size" in vars(c) and c is not UNet)
    shortcuts = {f"UNet.{name}": member for name, member in vars(size_methods).items()
                 if callable(member) and not name.startswith("__")}
    shortcuts.update({"unet_lib.model._output_side": model_module._output_side,
                      "unet_lib.model._valid_sizes_rule": model_module._valid_sizes_rule,
                      "context_margin": tiling.context_margin, "unet_lib.tiling._valid_margin": tiling._valid_margin,
                      "unet_lib.tiling._input_for": tiling._input_for, **_SOURCE_SHORTCUTS})
    if forward:
        shortcuts["UNet.forward"] = UNet.forward
    return shortcuts


def _call_uncached(fn: Callable, *args, refuse: dict[str, object]):
    """``call``, with the library's cached size helper emptied first: a cached answer runs no code
    the watch could see, so a learner's call of ``_valid_margin`` would pass unseen after the
    library had computed the same margin."""
    tiling._valid_margin.cache_clear()
    return call(fn, *args, refuse=refuse)


def _library_output_size(model: UNet, n: int) -> int | None:
    try:
        return model.output_size(n)
    except ValueError:
        return None


@learner_check
def check_output_size(output_size: Callable[[int, int], int | None]) -> CheckPassed:
    """``output_size(input_size, depth)`` must give a valid-padding U-Net's output size, or
    None where ``input_size`` is not a valid input size; every size from 1 to 259 at depths 1, 2
    and 4, against ``UNet.output_size``, which (with ``model(x)`` and the other size methods) the
    learner's function may not call."""
    refuse = _size_shortcuts()
    for depth in (1, 2, 4):
        model = UNet(depth=depth, base_channels=1)
        cases = [(n, _library_output_size(model, n)) for n in range(1, 260)]
        # valid sizes first, so that wrong arithmetic is reported as such, not as a wrong validity
        for n, expected in sorted(cases, key=lambda case: case[1] is None):
            try:
                got, raised = _call_uncached(output_size, n, depth, refuse=refuse), None
            except (CheckError, NotImplementedError):   # a refused shortcut or a skeleton: their message stands
                raise
            except Exception as error:                  # a ValueError like UNet.output_size's, or a bug
                got, raised = None, error
            if isinstance(raised, ValueError):
                fail("output_size({n}, depth={depth}) raised ValueError: {error}",
                     "return None where the input size is not valid, rather than raising",
                     n=n, depth=depth, error=str(raised).splitlines()[0])
            if raised is not None:
                fail("output_size({n}, depth={depth}) raised {kind}: {error}",
                     "run your function on this size and depth yourself: the error names the line that fails",
                     n=n, depth=depth, kind=type(raised).__name__, error=str(raised).splitlines()[0])
            if got == expected and (got is None or isinstance(got, (int, np.integer))):
                continue
            if expected is None:
                fail("output_size({n}, depth={depth}) = {got!r}, but {n} is not a valid input size",
                     "a 2x2 max-pool halves a size only when it is even, and every map must keep at least "
                     "one pixel: which of these fails for {n}?",
                     "follow {n} down the U level by level and write down the size that each max-pool receives",
                     n=n, depth=depth, got=got)
            if got is None:
                fail("output_size({n}, depth={depth}) = None, but {n} is a valid input size (its output has "
                     "{expected} pixels)",
                     "only two things make a size invalid: an odd size entering a max-pool, and a map with no "
                     "pixels left; which other condition does your function test?",
                     n=n, depth=depth, expected=expected)
            if not isinstance(got, (int, np.integer)) or isinstance(got, bool):
                fail("output_size({n}, depth={depth}) returned {got!r} ({kind}); expected the int {expected}",
                     "return the number of pixels as an int, or None",
                     n=n, depth=depth, got=got, kind=type(got).__name__, expected=expected)
            fail("output_size({n}, depth={depth}) = {got}; expected {expected}",
                 "each DoubleConv removes 4 pixels (2 per side): count the DoubleConvs, one at the top, one per "
                 "level down and one per level up",
                 "the up-convolution doubles the size; walk {n} through depth={depth} by hand, block by block",
                 n=n, depth=depth, got=got, expected=expected)
    return passed("✓ output_size agrees with UNet.output_size for every size from 1 to 259 at depths 1, 2 and 4")


@learner_check
def check_unet_forward(unet_forward: Callable) -> CheckPassed:
    """``unet_forward(model, x)`` must compute ``model(x)`` from the model's blocks
    (``model.inc``, ``model.downs``, ``model.ups``, ``model.outc``) without running
    ``UNet.forward`` (``model(x)``, ``model.forward(x)``, ``UNet.forward(model, x)`` are refused;
    ``up(x, skip)`` is allowed). Compared with ``model(x)`` for U-Nets of depth 0 to 3, with odd
    widths, non-square inputs and both paddings."""
    refuse = {"UNet.forward": UNet.forward, **_SOURCE_SHORTCUTS}
    configs = [dict(depth=2, base_channels=4), dict(depth=0, base_channels=3), dict(depth=1, base_channels=5),
               dict(depth=3, base_channels=2), dict(depth=2, base_channels=3, padding="same")]
    for config in configs:
        torch.manual_seed(config["depth"])
        model = UNet(**config).eval()
        sizes = model.valid_input_sizes(1, 200)
        x = torch.randn(2, 1, sizes[1], sizes[2])                # (B, 1, H, W), H != W
        with torch.no_grad():
            expected = model(x)
        values = dict(config=", ".join(f"{k}={v!r}" for k, v in config.items()), shape=tuple(x.shape))
        try:
            with torch.no_grad():
                got = call(unet_forward, model, x, refuse=refuse)
        except (CheckError, NotImplementedError):   # a refused shortcut or a skeleton: call's message stands
            raise
        except (RuntimeError, ValueError) as error:
            fail("unet_forward(UNet({config}), x of shape {shape}) raised {kind}: {error}",
                 "a skip and the map coming up meet in the wrong level: the first up block works at the deepest "
                 "level, so it needs the skip of the deepest level",
                 "in Fig. 1 (the figure at the top), follow each grey arrow: which map does it start from, before or "
                 "after that level's max-pool, and which up block does it end in? model.ups holds the up blocks "
                 "deepest first",
                 kind=type(error).__name__, error=str(error).splitlines()[0], **values)
        except (IndexError, KeyError) as error:
            fail("unet_forward(UNet({config}), x of shape {shape}) raised {kind}: {error}",
                 "a U-Net of depth d has d down blocks, d up blocks and so d skips (none at depth 0): count how "
                 "many maps your loop keeps and how many it takes",
                 kind=type(error).__name__, error=str(error).splitlines()[0], **values)
        except Exception as error:
            fail("unet_forward(UNet({config}), x of shape {shape}) raised {kind}: {error}",
                 "run your function yourself on a model of this configuration and an input of this shape: the "
                 "error names the line that fails",
                 kind=type(error).__name__, error=str(error).splitlines()[0], **values)
        if not isinstance(got, torch.Tensor):
            fail("unet_forward(UNet({config}), x of shape {shape}) returned a {kind}",
                 "return the class scores, a tensor (B, num_classes, H_out, W_out)",
                 kind=type(got).__name__, **values)
        if tuple(got.shape) != tuple(expected.shape):
            fail("unet_forward(UNet({config}), x of shape {shape}) has shape {got}; model(x) has {expected}",
                 T("finish with model.outc, the 1x1 convolution from base_channels to the class scores")
                 if tuple(got.shape[1:]) == (config["base_channels"], *expected.shape[2:]) else
                 T("every block runs exactly once: inc, each down block, each up block with its skip, outc"),
                 got=tuple(got.shape), expected=tuple(expected.shape), **values)
        if not torch.allclose(got, expected, atol=1e-5):
            _fail_other_values(unet_forward, model, x, got, expected, values)
    return passed("✓ unet_forward equals model(x) for depths 0 to 3 and both paddings: the U is in your loop")


def _fail_other_values(unet_forward: Callable, model: UNet, x: torch.Tensor, got: torch.Tensor,
                       expected: torch.Tensor, values: dict) -> None:
    """The right shape, other values: name what was done to the logits (section 5.2's activations),
    randomness (drop-out in training mode), or else a map that met the wrong partner."""
    got = got.detach().float()
    transformed = [("softmax", expected.softmax(1)), ("log_softmax", expected.log_softmax(1)),
                   ("sigmoid", expected.sigmoid()), ("ReLU", expected.relu())]
    what = next((name for name, value in transformed if torch.allclose(got, value, atol=1e-5)), None)
    if what is None and got.min() >= 0 and got.max() <= 1 and torch.allclose(got.sum(1), torch.ones(()), atol=1e-4):
        what = "softmax"
    if what is not None:
        fail("unet_forward(UNet({config}), x of shape {shape}) returns model(x) passed through a {what}",
             "model(x) returns the raw class scores (logits): the softmax belongs to the loss, and an activation "
             "after the last convolution changes the scores (section 5.2)",
             what=what, **values)
    with torch.no_grad():
        again = call(unet_forward, model, x, refuse={"UNet.forward": UNet.forward, **_SOURCE_SHORTCUTS})
    if isinstance(again, torch.Tensor) and again.shape == got.shape and not torch.allclose(again.float(), got):
        fail("unet_forward(UNet({config}), x of shape {shape}) gives other values at every call with the same "
             "input",
             "something random runs in your function: the model is in eval mode, where model(x) has no "
             "randomness (no drop-out at work)",
             **values)
    fail("unet_forward(UNet({config}), x of shape {shape}) has the right shape but different values from "
         "model(x)",
         "the sizes fit, so every block ran, but some map met the wrong partner, or an operation that "
         "UNet.forward does not have changed the values: a skip is the map of its level before that level's "
         "max-pool, and each up block takes the skip of its own level",
         "compare with Fig. 1 (the figure at the top): which map does each grey copy arrow carry, and to "
         "which up block?",
         **values)


def _blocks_accept(model: UNet, n: int) -> bool:
    """Whether ``model``'s blocks take an n x n input with every max-pool on an even size (the
    reference of ``check_valid_sizes``' tests; the check itself uses the closed form)."""
    x = torch.zeros(1, model.in_channels, n, n)
    try:
        with torch.no_grad():
            x, skips = model.inc(x), []
            for down in model.downs:
                if x.shape[-2] % 2 or x.shape[-1] % 2:
                    return False
                skips.append(x)
                x = down(x)
            for up, skip in zip(model.ups, reversed(skips)):
                x = up(x, skip)
    except (RuntimeError, ValueError):
        return False
    return True


def _pool_sizes(model: UNet, n: int) -> list[int] | None:
    """The sizes each max-pool of ``model`` receives for an n x n input (flooring odd ones, as
    MaxPool2d does), or None where a map vanishes on the way down."""
    shrink = 4 if model.padding == "valid" else 0
    n -= shrink
    sizes = []
    for _ in range(model.depth):
        if n < 1:
            return None
        sizes.append(n)
        n = n // 2 - shrink
    return sizes if n >= 1 else None


@learner_check
def check_valid_sizes(valid_sizes: Callable) -> CheckPassed:
    """``valid_sizes(model, lo, hi)`` must list the sizes n, lo <= n <= hi, of the n x n inputs
    that ``model`` accepts: every 2x2 max-pool on an even size, every block left with pixels to
    work on. Found from the model's blocks (or from arithmetic the learner derives), without
    ``model(x)`` or ``UNet``'s size methods. Run on U-Nets the notebook does not compute this for
    (three input channels, same padding, bilinear upsampling), on ranges whose ends are valid."""
    refuse = _size_shortcuts()
    same_padding = T("this model pads its convolutions (padding='same'): they keep the size, so only the max-pools "
                     "restrict it. Measure on the model you are given rather than reuse the valid-padding arithmetic")
    # small ranges (each size is a forward pass of the learner's), each with a size that a wrong rule
    # gets wrong: 19 (an odd first pool), 14 (the way up fails), 94 (an odd second pool), hi itself
    cases = [(dict(depth=1, base_channels=1), 10, 30), (dict(depth=3, base_channels=1), 85, 100),
             (dict(in_channels=3, depth=2, base_channels=1), 36, 52),
             (dict(depth=3, base_channels=1, padding="same"), 1, 24),
             (dict(depth=2, base_channels=1, upsampling="bilinear"), 45, 48),     # only hi = 48 is valid
             (dict(depth=2, base_channels=1), 49, 51)]                            # none
    for config, lo, hi in cases:
        model = UNet(**config).eval()
        expected = model.valid_input_sizes(lo, hi)
        values = dict(name=", ".join(f"{k}={v!r}" for k, v in config.items()), lo=lo, hi=hi)
        try:
            got = _call_uncached(valid_sizes, model, lo, hi, refuse=refuse)
        except (CheckError, NotImplementedError):   # a refused shortcut or a skeleton: call's message stands
            raise
        except Exception as error:
            fail("valid_sizes(UNet({name}), lo={lo}, hi={hi}) raised {kind}: {error}",
                 T("the model takes model.in_channels = 3 channels: give it inputs of shape (1, 3, n, n)")
                 if model.in_channels != 1 and "channels" in str(error) else
                 T("on a size that is far too small a block fails: a convolution larger than its map raises "
                   "RuntimeError, a crop larger than its map ValueError. Such a size is simply not valid: catch the "
                   "error and go on with the next n")
                 if isinstance(error, (RuntimeError, ValueError)) else
                 T("run your function yourself on this model and range: the error names the line that fails"),
                 kind=type(error).__name__, error=str(error).splitlines()[0], **values)
        try:
            sizes = [int(n) for n in got]
        except (TypeError, ValueError):
            fail("valid_sizes(UNet({name}), lo={lo}, hi={hi}) returned {got!r}; expected a list of ints, the valid "
                 "sizes in increasing order",
                 "collect every valid n of the range in a list and return it", got=got, **values)
        if sizes and all(isinstance(n, (bool, np.bool_)) for n in got):
            fail("valid_sizes(UNet({name}), lo={lo}, hi={hi}) returned booleans; expected the sizes n themselves",
                 "append n itself, not whether it is valid", **values)
        if sizes == expected:
            continue
        extra = sorted(set(sizes) - set(expected))
        missing = sorted(set(expected) - set(sizes))
        if not sizes:
            fail("valid_sizes(UNet({name}), lo={lo}, hi={hi}) found no valid size, but the model accepts {count} "
                 "sizes in this range",
                 T("the model takes model.in_channels = 3 channels: with inputs of another shape every size fails")
                 if model.in_channels != 1 else same_padding if model.padding == "same" else
                 T("if your function runs the blocks, every size failing may be your own error: run one size "
                   "without catching errors and read the message. If it computes a rule, walk one size through "
                   "this model by hand, block by block, and compare with what your rule says"),
                 count=len(expected), **values)
        if not extra and not missing:
            fail("valid_sizes(UNet({name}), lo={lo}, hi={hi}) has the right sizes but not once each in increasing "
                 "order", "try n = lo, lo + 1, ..., hi in turn and append each valid one once", **values)
        if extra:
            n = extra[0]
            pools = _pool_sizes(model, n)
            if not lo <= n <= hi:
                fail("valid_sizes(UNet({name}), lo={lo}, hi={hi}) lists {n}, outside the range {lo}..{hi}",
                     "return only sizes n with lo <= n <= hi (both ends included)", n=n, **values)
            if pools is None:
                fail("valid_sizes(UNet({name}), lo={lo}, hi={hi}) lists {n}, but an input of {n} x {n} pixels "
                     "shrinks to nothing on the way down", "a size is valid only when every block has pixels to work on",
                     n=n, **values)
            if any(p % 2 for p in pools):
                fail("valid_sizes(UNet({name}), lo={lo}, hi={hi}) lists {n}, but an input of {n} x {n} pixels "
                     "sends a map of odd size {odd} into a max-pool",
                     "the paper, Sec. 2: 'all 2x2 max-pooling operations are applied to a layer with an even x- and "
                     "y-size'. The blocks run on an odd size too: the max-pool drops the last row without an error "
                     "(section 5.3)",
                     "look at the size of x before every block of model.downs, not only at the input",
                     n=n, odd=next(p for p in pools if p % 2), **values)
            fail("valid_sizes(UNet({name}), lo={lo}, hi={hi}) lists {n}, but for an input of {n} x {n} pixels "
                 "the way up runs out of pixels",
                 "run the whole U, not only the contracting path: on the way up each valid DoubleConv needs a map "
                 "larger than 4 x 4",
                 n=n, **values)
        n = missing[0]
        if n == hi:
            fail("valid_sizes(UNet({name}), lo={lo}, hi={hi}) misses {n}, the last size of the range",
                 "the range includes both ends, lo <= n <= hi: where does your loop stop?", n=n, **values)
        if model.padding == "same":
            fail("valid_sizes(UNet({name}), lo={lo}, hi={hi}) misses {n}, which this model accepts", same_padding,
                 n=n, **values)
        fail("valid_sizes(UNet({name}), lo={lo}, hi={hi}) misses {n}, which this model accepts",
             "an odd size is a problem only where a max-pool halves it: the input itself and the maps on the way "
             "up may be odd",
             n=n, **values)
    return passed("✓ valid_sizes finds the sizes that UNet accepts for six models and ranges, same padding, three "
                  "channels and both ends of a range included")
