"""unet_lib.score: python -m unet_lib.score PRED_DIR MASKS_DIR on tiny folders worked out by hand."""

import csv
import re

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from unet_lib import score
from unet_lib.baselines import classical_instances
from unet_lib.files import normalize_image
from unet_lib.metrics import class_scores, confusion_matrix, instance_scores


def _two_images():
    """Image a: two cells, both found (the second one 12 of its 16 px: IoU 0.75). Image b: two
    touching cells predicted as one 36-px blob (IoU 16/36 < 0.5 with each): merged, no match."""
    a_true, a_pred = np.zeros((6, 10), np.uint16), np.zeros((6, 10), np.uint16)
    a_true[0:4, 0:4], a_true[0:4, 5:9] = 1, 2
    a_pred[0:4, 0:4], a_pred[0:4, 5:8] = 7, 3                       # ids need not be the mask's
    b_true, b_pred = np.zeros((5, 9), np.uint16), np.zeros((5, 9), np.uint16)
    b_true[0:4, 0:4], b_true[0:4, 4:8] = 1, 2
    b_pred[0:4, 0:9] = 1
    return {"a": (a_pred, a_true), "b": (b_pred, b_true)}


@pytest.fixture
def folders(tmp_path):
    """pred/ (TIFF, with predict's *_probs.tif, *_overlay.png and manifest beside them) and masks/
    (PNG) of _two_images."""
    pred, masks = tmp_path / "pred", tmp_path / "masks"
    pred.mkdir(), masks.mkdir()
    for stem, (p, t) in _two_images().items():
        tifffile.imwrite(pred / f"{stem}.tif", p)
        iio.imwrite(masks / f"{stem}.png", t.astype(np.uint8))
        tifffile.imwrite(pred / f"{stem}_probs.tif", np.zeros((2, *p.shape), np.float32))
        iio.imwrite(pred / f"{stem}_overlay.png", np.zeros((*p.shape, 3), np.uint8))
    (pred / "unet-predict.json").write_text("{}")
    return pred, masks


def test_scores_worked_out_by_hand(folders):
    rows = score.score_folders(*folders)
    assert [(r["image"], r["method"]) for r in rows] == [("a", "prediction"), ("b", "prediction"), ("all", "prediction")]
    a, b, total = rows
    assert (a["true_cells"], a["predicted_cells"], a["matched"], a["merged"], a["split"]) == (2, 2, 2, 0, 0)
    assert a["f1"] == 1.0 and a["dice"] == pytest.approx(56 / 60) and a["iou"] == pytest.approx(28 / 32)
    assert (b["true_cells"], b["predicted_cells"], b["matched"], b["merged"], b["split"]) == (2, 1, 0, 2, 0)
    assert b["f1"] == 0.0 and b["dice"] == pytest.approx(64 / 68) and b["iou"] == pytest.approx(32 / 36)
    # all: counts added up (tp 2, fp 1, fn 2), pixels pooled (60 shared of 64 predicted and 64 true)
    assert (total["matched"], total["true_cells"], total["predicted_cells"], total["merged"]) == (2, 4, 3, 2)
    assert total["f1"] == pytest.approx(4 / 7) and total["precision"] == pytest.approx(2 / 3)
    assert total["recall"] == 0.5 and total["dice"] == pytest.approx(120 / 128) and total["iou"] == pytest.approx(60 / 68)
    for row, (pred, truth) in zip(rows, _two_images().values()):      # the library's rule, whatever it is
        assert row["f1"] == instance_scores(pred.astype(np.int64), truth.astype(np.int64)).f1


def test_binary_masks_and_predictions_are_labelled_into_components(tmp_path):
    pred, masks = tmp_path / "pred", tmp_path / "masks"
    pred.mkdir(), masks.mkdir()
    truth = np.zeros((8, 8), np.uint8)
    truth[1:3, 1:3], truth[5:7, 5:7] = 1, 1                         # two objects, both with value 1
    tifffile.imwrite(pred / "x.tif", truth)
    tifffile.imwrite(masks / "x.tif", truth)
    row = score.score_folders(pred, masks)[0]
    assert (row["true_cells"], row["predicted_cells"], row["matched"], row["f1"]) == (2, 2, 2, 1.0)


def test_the_command_prints_the_table_and_writes_the_csv_it_may_replace(folders, capsys):
    pred, masks = folders
    assert score.main([str(pred), str(masks)]) == 0
    printed = capsys.readouterr().out
    assert "f1" in printed.splitlines()[0] and "scored 2 image(s)" in printed
    lines = printed.splitlines()
    assert lines[4].split()[:2] == ["all", "prediction"] and lines[4].split()[7] == f"{4 / 7:.3f}"
    with open(pred / "scores.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["image"] for r in table] == ["a", "b", "all"] and float(table[2]["f1"]) == pytest.approx(4 / 7)
    assert list(table[0]) == score.columns()
    assert score.main([str(pred), str(masks)]) == 0                  # its own file: replaced


def test_a_csv_it_did_not_write_is_kept_unless_forced(folders, capsys):
    pred, masks = folders
    theirs = pred / "scores.csv"
    theirs.write_text("cell,area\n1,20\n")
    with pytest.raises(SystemExit) as exit_info:
        score.main([str(pred), str(masks)])
    assert exit_info.value.code == 2
    assert "argument --csv" in capsys.readouterr().err and theirs.read_text() == "cell,area\n1,20\n"
    other = pred / "elsewhere.csv"
    assert score.main([str(pred), str(masks), "--csv", str(other)]) == 0 and other.is_file()
    assert score.main([str(pred), str(masks), "--force"]) == 0
    assert theirs.read_text().startswith(",".join(score.columns()))
    with pytest.raises(FileExistsError, match="was not written by this command"):
        (pred / "notes.csv").write_text("x\n")
        score.write_csv(pred / "notes.csv", score.score_folders(pred, masks))


def test_the_classical_baseline_on_the_same_images(tmp_path, capsys):
    """Bright squares on a dark noisy background (and the same inverted, with --dark): the baseline
    rows are classical_instances' on the normalised image; the prediction misses one cell."""
    rng = np.random.default_rng(0)
    dirs = {name: tmp_path / name for name in ("images", "dark", "masks", "pred")}
    for d in dirs.values():
        d.mkdir()
    expected = []
    for i in range(2):
        truth = np.zeros((48, 48), np.uint16)
        truth[5:17, 5:17], truth[25:40, 20:35], truth[8:20, 30:42] = 1, 2, 3
        image = (1000 + 3000 * (truth > 0) + rng.normal(0, 100, truth.shape)).astype(np.uint16)
        tifffile.imwrite(dirs["images"] / f"s{i}.tif", image)
        tifffile.imwrite(dirs["dark"] / f"s{i}.tif", (5000 - image.astype(np.int32)).astype(np.uint16))
        tifffile.imwrite(dirs["masks"] / f"s{i}.tif", truth)
        tifffile.imwrite(dirs["pred"] / f"s{i}.tif", np.where(truth == 3, 0, truth).astype(np.uint16))
        normalised = normalize_image(image[None])[0]
        expected.append(instance_scores(classical_instances(normalised, min_size=10), truth.astype(np.int64)))
    rows = score.score_folders(dirs["pred"], dirs["masks"], dirs["images"], min_size=10)
    classical = [r for r in rows if r["method"] == "classical"]
    assert [r["image"] for r in classical] == ["s0", "s1", "all"]
    assert [r["f1"] for r in classical[:2]] == [e.f1 for e in expected] and classical[2]["f1"] == 1.0
    assert [r for r in rows if r["method"] == "prediction"][2]["f1"] == pytest.approx(8 / 10)
    dark = score.score_folders(dirs["pred"], dirs["masks"], dirs["dark"], dark=True, min_size=10)
    assert [r["f1"] for r in dark if r["method"] == "classical"] == [r["f1"] for r in classical]
    unlit = score.score_folders(dirs["pred"], dirs["masks"], dirs["dark"], min_size=10)   # dark objects, not said
    assert [r for r in unlit if r["method"] == "classical"][2]["f1"] < 0.5
    assert score.main([str(dirs["pred"]), str(dirs["masks"]), "--baseline", str(dirs["images"]), "--min-size",
                       "10"]) == 0
    assert "prediction - classical, all images: dice" in capsys.readouterr().out


def test_class_maps_score_every_class(tmp_path):
    pred_dir, masks_dir = tmp_path / "pred", tmp_path / "masks"
    pred_dir.mkdir(), masks_dir.mkdir()
    rng = np.random.default_rng(1)
    pairs = [(rng.integers(0, 3, (9, 7)), rng.integers(0, 3, (9, 7))) for _ in range(2)]
    pairs[1][0][pairs[1][0] == 2] = 1                                 # class 2 never predicted in image 1
    for i, (pred, truth) in enumerate(pairs):
        tifffile.imwrite(pred_dir / f"m{i}.tif", pred.astype(np.uint8))
        tifffile.imwrite(masks_dir / f"m{i}.tif", truth.astype(np.uint8))
    rows = score.score_folders(pred_dir, masks_dir, num_classes=3)
    assert list(rows[0]) == score.columns(3)
    total = sum(confusion_matrix(p, t, 3) for p, t in pairs)
    ious, _ = class_scores(total)
    assert [rows[2][f"iou_class_{k}"] for k in range(3)] == ious and rows[2]["mean_iou"] == pytest.approx(np.mean(ious))
    fg_pred, fg_true = np.concatenate([(p > 0).ravel() for p, _ in pairs]), np.concatenate([(t > 0).ravel() for _, t in pairs])
    assert rows[2]["iou"] == pytest.approx((fg_pred & fg_true).sum() / (fg_pred | fg_true).sum())
    with pytest.raises(ValueError, match=r"holds the value 2, but --classes 2 means classes 0..1; pass --classes 3"):
        score.score_folders(pred_dir, masks_dir, num_classes=2)


def _write(folder, name, array):
    folder.mkdir(exist_ok=True)
    tifffile.imwrite(folder / name, np.asarray(array, np.uint16))


@pytest.mark.parametrize("setup, match", [
    (lambda p, m: (_write(p, "a.tif", np.ones((4, 4))), _write(m, "a_mask.tif", np.ones((4, 4)))),
     r"1 prediction\(s\) in .*pred without a mask in .*masks: a\.tif; 1 mask\(s\) in .*masks without a prediction in "
     r".*pred: a_mask\.tif\. .*the masks' names seem to end in '_mask'"),
    (lambda p, m: (_write(p, "a.tif", np.ones((4, 4))), _write(m, "a.tif", np.ones((4, 4))),
                   _write(m, "b.tif", np.ones((4, 4)))), r"1 mask\(s\) in .*masks without a prediction in .*pred: b\.tif"),
    (lambda p, m: (_write(p, "a.tif", np.ones((4, 5))), _write(m, "a.tif", np.ones((5, 4)))),
     r"prediction .*pred/a\.tif is 4x5 \(H x W\) but its mask .*masks/a\.tif is 5x4"),
    (lambda p, m: (_write(p, "a.tif", np.ones((4, 4))), _write(p, "a.png", np.ones((4, 4))),
                   _write(m, "a.tif", np.ones((4, 4)))), r"pred_dir .* same name and different extensions \(a\.png, a\.tif\)"),
    (lambda p, m: (p.mkdir(), (p / "notes.txt").write_text("x"), _write(m, "a.tif", np.ones((4, 4)))),
     r"pred_dir .*pred has no \.tif / \.tiff / \.png files \(it holds notes\.txt\)"),
])
def test_mismatched_folders_are_refused_naming_the_files(tmp_path, setup, match):
    pred, masks = tmp_path / "pred", tmp_path / "masks"
    setup(pred, masks)
    with pytest.raises(ValueError, match=match):
        score.score_folders(pred, masks)


def test_the_baseline_needs_every_image(folders, tmp_path):
    images = tmp_path / "images"
    _write(images, "a.tif", np.arange(60).reshape(6, 10))
    with pytest.raises(ValueError, match=r"images_dir .*images has no image for 1 of the scored masks: b\.png"):
        score.score_folders(*folders, images_dir=images)
    _write(images, "b.tif", np.arange(36).reshape(6, 6))
    with pytest.raises(ValueError, match=r"image .*images/b\.tif is 6x6 \(H x W\) but its mask .*masks/b\.png is 5x9"):
        score.score_folders(*folders, images_dir=images)


@pytest.mark.parametrize("extra, match", [
    (["--classes", "1"], r"argument --classes: must be an int >= 2 \(K classes\), got 1"),
    (["--threshold", "1.5"], r"argument --threshold: threshold must be"),
    (["--min-size", "-3"], r"argument --min-size: must be pixels, >= 0, got -3"),
    (["--dark"], r"argument --dark: it is a setting of the baseline; give --baseline IMAGES_DIR too"),
    (["--classes", "3", "--baseline", "."], r"argument --baseline: the classical pipeline finds objects, not classes"),
    (["--baseline", "nowhere"], r"argument --baseline: nowhere does not exist; give a folder"),
])
def test_bad_arguments_name_the_flag(folders, capsys, extra, match):
    with pytest.raises(SystemExit) as exit_info:
        score.main([str(folders[0]), str(folders[1]), *extra])
    assert exit_info.value.code == 2
    assert re.search(match, capsys.readouterr().err)


def test_missing_folders_and_bad_files_are_named(folders, tmp_path, capsys):
    with pytest.raises(SystemExit):
        score.main([str(tmp_path / "nope"), str(folders[1])])
    assert "argument PRED_DIR: " in capsys.readouterr().err
    tifffile.imwrite(folders[0] / "a.tif", np.full((6, 10), 0.5, np.float32))   # a probability map, not labels
    with pytest.raises(SystemExit, match=r"error: mask .*pred/a\.tif is stored as float32 with 60 values that are not "
                                         r"whole numbers"):
        score.main([str(folders[0]), str(folders[1])])


def test_the_baseline_takes_a_models_object_size_and_percentiles(tmp_path, capsys):
    """--model: the classical pipeline scaled to the size stored in the checkpoint
    (classical_instances(size=...)) on images normalised by the checkpoint's percentiles."""
    import torch
    from unet_lib.baselines import ObjectSize
    from unet_lib.checkpoint import save_checkpoint
    from unet_lib.config import TrainConfig
    from unet_lib.model import UNet
    rng = np.random.default_rng(1)
    dirs = {name: tmp_path / name for name in ("images", "masks", "pred")}
    for d in dirs.values():
        d.mkdir()
    truth = np.zeros((48, 48), np.uint16)
    truth[5:17, 5:17], truth[5:17, 17:29], truth[30:42, 30:42] = 1, 2, 3      # 1 and 2 touch: the split matters
    image = (1000 + 3000 * (truth > 0) + rng.normal(0, 100, truth.shape)).astype(np.uint16)
    tifffile.imwrite(dirs["images"] / "s.tif", image)
    tifffile.imwrite(dirs["masks"] / "s.tif", truth)
    tifffile.imwrite(dirs["pred"] / "s.tif", truth)
    size = ObjectSize(144.0, 6.0, 3, 150.0)
    torch.manual_seed(0)
    model_path = save_checkpoint(tmp_path / "m.pt", UNet(depth=1, base_channels=2), TrainConfig(epochs=1, progress=False),
                                 {"epoch": [1.0]}, dict(low=0.5, high=99.9, object_area=size.area,
                                                        object_radius=size.radius, objects_measured=size.count,
                                                        object_large_area=size.large))
    expected = classical_instances(normalize_image(image[None], 0.5, 99.9)[0], size=size)
    rows = score.score_folders(dirs["pred"], dirs["masks"], dirs["images"], size=size, percentiles=(0.5, 99.9))
    classical = [r for r in rows if r["method"] == "classical"][0]
    assert classical["f1"] == instance_scores(expected, truth.astype(np.int64)).f1
    assert classical["predicted_cells"] == int(expected.max())
    assert score.main([str(dirs["pred"]), str(dirs["masks"]), "--baseline", str(dirs["images"]), "--model",
                       str(model_path), "--csv", str(tmp_path / "s.csv")]) == 0
    with open(tmp_path / "s.csv", newline="") as f:
        written = [r for r in csv.DictReader(f) if r["method"] == "classical"][0]
    assert float(written["f1"]) == classical["f1"] and int(written["predicted_cells"]) == classical["predicted_cells"]
    capsys.readouterr()
    for extra, message in ((["--model", str(model_path)], "argument --model: it is a setting of the baseline"),
                           (["--baseline", str(dirs["images"]), "--model", str(model_path), "--min-size", "10"],
                            "argument --model: the baseline takes the model's object size instead of --min-size"),
                           (["--baseline", str(dirs["images"]), "--model", str(tmp_path / "nope.pt")],
                            "argument --model: no checkpoint at")):
        with pytest.raises(SystemExit):
            score.main([str(dirs["pred"]), str(dirs["masks"]), *extra])
        assert message in capsys.readouterr().err
