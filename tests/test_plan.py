"""The plan of python -m unet_lib.train --images (#21): tiles per epoch and epochs from the data,
the warning for settings that take too few steps, the cut to a time budget, TileEpochs, time_steps."""

import numpy as np
import pytest
import torch

from unet_lib import augment
from unet_lib.config import TrainConfig
from unet_lib.data import ToyCells
from unet_lib.files import folder
from unet_lib.model import UNet
from unet_lib.train.plan import (EPOCHS_WANTED, MIN_EPOCHS, TARGET_STEPS, Plan, TileEpochs, Timing, plan_training,
                                 time_steps, within_budget)


def test_a_small_folder_gets_more_tiles_per_epoch_and_the_target_steps():
    plan, warning = plan_training(images=6, cover=6, batch_size=4)          # eight 128x128 crops, 6 to train
    assert warning is None and plan.chosen == "chosen from the data"
    assert plan.tiles_per_epoch == TARGET_STEPS // EPOCHS_WANTED * 4         # 80: 20 steps per epoch
    assert plan.epochs == EPOCHS_WANTED and plan.steps == TARGET_STEPS


def test_a_large_folder_gets_fewer_epochs_of_at_most_a_fifth_of_the_steps():
    plan, _ = plan_training(images=40, cover=1000, batch_size=4)            # 1000 tiles cover the images once
    assert plan.tiles_per_epoch == TARGET_STEPS // MIN_EPOCHS * 4 and plan.epochs == MIN_EPOCHS
    mid, _ = plan_training(images=20, cover=200, batch_size=4)               # one cover: 50 steps, 10 epochs
    assert (mid.tiles_per_epoch, mid.steps_per_epoch, mid.epochs, mid.steps) == (200, 50, 10, TARGET_STEPS)


def test_given_settings_that_take_fewer_steps_are_warned_with_the_flags_to_change():
    plan, warning = plan_training(images=6, cover=6, batch_size=4, epochs=50)   # the old default: 1 step per epoch
    assert plan.steps == 50 and plan.chosen == "--epochs as given"
    assert "give 50 optimizer steps; models need about" in warning
    assert f"raise --epochs to {TARGET_STEPS}" in warning and "--tiles-per-image to 7" in warning
    plan, warning = plan_training(images=6, cover=6, batch_size=4, epochs=40, tiles_per_image=8)
    assert (plan.steps, plan.chosen, warning is not None) == (480, "as given", True)
    plan, warning = plan_training(images=6, cover=6, batch_size=4, tiles_per_image=8)   # epochs chosen
    assert warning is None and plan.steps_per_epoch == 12 and plan.epochs == -(-TARGET_STEPS // 12)


def test_steps_per_epoch_follow_the_loader():
    assert Plan(2, 3, 4, 1).steps_per_epoch == 1                             # fewer tiles than a batch: one step
    assert Plan(6, 18, 4, 1).steps_per_epoch == 4                            # drop_last
    assert Plan(6, 18, 4, 1, world_size=2).steps_per_epoch == 2              # 9 tiles per rank


def test_within_budget_keeps_a_plan_that_fits_and_cuts_whole_epochs_otherwise():
    plan = Plan(6, 80, 4, 25)                                                # 20 steps per epoch
    fits, note = within_budget(plan, Timing(0.5, 1.0, 0.0), seconds_left=600)
    assert fits == plan and "the plan needs about 4.6 of the 10.0 minutes left" in note
    cut, note = within_budget(plan, Timing(0.5, 1.0, 0.0), seconds_left=120)   # 11 s per epoch
    assert (cut.epochs, cut.tiles_per_epoch, cut.chosen) == (10, 80, "cut to fit the budget")
    assert cut.epochs * (20 * 0.5 + 1.0) <= 120 and "200 steps end within the budget" in note
    few, _ = within_budget(plan, Timing(0.5, 1.0, 0.0), seconds_left=30)      # MIN_EPOCHS of fewer steps
    assert few.epochs == MIN_EPOCHS and few.steps_per_epoch == 10 and few.epochs * (few.steps_per_epoch * 0.5 + 1) <= 30
    setup, _ = within_budget(plan, Timing(0.5, 1.0, 0.1), seconds_left=120)   # 80 tiles drawn twice: 16 s
    assert setup.epochs == 9                                                  # (120 - 16) // 11
    with pytest.raises(ValueError, match="holds not one training step and validation"):
        within_budget(plan, Timing(5.0, 3.0, 0.0), seconds_left=6)


def test_tile_epochs_take_the_images_in_turn():
    data = [{"i": i} for i in range(5)]
    epochs = TileEpochs(data, 2)
    assert len(epochs) == 2
    seen = [epochs[j]["i"] for _ in range(5) for j in range(2)]               # five epochs of two tiles
    assert seen == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
    repeated = TileEpochs(data, 10)                                           # two of each image per epoch
    assert sorted(repeated[j]["i"] for j in range(10)) == sorted(list(range(5)) * 2)


def test_augmented_tile_epochs_compute_eq2_once_per_tile(tmp_path, monkeypatch):
    import tifffile
    for d in ("images", "masks"):
        (tmp_path / d).mkdir()
    for i in range(2):
        sample = ToyCells(1, size=48, seed=i, n_cells=(3, 5), radius=(4.0, 7.0))[0]
        tifffile.imwrite(tmp_path / "images" / f"c{i}.tif", sample["image"][0].numpy())
        tifffile.imwrite(tmp_path / "masks" / f"c{i}.tif", sample["instances"].numpy().astype(np.uint16))
    calls = {"folder": 0, "augment": 0}

    def counting(where, real):
        def wrapped(*args, **kwargs):
            calls[where] += 1
            return real(*args, **kwargs)
        return wrapped
    monkeypatch.setattr(folder, "targets_from_instances", counting("folder", folder.targets_from_instances))
    monkeypatch.setattr(augment, "targets_from_instances", counting("augment", augment.targets_from_instances))
    data = folder.ImageFolder(tmp_path / "images", tmp_path / "masks", tile_size=36)
    augmented = augment.Augmented(TileEpochs(data, 6), seed=0)
    for j in range(6):
        augmented[j]                                                          # first access: the rule, checked
    calls.update(folder=0, augment=0)
    for j in range(6):
        augmented[j]
    assert calls == {"folder": 0, "augment": 6}                              # the untargeted tile, then Eq. 2 once


def test_time_steps_times_a_copy_and_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    model = UNet(depth=1, base_channels=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    toy = dict(size=36, n_cells=(3, 5), radius=(4.0, 7.0))
    timing = time_steps(model, ToyCells(4, **toy), ToyCells(1, seed=1, **toy),
                        TrainConfig(batch_size=2, device="cpu", progress=False), steps=2)
    assert timing.step > 0 and timing.validation > 0 and timing.draw > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
