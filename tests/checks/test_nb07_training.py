"""Tests for unet_lib.checks.nb07_training: ``check_train_step``, ``check_lr_sweep`` both ways.

Each check passes a correct answer worked out here, refuses the library's function of the same job
however it is reached, and fails deliberately broken versions with the intended message."""

import copy
import inspect
import textwrap

import pytest
import torch
from checktools import assert_passes, assert_skeleton_is_friendly

import unet_lib
from unet_lib import TrainConfig, center_crop
from unet_lib.checks import (
    CheckError,
    check_lr_sweep,
    check_train_step,
)
from unet_lib.losses import weighted_cross_entropy
from unet_lib.tiling import padded_forward
from unet_lib.train import train_step


def train_step_by_hand(model, optimizer, batch, mistake=None):
    if mistake == "eval mode":
        model.eval()                                                     # BatchNorm by its running averages
    if mistake in ("unpadded", "cropped mask"):
        logits = model(batch["image"])                                   # smaller than the mask
    else:
        logits = padded_forward(model, batch["image"])
    mask, weight_map = batch["mask"], None if mistake == "unweighted" else batch["weight_map"]
    if mistake == "cropped mask":                                        # what the loss's error message suggests
        mask, weight_map = center_crop(mask, logits.shape[-2:]), center_crop(weight_map, logits.shape[-2:])
    loss = weighted_cross_entropy(logits, mask, weight_map, reduction="sum" if mistake == "sum" else "mean")
    if mistake not in ("no zero_grad", "zero_grad after backward"):
        optimizer.zero_grad()
    if mistake != "no backward":
        loss.backward()
    if mistake == "zero_grad after backward":
        optimizer.zero_grad()
    if mistake != "no step":
        optimizer.step()
    if mistake == "loss after the update":
        loss = weighted_cross_entropy(padded_forward(model, batch["image"]), mask, weight_map)
    if mistake == "forward twice":
        padded_forward(model, batch["image"])
    if mistake == "left in eval mode":
        model.eval()
    return loss if mistake == "tensor" else loss.item()


def test_check_train_step_passes_a_hand_written_step():
    assert_passes(check_train_step, train_step_by_hand)
    assert_skeleton_is_friendly(check_train_step, "train_step")


def library_fit(model, optimizer, batch):
    class One(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return {k: v[0] for k, v in batch.items()}

    unet_lib.fit(model, One(), None, TrainConfig(epochs=1, batch_size=1, augment=False, progress=False))
    return 0.0


def by_exec_of_the_source(model, optimizer, batch):
    """The library's train_step read with inspect.getsource and run as the learner's own function."""
    namespace = {}
    exec(textwrap.dedent(inspect.getsource(unet_lib.train.step.train_step)), vars(unet_lib.train.step), namespace)
    return namespace["train_step"](model, optimizer, batch)


EXECUTED_EARLIER = {}
exec(textwrap.dedent(inspect.getsource(unet_lib.train.step.train_step)), vars(unet_lib.train.step), EXECUTED_EARLIER)


def by_the_private_forward(model, optimizer, batch):
    """The library step's own forward for training (mirror-padded), with the rest written by hand."""
    logits = unet_lib.train.step._to_model(model, batch["image"], False)
    loss = weighted_cross_entropy(logits, batch["mask"], batch["weight_map"])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


@pytest.mark.parametrize("mistake, match", [
    ("the library", r"^`<lambda>` called `unet_lib.train_step`, which already does what this exercise asks you to "
                    r"write\nHint: write it yourself"),
    ("the library renamed", r"called `unet_lib.train_step`"),
    ("fit", r"called `unet_lib.fit`"),
    ("the library's source, executed", r"called `inspect.getsource`, .*, which already does"),
    ("the library's source, executed earlier", r"called `unet_lib.train.step._check_model`.*, which already does"),
    ("the library's private forward", r"called `unet_lib.train.step._to_model`, which already does"),
    ("eval mode", r"step 1: train_step returned loss .*\nHint: that is the loss of the model in eval mode"),
    ("left in eval mode", r"step 1: train_step left the model in eval mode; it came in training mode\nHint: the "
                          r"next step"),
    ("unweighted", r"step 1: train_step returned loss .*; the library's step gives .*\nHint 1 of 2: that is the "
                   r"unweighted cross-entropy"),
    ("sum", r"\nHint: your loss is 2048 times the library's, the number of pixels in the batch \(2048\): you "
            r"summed Eq. 1"),
    ("loss after the update", r"\nHint: that is the loss after the update"),
    ("forward twice", r"step 1: train_step ran the model 2 times; one step needs one forward pass"),
    ("no zero_grad", r"after step 2 the weights .* differ.*\nHint 1 of 2: the second step differs: backward adds"),
    ("no step", r"weights did not change, although their gradients were computed\nHint 1 of 2: .*which object "
                r"updates the weights\?"),
    ("no backward", r"no gradient reached them\nHint: the gradient of the loss"),
    ("zero_grad after backward", r"the gradients were zero when the optimizer stepped\nHint: clearing the gradients "
                                 r"after backward erases the ones just computed"),
    ("unpadded", r"ran the model on the unpadded 32x32 image and then raised ValueError.*\nHint 1 of 2: a "
                 r"valid-padding U-Net's output is smaller"),
    ("cropped mask", r"ran the model on the unpadded 32x32 image, so its loss leaves out.*\nHint 1 of 2: every pixel"),
    ("tensor", r"returned a tensor \(tensor\(.*\); expected the loss as a float\nHint 1 of 2: a tensor that came out"),
])
def test_check_train_step_fails_a_broken_step(mistake, match):
    answers = {"the library": lambda m, o, b: train_step(m, o, b),
               "the library renamed": lambda m, o, b: (lambda step: step(m, o, b))(unet_lib.train.train_step),
               "fit": library_fit,
               "the library's source, executed": by_exec_of_the_source,
               "the library's source, executed earlier": EXECUTED_EARLIER["train_step"],
               "the library's private forward": by_the_private_forward}
    answer = answers.get(mistake, lambda m, o, b: train_step_by_hand(m, o, b, mistake))
    with pytest.raises(CheckError, match=match) as info:
        check_train_step(answer)
    assert "padded_forward(model" not in str(info.value) and "loss.item()" not in str(info.value)   # no solving line


def test_check_train_step_hints_come_in_stages():
    broken = lambda m, o, b: train_step_by_hand(m, o, b, "unpadded")   # noqa: E731
    with pytest.raises(CheckError) as first:
        check_train_step(broken)
    assert "padded_forward" not in str(first.value)
    with pytest.raises(CheckError, match=r"Hint 2 of 2: padded_forward mirrors the image"):
        check_train_step(broken)


def test_check_train_step_hint_2_of_a_wrong_loss_names_one_tool_not_the_body():
    def other_loss(model, optimizer, batch):   # a loss that none of the named mistakes explains
        loss = weighted_cross_entropy(padded_forward(model, batch["image"]), batch["mask"], batch["weight_map"] ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()
    with pytest.raises(CheckError, match=r"\nHint 1 of 2: the loss of a step is Eq. 1"):
        check_train_step(other_loss)
    with pytest.raises(CheckError, match=r"\nHint 2 of 2: compare your loss, step by step, with notebook 06's "
                                         r"weighted_cross_entropy") as second:
        check_train_step(other_loss)
    assert "padded_forward" not in str(second.value)


def lr_sweep_by_hand(model, batch, lrs, steps, mistake=None):
    curves = []
    shared = model if mistake == "one model" else copy.deepcopy(model)
    for lr in lrs:
        if mistake == "one model" or mistake == "copied once":
            run = shared
        elif mistake == "fresh weights":
            run = unet_lib.UNet(depth=3, base_channels=4, batch_norm=True)
        else:
            run = copy.deepcopy(model)
        if mistake == "eval mode":
            run.eval()
        optimizer = (torch.optim.SGD if mistake == "sgd" else torch.optim.Adam)(run.parameters(), lr=lr)
        if mistake == "optimizer of the first copy":
            optimizer = curves[0][1] if curves else optimizer
        losses = [train_step(run, optimizer, batch, weighted=mistake != "unweighted")
                  for _ in range(steps - (mistake == "one step too few") + (mistake == "one step too many"))]
        curves.append((losses, optimizer))
    if mistake == "in place":
        train_step(model, torch.optim.Adam(model.parameters()), batch)
    runs = [losses for losses, _ in curves]
    if mistake == "last only":
        return [run[-1] for run in runs]
    return [[torch.tensor(v) for v in run] for run in runs] if mistake == "tensors" else runs


def test_check_lr_sweep_passes_a_hand_written_sweep():
    result = check_lr_sweep(lr_sweep_by_hand)
    assert result.startswith("✓") and "3 learning rates, 4 Adam steps each" in result
    assert_skeleton_is_friendly(check_lr_sweep, "lr_sweep")


@pytest.mark.parametrize("mistake, match", [
    ("fit", r"called `unet_lib.fit`"),
    ("one model", r"differ from the check's runs of the same experiment\nHint 1 of 2: each learning rate went on "
                  r"training the model of the one before"),
    ("copied once", r"\nHint 1 of 2: each learning rate went on training the model of the one before"),
    ("sgd", r"\nHint: those are SGD's steps"),
    ("unweighted", r"\nHint: that is the unweighted loss"),
    ("fresh weights", r"at lr = 0.0001 the loss of step 1 already differs from the check's run\nHint 1 of 2: the "
                      r"first loss depends only on the starting weights"),
    ("eval mode", r"at lr = 0.0001 the loss of step 1 already differs"),
    ("optimizer of the first copy", r"at lr = 0.01 your losses agree with the check's run up to step 1 and differ "
                                    r"from step 2 on\nHint 1 of 2: the start is right, the updates are not"),
    ("one step too few", r"the run at lr = 0.0001 has 3 losses; 4 steps give 4 losses, one per step\nHint 1 of 2: "
                         r"one step too few"),
    ("one step too many", r"has 5 losses; .*\nHint 1 of 2: one step too many"),
    ("last only", r"returned one number per learning rate; expected each run's losses, step by step"),
    ("tensors", r"holds Tensor values; expected floats\nHint: record the float"),
    ("in place", r"lr_sweep changed the model it was given"),
])
def test_check_lr_sweep_fails_a_broken_sweep(mistake, match):
    if mistake == "fit":
        def answer(model, batch, lrs, steps):
            library_fit(copy.deepcopy(model), None, batch)
            return lr_sweep_by_hand(model, batch, lrs, steps)
    else:
        def answer(model, batch, lrs, steps):
            return lr_sweep_by_hand(model, batch, lrs, steps, mistake)
    with pytest.raises(CheckError, match=match) as info:
        check_lr_sweep(answer)
    assert "expected [" not in str(info.value)   # an experiment: the expected values are never printed


@pytest.mark.parametrize("mistake, hint_2", [
    ("one model", r"\nHint 2 of 2: every run starts from the weights of the model you were given, and the model you "
                  r"were given must still have them when you return: what do you train instead\?"),
    ("optimizer of the first copy", r"\nHint 2 of 2: an optimizer holds the parameters it updates"),
    ("in place", r"\nHint 2 of 2: Python's copy module makes deep copies"),
])
def test_check_lr_sweep_hint_2_names_a_tool_not_the_line(mistake, hint_2):
    def answer(model, batch, lrs, steps):
        return lr_sweep_by_hand(model, batch, lrs, steps, mistake)
    with pytest.raises(CheckError):
        check_lr_sweep(answer)
    with pytest.raises(CheckError, match=hint_2) as second:
        check_lr_sweep(answer)
    assert "deepcopy(" not in str(second.value) and "Adam(" not in str(second.value)   # no solving line
