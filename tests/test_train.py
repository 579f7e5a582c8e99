"""Tests for unet_lib.train: fit, evaluate, checkpoints and the command line."""

import copy
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unet_lib import UNet
from unet_lib.data import ToyCells
from unet_lib.metrics import instance_scores, iou, label_instances
from unet_lib.tiling import padded_forward
from unet_lib.train import (COURSE_CHECKPOINT, COURSE_MODEL, COURSE_TRAIN, Checkpoint, TrainConfig, evaluate, fit,
                            load_checkpoint, main, make_optimizer, save_checkpoint)

TINY = dict(depth=1, base_channels=4, batch_norm=True)


def _data(n=3, seed=0):
    return ToyCells(n, size=36, seed=seed, n_cells=(2, 4), radius=(4.0, 7.0))


def _model(seed=0, **kwargs):
    torch.manual_seed(seed)
    return UNet(**{**TINY, **kwargs})


def _config(**kwargs):
    return TrainConfig(**{"epochs": 2, "batch_size": 2, "progress": False, **kwargs})


def test_fit_returns_one_history_entry_per_epoch_and_learns():
    model = _model()
    history = fit(model, _data(4), _data(2, seed=1), _config(epochs=3, lr=1e-2))
    assert set(history) == {"epoch", "train_loss", "seconds", "val_loss", "val_iou", "val_f1", "val_merged",
                            "val_split"}
    assert all(len(v) == 3 for v in history.values())
    assert history["epoch"] == [1, 2, 3]
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert all(0 <= x <= 1 for x in history["val_iou"] + history["val_f1"])
    assert not model.training


@pytest.mark.parametrize("augment", [True, False])
def test_fit_trains_with_the_datasets_weight_map_settings(monkeypatch, augment):
    import unet_lib.train.step as train
    seen, real = [], train.weighted_cross_entropy

    def spy(logits, mask, weight_map=None, **kwargs):
        seen.append(weight_map)
        return real(logits, mask, weight_map, **kwargs)

    monkeypatch.setattr(train, "weighted_cross_entropy", spy)
    data = ToyCells(2, size=36, n_cells=(2, 4), radius=(4.0, 7.0), w0=0.0, class_weights=(1.0, 1.0))
    fit(_model(), data, None, _config(epochs=1, batch_size=1, augment=augment))
    assert len(seen) == 2 and all(torch.all(w == 1.0) for w in seen)   # not the paper's w0 = 10, balanced


def test_fit_without_validation_data():
    history = fit(_model(), _data(2), None, _config(epochs=1))
    assert set(history) == {"epoch", "train_loss", "seconds"}


@pytest.mark.parametrize("channels_last", [False, True])
def test_fit_is_deterministic(channels_last):
    runs = []
    for _ in range(2):
        model = _model(seed=3)
        history = fit(model, _data(3), None, _config(seed=5, channels_last=channels_last))
        runs.append((model.state_dict(), history["train_loss"]))
    (a, loss_a), (b, loss_b) = runs
    assert loss_a == loss_b
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_fit_seed_changes_the_run():
    losses = [fit(_model(), _data(3), None, _config(seed=s))["train_loss"] for s in (0, 1)]
    assert losses[0] != losses[1]


def test_fit_sgd_with_the_papers_momentum_and_unweighted_loss():
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    history = fit(model, _data(2), None, _config(optimizer="sgd", lr=1e-2, weighted=False, augment=False,
                                                 cosine=False))
    assert np.isfinite(history["train_loss"]).all()
    assert any(not torch.equal(p, q) for p, q in zip(before, model.parameters()))


def test_fit_errors():
    with pytest.raises(ValueError, match="optimizer='rmsprop' is not supported; use one of 'adam', 'sgd'"):
        fit(_model(), _data(2), None, _config(optimizer="rmsprop"))
    with pytest.raises(ValueError, match="epochs must be an integer >= 1, got 0"):
        fit(_model(), _data(2), None, _config(epochs=0))
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got 0.0"):
        fit(_model(), _data(2), None, _config(lr=0.0))
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        fit(_model(), _data(2), None, {"epochs": 1})
    with pytest.raises(TypeError, match="fit trains a unet_lib.UNet"):
        fit(torch.nn.Conv2d(1, 2, 1), _data(2), None, _config())


def test_evaluate_agrees_with_torch_and_the_metrics():
    model = _model()
    data = _data(3, seed=7)
    scores = evaluate(model, data, weighted=False, batch_size=2)
    images = torch.stack([data[i]["image"] for i in range(3)])
    mask = torch.stack([data[i]["mask"] for i in range(3)])
    with torch.no_grad():
        logits = padded_forward(model.eval(), images)
    assert scores["loss"] == pytest.approx(F.cross_entropy(logits, mask).item(), rel=1e-5)
    pred = logits.argmax(1).numpy()
    assert scores["iou"] == pytest.approx(iou(pred, mask.numpy()))
    instances = np.stack([data[i]["instances"].numpy() for i in range(3)])
    assert scores["f1"] == pytest.approx(instance_scores(label_instances(pred), instances).f1)
    weighted = evaluate(model, data, weighted=True)
    weight_map = torch.stack([data[i]["weight_map"] for i in range(3)])
    expected = (F.cross_entropy(logits, mask, reduction="none") * weight_map).mean().item()
    assert weighted["loss"] == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="at least one sample"):
        evaluate(model, [])


def test_checkpoint_round_trip(tmp_path):
    model = _model(seed=2, padding="valid")
    config = _config(epochs=1, seed=9)
    history = fit(model, _data(2), _data(1, seed=1), config)
    path = save_checkpoint(tmp_path / "sub" / "model.pt", model, config, history)
    loaded = load_checkpoint(path)
    assert isinstance(loaded, Checkpoint)
    assert loaded.config == config and loaded.history == history
    assert loaded.model.config == model.config and not loaded.model.training
    assert next(loaded.model.parameters()).device.type == "cpu"
    x = torch.rand(1, 1, model.min_input_size() + 4, model.min_input_size() + 4)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model.eval()(x))
    # weights_only=True can read it: plain containers only
    assert isinstance(torch.load(path, weights_only=True)["train_config"], dict)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*python -m unet_lib.train"):
        load_checkpoint(tmp_path / "missing.pt")
    model, config = _model(), _config()
    good = save_checkpoint(tmp_path / "good.pt", model, config, {"epoch": [1]})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:500])
    with pytest.raises(ValueError, match="could not be read as a checkpoint \\(truncated"):
        load_checkpoint(truncated)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="is not a unet_lib checkpoint"):
        load_checkpoint(other)
    saved = torch.load(good, weights_only=True)
    saved["model_config"]["base_channels"] = 8
    mismatched = tmp_path / "mismatched.pt"
    torch.save(saved, mismatched)
    with pytest.raises(ValueError, match="do not fit UNet.*size mismatch"):
        load_checkpoint(mismatched)
    with pytest.raises(TypeError, match="saves a unet_lib.UNet"):
        save_checkpoint(tmp_path / "x.pt", torch.nn.Conv2d(1, 1, 1), config, {})
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        save_checkpoint(tmp_path / "x.pt", model, dataclasses.asdict(config), {})


def test_course_checkpoint_is_shipped_and_loads():
    assert COURSE_CHECKPOINT.is_file() and COURSE_CHECKPOINT.stat().st_size < 5e6
    checkpoint = load_checkpoint(COURSE_CHECKPOINT)
    assert checkpoint.model.config == COURSE_MODEL
    assert checkpoint.config == COURSE_TRAIN, "the shipped checkpoint is stale: run python -m unet_lib.train"
    assert len(checkpoint.history["train_loss"]) == COURSE_TRAIN.epochs
    assert checkpoint.history["val_f1"][-1] >= 0.85


def test_command_line_trains_and_writes_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "cli.pt"
    main(["--epochs", "1", "--out", str(out), "--unweighted"])
    printed = capsys.readouterr().out
    assert "trained 1 epochs" in printed and "instance F1" in printed and str(out) in printed
    checkpoint = load_checkpoint(out)
    assert checkpoint.config.weighted is False and checkpoint.history["epoch"] == [1.0]


def test_the_course_models_receptive_field_is_the_number_the_course_states():
    # train.py's COURSE_MODEL comment and notebooks 01 and 07 say 92 px, measured by this function
    from unet_lib.model import receptive_field
    assert receptive_field(UNet(**{**COURSE_MODEL, "base_channels": 1}), 220)[0] == 92


def test_fit_stops_at_the_first_non_finite_loss():
    with pytest.raises(FloatingPointError, match=r"training stopped at epoch \d+, step \d+ of \d+: the loss is (nan|inf).*"
                                                  r"learning rate too high for SGD \(lr=1e\+12\)"):
        fit(_model(), _data(2), None, _config(optimizer="sgd", lr=1e12, epochs=3, batch_size=1, augment=False, cosine=False))


def test_fit_refuses_nan_images_and_masks_beyond_num_classes():
    nan = [dict(s) for s in (_data(2)[0], _data(2)[1])]
    nan[1]["image"] = nan[1]["image"].clone()
    nan[1]["image"][0, 3, 4] = float("nan")
    with pytest.raises(ValueError, match=r"train_data\[1\]\['image'\] must be finite, got 1 NaN value among its 1296 "
                                         r"\(the first at \(0, 3, 4\)\)"):
        fit(_model(), nan, None, _config(augment=False))
    five = [dict(s, mask=s["mask"] * 5) for s in (_data(2)[0], _data(2)[1])]
    with pytest.raises(ValueError, match=r"train_data\[0\]\['mask'\] has labels \[5\] .* num_classes=2"):
        fit(_model(), five, None, _config(augment=False))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(lr=float("inf")), ValueError, "lr must be a finite number > 0, got inf"),
    (dict(lr="0.01"), TypeError, r"lr must be a finite number > 0, got '0.01' \(str\)"),
    (dict(momentum=1.5), ValueError, r"momentum must be a finite number in \[0, 1\], got 1.5"),
    (dict(seed=-1), ValueError, r"seed must be an integer in \[0, .*got -1"),
    (dict(seed=None), TypeError, r"seed must be an integer in \[0, .*got None"),
    (dict(augment="no"), TypeError, "augment must be True or False, got 'no'"),
    (dict(batch_size=2.0), TypeError, "batch_size must be an integer >= 1, got 2.0"),
    (dict(device="gpu0"), ValueError, r"device='gpu0' is not a torch device"),
])
def test_train_config_is_checked_up_front(kwargs, error, match):
    with pytest.raises(error, match=match):
        fit(_model(), _data(1), None, _config(**kwargs))


def test_evaluate_and_train_step_check_their_arguments():
    from unet_lib.train import train_step
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        evaluate(_model(), _data(1), batch_size=0)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sample = _data(1)[0]
    batch = {k: v[None] for k, v in sample.items()}
    with pytest.raises(TypeError, match=r"batch must be a dict with 'image', 'mask', 'weight_map', got \['image'\]"):
        train_step(model, opt, {"image": batch["image"]})
    with pytest.raises(ValueError, match=r"mask values must be class indices in \[0, 1\] .*num_classes=2.*labels 7"):
        train_step(model, opt, dict(batch, mask=batch["mask"] * 7))
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer, got 0.1"):
        train_step(model, 0.1, batch)


# -- #13: datasets that draw on access, images of different sizes, K classes, hands-off training ----

class _Drawing(torch.utils.data.Dataset):
    """ToyCells samples that change with every access, as ImageFolder(tile_size=...) does."""

    draws_on_access = True

    def __init__(self, n=4):
        self.source, self.accesses = _data(n), 0

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        self.accesses += 1
        return self.source[i]


def test_fit_asks_a_dataset_that_draws_on_access_anew_every_epoch():
    data = _Drawing(4)
    fit(_model(), data, None, _config(epochs=3, augment=False))
    assert data.accesses == 4 + 3 * 4          # one check of every sample, then every epoch


def test_fit_still_checks_the_first_draw_of_a_dataset_that_draws_on_access():
    class Bad(_Drawing):
        def __getitem__(self, i):
            sample = dict(super().__getitem__(i))
            sample["mask"] = sample["mask"] * 3
            return sample
    with pytest.raises(ValueError, match=r"train_data\[0\]\['mask'\] has labels"):
        fit(_model(), Bad(2), None, _config())


def _classes(n=3, k=3, sizes=((36, 36), (44, 40), (37, 52)), seed=0):
    """K-class samples of different sizes, no instances: class = instance id mod K-1, plus 1."""
    samples = []
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        toy = ToyCells(1, size=max(h, w), seed=seed + i, n_cells=(2, 4), radius=(4.0, 7.0))[0]
        inst = toy["instances"][:h, :w]
        mask = torch.where(inst > 0, inst % (k - 1) + 1, 0)
        samples.append({"image": toy["image"][:, :h, :w].contiguous(), "mask": mask,
                        "instances": torch.zeros_like(mask), "weight_map": torch.ones(h, w)})
    return samples


def test_evaluate_scores_images_of_different_sizes_as_pooled_counts():
    model = _model()
    data = _data(3)
    sizes = [(36, 36), (30, 33), (25, 36)]
    samples = [{k: (v[..., :h, :w] if v.ndim >= 2 else v) for k, v in s.items()}
               for s, (h, w) in zip((data[i] for i in range(3)), sizes)]
    scores = evaluate(model, samples)
    model.eval()
    with torch.no_grad():
        preds = [padded_forward(model, s["image"][None])[0].argmax(0).numpy() for s in samples]
    masks = [s["mask"].numpy() for s in samples]
    flat_pred, flat_mask = np.concatenate([p.ravel() for p in preds]), np.concatenate([m.ravel() for m in masks])
    assert scores["iou"] == pytest.approx(iou(flat_pred[None], flat_mask[None]), abs=1e-12)
    assert scores["pixel_error"] == pytest.approx(float((flat_pred != flat_mask).mean()), abs=1e-12)
    pooled = sum((instance_scores(label_instances(p), s["instances"].numpy()) for p, s in zip(preds, samples)),
                 start=instance_scores(np.zeros((1, 1), int), np.zeros((1, 1), int)))
    assert scores["f1"] == pooled.f1 and scores["merged"] == pooled.merged


def test_evaluate_with_three_classes_adds_class_scores_and_a_confusion_matrix():
    model = _model(num_classes=3)
    samples = _classes()
    scores = evaluate(model, samples, weighted=False, batch_size=2)
    assert "f1" not in scores and "rand_error" not in scores        # class maps: no instances
    confusion = np.array(scores["confusion"])
    assert confusion.shape == (3, 3) and confusion.sum() == sum(s["mask"].numel() for s in samples)
    model.eval()
    with torch.no_grad():
        pred = np.concatenate([padded_forward(model, s["image"][None])[0].argmax(0).numpy().ravel() for s in samples])
    mask = np.concatenate([s["mask"].numpy().ravel() for s in samples])
    for c in range(3):   # oracle: the definition, pixel by pixel
        p, t = pred == c, mask == c
        union = (p | t).sum()
        expected = (p & t).sum() / union if union else float("nan")
        assert scores["class_iou"][c] == pytest.approx(expected, nan_ok=True)
        assert confusion[c].sum() == t.sum() and confusion[:, c].sum() == p.sum()
    assert scores["mean_iou"] == pytest.approx(np.nanmean(scores["class_iou"][1:]))
    assert scores["mean_dice"] == pytest.approx(np.nanmean(scores["class_dice"][1:]))


def test_fit_augments_masks_of_its_own_and_trains_on_them(monkeypatch):
    """K > 2 masks made from instances and class maps stay what the dataset gives, warped with the image."""
    import unet_lib.train.step as train
    seen, real = [], train.weighted_cross_entropy

    def spy(logits, mask, weight_map=None, **kwargs):
        seen.append(mask.unique().tolist())
        return real(logits, mask, weight_map, **kwargs)

    monkeypatch.setattr(train, "weighted_cross_entropy", spy)
    five = [dict(s, mask=s["mask"] * 5) for s in (_data(2)[0], _data(2)[1])]     # labels 0 and 5 of 6 classes
    fit(_model(num_classes=6), five, None, _config(epochs=1, batch_size=1, augment=True))
    assert seen and all(set(labels) <= {0, 5} and 5 in labels for labels in seen)
    seen.clear()
    fit(_model(num_classes=3), _classes(), None, _config(epochs=1, batch_size=1, augment=True))
    assert len(seen) == 3 and all(set(labels) <= {0, 1, 2} and len(labels) > 1 for labels in seen)


def test_fit_on_three_classes_records_mean_iou_and_no_instance_scores():
    history = fit(_model(num_classes=3), _classes(), _classes(seed=5), _config(augment=False, batch_size=1))
    assert {"val_mean_iou", "val_mean_dice", "val_iou", "val_loss"} <= set(history)
    assert "val_f1" not in history


def test_fit_stops_when_the_time_budget_runs_out_and_says_so():
    history = fit(_model(), _data(4), _data(2, seed=1), _config(epochs=50, batch_size=1, max_minutes=1e-6))
    assert history["epoch"] == [1] and history["out_of_time"] == [1.0]
    assert len(history["val_f1"]) == 1


def test_fit_stops_early_and_keeps_the_best_weights():
    model = _model()
    # lr so high that the scores cannot keep improving: patience ends the run
    history = fit(model, _data(4), _data(2, seed=1), _config(epochs=30, lr=0.5, optimizer="sgd", patience=2,
                                                            keep_best=True, cosine=False))
    assert "stopped_early" in history and history["epoch"][-1] < 30
    best = int(history["best_epoch"][0])
    assert history["val_f1"][best - 1] == max(history["val_f1"])
    assert history["epoch"][-1] == best + 2 or history["epoch"][-1] == 30
    scores = evaluate(model, _data(2, seed=1))
    assert scores["f1"] == history["val_f1"][best - 1]     # the restored weights are the best epoch's


def test_keep_best_restores_the_optimizer_state_of_the_best_epoch(monkeypatch):
    from unet_lib.train import loop
    monkeypatch.setattr(loop._Stopping, "_better", lambda self, value: self.best is None)   # epoch 1 stays best
    model = _model()
    optimizer = make_optimizer(model, _config())
    history = fit(model, _data(4), _data(2, seed=1), _config(epochs=3, keep_best=True), optimizer=optimizer)
    assert history["best_epoch"] == [1.0] and history["epoch"] == [1, 2, 3]
    # 4 samples in batches of 2: 2 steps per epoch; Adam's moments are those after epoch 1, as its weights are
    assert all(float(state["step"]) == 2 for state in optimizer.state_dict()["state"].values())


def test_the_time_budget_starts_no_epoch_that_would_end_after_it():
    import time

    from unet_lib.train.loop import _Stopping
    model = _model()
    history = {"epoch": [1], "seconds": [20.0]}                                # one epoch of 20 s
    late = _Stopping(_config(epochs=5, max_minutes=1.0), None, 0, 1, start=time.perf_counter() - 50)
    assert late.decide(1, history, model, make_optimizer(model, _config())) == "out_of_time"   # 50 + 20 > 60
    early = _Stopping(_config(epochs=5, max_minutes=1.0), None, 0, 1, start=time.perf_counter() - 30)
    assert early.decide(1, history, model, make_optimizer(model, _config())) is None          # 30 + 20 < 60
    last = _Stopping(_config(epochs=1, max_minutes=1.0), None, 0, 1, start=time.perf_counter() - 50)
    assert last.decide(1, history, model, make_optimizer(model, _config())) is None           # no next epoch


def test_fit_monitor_must_name_a_validation_score():
    with pytest.raises(ValueError, match="monitor='val_mean_iou' is not a validation score"):
        fit(_model(), _data(2), _data(2, seed=1), _config(patience=1, monitor="val_mean_iou"))
    with pytest.raises(ValueError, match="monitor must be None or the name of a validation score"):
        fit(_model(), _data(2), None, _config(monitor="f1"))
    with pytest.raises(ValueError, match="need val_data"):
        fit(_model(), _data(2), None, _config(patience=1))


def test_fit_with_amp_on_the_cpu_warns_and_trains_as_without():
    a, b = _model(), _model()
    h1 = fit(a, _data(2), None, _config(epochs=1, device="cpu"))
    with pytest.warns(UserWarning, match="amp=True has no effect on 'cpu'"):
        h2 = fit(b, _data(2), None, _config(epochs=1, amp=True, device="cpu"))
    assert h1["train_loss"] == h2["train_loss"]


def test_fit_loads_in_worker_processes():
    history = fit(_model(), _data(2), None, _config(epochs=2, augment=False, num_workers=1))
    assert history["epoch"] == [1, 2] and all(np.isfinite(history["train_loss"]))
    with pytest.raises(ValueError, match="num_workers"):
        fit(_model(), _data(2), None, _config(num_workers=-1))


def test_evaluate_counts_cells_predicted_in_an_image_without_cells():
    model = _model()
    data = _data(3)
    samples = [data[i] for i in range(3)]
    empty = dict(samples[2], instances=torch.zeros_like(samples[2]["instances"]),
                 mask=torch.zeros_like(samples[2]["mask"]))
    model.eval()
    with torch.no_grad():
        preds = [padded_forward(model, s["image"][None])[0].argmax(0).numpy() for s in samples]
    truth = np.stack([samples[0]["instances"].numpy(), samples[1]["instances"].numpy(), empty["instances"].numpy()])
    expected = instance_scores(label_instances(np.stack(preds)), truth)   # the stack: every image counted
    scores = evaluate(model, samples[:2] + [empty])
    assert (scores["precision"], scores["recall"], scores["f1"]) == (expected.precision, expected.recall, expected.f1)


def test_fit_steps_a_given_optimizer_on_from_its_state_at_the_configs_lr():
    model, config = _model(), _config(epochs=1)                      # 4 samples, batch 2: 2 steps
    optimizer = make_optimizer(model, config)
    fit(model, _data(4), None, config, optimizer=optimizer)
    saved = copy.deepcopy(optimizer.state_dict())
    assert float(saved["state"][0]["step"]) == 2 and saved["param_groups"][0]["lr"] < 1e-9   # the cosine's end
    restored = make_optimizer(model, config)
    restored.load_state_dict(saved)
    lrs = []
    restored.register_step_pre_hook(lambda opt, args, kwargs: lrs.append(opt.param_groups[0]["lr"]))
    fit(model, _data(4), None, config, optimizer=restored)
    assert lrs[0] == config.lr                                       # not the stored lr of ~0
    assert float(restored.state_dict()["state"][0]["step"]) == 4     # Adam's count went on from 2


def test_fit_refuses_an_optimizer_of_another_kind_or_of_another_model():
    model, config = _model(), _config(epochs=1)
    with pytest.raises(TypeError, match=r"optimizer must be a torch.optim.Adam \(config.optimizer='adam'\), got SGD"):
        fit(model, _data(2), None, config, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="optimizer must step exactly this model's parameters.*2 are not the model's"):
        fit(model, _data(2), None, config, optimizer=torch.optim.Adam(list(model.parameters()) + [
            torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]))
