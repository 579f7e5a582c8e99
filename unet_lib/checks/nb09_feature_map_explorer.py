"""The checks of notebook 09, feature map explorer: ``check_record_output``, ``check_merged_per_skip``."""

import functools
from collections.abc import Callable

import numpy as np
import torch

from ..model import UNet
from ._core import CheckPassed, call, fail, learner_check

__all__ = ['check_record_output', 'check_merged_per_skip']


@learner_check
def check_record_output(record_output: Callable) -> CheckPassed:
    """``record_output(model, x, block)`` must run ``model`` once on ``x`` (B, C, H, W) and return
    what its submodule ``block`` produced, (B, C', h, w), caught with a forward hook that is
    removed afterwards. Compared with ``unet_lib.widgets.feature_maps`` on every block."""
    from ..model import named_blocks
    from ..widgets import (
        feature_maps,  # imported here: checks need not load ipywidgets otherwise
    )

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
            got = call(record_output, model, x.clone(), block)
        finally:
            for spy in spies:
                spy.remove()
        if len(block._forward_hooks) > hooks_before:
            fail(f"after record_output(model, x, model.{name}) a forward hook is still attached to the block",
                  "register_forward_hook returns a handle; call handle.remove() when the model has run "
                  "(in a `finally:` so that it is removed even when the model raises)")
        if len(passes) != 1:
            fail(f"record_output(model, x, model.{name}) ran the model {len(passes)} times; expected once",
                  "register the hook, run model(x) once, remove the hook, return what the hook kept")
        if not isinstance(got, torch.Tensor):
            fail(f"record_output(model, x, model.{name}) returned a {type(got).__name__}; expected a tensor",
                  "the hook is called as hook(module, inputs, output); keep `output` (e.g. in a list or dict)")
        got = got.detach()
        if inputs and got.shape == inputs[0].shape and torch.equal(got, inputs[0]) and got.shape != expected.shape:
            fail(f"record_output(model, x, model.{name}) returned the block's input, not its output",
                  "the hook's arguments are (module, inputs, output): the third one is what the block produced")
        if got.shape != expected.shape:
            hint = ("keep the batch dimension: the model ran on a batch of 2" if got.shape == expected.shape[1:]
                    else "return the block's output, as the hook receives it")
            fail(f"record_output(model, x, model.{name}) has shape {tuple(got.shape)}; "
                  f"the block's output has shape {tuple(expected.shape)}", hint)
        if not torch.allclose(got, expected, atol=1e-5):
            fail(f"record_output(model, x, model.{name}) has the right shape but different values",
                  "return the output of this run of the model on x, unchanged (no normalising or cropping)")
    return CheckPassed("✓ record_output catches every block's output with a forward hook and removes the hook")


@functools.lru_cache(maxsize=1)
def _skip_case() -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Two 96x96 toy-cell images (seed 4) and their instances: the data of ``check_merged_per_skip``."""
    from ..data import ToyCells
    cells = ToyCells(2, size=96, seed=4)
    return tuple(cells[i]["image"] for i in range(2)), tuple(cells[i]["instances"] for i in range(2))


@functools.lru_cache(maxsize=8)
def _skip_experiment(experiment: str) -> dict[str, int]:
    """{Up block: merged cells over ``_skip_case``'s images} for the course model: ``"expected"``
    (one skip block-averaged at a time), or one of the mistakes that ``check_merged_per_skip``
    recognises. One batched forward pass per block; computed once per process."""
    from ..metrics import instance_scores, label_instances
    from ..tiling import padded_forward
    from ..widgets import average_skips

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
    from ..train import COURSE_CHECKPOINT, load_checkpoint
    return load_checkpoint(COURSE_CHECKPOINT).model.eval()


@learner_check
def check_merged_per_skip(merged_per_skip: Callable) -> CheckPassed:
    """``merged_per_skip(model, images, instances)`` must block-average one skip connection at a
    time (``unet_lib.widgets.average_skips(model, [name])``), predict every image, and return
    {Up block name: merged cells summed over the images}; the hooks removed afterwards. Run on
    the course model and two toy-cell images, against the same experiment done here."""
    images, instances = _skip_case()
    model = _course_model()
    got = call(merged_per_skip, model, [image.clone() for image in images], [i.clone() for i in instances])
    expected = _skip_experiment("expected")   # after the learner's call: a skeleton fails fast
    left = {name: len(up._forward_pre_hooks) for name, up in zip(expected, model.ups) if up._forward_pre_hooks}
    if left:
        fail(f"after merged_per_skip(model, ...) {', '.join(left)} still {'has' if len(left) == 1 else 'have'} "
              f"a forward pre-hook: the next experiment (and every later use of the model) runs with a skip "
              f"still averaged", "average_skips returns the hooks' handles: call handle.remove() on each "
              "after predicting, before the next block (in a `finally:`)")
    if not isinstance(got, dict):
        fail(f"merged_per_skip returned a {type(got).__name__}; expected a dict",
              f"return {{block name: merged cells}}, one entry per Up block: {', '.join(expected)}")
    if sorted(map(str, got)) != sorted(expected):
        fail(f"merged_per_skip returned the keys {sorted(map(str, got))}; expected {list(expected)}",
              "one entry per Up block, named as in named_blocks(model): 'ups[0]', 'ups[1]', ...")
    got = {str(k): v for k, v in got.items()}
    for name, value in got.items():
        if isinstance(value, (float, np.floating)) and not float(value).is_integer():
            fail(f"merged_per_skip(...)['{name}'] = {value:.4g}; expected a count of merged cells",
                  "count cells: instance_scores(label_instances(pred), instances[i]).merged, summed over images")
        if not isinstance(value, (int, np.integer, float, np.floating)):
            fail(f"merged_per_skip(...)['{name}'] is a {type(value).__name__}; expected an int",
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
            fail(f"merged_per_skip gave {got}; the experiment gives {expected}", hint)
    fail(f"merged_per_skip gave {got}; the experiment gives {expected}",
          "for each Up block: handles = average_skips(model, [name]); for each image, "
          "pred = feature_maps(model, image).logits.argmax(0) and add "
          "instance_scores(label_instances(pred), instances[i]).merged; then remove the handles")
