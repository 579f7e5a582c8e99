"""The command lines for your own images (#13): python -m unet_lib.train --images and
python -m unet_lib.predict, called in-process as main(argv) on tiny generated folders."""

import copy
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import tifffile
import torch

from unet_lib import predict, train
from unet_lib.baselines import postprocess_instances
from unet_lib.checkpoint import load_checkpoint, load_optimizer_state
from unet_lib.data import draw_cells
from unet_lib.metrics import instances_from_classes
from unet_lib.model import UNet

SIZES = [(40, 50), (43, 48), (46, 46), (49, 44)]             # odd and even, none square but one
TINY = ["--depth", "1", "--base-channels", "4", "--tile", "36", "--device", "cpu", "--seed", "0"]


def _cells(seed, h, w):
    image, instances = draw_cells(max(h, w), np.random.default_rng(seed), n_cells=(3, 5), radius=(4.0, 7.0))
    return image[:h, :w], instances[:h, :w]


def write_instance_folder(root):
    """root/images/*.tif (uint16) and root/masks/*.tif (instance ids) of the four SIZES; returns root."""
    for d in ("images", "masks"):
        (root / d).mkdir()
    for i, (h, w) in enumerate(SIZES):
        image, instances = _cells(i, h, w)
        tifffile.imwrite(root / "images" / f"cell_{i}.tif", (image * 60000).astype(np.uint16))
        tifffile.imwrite(root / "masks" / f"cell_{i}.tif", instances.astype(np.uint16))
    return root


@pytest.fixture
def instance_folder(tmp_path):
    """images/*.tif (uint16) and masks/*.tif (instance ids) of four sizes."""
    return write_instance_folder(tmp_path)


@pytest.fixture
def class_folder(tmp_path):
    """classes/images/*.tif and classes/masks/*.tif with 3 classes: background, and cells of two kinds."""
    base = tmp_path / "classes"
    for d in ("images", "masks"):
        (base / d).mkdir(parents=True)
    for i, (h, w) in enumerate(SIZES):
        image, instances = _cells(10 + i, h, w)
        classes = np.where(instances > 0, instances % 2 + 1, 0).astype(np.uint8)
        tifffile.imwrite(base / "images" / f"img_{i}.tif", image.astype(np.float32))
        tifffile.imwrite(base / "masks" / f"img_{i}.tif", classes)
    return base


def _train(folder, out, *extra):
    train.main(["--images", str(folder / "images"), "--masks", str(folder / "masks"), "--out", str(out),
                "--epochs", "1", "--val-fraction", "0.5", *TINY, *extra])


def test_instance_round_trip(instance_folder, capsys):
    model_path = instance_folder / "model.pt"
    _train(instance_folder, model_path)
    printed = capsys.readouterr().out
    assert "found 4 image/mask pairs: 1 channel(s)" in printed and "instance masks:" in printed
    assert "validation (2 image(s))" in printed and f"wrote {model_path}" in printed
    checkpoint = load_checkpoint(model_path)
    assert checkpoint.meta["mask_kind"] == "instances" and checkpoint.meta["tile_size"] == 36
    assert (checkpoint.meta["low"], checkpoint.meta["high"], checkpoint.meta["in_channels"]) == (1.0, 99.8, 1)
    assert checkpoint.history["epoch"] == [1.0] and "best_epoch" in checkpoint.history
    out = instance_folder / "pred"
    predict.main([str(model_path), str(instance_folder / "images"), "--out", str(out), "--device", "cpu"])
    for i, (h, w) in enumerate(SIZES):
        labels = tifffile.imread(out / f"cell_{i}.tif")
        assert labels.shape == (h, w) and labels.dtype == np.uint16
        # instance labels: 1..n, each a connected component
        assert set(np.unique(labels)) == set(range(int(labels.max()) + 1))
    assert sorted(json.loads((out / predict.MANIFEST).read_text())["written"]) == [f"cell_{i}.tif" for i in range(4)]


def test_three_class_round_trip_with_probabilities(class_folder, capsys):
    model_path = class_folder / "model.pt"
    _train(class_folder, model_path, "--classes", "3")
    printed = capsys.readouterr().out
    assert "class maps, K = 3" in printed and "mean_iou" in printed
    checkpoint = load_checkpoint(model_path)
    assert checkpoint.config.augment                                   # class maps are augmented too
    assert checkpoint.model.num_classes == 3 and checkpoint.meta["mask_kind"] == "classes"
    assert "val_mean_iou" in checkpoint.history and "val_f1" not in checkpoint.history
    out = class_folder / "pred"
    predict.main([str(model_path), str(class_folder / "images"), "--out", str(out), "--probabilities"])
    for i, (h, w) in enumerate(SIZES):
        classes = tifffile.imread(out / f"img_{i}.tif")
        probs = tifffile.imread(out / f"img_{i}_probs.tif")
        assert classes.shape == (h, w) and classes.max() <= 2
        assert probs.shape == (3, h, w) and probs.dtype == np.float32
        np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
        np.testing.assert_array_equal(probs.argmax(0), classes)


def test_predicts_an_image_whose_size_is_not_a_valid_input_size(instance_folder, tmp_path):
    model_path = instance_folder / "model.pt"
    _train(instance_folder, model_path)
    h, w = 41, 47
    with pytest.raises(ValueError, match="not valid"):
        UNet(depth=1, base_channels=4).output_size((h, w))
    (tmp_path / "odd").mkdir()
    image, _ = _cells(7, h, w)
    tifffile.imwrite(tmp_path / "odd" / "odd.tif", image.astype(np.float32))
    predict.main([str(model_path), str(tmp_path / "odd"), "--out", str(tmp_path / "odd_pred")])
    assert tifffile.imread(tmp_path / "odd_pred" / "odd.tif").shape == (h, w)


def test_train_refuses_to_overwrite_an_out_it_did_not_write(instance_folder, capsys):
    out = instance_folder / "model.pt"
    out.write_text("someone's notes")
    with pytest.raises(SystemExit) as exit_info:
        _train(instance_folder, out)
    assert exit_info.value.code == 2
    assert "argument --out" in capsys.readouterr().err and out.read_text() == "someone's notes"
    _train(instance_folder, out, "--force")
    assert load_checkpoint(out).history["epoch"] == [1.0]
    # --resume of the same file continues it: one history over both runs
    _train(instance_folder, out, "--resume", str(out))
    assert load_checkpoint(out).history["epoch"] == [1.0, 2.0]


def test_predict_refuses_to_overwrite_files_it_did_not_write(instance_folder, capsys):
    model_path = instance_folder / "model.pt"
    _train(instance_folder, model_path)
    out = instance_folder / "pred"
    out.mkdir()
    (out / "cell_1.tif").write_bytes(b"not ours")
    args = [str(model_path), str(instance_folder / "images"), "--out", str(out)]
    with pytest.raises(SystemExit) as exit_info:
        predict.main(args)
    assert exit_info.value.code == 2 and "cell_1.tif (not written by this command)" in capsys.readouterr().err
    assert (out / "cell_1.tif").read_bytes() == b"not ours"
    predict.main(args + ["--force"])
    predict.main(args)                                       # its own files: rewritten without --force
    assert tifffile.imread(out / "cell_1.tif").shape == SIZES[1]


@pytest.mark.parametrize("argv, flag, message", [
    (["--tile", "37"], "--tile", "nearest valid sizes: 36, 38"),
    (["--epochs", "0"], "--epochs", "must be > 0"),
    (["--val-fraction", "1.5"], "--val-fraction", r"must be in \[0, 1\)"),
    (["--classes", "1"], "--classes", "K must be >= 2"),
    (["--max-minutes", "soon"], "--max-minutes", "'soon' is not a number"),
    (["--device", "gpu7"], "--device", "not a torch device"),
])
def test_train_bad_arguments_name_the_flag(instance_folder, capsys, argv, flag, message):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--images", str(instance_folder / "images"), "--masks", str(instance_folder / "masks"),
                    "--out", str(instance_folder / "m.pt"), "--depth", "1", *argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"argument {flag}" in err
    assert re.search(message, err)


def test_train_folder_flags_without_images_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--masks", "masks", "--tile", "36"])
    assert exit_info.value.code == 2 and "--masks, --tile need --images" in capsys.readouterr().err


def test_train_with_images_needs_masks_and_out(instance_folder, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--images", str(instance_folder / "images"), "--out", str(instance_folder / "m.pt")])
    assert exit_info.value.code == 2 and "argument --masks: required with --images" in capsys.readouterr().err


def test_train_data_errors_exit_with_the_library_message(instance_folder):
    (instance_folder / "masks" / "cell_3.tif").unlink()
    with pytest.raises(SystemExit, match="1 image in .* without a mask"):
        _train(instance_folder, instance_folder / "m.pt")


def test_predict_bad_tile_names_the_flag(instance_folder, capsys):
    model_path = instance_folder / "model.pt"
    _train(instance_folder, model_path)
    with pytest.raises(SystemExit) as exit_info:
        predict.main([str(model_path), str(instance_folder / "images"), "--out", str(instance_folder / "p"),
                      "--tile", "37"])
    assert exit_info.value.code == 2 and "argument --tile" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        predict.main([str(instance_folder / "missing.pt"), str(instance_folder / "images"), "--out", "p"])
    assert exit_info.value.code == 2 and "no checkpoint at" in capsys.readouterr().err


def test_predict_help_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "unet_lib.predict", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "IMAGES_DIR" in result.stdout and "--probabilities" in result.stdout


def test_rgb_pngs_train_with_augmentation(tmp_path, capsys):
    import imageio.v3 as iio
    for d in ("images", "masks"):
        (tmp_path / d).mkdir()
    for i, (h, w) in enumerate(SIZES[:3]):
        image, instances = _cells(20 + i, h, w)
        rgb = (np.stack([image, image**2, 1 - image], -1) * 255).astype(np.uint8)   # (H, W, 3)
        iio.imwrite(tmp_path / "images" / f"rgb_{i}.png", rgb)
        iio.imwrite(tmp_path / "masks" / f"rgb_{i}.png", instances.astype(np.uint8))
    out = tmp_path / "rgb.pt"
    train.main(["--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"), "--out", str(out),
                "--epochs", "2", *TINY])
    assert "3 channel(s)" in capsys.readouterr().out
    checkpoint = load_checkpoint(out)
    assert checkpoint.model.in_channels == 3 and checkpoint.history["epoch"] == [1.0, 2.0]
    assert checkpoint.config.augment                                   # every channel alike
    predict.main([str(out), str(tmp_path / "images"), "--out", str(tmp_path / "pred")])
    assert tifffile.imread(tmp_path / "pred" / "rgb_0.tif").shape == SIZES[0]


def test_resume_refuses_a_model_for_other_data(instance_folder, class_folder):
    model_path = instance_folder / "model.pt"
    _train(instance_folder, model_path)
    with pytest.raises(SystemExit, match="is a model for 1-channel images and 2 classes"):
        _train(class_folder, class_folder / "other.pt", "--classes", "3", "--resume", str(model_path))


def test_tiles_per_image(instance_folder, capsys):
    model_path = instance_folder / "model.pt"
    _train(instance_folder, model_path)         # --epochs 1 alone: tiles that cover the 2 training images once
    printed = capsys.readouterr().out
    pixels = sum(h * w for h, w in SIZES[:2])   # the training images (2 of 4) are two of SIZES; about 2 covers
    assert f"plan (--epochs as given): 2 training image(s), {max(2, round(pixels / 36**2))} random 36x36 tiles" in printed
    _train(instance_folder, model_path, "--tiles-per-image", "3", "--force")
    printed = capsys.readouterr().out
    assert "plan (as given): 2 training image(s), 6 random 36x36 tiles per epoch (3 per image), batch 4: 1 steps per " \
           "epoch x 1 epochs = 1 optimizer steps" in printed
    assert "warning: --epochs 1 and --tiles-per-image 3 give 1 optimizer steps; models need about" in printed
    assert load_checkpoint(model_path).meta["tiles_per_image"] == 3


def test_resume_continues_the_stored_optimizer_state(instance_folder, capsys, monkeypatch):
    out = instance_folder / "model.pt"
    _train(instance_folder, out)
    saved = load_optimizer_state(out)
    steps = float(saved["state"][0]["step"])
    assert steps > 0
    started, real_fit = [], train.fit

    def spy(model, train_data, val_data, config, optimizer=None):
        started.append(copy.deepcopy(optimizer.state_dict()))        # what the resumed run starts from
        return real_fit(model, train_data, val_data, config, optimizer=optimizer)

    monkeypatch.setattr(train.own_images, "fit", spy)   # the fit that the command line calls
    capsys.readouterr()
    _train(instance_folder, out, "--resume", str(out))
    assert f"resuming {out}: its weights and its adam optimizer state" in capsys.readouterr().out
    for i, state in saved["state"].items():
        assert torch.equal(started[0]["state"][i]["exp_avg"], state["exp_avg"])
        assert float(started[0]["state"][i]["step"]) == steps
    assert float(load_optimizer_state(out)["state"][0]["step"]) == 2 * steps   # and went on from there
    assert load_checkpoint(out).history["epoch"] == [1.0, 2.0]


def test_resume_without_optimizer_state_or_with_another_optimizer_says_it_starts_a_fresh_one(instance_folder,
                                                                                             capsys):
    out = instance_folder / "model.pt"
    _train(instance_folder, out)
    saved = torch.load(out, weights_only=True)
    del saved["optimizer"]                                       # as files written before #13 were
    torch.save(saved, out)
    capsys.readouterr()
    _train(instance_folder, out, "--resume", str(out))
    assert f"note: {out} holds no optimizer state" in capsys.readouterr().out
    assert load_checkpoint(out).history["epoch"] == [1.0, 2.0] and load_optimizer_state(out) is not None
    _train(instance_folder, out, "--resume", str(out), "--optimizer", "sgd")
    assert f"note: {out} was trained with adam, this run uses sgd" in capsys.readouterr().out
    assert "momentum_buffer" in load_optimizer_state(out)["state"][0]


# -- #21: the plan, the budget, --init, --channel-axis, --val-region, normalisation, predict's records ----

from unet_lib.checkpoint import COURSE_CHECKPOINT   # noqa: E402
from unet_lib.train import own_images   # noqa: E402
from unet_lib.train.plan import Timing   # noqa: E402


def test_the_plan_is_printed_and_progress_in_a_log_is_one_line_per_epoch(instance_folder, capsys):
    _train(instance_folder, instance_folder / "model.pt", "--epochs", "3")
    out, err = capsys.readouterr()
    assert "plan (--epochs as given): 2 training image(s)" in out and "x 3 epochs = 3 optimizer steps" in out
    assert "\r" not in err and err.count("training: epoch") == 3 and "training: epoch 3 of 3: train_loss" in err
    assert "val_f1" in err.splitlines()[-1]
    predict.main([str(instance_folder / "model.pt"), str(instance_folder / "images"), "--out",
                  str(instance_folder / "pred")])
    err = capsys.readouterr().err
    assert "\r" not in err and err.count("predicting: ") == 4 and "predicting: 4/4 cell_3.tif: " in err


def test_the_time_budget_cuts_the_plan_to_whole_epochs(instance_folder, capsys, monkeypatch):
    monkeypatch.setattr(own_images, "time_steps", lambda *args, **kwargs: Timing(step=10.0, validation=1.0, draw=0.0))
    out = instance_folder / "model.pt"
    _train(instance_folder, out, "--epochs", "20", "--tiles-per-image", "2", "--max-minutes", "1")
    printed = capsys.readouterr().out
    # 1 step and a validation per epoch, 11 s "measured": of the minute, about 55 s are left after reading and
    # the reserve for the last validation and the save: 4 epochs, not 20
    assert "time budget 1 min for the whole command: 10.00 s per step and 1.00 s per validation measured here" in printed
    epochs = int(re.search(r"plan \(cut to fit the budget\): .* x (\d+) epochs", printed).group(1))
    assert 3 <= epochs <= 5
    assert load_checkpoint(out).history["epoch"] == [float(e) for e in range(1, epochs + 1)]
    monkeypatch.setattr(own_images, "time_steps", lambda *args, **kwargs: Timing(step=100.0, validation=1.0, draw=0.0))
    with pytest.raises(SystemExit, match="--max-minutes 1: the time left .* holds not one training step"):
        _train(instance_folder, out, "--epochs", "20", "--max-minutes", "1", "--force")


def test_resume_reports_this_runs_epochs_and_what_it_resumed_from(instance_folder, capsys):
    out = instance_folder / "model.pt"
    _train(instance_folder, out, "--epochs", "2")
    capsys.readouterr()
    _train(instance_folder, out, "--resume", str(out))
    printed = capsys.readouterr().out
    assert f"resumed from {out}: 2 epoch(s) trained before, the weights of epoch" in printed
    assert "trained 1 epoch(s) in" in printed                              # this run's, not 3
    checkpoint = load_checkpoint(out)
    assert checkpoint.history["epoch"] == [1.0, 2.0, 3.0] and checkpoint.meta["resumed_from"] == str(out)


def test_init_starts_from_a_checkpoints_weights_when_the_channels_allow(instance_folder, class_folder, capsys):
    out = instance_folder / "init.pt"
    common = ["--images", str(instance_folder / "images"), "--masks", str(instance_folder / "masks"),
              "--epochs", "1", "--tiles-per-image", "1", "--val-fraction", "0.5", "--device", "cpu"]
    train.main(common + ["--out", str(out), "--init", str(COURSE_CHECKPOINT)])
    assert f"starting from the weights of {COURSE_CHECKPOINT} (depth 3, 16 channels" in capsys.readouterr().out
    course = load_checkpoint(COURSE_CHECKPOINT).model
    model = load_checkpoint(out).model
    assert model.config == course.config and load_checkpoint(out).meta["init"] == str(COURSE_CHECKPOINT)
    assert not torch.equal(model.outc.weight, course.outc.weight)             # trained on from there
    # three classes: every layer but the last 1x1 convolution
    train.main(["--images", str(class_folder / "images"), "--masks", str(class_folder / "masks"), "--classes", "3",
                "--epochs", "1", "--tiles-per-image", "1", "--device", "cpu", "--out", str(class_folder / "k3.pt"),
                "--init", str(COURSE_CHECKPOINT)])
    assert "but its last 1x1 convolution (2 classes; the data has 3), which starts new" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        train.main(common + ["--out", str(out), "--init", str(out), "--resume", str(out)])
    assert exit_info.value.code == 2 and "argument --init: not with --resume" in capsys.readouterr().err


def test_init_refuses_images_of_other_channels(tmp_path):
    for d in ("images", "masks"):
        (tmp_path / d).mkdir()
    image, instances = _cells(3, 40, 44)
    tifffile.imwrite(tmp_path / "images" / "rgb.tif", (np.stack([image] * 3, -1) * 255).astype(np.uint8))
    tifffile.imwrite(tmp_path / "masks" / "rgb.tif", instances.astype(np.uint16))
    with pytest.raises(SystemExit, match=r"--init .* takes 1-channel images, the images in .* have 3: .*Convert"):
        train.main(["--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"), "--out",
                    str(tmp_path / "m.pt"), "--init", str(COURSE_CHECKPOINT), "--val-fraction", "0"])


def test_channel_axis_and_a_validation_region_of_one_image(tmp_path, capsys):
    for d in ("images", "masks"):
        (tmp_path / d).mkdir()
    image, instances = _cells(4, 48, 60)
    stack = np.stack([image * (k + 1) / 5 for k in range(5)]).astype(np.float32)   # (5, H, W): 5 channels
    tifffile.imwrite(tmp_path / "images" / "one.tif", stack)
    tifffile.imwrite(tmp_path / "masks" / "one.tif", instances.astype(np.uint16))
    args = ["--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"), "--out", str(tmp_path / "m.pt"),
            "--epochs", "1", *TINY]
    with pytest.raises(SystemExit, match=r"pass --channel-axis 0 \(or -1\) if it really has 5"):
        train.main(args + ["--val-fraction", "0"])
    with pytest.raises(SystemExit, match="a split needs >= 2 images"):
        train.main(args + ["--channel-axis", "0"])                            # one image: no second to validate on
    train.main(args + ["--channel-axis", "0", "--val-region", "right", "--val-fraction", "0.25"])
    assert "validating on the right 25% of every image" in capsys.readouterr().out
    meta = load_checkpoint(tmp_path / "m.pt").meta
    assert (meta["channel_axis"], meta["val_region"], meta["in_channels"]) == (0, "right 0.25", 5)
    predict.main([str(tmp_path / "m.pt"), str(tmp_path / "images"), "--out", str(tmp_path / "pred")])
    assert tifffile.imread(tmp_path / "pred" / "one.tif").shape == (48, 60)


def test_dark_sparse_objects_get_percentiles_that_keep_them(tmp_path, capsys):
    for d in ("images", "masks"):
        (tmp_path / d).mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        image = 30000 + 2000 * rng.standard_normal((64, 64))
        labels = np.zeros((64, 64), np.uint16)
        labels[10 + 20 * i : 12 + 20 * i, 10:19] = 2                         # one dark rod, 18 px: 0.4%
        image[labels > 0] = 8000 + 500 * rng.standard_normal(18)
        tifffile.imwrite(tmp_path / "images" / f"r{i}.tif", image.astype(np.uint16))
        tifffile.imwrite(tmp_path / "masks" / f"r{i}.tif", labels)
    args = ["--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"), "--epochs", "1", *TINY]
    train.main(args + ["--out", str(tmp_path / "auto.pt")])
    printed = capsys.readouterr().out
    assert "normalisation: 100.0% of the objects' pixels lie at or below the 1st percentile" in printed
    assert "--percentiles 1 99.8 forces the others" in printed
    assert load_checkpoint(tmp_path / "auto.pt").meta["low"] < 1.0            # stored; predict applies it
    train.main(args + ["--out", str(tmp_path / "forced.pt"), "--percentiles", "1", "99.8"])
    assert "warning: normalisation by the 1st and 99.8th percentiles: 100.0%" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "forced.pt").meta["low"] == 1.0
    with pytest.raises(SystemExit):
        train.main(args + ["--out", str(tmp_path / "bad.pt"), "--percentiles", "50", "10"])
    assert "argument --percentiles: LOW HIGH with 0 <= LOW < HIGH <= 100, got 50 10" in capsys.readouterr().err


def test_predict_refuses_files_of_another_model_or_other_settings(instance_folder, capsys):
    first, second = instance_folder / "first.pt", instance_folder / "second.pt"
    _train(instance_folder, first)
    _train(instance_folder, second, "--seed", "1")
    out = instance_folder / "pred"
    images = str(instance_folder / "images")
    predict.main([str(first), images, "--out", str(out)])
    predict.main([str(first), images, "--out", str(out)])                  # the same model and settings: replaced
    for argv, why in (([str(second), images], "from another model"),
                      ([str(first), images, "--no-postprocess"], "other settings")):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            predict.main(argv + ["--out", str(out)])
        assert exit_info.value.code == 2 and f"cell_0.tif ({why}" in capsys.readouterr().err
    predict.main([str(second), images, "--out", str(out), "--force"])
    record = json.loads((out / predict.MANIFEST).read_text())["written"]["cell_0.tif"]
    assert record["model"] == predict._sha256(second) and record["settings"]["postprocess"] is True


def test_predict_post_processes_to_the_training_objects_size(instance_folder, monkeypatch):
    from unet_lib.baselines import ObjectSize
    model_path = instance_folder / "model.pt"
    _train(instance_folder, model_path)
    model, _, _, meta = load_checkpoint(model_path)
    assert meta["object_area"] > 0 and meta["object_radius"] > 0
    image = tifffile.imread(instance_folder / "images" / "cell_0.tif")[None]
    raw, probs = predict.predict_image(model, image, meta, postprocess=False)
    big = dict(meta, object_area=10.0 * meta["object_area"])                  # objects ten times as large
    filtered, _ = predict.predict_image(model, image, big)
    expected = postprocess_instances(probs.argmax(0), ObjectSize(big["object_area"], big["object_radius"], 1,
                                                                 big["object_large_area"]))
    np.testing.assert_array_equal(filtered, expected)
    old = {k: v for k, v in meta.items() if not k.startswith("object")}    # a checkpoint of before #21
    np.testing.assert_array_equal(predict.predict_image(model, image, old)[0], raw)


def test_predict_instances_turns_three_classes_into_cells(class_folder, instance_folder, capsys):
    from unet_lib.data import interior_border_classes
    for mask in (class_folder / "masks").iterdir():                          # background, interior, border
        tifffile.imwrite(mask, interior_border_classes(tifffile.imread(mask).astype(np.int64)).astype(np.uint8))
    model_path = class_folder / "model.pt"
    _train(class_folder, model_path, "--classes", "3")
    predict.main([str(model_path), str(class_folder / "images"), "--out", str(class_folder / "cells"), "--instances",
                  "--probabilities"])
    probs = tifffile.imread(class_folder / "cells" / "img_0_probs.tif")
    model, _, _, meta = load_checkpoint(model_path)
    cells = postprocess_instances(instances_from_classes(probs.argmax(0)), predict.object_size_of(meta), split=False)
    np.testing.assert_array_equal(tifffile.imread(class_folder / "cells" / "img_0.tif"), cells)
    _train(instance_folder, instance_folder / "model.pt")
    capsys.readouterr()
    with pytest.raises(SystemExit):
        predict.main([str(instance_folder / "model.pt"), str(instance_folder / "images"), "--out",
                      str(instance_folder / "p"), "--instances"])
    assert "argument --instances: turns a map of three classes" in capsys.readouterr().err


def _boundaries(labels):
    """The oracle of an outline: object pixels with a 4-neighbour (inside the image) of another label,
    from scipy's minimum and maximum over the 4-neighbourhood (not unet_lib.viz.outlines)."""
    from scipy import ndimage
    cross = ndimage.generate_binary_structure(2, 1)
    low = ndimage.minimum_filter(labels, footprint=cross, mode="nearest")
    high = ndimage.maximum_filter(labels, footprint=cross, mode="nearest")
    return (labels > 0) & ((low != labels) | (high != labels))


def test_predict_overlays_draw_the_predicted_and_the_true_label_boundaries(instance_folder, capsys):
    import imageio.v3 as iio
    from unet_lib.viz import OUTLINE_COLOURS
    model_path = instance_folder / "model.pt"
    _train(instance_folder, model_path)
    out, images, masks = instance_folder / "pred", str(instance_folder / "images"), str(instance_folder / "masks")
    predict.main([str(model_path), images, "--out", str(out), "--overlays", "--masks", masks])
    assert "(and overlays)" in capsys.readouterr().out
    colours = {name: np.array(rgb, np.uint8) for name, rgb in OUTLINE_COLOURS.items()}
    for i, (h, w) in enumerate(SIZES):
        rgb = iio.imread(out / f"cell_{i}_overlay.png")                     # (H, W, 3) uint8
        ours = _boundaries(tifffile.imread(out / f"cell_{i}.tif").astype(np.int64))
        theirs = _boundaries(tifffile.imread(instance_folder / "masks" / f"cell_{i}.tif").astype(np.int64))
        assert rgb.shape == (h, w, 3) and ours.any() and theirs.any()
        for name, where in (("prediction", ours & ~theirs), ("truth", theirs & ~ours), ("both", ours & theirs)):
            np.testing.assert_array_equal((rgb == colours[name]).all(-1), where, err_msg=f"cell_{i} {name}")
        grey = ~(ours | theirs)
        assert (rgb[grey] == rgb[grey][:, :1]).all()                        # every other pixel is the grey image
    record = json.loads((out / predict.MANIFEST).read_text())["written"]
    assert record["cell_0_overlay.png"]["settings"]["masks"] == masks and "masks" not in record["cell_0.tif"]["settings"]
    # without --masks: only the predicted outlines; a re-run with other masks replaces nothing silently
    with pytest.raises(SystemExit) as exit_info:
        predict.main([str(model_path), images, "--out", str(out), "--overlays"])
    assert exit_info.value.code == 2 and "cell_0_overlay.png (other settings" in capsys.readouterr().err
    alone = instance_folder / "alone"
    predict.main([str(model_path), images, "--out", str(alone), "--overlays"])
    rgb = iio.imread(alone / "cell_1_overlay.png")
    ours = _boundaries(tifffile.imread(alone / "cell_1.tif").astype(np.int64))
    np.testing.assert_array_equal((rgb == colours["prediction"]).all(-1), ours)
    assert not (rgb == colours["truth"]).all(-1).any()


def test_predict_masks_are_refused_without_overlays_or_a_mask_for_every_image(instance_folder, capsys):
    model_path = instance_folder / "model.pt"
    _train(instance_folder, model_path)
    images, masks = str(instance_folder / "images"), instance_folder / "masks"
    (masks / "cell_3.tif").rename(instance_folder / "cell_3.tif")
    cases = [([], "argument --masks: the true outlines are drawn on the overlays; give --overlays too"),
             (["--overlays"], f"argument --masks: 1 image(s) in {images} without a mask in {masks}: cell_3.tif")]
    for extra, message in cases:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            predict.main([str(model_path), images, "--out", str(instance_folder / "p"), "--masks", str(masks), *extra])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (instance_folder / "p").exists()                               # refused before anything is written
    tifffile.imwrite(masks / "cell_3.tif", np.zeros((5, 5), np.uint16))      # a mask of another image's size
    with pytest.raises(SystemExit, match=r"cell_3.tif: its mask .*cell_3.tif is 5x5, the image 49x44; give the mask"):
        predict.main([str(model_path), images, "--out", str(instance_folder / "p"), "--overlays", "--masks",
                      str(masks)])
