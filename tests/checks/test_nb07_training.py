"""Tests for unet_lib.checks.nb07_training: ``check_train_step``, ``check_lr_sweep`` both ways.

Each check passes the library's implementation (or a correct one worked out here) and fails
deliberately broken versions with the intended message."""

import pytest
import torch
from checktools import assert_passes, assert_skeleton_is_friendly

from unet_lib import UNet, center_crop
from unet_lib.checks import (
    CheckError,
    check_lr_sweep,
    check_train_step,
)
from unet_lib.losses import weighted_cross_entropy
from unet_lib.tiling import padded_forward
from unet_lib.train import train_step


def train_step_by_hand(model, optimizer, batch, mistake=None):
    if mistake in ("unpadded", "cropped mask"):
        logits = model(batch["image"])                                   # smaller than the mask
    else:
        logits = padded_forward(model, batch["image"])
    mask, weight_map = batch["mask"], None if mistake == "unweighted" else batch["weight_map"]
    if mistake == "cropped mask":                                        # what the loss's error message suggests
        mask, weight_map = center_crop(mask, logits.shape[-2:]), center_crop(weight_map, logits.shape[-2:])
    loss = weighted_cross_entropy(logits, mask, weight_map)
    if mistake not in ("no zero_grad", "zero_grad after backward"):
        optimizer.zero_grad()
    if mistake != "no backward":
        loss.backward()
    if mistake == "zero_grad after backward":
        optimizer.zero_grad()
    if mistake != "no step":
        optimizer.step()
    return loss if mistake == "tensor" else loss.item()


def test_check_train_step_passes_the_library_and_a_hand_written_step():
    assert_passes(check_train_step, train_step)
    assert_passes(check_train_step, train_step_by_hand)
    assert_skeleton_is_friendly(check_train_step, "train_step")


@pytest.mark.parametrize("mistake, match", [
    ("unweighted", r"unweighted cross-entropy.*\nHint: pass batch\['weight_map'\]"),
    ("no zero_grad", r"after step 2 the weights .* differ.*\nHint: .*optimizer.zero_grad\(\)"),
    ("no step", r"weights did not change\nHint: call optimizer.step\(\) after loss.backward\(\)"),
    ("no backward", r"no gradient reached them\nHint: call loss.backward\(\)"),
    ("zero_grad after backward", r"gradients were zero when optimizer.step\(\) came\nHint: optimizer.zero_grad\(\) "
                                 r"after loss.backward\(\) erases the gradients just computed.*zero_grad\(\) first"),
    ("unpadded", r"ran the model on the unpadded 32x32 image.*ValueError.*\nHint: logits = padded_forward"),
    ("cropped mask", r"ran the model on the unpadded 32x32 image, so its loss leaves out.*\nHint: logits = padded_forward"
                     r".*do not crop the mask"),
    ("tensor", r"returned a tensor .*\nHint: return loss.item\(\)"),
])
def test_check_train_step_fails_a_broken_step(mistake, match):
    with pytest.raises(CheckError, match=match):
        check_train_step(lambda m, o, b: train_step_by_hand(m, o, b, mistake))


def lr_sweep_by_hand(lrs, batch, steps, seed, mistake=None):
    losses = []
    if mistake == "seed once":
        torch.manual_seed(seed)
    model = None
    for lr in lrs:
        if mistake != "seed once" and mistake != "no seed" and (model is None or mistake != "one model"):
            torch.manual_seed(seed)
        if model is None or mistake != "one model":
            model = UNet(depth=1, base_channels=4, batch_norm=True)
        optimizer = (torch.optim.SGD if mistake == "sgd" else torch.optim.Adam)(model.parameters(), lr=lr)
        history = []
        for _ in range(steps):
            history.append(train_step_by_hand(model, optimizer, batch, "unweighted" if mistake == "unweighted" else None))
        losses.append(history[0] if mistake == "first loss" else history[-1])
    return [torch.tensor(v) for v in losses] if mistake == "tensors" else losses


def test_check_lr_sweep_passes_a_hand_written_sweep():
    result = check_lr_sweep(lr_sweep_by_hand)
    assert result.startswith("✓") and "lr = 1e-05 moves the loss by less than 1%" in result
    assert_skeleton_is_friendly(check_lr_sweep, "lr_sweep")


@pytest.mark.parametrize("mistake, match", [
    ("first loss", r"\nHint: these are the losses of the first step"),
    ("one model", r"\nHint: each learning rate continued training the previous one's model"),
    ("seed once", r"\nHint: only the first model starts from the seed's weights"),
    ("no seed", r"\nHint: the first run already differs: torch.manual_seed\(seed\)"),
    ("sgd", r"\nHint: use torch.optim.Adam"),
    ("unweighted", r"\nHint: use the weighted loss"),
    ("tensors", r"expected floats\nHint: record the float"),
])
def test_check_lr_sweep_fails_a_broken_sweep(mistake, match):
    with pytest.raises(CheckError, match=match):
        check_lr_sweep(lambda lrs, batch, steps, seed: lr_sweep_by_hand(lrs, batch, steps, seed, mistake))
