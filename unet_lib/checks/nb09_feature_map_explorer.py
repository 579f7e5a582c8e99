"""The checks of notebook 09, feature map explorer: ``check_record_output``, ``check_merged_per_skip``."""

from collections.abc import Callable

import numpy as np
import torch

from ..blocks import center_crop
from ..model import UNet, named_blocks
from ._core import CheckError, CheckPassed, T, cached, call, fail, learner_check, passed

__all__ = ['check_record_output', 'check_merged_per_skip']


# -- a hook of your own --------------------------------------------------------------------------

class _ModelFailed(RuntimeError):
    """What the check's model raises on purpose: a model error that record_output must let through."""


def _hook_counts(model: torch.nn.Module) -> dict[str, int]:
    """How many forward and forward pre-hooks each submodule of ``model`` carries."""
    return {name or "model": len(m._forward_hooks) + len(m._forward_pre_hooks) for name, m in model.named_modules()}


@learner_check
def check_record_output(record_output: Callable) -> CheckPassed:
    """``record_output(model, x, block)`` must run ``model`` on the batch ``x`` (B, C, H, W) once and
    return what its submodule ``block`` produced, (B, C', h, w), caught with a forward hook, without
    running the blocks after ``block``; no hook may stay behind, also when the model raises, and
    the model's own errors must reach the caller. Compared with the outputs of a full pass on every
    block of a small U-Net; ``feature_maps`` and ``feature_maps_batch`` are refused."""
    from ..widgets import (  # here: checks need not load ipywidgets otherwise
        feature_maps,
        feature_maps_batch,
    )
    refuse = {"feature_maps": feature_maps, "feature_maps_batch": feature_maps_batch}
    torch.manual_seed(0)
    model = UNet(depth=2, base_channels=4).eval()
    blocks = named_blocks(model)
    side = model.valid_input_sizes(lo=60)[0]
    generator = torch.Generator().manual_seed(0)
    # a new batch for every block, so that an output kept from an earlier call cannot pass for this one
    xs = [torch.rand(2, 1, side, side, generator=generator) for _ in blocks]
    outputs: list[dict[str, torch.Tensor]] = []      # outputs[k][name]: every block's output on xs[k]
    for x in xs:
        outputs.append({})
        handles = [m.register_forward_hook(lambda m, args, out, name=name: outputs[-1].update({name: out.clone()}))
                   for name, m in blocks]
        with torch.no_grad():
            model(x)
        for handle in handles:
            handle.remove()
    hooks = _hook_counts(model)
    returned: list[tuple[str, torch.Tensor]] = []    # what record_output returned for the blocks before
    for k, (name, block) in enumerate(blocks):
        x, expected = xs[k], outputs[k]
        ran: list[str] = []
        inputs: list[torch.Tensor] = []
        passes: list[int] = []
        spies = [m.register_forward_pre_hook(lambda m, args, name=other: ran.append(name)) for other, m in blocks]
        spies.append(block.register_forward_pre_hook(lambda m, args: inputs.append(args[0])))
        spies.append(model.register_forward_pre_hook(lambda m, args: passes.append(1)))
        try:
            got = call(record_output, model, x.clone(), block, refuse=refuse)
        except (CheckError, NotImplementedError):
            raise
        except Exception as error:   # noqa: BLE001 (the learner's exception, shown as a message)
            fail("record_output(model, x, model.{name}) raised {kind}: {error}",
                 "if you raise an exception in the hook to end the forward pass, it is yours to catch: around the "
                 "model's call, and only that exception (any other must reach the caller)",
                 name=name, kind=type(error).__name__, error=str(error).splitlines()[0][:160] if str(error) else "")
        finally:
            for spy in spies:
                spy.remove()
        left = [m for m, n in _hook_counts(model).items() if n > hooks.get(m, 0)]
        if left:
            fail("after record_output(model, x, model.{name}) a hook is still attached to {where}",
                 "a forgotten hook runs (and keeps tensors) on every later call of the model: "
                 "register_forward_hook returns a handle whose remove() takes the hook off",
                 "remove it in a `finally:`, so that it goes also when the forward pass ends with an exception",
                 name=name, where=", ".join(left))
        if not passes and ran:
            fail("record_output(model, x, model.{name}) ran {ran} without calling the model itself",
                 "call model(x): PyTorch runs the hooks registered on a module when the module is called. "
                 "model.forward(x) skips the model's own hooks, and calling its blocks one by one rebuilds this "
                 "U-Net's forward pass by hand, which another network would not allow; the hook on `block` is what "
                 "catches its output", name=name, ran=", ".join(ran))
        if len(passes) != 1:
            fail("record_output(model, x, model.{name}) ran the model {n} times; expected once",
                 "the hook catches the block's output during one call of the model", name=name, n=len(passes))
        if not isinstance(got, torch.Tensor):
            fail("record_output(model, x, model.{name}) returned a {kind}; expected a tensor",
                 "the hook is called as hook(module, inputs, output): keep the output (in a list or dict that "
                 "the hook can reach) and return it", name=name, kind=type(got).__name__)
        got = got.detach()
        earlier = [other for other, out in returned if out.shape == got.shape and torch.equal(out, got)]
        if earlier:
            fail("record_output(model, x, model.{name}) returned what it returned for model.{earlier}, on another x",
                 "return what the hook caught in this call: keep it in a list created inside record_output, not in "
                 "one that outlives the call", name=name, earlier=earlier[0])
        returned.append((name, got))
        if inputs and got.shape == inputs[0].shape and torch.equal(got, inputs[0]) and got.shape != expected[name].shape:
            fail("record_output(model, x, model.{name}) returned the block's input, not its output",
                 "the hook's arguments are (module, inputs, output): the third one is what the block produced",
                 name=name)
        logits = expected[blocks[-1][0]]
        if k < len(blocks) - 1 and got.shape == logits.shape and torch.allclose(got, logits, atol=1e-5):
            fail("record_output(model, x, model.{name}) returned the model's output (the logits), not what {name} "
                 "produced",
                 "a forward hook receives the output of the module it is registered on: is it on `block`?",
                 name=name)
        after = [other for other, _ in blocks[k + 1:] if other in ran]
        if after:
            fail("record_output(model, x, model.{name}) also ran {after}: the blocks after {name} are not needed "
                 "for its output",
                 "a forward hook runs inside the model's call, right after its block: it can end the forward pass "
                 "there, and the rest of the U is never computed",
                 "an exception raised in the hook leaves model(x) at once; define an exception class of your own "
                 "and catch only that one around the call",
                 name=name, after=", ".join(after))
        if got.shape != expected[name].shape:
            fail("record_output(model, x, model.{name}) has shape {got}; the block's output has shape {expected}",
                 "keep the batch dimension: the model ran on a batch of 2" if got.shape == expected[name].shape[1:]
                 else "return the block's output as the hook receives it",
                 name=name, got=tuple(got.shape), expected=tuple(expected[name].shape))
        if not torch.allclose(got, expected[name], atol=1e-5):
            fail("record_output(model, x, model.{name}) has the right shape but different values",
                 "return the output of this run of the model on x, unchanged (no normalising or cropping)", name=name)
    # the model raises before it reaches the block: the hook must go, and the model's error must come through
    name, block = blocks[model.depth + 1]                            # the first Up block

    def raising(module, args):
        raise _ModelFailed("the check's model failed on purpose before reaching the block")

    trap = model.inc.register_forward_pre_hook(raising)
    try:
        got = call(record_output, model, x.clone(), block, refuse=refuse)
    except _ModelFailed:
        got = _ModelFailed
    except (CheckError, NotImplementedError):
        raise
    except Exception as error:   # noqa: BLE001
        got = error
    finally:
        trap.remove()
    left = [m for m, n in _hook_counts(model).items() if n > hooks.get(m, 0)]
    if left:
        fail("when the model raised, record_output(model, x, model.{name}) left a hook on {where}",
             "an exception leaves model(x) before the lines after it run: the hook is removed only if its removal "
             "runs whatever happens",
             "remove it in a `finally:`", name=name, where=", ".join(left))
    if isinstance(got, Exception):
        fail("the model raised RuntimeError, and record_output(model, x, model.{name}) raised {kind} instead",
             "catch only the exception your own hook raises: an error of the model is the caller's to see, as "
             "it is", name=name, kind=type(got).__name__)
    if got is not _ModelFailed:
        fail("the model raised RuntimeError, and record_output(model, x, model.{name}) hid it: it returned {got!r}",
             "catch only the exception your own hook raises: an error of the model is the caller's to see (a "
             "bare `except:` or `except Exception:` hides it)", name=name, got=got)
    return passed("✓ record_output returns every block's output from one pass that stops at the block, and leaves "
                  "no hook behind, also when the model raises")


# -- which skip carries the borders ---------------------------------------------------------------

@cached(maxsize=1)
def _skip_case() -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Two 96x96 toy-cell images (seed 4) and their instances: the data of ``check_merged_per_skip``."""
    from ..data import ToyCells
    cells = ToyCells(2, size=96, seed=4)
    return tuple(cells[i]["image"] for i in range(2)), tuple(cells[i]["instances"] for i in range(2))


def _course_model() -> UNet:
    """A fresh copy of the course model (notebook 07's checkpoint), in eval mode, on the CPU."""
    from ..checkpoint import load_checkpoint
    from ..train import COURSE_CHECKPOINT
    return load_checkpoint(COURSE_CHECKPOINT).model.cpu().eval()


@cached(maxsize=1)
def _cached_model() -> UNet:
    return _course_model()


@cached(maxsize=64)
def _merged(change: str, blocks: tuple[str, ...], first_only: bool = False, swapped: bool = False,
            unlabelled: bool = False) -> int:
    """Merged cells over ``_skip_case``'s images, predicted with the skips of ``blocks`` changed
    (``change``: "average" or "zero"), counted as the experiment does (``first_only``,
    ``swapped``, ``unlabelled``: three mistakes). One batched forward pass; computed once per process."""
    from ..metrics import instance_scores, label_instances
    from ..tiling import padded_forward
    from ..widgets import average_skips

    images, instances = _skip_case()
    model = _cached_model()
    if change == "average":
        handles = average_skips(model, list(blocks)) if blocks else []
    else:
        chosen = [model.ups[int(b[4:-1])] for b in blocks]
        handles = [up.register_forward_pre_hook(lambda m, args: (args[0], torch.zeros_like(args[1]))) for up in chosen]
    try:
        with torch.no_grad():
            preds = padded_forward(model, torch.stack(images)).argmax(1)    # (2, H, W)
    finally:
        for handle in handles:
            handle.remove()
    which = (0,) if first_only else (0, 1)
    pairs = [(preds[i] if unlabelled else label_instances(preds[i]), instances[i]) for i in which]
    return sum(instance_scores(*((t, p) if swapped else (p, t))).merged for p, t in pairs)


def _names() -> list[str]:
    return [f"ups[{j}]" for j in range(len(_cached_model().ups))]


def _arms(name: str, mistake: str | None = None) -> tuple[int, int]:
    """(merged with only ``name``'s skip block-averaged, merged with only ``name``'s skip intact),
    or what ``mistake`` gives for them."""
    others = tuple(n for n in _names() if n != name)
    if mistake == "zeroed":
        return _merged("zero", (name,)), _merged("zero", others)
    if mistake in ("first image only", "swapped", "unlabelled"):
        flags = dict(first_only=mistake == "first image only", swapped=mistake == "swapped",
                     unlabelled=mistake == "unlabelled")
        return _merged("average", (name,), **flags), _merged("average", others, **flags)
    return _merged("average", (name,)), _merged("average", others)


def _watch_skips(model: UNet) -> tuple[list[set[str]], list[torch.utils.hooks.RemovableHandle]]:
    """Spies on ``model`` for the experiment's forward passes: a list that gets, for every pass (one
    call of ``model.inc``), the set of ``Up`` blocks whose convolutions received a skip other than
    the contracting path's map of that pass (block-averaged, zeroed or changed otherwise, by any
    hook), and the spies' handles."""
    passes: list[set[str]] = []
    maps: dict[int, torch.Tensor] = {}                          # level -> the contracting path's map (B, C, h, w)

    def start(module, args):
        passes.append(set())
        maps.clear()

    def keep(module, args, out, level):
        maps[level] = out.detach().clone()

    def compare(module, args, name, level):                      # args[0]: cat([skip, x]) (B, C_skip + C_x, h, w)
        if passes and level in maps:
            skip, joined = maps[level], args[0]
            if joined.shape[1] < skip.shape[1] or not torch.equal(joined[:, : skip.shape[1]],
                                                                  center_crop(skip, joined.shape[-2:])):
                passes[-1].add(name)

    handles = [model.inc.register_forward_pre_hook(start)]
    for level, block in enumerate([model.inc, *model.downs[:-1]]):   # the maps the skips copy, levels 0 .. depth-1
        handles.append(block.register_forward_hook(lambda m, args, out, level=level: keep(m, args, out, level)))
    for j, up in enumerate(model.ups):                               # ups[j] gets the skip of level depth - 1 - j
        handles.append(up.conv.register_forward_pre_hook(
            lambda m, args, name=f"ups[{j}]", level=model.depth - 1 - j: compare(m, args, name, level)))
    return passes, handles


@learner_check
def check_merged_per_skip(merged_per_skip: Callable) -> CheckPassed:
    """``merged_per_skip(model, images, instances)`` must return, for each Up block of ``model``,
    (merged cells when only its skip is block-averaged, merged cells when only its skip keeps its
    detail and every other skip is block-averaged), summed over the images, with the hooks
    removed. Run on the course model and two toy-cell images, against the same experiment done
    here; the expected counts are never printed."""
    images, instances = _skip_case()
    model = _course_model()
    passes, spies = _watch_skips(model)
    try:
        got = call(merged_per_skip, model, [image.clone() for image in images], [i.clone() for i in instances])
    finally:
        for spy in spies:
            spy.remove()
    names = _names()
    left = [name for name, up in zip(names, model.ups) if up._forward_pre_hooks]
    if left:
        fail("after merged_per_skip(model, ...) {blocks} still {verb} a forward pre-hook: every later use of the "
             "model runs with a skip still averaged",
             "average_skips returns the hooks' handles: a skip stays averaged until its handle is removed, even "
             "after your function returns",
             "remove every handle after predicting, in a `finally:`, so that it happens also when a prediction raises",
             blocks=", ".join(left), verb="has" if len(left) == 1 else "have")
    if not isinstance(got, dict):
        fail("merged_per_skip returned a {kind}; expected a dict",
             "one entry per Up block, named as in named_blocks(model): {names}", kind=type(got).__name__,
             names=", ".join(names))
    if sorted(map(str, got)) != names:
        fail("merged_per_skip returned the keys {got}; expected {names}",
             "one entry per Up block, named as in named_blocks(model)", got=sorted(map(str, got)), names=names)
    got = {str(k): v for k, v in got.items()}
    for name, value in got.items():
        if isinstance(value, np.ndarray):
            value = value.tolist()
        pair = isinstance(value, (tuple, list)) and len(value) == 2
        if not pair or not all(isinstance(v, (int, np.integer, float, np.floating)) and not isinstance(v, bool)
                               and float(v).is_integer() for v in value):
            fail("merged_per_skip(...)['{name}'] = {value!r}; expected two counts of merged cells",
                 "a pair for each skip: (merged cells with only this skip block-averaged, merged cells with only "
                 "this skip intact), each summed over the images", name=name, value=value)
    got = {name: (int(a), int(b)) for name, (a, b) in got.items()}
    if not passes:
        fail("merged_per_skip(model, images, instances) returned without running the model it was given",
             "the counts come from predictions: the check passes its own model and two images of its own, so use "
             "the arguments, not the notebook's model and four images (nor counts written down)",
             "predict every image with feature_maps_batch(model, ...) or padded_forward(model, ...) while the "
             "skips are changed")
    expected = {name: _arms(name) for name in names}
    if got == expected:
        seen = set(map(frozenset, passes))
        missing = [(T("merged_per_skip returned counts, but the model it was given never ran with only the skip of "
                      "{name} changed"), n) for n in names if frozenset({n}) not in seen]
        missing += [(T("merged_per_skip returned counts, but the model it was given never ran with every skip but "
                       "that of {name} changed"), n) for n in names if frozenset(names) - {n} not in seen]
        if missing:
            problem, n = missing[0]
            fail(problem, "every count comes from a prediction with exactly those skips block-averaged, by hooks on "
                          "the model while it predicts: run that prediction for each of the two arms of every skip",
                 name=n)
        return passed("✓ merged_per_skip agrees with the same experiment here on the check's two images "
                      "({cells} cells), run with each skip block-averaged alone and with each kept alone; hooks "
                      "removed", cells=sum(int(t.max()) for t in instances))
    problem = "merged_per_skip gave {got}; the same experiment here, on the same images, gives other counts"
    first = {name: a for name, (a, _) in got.items()}
    second = {name: b for name, (_, b) in got.items()}
    if got == {name: (b, a) for name, (a, b) in expected.items()}:
        fail(problem, "the two numbers are in the wrong order: first only this skip averaged, then only this "
                      "skip intact", got=got)
    if got == {n: _arms(n, "zeroed") for n in names}:
        fail(problem, "those are the counts with skips set to zero; the experiment block-averages them (section 5 "
                      "says why zeros answer another question)", got=got)
    if got == {n: _arms(n, "first image only") for n in names}:
        fail(problem, "those are the counts of the first image only: add the merged cells of all images", got=got)
    if got == {n: _arms(n, "unlabelled") for n in names}:
        fail(problem, "every cell counts as merged, or nearly: instance_scores compares label images, and a "
                      "prediction of 0 and 1 is one object. Give each predicted cell its own label first", got=got)
    if got == {n: _arms(n, "swapped") for n in names}:
        fail(problem, "instance_scores takes the prediction first and the truth second: swapped, 'merged' counts "
                      "predicted pieces that share a true cell, which are split cells, not merged ones", got=got)
    if first != {n: a for n, (a, _) in expected.items()}:
        if all(v == _merged("average", tuple(names)) for v in first.values()):
            fail(problem, "the first number should change one skip only: you block-averaged every skip at once. "
                          "Which argument chooses the skips?",
                 "average_skips takes the names of the Up blocks whose skips it changes", got=got)
        if all(v == _merged("average", ()) for v in first.values()):
            fail(problem, "every first number is what the model merges with all skips intact: predict while the "
                          "hooks are in place, between registering them and removing their handles", got=got)
    if second != {n: b for n, (_, b) in expected.items()}:
        if all(v == _merged("average", ()) for v in second.values()):
            fail(problem, "the second number keeps only this skip intact and block-averages all the others; you "
                          "kept them all", got=got)
        if all(v == _merged("average", tuple(names)) for v in second.values()):
            fail(problem, "the second number keeps this skip intact; you block-averaged it too", got=got)
        if second == first:
            fail(problem, "the second number is the mirror image of the first: this skip intact and every other "
                          "skip block-averaged", got=got)
    fail(problem, "for each Up block, two predictions of every image: with only its skip block-averaged, and with "
                  "every skip but its own block-averaged; count the merged cells of each, summed over the images",
         "instance_scores(pred_instances, instances).merged counts one image's merged cells (prediction first); "
         "average_skips takes a list of Up block names", got=got)
