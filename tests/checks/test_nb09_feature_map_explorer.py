"""Tests for unet_lib.checks.nb09_feature_map_explorer: ``check_record_output``, ``check_merged_per_skip`` both ways.

Each check passes a correct answer worked out here, refuses the library's function of the same job
however it is reached, and fails deliberately broken versions with the intended message."""

import pytest
import torch
from checktools import assert_passes, assert_skeleton_is_friendly, reference

from unet_lib.checks import (
    CheckError,
    check_merged_per_skip,
    check_record_output,
)
from unet_lib.checks import nb09_feature_map_explorer as nb09
from unet_lib.metrics import instance_scores, label_instances
from unet_lib.model import named_blocks
from unet_lib.widgets import average_skips, feature_maps, feature_maps_batch

# -- a hook of your own ----------------------------------------------------------------------------


class Stop(Exception):
    """Raised by the hook to end the forward pass once the block has run."""


def record_output(model, x, block, mistake=None):
    """The exercise's solution (``mistake=None``): a forward hook that keeps the block's output and
    ends the forward pass there, removed afterwards; or one of the plausible wrong versions."""
    kept = []

    def hook(module, inputs, output):
        kept.append({"the block's input": inputs[0], "the hook's arguments": (module, inputs, output)}.get(mistake, output))
        if mistake not in ("no early stop", "two forward passes"):
            raise Stop

    handle = block.register_forward_hook(hook)
    if mistake in ("hook not removed", "removed only without an error"):
        try:
            model(x)
        except Stop:
            pass
        if mistake == "removed only without an error":
            handle.remove()
        return kept[0]
    try:
        if mistake == "two forward passes":
            model(x)
        model(x)
    except Stop:
        pass
    except Exception:
        if mistake != "swallows every error":
            raise
    finally:
        if mistake != "leaks its own exception":
            handle.remove()
    if mistake == "swallows every error":
        return kept[0] if kept else None
    out = kept[0]
    return {"batch dimension dropped": lambda o: o[0], "normalised": torch.sigmoid}.get(mistake, lambda o: o)(out)


def leaks_stop(model, x, block):
    handle = block.register_forward_hook(lambda m, i, o: (_ for _ in ()).throw(Stop("stopped at the block")))
    try:
        model(x)
    finally:
        handle.remove()


def kept_across_calls():
    """A hook that keeps outputs in a list that outlives the call, and returns its first entry."""
    kept = []

    def record(model, x, block):
        def hook(module, inputs, output):
            kept.append(output)
            raise Stop

        handle = block.register_forward_hook(hook)
        try:
            model(x)
        except Stop:
            pass
        finally:
            handle.remove()
        return kept[0]
    return record


def hook_on(where):
    """The solution's hook and exception, with the hook on the model instead of the block
    (``where="model"``), or the pass run through ``model.forward`` (``where="forward"``)."""
    def record(model, x, block):
        kept = []

        def hook(module, inputs, output):
            kept.append(output)
            raise Stop

        handle = (model if where == "model" else block).register_forward_hook(hook)
        try:
            model.forward(x) if where == "forward" else model(x)
        except Stop:
            pass
        finally:
            handle.remove()
        return kept[0]
    return record


def test_check_record_output_passes_a_correct_answer():
    assert_passes(check_record_output, record_output)
    assert_skeleton_is_friendly(check_record_output, "record_output")


BROKEN_RECORD_OUTPUT = {
    "feature_maps": (lambda m, x, b: feature_maps(m, x[0]).maps[dict((id(v), k) for k, v in named_blocks(m))[id(b)]],
                     r"called `feature_maps`"),
    "feature_maps_batch": (lambda m, x, b: feature_maps_batch(m, x), r"called `feature_maps_batch`"),
    "hook not removed": (lambda m, x, b: record_output(m, x, b, "hook not removed"),
                         r"model.inc\) a hook is still attached to inc\nHint 1 of 2: a forgotten hook runs"),
    "hook removed only without an error": (lambda m, x, b: record_output(m, x, b, "removed only without an error"),
                                           r"when the model raised, record_output\(model, x, model.ups\[0\]\) left a "
                                           r"hook on ups.0\nHint 1 of 2: an exception leaves model\(x\)"),
    "every error swallowed": (lambda m, x, b: record_output(m, x, b, "swallows every error"),
                              r"the model raised RuntimeError, and record_output\(model, x, model.ups\[0\]\) hid it: "
                              r"it returned None\nHint: catch only the exception your own hook raises"),
    "its own exception leaks": (leaks_stop, r"record_output\(model, x, model.inc\) raised Stop: stopped at the block\n"
                                            r"Hint: if you raise an exception in the hook to end the forward pass, it "
                                            r"is yours to catch"),
    "no early stop": (lambda m, x, b: record_output(m, x, b, "no early stop"),
                      r"model.inc\) also ran downs\[0\], downs\[1\], ups\[0\], ups\[1\], outc: the blocks after inc are "
                      r"not needed.*\nHint 1 of 2: a forward hook runs inside the model's call"),
    "two forward passes": (lambda m, x, b: record_output(m, x, b, "two forward passes"),
                           r"ran the model 2 times; expected once"),
    "the block's input": (lambda m, x, b: record_output(m, x, b, "the block's input"),
                          r"model.inc\) returned the block's input, not its output\n"
                          r"Hint: the hook's arguments are \(module, inputs, output\)"),
    "the hook's arguments": (lambda m, x, b: record_output(m, x, b, "the hook's arguments"),
                             r"returned a tuple; expected a tensor\nHint: the hook is called as hook\(module, inputs, "
                             r"output\)"),
    "batch dimension dropped": (lambda m, x, b: record_output(m, x, b, "batch dimension dropped"),
                                r"has shape \(4, 56, 56\); the block's output has shape \(2, 4, 56, 56\)\n"
                                r"Hint: keep the batch dimension"),
    "normalised": (lambda m, x, b: record_output(m, x, b, "normalised"), r"right shape but different values"),
    "kept across calls": (kept_across_calls(), r"model.downs\[0\]\) returned what it returned for model.inc, on "
                                               r"another x\nHint: return what the hook caught in this call"),
    "hook on the model": (hook_on("model"), r"model.inc\) returned the model's output \(the logits\), not what inc "
                                            r"produced\nHint: a forward hook receives the output of the module it is "
                                            r"registered on"),
    "model.forward(x)": (hook_on("forward"), r"model.inc\) ran inc without calling the model itself\n"
                                             r"Hint: call model\(x\): PyTorch runs the hooks"),
    "the blocks by hand": (lambda m, x, b: m.inc(x), r"model.inc\) ran inc without calling the model itself"),
}


@pytest.mark.parametrize("answer, match", BROKEN_RECORD_OUTPUT.values(), ids=BROKEN_RECORD_OUTPUT.keys())
def test_check_record_output_fails_a_broken_answer(answer, match):
    with pytest.raises(CheckError, match=match):
        check_record_output(answer)


# -- which skip carries the borders ----------------------------------------------------------------

def merged_per_skip(model, images, instances, mistake=None):
    """The exercise's solution (``mistake=None``): for each skip, the merged cells with only it
    block-averaged and with only it intact; or one of the plausible wrong versions."""
    names = [f"ups[{j}]" for j in range(len(model.ups))]
    change = cut_skips_of if mistake == "zeroed" else average_skips

    def merged(blocks):
        handles = change(model, blocks) if mistake != "all at once" else average_skips(model)
        try:
            if mistake == "no hooks while predicting":
                for handle in handles:
                    handle.remove()
            preds = [fm.logits.argmax(0) for fm in feature_maps_batch(model, torch.stack(images))]
        finally:
            if mistake != "hooks left on the model":
                for handle in handles:
                    handle.remove()
        pairs = list(zip(preds, instances))[:1 if mistake == "first image only" else None]
        label = (lambda p: p) if mistake == "unlabelled" else label_instances
        return sum(instance_scores(*((t, label(p)) if mistake == "swapped" else (label(p), t))).merged
                   for p, t in pairs)

    result = {}
    for name in names:
        others = [n for n in names if n != name]
        alone = merged([name])
        kept = {"second: all intact": lambda: merged([]), "second: all averaged": lambda: merged(names)}.get(
            mistake, lambda: merged(others))()
        result[name] = (kept, alone) if mistake == "pair swapped" else (alone, kept)
    return result


def cut_skips_of(model, blocks):
    """Zero the chosen skips (the library's cut_skips zeroes them all)."""
    return [model.ups[int(b[4:-1])].register_forward_pre_hook(lambda m, args: (args[0], torch.zeros_like(args[1])))
            for b in blocks]


def test_check_merged_per_skip_passes_a_correct_answer():
    result = check_merged_per_skip(merged_per_skip)
    assert result.startswith("✓") and repr(result) == str(result)
    arms = reference(nb09._arms)
    assert arms("ups[1]") == (9, 0) and arms("ups[0]") == (0, 17)   # the check's images: ups[1] carries the borders
    assert "(9, 0)" not in result and "17" not in result               # and the message does not print the counts
    assert_skeleton_is_friendly(check_merged_per_skip, "merged_per_skip")


BROKEN_MERGED_PER_SKIP = {
    "hooks left on the model": r"ups\[0\], ups\[1\], ups\[2\] still have a forward pre-hook.*\nHint 1 of 2: "
                               r"average_skips returns the hooks' handles",
    "all at once": r"gave \{'ups\[0\]': \(18, 18\), .*\nHint 1 of 2: the first number should change one skip only",
    "no hooks while predicting": r"\nHint: every first number is what the model merges with all skips intact",
    "zeroed": r"\nHint: those are the counts with skips set to zero",
    "first image only": r"\nHint: those are the counts of the first image only",
    "swapped": r"\nHint: instance_scores takes the prediction first and the truth second",
    "second: all intact": r"\nHint: the second number keeps only this skip intact and block-averages all the others",
    "second: all averaged": r"\nHint: the second number keeps this skip intact; you block-averaged it too",
    "pair swapped": r"\nHint: the two numbers are in the wrong order",
    "unlabelled": r"\nHint: every cell counts as merged, or nearly: instance_scores compares label images",
}


@pytest.mark.parametrize("mistake, match", BROKEN_MERGED_PER_SKIP.items(), ids=BROKEN_MERGED_PER_SKIP.keys())
def test_check_merged_per_skip_fails_a_broken_answer(mistake, match):
    with pytest.raises(CheckError, match=match) as info:
        check_merged_per_skip(lambda m, x, y: merged_per_skip(m, x, y, mistake))
    assert "gives other counts" in str(info.value) or "pre-hook" in str(info.value)   # never the expected counts


@pytest.mark.parametrize("answer, match", [
    (lambda m, x, y: [0, 9, 2], r"returned a list; expected a dict"),
    (lambda m, x, y: {0: (0, 17), 1: (9, 0), 2: (2, 11)}, r"returned the keys \['0', '1', '2'\]; expected "
                                                          r"\['ups\[0\]', 'ups\[1\]', 'ups\[2\]'\]"),
    (lambda m, x, y: {"ups[0]": 0, "ups[1]": 9, "ups[2]": 2}, r"\['ups\[0\]'\] = 0; expected two counts"),
    (lambda m, x, y: {"ups[0]": (0.9, 0.5), "ups[1]": (0.8, 1), "ups[2]": (1, 1)}, r"= \(0.9, 0.5\); expected two"),
    (lambda m, x, y: {k: (a + 1, b) for k, (a, b) in merged_per_skip(m, x, y).items()},
     r"gave \{'ups\[0\]': \(1, 17\), 'ups\[1\]': \(10, 0\), 'ups\[2\]': \(3, 11\)\}; the same experiment here, on the "
     r"same images, gives other counts\nHint 1 of 2: for each Up block, two predictions"),
])
def test_check_merged_per_skip_fails_a_malformed_answer(answer, match):
    with pytest.raises(CheckError, match=match):
        check_merged_per_skip(answer)


def written_down(m, x, y):
    """The check's own counts, returned without running the model (copied from somewhere)."""
    return {n: reference(nb09._arms)(n) for n in reference(nb09._names)()}


def one_pass_then_written_down(m, x, y):
    """One prediction with every skip intact, then the check's own counts."""
    feature_maps_batch(m, torch.stack(x))
    return written_down(m, x, y)


@pytest.mark.parametrize("answer, match", [
    (written_down, r"^merged_per_skip\(model, images, instances\) returned without running the model it was given\n"
                   r"Hint 1 of 2: the counts come from predictions"),
    (lambda m, x, y: merged_per_skip(reference(nb09._course_model)(), x, y),   # the notebook's model, not the argument
     r"^merged_per_skip\(model, images, instances\) returned without running the model it was given"),
    (one_pass_then_written_down, r"^merged_per_skip returned counts, but the model it was given never ran with only the "
                                 r"skip of ups\[0\] changed\nHint: every count comes from a prediction"),
], ids=["counts written down", "another model", "one pass, then counts written down"])
def test_check_merged_per_skip_refuses_counts_it_did_not_see_measured(answer, match):
    with pytest.raises(CheckError, match=match):
        check_merged_per_skip(answer)
