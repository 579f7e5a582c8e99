"""Tests for unet_lib.checks.nb09_feature_map_explorer: ``check_record_output``, ``check_merged_per_skip`` both ways.

Each check passes the library's implementation (or a correct one worked out here) and fails
deliberately broken versions with the intended message."""

import pytest
from checktools import assert_passes, assert_skeleton_is_friendly

from unet_lib.checks import (
    CheckError,
    check_merged_per_skip,
    check_record_output,
)
from unet_lib.checks import nb09_feature_map_explorer as nb09
from unet_lib.metrics import instance_scores, label_instances
from unet_lib.widgets import average_skips, feature_maps


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
    return lambda model, images, instances: nb09._skip_experiment(name)


def leaves_the_hooks(model, images, instances):
    average_skips(model, ["ups[1]"])
    return nb09._skip_experiment("expected")


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
    "off by one": (lambda m, x, y: {k: v + 1 for k, v in nb09._skip_experiment("expected").items()},
                   r"gave \{'ups\[0\]': 1, 'ups\[1\]': 10, 'ups\[2\]': 3\}; the experiment gives "
                   r"\{'ups\[0\]': 0, 'ups\[1\]': 9, 'ups\[2\]': 2\}\nHint: for each Up block"),
}


@pytest.mark.parametrize("answer, match", BROKEN_MERGED_PER_SKIP.values(), ids=BROKEN_MERGED_PER_SKIP.keys())
def test_check_merged_per_skip_fails_a_broken_answer(answer, match):
    with pytest.raises(CheckError, match=match):
        check_merged_per_skip(answer)
