"""The train and predict commands' defaults on your own images (#21): the numbers the issue asks for.

Five parts (``--part``), each a table with one row per seed (a seed sets the validation split, the
initialisation, the tiles and the augmentation), then mean, sample SD (ddof=1) and, for paired
runs, the paired differences. Every model is scored as ``python -m unet_lib.predict`` predicts:
``predict_image`` with its default post-processing, scaled to the training masks' objects.

* ``steps``: held-out instance F1 after 120, 240, 480 and 960 optimizer steps (batch 4,
  ``--tiles-per-image`` and ``--epochs`` set to give them) on three kinds of data: the course's
  eight 128x128 nuclei crops (``real_nuclei_crops``, scored on the right half of the image, which
  no run sees), eight 128x128 toy-cell images (scored on ``ToyCells(8, seed=2000+)``) and eight
  512x512 dark rods covering ~1% of the image (``benchmarks/rods.py``, scored on four images of
  another seed). This chose ``unet_lib.train.plan.TARGET_STEPS``.
* ``defaults``: the README's command with its defaults (``--images --masks --out``, nothing else)
  on the eight nuclei crops; target: right-half F1 >= 0.80 (before #21: 0.547). The classical
  pipeline (``classical_instances``) on the same half for reference.
* ``budget``: ``--max-minutes M`` against the same M minutes of ``fit`` called directly on the same
  data and split (8 tiles per image per epoch, the epochs that a timing of its steps says fill the
  minutes, keep-best, ``max_minutes=M`` as a guard): paired by seed; target: the command within
  0.02 of ``fit``. The command's M minutes include reading and saving, fit's do not.
* ``rods``: the defaults on dark sparse rods against the classical pipeline for dark objects
  (``classical_instances(dark=True)``, as the library runs it, and with the training masks' object
  size); target: the U-Net better.
* ``init``: ``--init`` against scratch with ``--max-minutes M``: the nuclei crops from the course's
  toy-cell model (``unet_toycells.pt``), the rods from the nuclei model (``unet_nuclei.pt``).

    .venv/bin/python benchmarks/own_defaults.py --part defaults --seeds 0 1 2
    .venv/bin/python benchmarks/own_defaults.py --part budget --minutes 5 --seeds 0 1 2
    .venv/bin/python benchmarks/own_defaults.py --part all --seeds 0 1 2      # everything: hours on 2 cores

Run it on a quiet machine: timings (and so the budget part) depend on what else runs. The rods
come from ``benchmarks/rods.py`` (the dark sparse rods of #21).

Results: ``benchmarks/results/own_defaults.md`` (the defaults on the nuclei crops over three seeds:
F1 0.982, 0.957, 0.956 against the classical pipeline's 0.761; the rods, one seed: 0.883 against
0.183; ``--init`` and the budget part at 5 minutes on a machine loaded 5-17: within the noise).
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile
import torch

from unet_lib.baselines import classical_instances
from unet_lib.checkpoint import load_checkpoint
from unet_lib.config import TrainConfig
from unet_lib.data import REAL_NUCLEI_FILES, ToyCells, load_real_nuclei, percentile_normalize, real_nuclei_crops
from unet_lib.files import ImageFolder, split_by_image, write_labels
from unet_lib.metrics import InstanceScores, instance_scores
from unet_lib.model import UNet
from unet_lib.predict import predict_image
from unet_lib.shipped import course_file
from unet_lib.train import fit
from unet_lib.train import main as train_main
from unet_lib.train.plan import TileEpochs, time_steps

sys.path.insert(0, str(Path(__file__).resolve().parent))   # benchmarks/rods.py

STEPS = {120: (4, 20), 240: (8, 20), 480: (8, 40), 960: (16, 40)}   # steps: (tiles per image, epochs), 6 images
RIGHT_HALF = np.s_[:, 256:]
TILE = 132                                                        # the command's default tile for depth 3
KEEP: Path | None = None                                          # --keep: where probabilities are saved


# -- data ------------------------------------------------------------------------------------

def nuclei_folder(root: Path) -> tuple[Path, Path]:
    """The left half of the nuclei image as eight 128x128 files (uint8 PNG images, uint16 TIFF masks)."""
    for d in ("images", "masks"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for stem, (image, instances) in real_nuclei_crops().items():
        iio.imwrite(root / "images" / f"{stem}.png", image)
        write_labels(root / "masks" / f"{stem}.tif", instances)
    return root / "images", root / "masks"


def toy_folder(root: Path) -> tuple[Path, Path]:
    """Eight 128x128 toy-cell images as 16-bit TIFFs with their instance masks."""
    for d in ("images", "masks"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in range(8):
        sample = ToyCells(1, seed=100 + i)[0]
        tifffile.imwrite(root / "images" / f"toy_{i}.tif", (sample["image"][0].numpy() * 60000).astype(np.uint16))
        write_labels(root / "masks" / f"toy_{i}.tif", sample["instances"].numpy())
    return root / "images", root / "masks"


def rods_folder(root: Path) -> tuple[Path, Path]:
    from rods import write_rods_folder
    return write_rods_folder(root, n_images=8, size=512, seed=0)


FOLDERS = {"nuclei": nuclei_folder, "toy": toy_folder, "rods": rods_folder}


def held_out(name: str) -> list[tuple[np.ndarray, np.ndarray, tuple]]:
    """[(stored image (C, H, W), instances (H, W), the region scored)] that no training run sees."""
    if name == "nuclei":
        with np.load(course_file(REAL_NUCLEI_FILES["image"])) as f:
            raw = f["image"].astype(np.uint8)
        return [(raw[None], load_real_nuclei()[1], RIGHT_HALF)]
    if name == "toy":
        return [((ToyCells(1, seed=2000 + i)[0]["image"][0].numpy() * 60000).astype(np.uint16)[None],
                 ToyCells(1, seed=2000 + i)[0]["instances"].numpy(), np.s_[:, :]) for i in range(8)]
    from rods import draw_rods
    return [(image[None], instances.astype(np.int64), np.s_[:, :])
            for image, instances in (draw_rods(512, np.random.default_rng([1, i])) for i in range(4))]


def scores(labels_of, name: str) -> dict:
    """Pooled instance scores of ``labels_of(image (C, H, W)) -> labels`` on the held-out images."""
    total = InstanceScores()
    for image, instances, region in held_out(name):
        total = total + instance_scores(labels_of(image)[region], instances[region])
    return dict(f1=total.f1, merged=total.merged, split=total.split, fp=total.fp, fn=total.fn)


def model_scores(path: Path, name: str) -> dict:
    """The scores of the checkpoint at ``path`` as ``predict`` writes its labels (post-processed),
    ``raw_f1`` of the bare connected components, and how it was trained. With KEEP set, the
    foreground probabilities of the held-out images are saved there (to score other
    post-processing later without training again)."""
    model, _, history, meta = load_checkpoint(path)
    result = scores(lambda image: predict_image(model, image, meta)[0], name)
    raw = scores(lambda image: predict_image(model, image, meta, postprocess=False)[0], name)
    if KEEP is not None:
        probs = [predict_image(model, image, meta, postprocess=False)[1][1] for image, _, _ in held_out(name)]
        np.savez_compressed(KEEP / f"{path.stem}_probs.npz", *[p.astype(np.float16) for p in probs])
    result.update(raw_f1=raw["f1"], epochs=len(history["epoch"]), steps=meta.get("steps"),
                  best_epoch=history.get("best_epoch", [0])[0])
    return result


def classical_scores(name: str, images_dir: Path, masks_dir: Path) -> dict:
    """The classical pipeline on the held-out images, each normalised as the command normalises its
    images (1st and 99.8th percentiles); for rods for dark objects and with the training masks' size."""
    if name != "rods":
        return scores(lambda image: classical_instances(percentile_normalize(image[0])), name)
    size = ImageFolder(images_dir, masks_dir).object_size()
    return scores(lambda image: classical_instances(percentile_normalize(image[0]), dark=True, size=size), name)


def train(images: Path, masks: Path, out: Path, *flags) -> float:
    """``python -m unet_lib.train --images --masks --out`` with ``flags``; returns its wall seconds."""
    start = time.perf_counter()
    train_main(["--images", str(images), "--masks", str(masks), "--out", str(out), "--force", *flags])
    return time.perf_counter() - start


def summary(rows: list[dict], key: str = "f1") -> str:
    values = np.array([r[key] for r in rows], float)
    sd = f", SD {values.std(ddof=1):.3f}" if len(values) > 1 else ""
    return f"{key}: mean {values.mean():.3f}{sd} over {len(values)} seed(s)"


def paired(rows: list[dict], a: str, b: str) -> str:
    diffs = np.array([r[a] - r[b] for r in rows])
    sd = f", SD {diffs.std(ddof=1):.3f}" if len(diffs) > 1 else ""
    return (f"{a} - {b}: " + ", ".join(f"{d:+.3f}" for d in diffs) + f"; mean {diffs.mean():+.3f}{sd}")


# -- the parts ---------------------------------------------------------------------------------

def part_steps(root: Path, seeds: list[int], datasets: list[str], steps: list[int]) -> list[dict]:
    rows = []
    for name in datasets:
        images, masks = FOLDERS[name](root / name)
        for seed in seeds:
            for s in steps:
                per_image, epochs = STEPS[s]
                out = root / f"{name}_{s}_{seed}.pt"
                seconds = train(images, masks, out, "--seed", str(seed), "--tiles-per-image", str(per_image),
                                "--epochs", str(epochs), "--val-fraction", "0.25")
                rows.append(dict(part="steps", data=name, seed=seed, seconds=seconds, **model_scores(out, name)))
                print("ROW", json.dumps(rows[-1]), flush=True)
    print("\n| data | seed | " + " | ".join(f"{s} steps" for s in steps) + " |")
    for name in datasets:
        for seed in seeds:
            f1 = {r["steps"]: r["f1"] for r in rows if r["data"] == name and r["seed"] == seed}
            print(f"| {name} | {seed} | " + " | ".join(f"{f1[s]:.3f}" for s in steps) + " |")
    return rows


def part_defaults(root: Path, seeds: list[int], name: str = "nuclei") -> list[dict]:
    images, masks = FOLDERS[name](root / name)
    fair = classical_scores(name, images, masks)
    rows = []
    for seed in seeds:
        out = root / f"defaults_{name}_{seed}.pt"
        seconds = train(images, masks, out, "--seed", str(seed))
        rows.append(dict(part="defaults", data=name, seed=seed, seconds=seconds, **model_scores(out, name),
                         classical=fair["f1"]))
        print("ROW", json.dumps(rows[-1]), flush=True)
    print(f"\n{name}, the command's defaults | seed | F1 | merged | split | steps | epochs | seconds | classical F1")
    for r in rows:
        print(f"| {r['seed']} | {r['f1']:.3f} | {r['merged']} | {r['split']} | {r['steps']} | {r['epochs']} | "
              f"{r['seconds']:.0f} | {r['classical']:.3f} |")
    print(summary(rows) + "; " + paired(rows, "f1", "classical"))
    return rows


def _fit_directly(images: Path, masks: Path, seed: int, minutes: float, out: Path) -> dict:
    """M minutes of ``fit`` on the command's split, as a practitioner would call it: 8 tiles per
    image per epoch, epochs from a timing of its steps, keep-best, the budget as a guard."""
    data = ImageFolder(images, masks, keep_objects=True, seed=seed)
    train_stems, val_stems = split_by_image(data, 0.2, seed=seed)
    train_part, val_part = data.subset(train_stems), data.subset(val_stems)
    torch.manual_seed(seed)
    model = UNet(in_channels=data.in_channels, depth=3, base_channels=16)
    config = TrainConfig(batch_size=4, seed=seed, keep_best=True, max_minutes=minutes, progress=False)
    tiles = 8 * len(train_stems)
    timing = time_steps(model, TileEpochs(train_part.subset(train_stems, tile_size=TILE), tiles), val_part, config)
    steps_per_epoch = tiles // 4
    config.epochs = max(1, math.floor(60 * minutes / (steps_per_epoch * timing.step + timing.validation)))
    history = fit(model, TileEpochs(train_part.subset(train_stems, tile_size=TILE), tiles), val_part, config)
    size = train_part.object_size()
    meta = dict(low=data.low, high=data.high, mask_kind="instances", object_area=size.area, object_radius=size.radius)
    meta["object_large_area"] = size.large
    result = scores(lambda image: predict_image(model.cpu(), image, meta)[0], "nuclei")
    raw = scores(lambda image: predict_image(model, image, meta, postprocess=False)[0], "nuclei")
    result.update(raw_f1=raw["f1"], epochs=len(history["epoch"]), steps=len(history["epoch"]) * steps_per_epoch)
    return result


def part_budget(root: Path, seeds: list[int], minutes: float) -> list[dict]:
    images, masks = FOLDERS["nuclei"](root / "nuclei")
    rows = []
    for seed in seeds:
        out = root / f"budget_{seed}.pt"
        seconds = train(images, masks, out, "--seed", str(seed), "--max-minutes", f"{minutes:g}")
        command = model_scores(out, "nuclei")
        start = time.perf_counter()
        direct = _fit_directly(images, masks, seed, minutes, root / f"direct_{seed}.pt")
        rows.append(dict(part="budget", seed=seed, minutes=minutes, command=command["f1"], command_seconds=seconds,
                         command_steps=command["steps"], command_raw=command["raw_f1"], fit=direct["f1"],
                         fit_seconds=time.perf_counter() - start, fit_steps=direct["steps"], fit_raw=direct["raw_f1"]))
        print("ROW", json.dumps(rows[-1]), flush=True)
    print(f"\nnuclei, {minutes:g} minutes | seed | command F1 | its steps | its seconds | fit F1 | its steps | "
          f"its seconds")
    for r in rows:
        print(f"| {r['seed']} | {r['command']:.3f} | {r['command_steps']} | {r['command_seconds']:.0f} | "
              f"{r['fit']:.3f} | {r['fit_steps']} | {r['fit_seconds']:.0f} |")
    print(paired(rows, "command", "fit"))
    return rows


def part_rods(root: Path, seeds: list[int]) -> list[dict]:
    return part_defaults(root, seeds, name="rods")


INIT_FROM = {"nuclei": "unet_toycells.pt", "rods": "unet_nuclei.pt"}   # the data: the checkpoint --init starts from


def part_init(root: Path, seeds: list[int], minutes: float, datasets: list[str]) -> list[dict]:
    rows = []
    for name, init in ((name, INIT_FROM[name]) for name in INIT_FROM if name in datasets):
        images, masks = FOLDERS[name](root / name)
        for seed in seeds:
            flags = ["--seed", str(seed), "--max-minutes", f"{minutes:g}"]
            scratch_seconds = train(images, masks, root / "scratch.pt", *flags)
            init_seconds = train(images, masks, root / "init.pt", *flags, "--init", str(course_file(init)))
            scratch, fine_tuned = model_scores(root / "scratch.pt", name), model_scores(root / "init.pt", name)
            rows.append(dict(part="init", data=name, init=init, seed=seed, minutes=minutes, scratch=scratch["f1"],
                             fine_tuned=fine_tuned["f1"], scratch_steps=scratch["steps"],
                             fine_tuned_steps=fine_tuned["steps"], scratch_seconds=scratch_seconds,
                             fine_tuned_seconds=init_seconds))
            print("ROW", json.dumps(rows[-1]), flush=True)
    print(f"\n--init against scratch, {minutes:g} minutes | data | from | seed | scratch F1 | --init F1")
    for r in rows:
        print(f"| {r['data']} | {r['init']} | {r['seed']} | {r['scratch']:.3f} | {r['fine_tuned']:.3f} |")
    for name in sorted({r["data"] for r in rows}):
        print(name + ": " + paired([r for r in rows if r["data"] == name], "fine_tuned", "scratch"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["steps", "defaults", "budget", "rods", "init", "all"], default="defaults")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--minutes", type=float, default=5.0, help="the budget of the budget and init parts")
    parser.add_argument("--data", nargs="+", default=["nuclei", "toy", "rods"], help="the datasets of the steps part (and of the init part: nuclei, rods)")
    parser.add_argument("--steps", type=int, nargs="+", default=sorted(STEPS), choices=sorted(STEPS))
    parser.add_argument("--json", type=Path, default=None, help="append the rows to this file (JSON lines)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="save each model's foreground probabilities on the held-out images here (.npz)")
    args = parser.parse_args()
    global KEEP
    KEEP = args.keep
    if KEEP is not None:
        KEEP.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, load average {os.getloadavg()[0]:.1f}")
    parts = ["steps", "defaults", "budget", "rods", "init"] if args.part == "all" else [args.part]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for part in parts:
            print(f"\n==== {part}", flush=True)
            if part == "steps":
                rows += part_steps(Path(tmp), args.seeds, args.data, args.steps)
            elif part == "defaults":
                rows += part_defaults(Path(tmp), args.seeds)
            elif part == "budget":
                rows += part_budget(Path(tmp), args.seeds, args.minutes)
            elif part == "rods":
                rows += part_rods(Path(tmp), args.seeds)
            else:
                rows += part_init(Path(tmp), args.seeds, args.minutes, args.data)
    if args.json is not None:
        with open(args.json, "a") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)


if __name__ == "__main__":
    main()
