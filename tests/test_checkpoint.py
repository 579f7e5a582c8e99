"""Tests for unet_lib.checkpoint: round trips, the probe that catches an edited config, size and
type checks of what a file holds, files that are not checkpoints, and saves that crash."""

import dataclasses
import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import unet_lib
import unet_lib.train
from unet_lib.checkpoint import Checkpoint, load_checkpoint, load_optimizer_state, save_checkpoint
from unet_lib.model import UNet
from unet_lib.train import COURSE_CHECKPOINT, COURSE_MODEL, TrainConfig

TINY = dict(depth=1, base_channels=4, batch_norm=True)
HISTORY = {"epoch": [1, 2], "train_loss": [0.7, 0.5]}


def _model(seed=0, **kwargs):
    torch.manual_seed(seed)
    return UNet(**{**TINY, **kwargs})


def _config(**kwargs):
    return TrainConfig(**{"epochs": 2, "batch_size": 2, "progress": False, **kwargs})


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _edit(path, out, change):
    """Write ``out``: the checkpoint at ``path`` with ``change(saved_dict)`` applied."""
    saved = torch.load(path, weights_only=True)
    change(saved)
    torch.save(saved, out)
    return out


@pytest.fixture
def good(tmp_path):
    return save_checkpoint(tmp_path / "good.pt", _model(), _config(), HISTORY)


def test_still_importable_from_train_and_the_package():
    assert unet_lib.train.save_checkpoint is save_checkpoint is unet_lib.save_checkpoint
    assert unet_lib.train.load_checkpoint is load_checkpoint and unet_lib.train.Checkpoint is Checkpoint
    assert unet_lib.train.COURSE_CHECKPOINT == COURSE_CHECKPOINT
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        unet_lib.train.no_such_name


@pytest.mark.parametrize("kwargs", [dict(), dict(padding="same"), dict(upsampling="bilinear", batch_norm=False),
                                    dict(depth=0), dict(depth=2, dropout=0.5, in_channels=3, num_classes=4)])
def test_round_trip_with_probe(tmp_path, kwargs):
    model = _model(seed=3, **kwargs)
    path = save_checkpoint(tmp_path / "m.pt", model, _config(seed=4), HISTORY)
    loaded = load_checkpoint(path)
    assert loaded.model.config == model.config and loaded.config == _config(seed=4)
    assert loaded.history == {"epoch": [1.0, 2.0], "train_loss": [0.7, 0.5]}
    saved = torch.load(path, weights_only=True)
    assert saved["version"] == 2 and saved["probe"]["logits"].shape[-1] >= 8
    n = model.min_input_size() + 2 * 2**model.depth
    x = torch.rand(1, model.in_channels, n, n)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model.eval()(x))


def test_the_shipped_version_1_checkpoint_still_loads():
    before = _sha(COURSE_CHECKPOINT)
    saved = torch.load(COURSE_CHECKPOINT, weights_only=True)
    assert saved.get("version") == 1 and "probe" not in saved
    assert load_checkpoint(COURSE_CHECKPOINT).model.config == COURSE_MODEL
    assert _sha(COURSE_CHECKPOINT) == before


def test_a_dropout_free_config_loads_without_dropout(tmp_path, good):
    loaded = load_checkpoint(good)
    assert "dropout" not in loaded.model.config and loaded.model.dropout is None


# -- an edited checkpoint ----------------------------------------------------------------------

def test_padding_edited_to_same_is_refused(tmp_path, good):
    """valid and same padding have the same weight shapes: only the probe tells them apart."""
    edited = _edit(good, tmp_path / "same.pt", lambda s: s["model_config"].update(padding="same"))
    with pytest.raises(ValueError, match=r"does not rebuild the network that was saved.*was padding"):
        load_checkpoint(edited)


def test_padding_edit_of_a_same_padding_model_is_refused(tmp_path):
    good = save_checkpoint(tmp_path / "g.pt", _model(padding="same", depth=2), _config(), HISTORY)
    edited = _edit(good, tmp_path / "valid.pt", lambda s: s["model_config"].update(padding="valid"))
    with pytest.raises(ValueError, match=r"does not rebuild the network that was saved.*padding"):
        load_checkpoint(edited)


def test_edited_weights_are_refused_by_the_probe(tmp_path, good):
    def change(saved):
        saved["state_dict"]["outc.bias"] += 1.0
    with pytest.raises(ValueError, match=r"logits for the probe input differ by up to 1"):
        load_checkpoint(_edit(good, tmp_path / "w.pt", change))


@pytest.mark.parametrize("change,match", [
    (lambda s: s["model_config"].update(base_channels=4096, depth=4),
     r"model_config .* does not describe a UNet .*would have [\d,]+ parameters, [\d,.]+ GB"),
    (lambda s: s["model_config"].update(depth=12, base_channels=8), r"would have 31,854,765,458 parameters"),
    (lambda s: s["model_config"].update(batch_norm="yes"), r"batch_norm must be True or False, got 'yes'"),
    (lambda s: s["model_config"].update(depth=1.0), r"depth must be an integer >= 0, got 1.0"),
    (lambda s: s["model_config"].update(width=3), r"arguments that UNet does not take: \['width'\]"),
    (lambda s: s.update(model_config=[1, 2]), r"model_config must be a dict of UNet arguments, got \[1, 2\]"),
    (lambda s: s.update(state_dict=[1, 2]), r"state_dict must map parameter names to tensors, got list"),
    (lambda s: s["train_config"].update(epochs="10"), r"train_config\['epochs'\] = '10' is not a valid TrainConfig"),
    (lambda s: s["train_config"].update(lr=None), r"train_config\['lr'\] = None is not a valid TrainConfig.lr"),
    (lambda s: s["train_config"].update(optimizer="rmsprop"), r"train_config\['optimizer'\] = 'rmsprop'"),
    (lambda s: s["train_config"].update(weighted=1), r"train_config\['weighted'\] = 1 is not a valid"),
    (lambda s: s.update(train_config="adam"), r"train_config must be a dict of TrainConfig fields, got str"),
    (lambda s: s.update(history=[0.5]), r"history must be a dict of lists of numbers .*got list"),
    (lambda s: s["history"].update(train_loss="0.5"), r"history\['train_loss'\] must be a list of numbers"),
    (lambda s: s["history"].update(train_loss=[0.5, "x"]), r"history\['train_loss'\]\[1\] must be a number, got 'x'"),
    (lambda s: s.update(version=99), r"checkpoint of version 99; this unet_lib reads versions 1 to 2"),
    (lambda s: s.update(probe={"input_size": "92"}), r"the probe entry is damaged"),
    (lambda s: s.pop("state_dict"), r"is not a unet_lib checkpoint \(expected keys"),
])
def test_edited_entries_are_refused_by_name(tmp_path, good, change, match):
    edited = _edit(good, tmp_path / "edited.pt", change)
    with pytest.raises((ValueError, TypeError), match=match):
        load_checkpoint(edited)


def test_a_huge_config_is_refused_before_any_allocation(tmp_path, good, monkeypatch):
    """The bound comes before UNet's layers: building them would fail the test."""
    edited = _edit(good, tmp_path / "huge.pt", lambda s: s["model_config"].update(base_channels=4096, depth=4))
    monkeypatch.setattr(torch.nn.Conv2d, "__init__", lambda *a, **k: pytest.fail("a layer was built"))
    with pytest.raises(ValueError, match=r"GB of float32 weights alone"):
        load_checkpoint(edited)


# -- files that are not checkpoints ------------------------------------------------------------

@pytest.mark.parametrize("content,match", [
    (b"hello, this is a text file\nsecond line\n", r"a text file \(\d+ bytes, starting 'hello, this is a text"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 2500000\n",
     r"a Git LFS pointer .*git lfs pull"),
    (bytes(range(256)) * 4, r"neither a torch file nor text: 1,024 bytes starting 00 01 02"),
    (random.Random(0).randbytes(5000), r"neither a torch file nor text: 5,000 bytes starting cd 07"),
    (b"", r"empty \(0 bytes\)"),
    (b"\x80\x04\x95\x05\x00\x00\x00", r"a pickle file but not one that a safe load"),
])
def test_unreadable_files_are_described_never_an_unsafe_load(tmp_path, content, match):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"could not be read as a checkpoint \(truncated, damaged or not a torch file\): it is "
                       + match) as info:
        load_checkpoint(path)
    assert "weights_only=False" not in str(info.value) and "weights_only` set to `False" not in str(info.value)


def test_truncated_checkpoint_is_described(tmp_path, good):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(ValueError, match=r"it is a zip archive .* of 2,000 bytes that torch cannot read: truncated") as info:
        load_checkpoint(truncated)
    assert "weights_only" not in str(info.value)


def test_a_pickled_model_is_refused_without_suggesting_an_unsafe_load(tmp_path):
    path = tmp_path / "whole_model.pt"
    torch.save(torch.nn.Conv2d(1, 1, 1), path)
    with pytest.raises(ValueError, match=r"pickled Python object \(torch.nn.modules.conv.Conv2d\).*save_checkpoint") as info:
        load_checkpoint(path)
    assert "weights_only=False" not in str(info.value) and "False" not in str(info.value)


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at .* \(a folder there\)"):
        load_checkpoint(tmp_path)


# -- saving ------------------------------------------------------------------------------------

@pytest.mark.parametrize("history,error,match", [
    ([0.5, 0.4], TypeError, r"history must be a dict of lists of numbers \(what fit returns\), got list"),
    ({"loss": 0.5}, ValueError, r"history\['loss'\] must be a list of numbers \(one per epoch\), got float"),
    ({"loss": [0.5, None]}, ValueError, r"history\['loss'\]\[1\] must be a number, got None"),
    ({"loss": [True]}, ValueError, r"history\['loss'\]\[0\] must be a number, got True"),
    ({1: [0.5]}, ValueError, r"history keys must be strings such as 'train_loss', got 1"),
])
def test_save_refuses_a_malformed_history(tmp_path, history, error, match):
    with pytest.raises(error, match=match):
        save_checkpoint(tmp_path / "m.pt", _model(), _config(), history)
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_a_folder_as_path(tmp_path):
    (tmp_path / "models").mkdir()
    with pytest.raises(IsADirectoryError, match=r"path .*models is a folder; give a file name inside it, e.g. .*model.pt"):
        save_checkpoint(tmp_path / "models", _model(), _config(), HISTORY)


def test_save_refuses_other_arguments(tmp_path):
    with pytest.raises(TypeError, match="saves a unet_lib.UNet"):
        save_checkpoint(tmp_path / "x.pt", torch.nn.Conv2d(1, 1, 1), _config(), {})
    with pytest.raises(TypeError, match="config must be a TrainConfig, got dict"):
        save_checkpoint(tmp_path / "x.pt", _model(), dataclasses.asdict(_config()), {})


def test_a_save_that_fails_midway_keeps_the_old_checkpoint_and_leaves_no_temp_file(tmp_path, good, monkeypatch):
    before = _sha(good)
    real_save = torch.save

    def disk_full(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        save_checkpoint(good, _model(seed=7), _config(), HISTORY)
    monkeypatch.setattr(torch, "save", real_save)
    assert _sha(good) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.pt"]
    assert load_checkpoint(good).config == _config()


def test_a_save_killed_midway_keeps_the_old_checkpoint(tmp_path, good):
    """SIGKILL a process in the middle of writing over ``good``: nothing can clean up, but the
    target is either the old file whole or the new one whole, never a mixture."""
    before = _sha(good)
    script = textwrap.dedent(f"""
        import sys, time, torch
        from unet_lib.checkpoint import save_checkpoint
        from unet_lib.model import UNet
        from unet_lib.train import TrainConfig
        real_save = torch.save
        def slow_save(obj, f, *args, **kwargs):
            f.write(b"PK\\x03\\x04 the first bytes of a new checkpoint")
            f.flush()
            print("writing", flush=True)
            time.sleep(60)
        torch.save = slow_save
        save_checkpoint({str(good)!r}, UNet(depth=1, base_channels=4), TrainConfig(), {{"epoch": [1]}})
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "writing"
        temps = [p for p in tmp_path.iterdir() if p.name != "good.pt"]
        assert len(temps) == 1 and temps[0].stat().st_size > 0   # the new bytes went to a temporary file
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert _sha(good) == before
    assert load_checkpoint(good).config == _config()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "good.pt"]
    assert all(name.startswith(".good.pt.") and name.endswith(".tmp") for name in leftovers)


def test_written_files_get_the_mode_a_plain_open_would_give(tmp_path):
    import os
    from unet_lib.atomic import atomic_write
    umask = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "out.json", "{}")
    finally:
        os.umask(umask)
    assert (path.stat().st_mode & 0o777) == 0o644
    assert path.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_meta_is_stored_and_read_back_and_older_files_read_as_empty(tmp_path):
    meta = dict(mask_kind="classes", num_classes=3, low=1.0, high=99.8, channel_axis=None, tile_size=36,
                val_images=("a", "b"))
    path = save_checkpoint(tmp_path / "m.pt", _model(), TrainConfig(), {"epoch": [1]}, meta)
    assert load_checkpoint(path).meta == {**meta, "val_images": ["a", "b"]}
    plain = save_checkpoint(tmp_path / "plain.pt", _model(), TrainConfig(), {"epoch": [1]})
    assert load_checkpoint(plain).meta == {}
    assert load_checkpoint(COURSE_CHECKPOINT).meta == {}
    with pytest.raises(ValueError, match=r"meta\['norm'\] must be a plain value"):
        save_checkpoint(tmp_path / "bad.pt", _model(), TrainConfig(), {"epoch": [1]}, {"norm": torch.zeros(2)})
    with pytest.raises(TypeError, match="meta must be a dict"):
        save_checkpoint(tmp_path / "bad.pt", _model(), TrainConfig(), {"epoch": [1]}, ["not", "a", "dict"])


def test_optimizer_state_is_stored_on_the_cpu_and_read_back_and_older_files_have_none(tmp_path):
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(2, 1, model.min_input_size(), model.min_input_size())).mean().backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "m.pt", model, TrainConfig(), {"epoch": [1]},
                           optimizer_state=optimizer.state_dict())
    stored = load_optimizer_state(path)
    assert stored["param_groups"][0]["lr"] == 1e-3 and len(stored["state"]) == len(list(model.parameters()))
    for i, state in optimizer.state_dict()["state"].items():
        assert torch.equal(stored["state"][i]["exp_avg"], state["exp_avg"]) and float(stored["state"][i]["step"]) == 1
    assert isinstance(load_checkpoint(path), Checkpoint)            # the model loads as before
    restored = torch.optim.Adam(model.parameters(), lr=1e-3)
    restored.load_state_dict(stored)                                 # and the state fits its optimizer
    plain = save_checkpoint(tmp_path / "plain.pt", model, TrainConfig(), {"epoch": [1]})
    assert load_optimizer_state(plain) is None and load_optimizer_state(COURSE_CHECKPOINT) is None
    with pytest.raises(TypeError, match=r"optimizer_state must be an optimizer's state_dict\(\).*got \['lr'\]"):
        save_checkpoint(tmp_path / "bad.pt", model, TrainConfig(), {"epoch": [1]}, optimizer_state={"lr": 1e-3})
    saved = torch.load(path, weights_only=True)
    saved["optimizer"] = [1, 2]
    torch.save(saved, tmp_path / "damaged.pt")
    with pytest.raises(ValueError, match=r"damaged.pt: optimizer must be an optimizer's state_dict\(\).*got list"):
        load_optimizer_state(tmp_path / "damaged.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_optimizer_state(tmp_path / "missing.pt")
