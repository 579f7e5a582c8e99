"""The shipped nuclei model (``data/unet_nuclei.pt``) against the fair classical pipeline.

Notebook 11's recipe for your own images, run on the real nuclei image of notebook 10:

1. the left half of the image (columns 0-255) is cut into eight 128x128 files
   (``unet_lib.data.real_nuclei_crops``): the images as 8-bit PNG, the instance masks as 16-bit
   TIFF, in a temporary ``images/`` and ``masks/`` folder. The right half (columns 256-511) is
   never written, so no training run can see it;
2. ``python -m unet_lib.train`` (called as ``unet_lib.train.main``) trains on those folders with
   ``TRAIN_ARGS`` and ``--seed S``: the seed sets the validation images (``split_by_image``: 2 of
   the 8 files), the initialisation, the tiles and the augmentation;
3. each model predicts the whole 512x512 image as stored (``unet_lib.predict.predict_image``,
   what ``python -m unet_lib.predict`` does per file), and the right half is scored: foreground
   Dice and instance F1 at IoU >= 0.5 (``unet_lib.metrics``), as notebook 10 scores it. The fair
   classical pipeline (``classical_instances``: blur, Otsu, size filter, watershed; its settings
   chosen on the left half) is scored the same way.

    .venv/bin/python benchmarks/nuclei_model.py                      # seeds 0 1 2, prints the table
    .venv/bin/python benchmarks/nuclei_model.py --ship 0             # and copies seed 0's model to data/
    .venv/bin/python benchmarks/nuclei_model.py --seeds 0 --ship 0   # only the shipped model

Per seed: Dice, F1, merged and split for the U-Net, the margin over the fair pipeline (a paired
difference: the same held-out half); then mean and sample SD (ddof=1) over the seeds. The results
go to ``data/nuclei_model.json`` with ``--json`` (the shipped model's scores are recomputed by
notebook 11; the three-seed table is in data/README.md).
"""

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from unet_lib.baselines import classical_instances
from unet_lib.checkpoint import load_checkpoint
from unet_lib.data import REAL_NUCLEI_FILES, load_real_nuclei, real_nuclei_crops
from unet_lib.files import write_labels
from unet_lib.metrics import dice, instance_scores
from unet_lib.predict import predict_image
from unet_lib.shipped import course_file
from unet_lib.train import main as train_main

# the recipe of notebook 11: depth 3 (its 92-px window holds a ~24-px nucleus and its neighbours),
# 100x100 training tiles drawn at random from the 128x128 files, 8 per file per epoch (48 per epoch
# from the 6 training files), the best validation epoch kept
TRAIN_ARGS = ["--depth", "3", "--base-channels", "16", "--tile", "100", "--tiles-per-image", "8",
              "--batch-size", "4", "--epochs", "40", "--val-fraction", "0.25"]
EVAL_COLS = np.s_[:, 256:]              # the held-out right half
SHIPPED = course_file("unet_nuclei.pt", must_exist=False)
RESULTS = course_file("nuclei_model.json", must_exist=False)


def write_left_half(root: Path) -> tuple[Path, Path]:
    """The left half as eight 128x128 files: root/images/<stem>.png (uint8), root/masks/<stem>.tif."""
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    for stem, (image, instances) in real_nuclei_crops().items():
        iio.imwrite(images / f"{stem}.png", image)                  # (128, 128) uint8
        write_labels(masks / f"{stem}.tif", instances)              # (128, 128) uint16
    return images, masks


def score(pred_instances: np.ndarray, instances: np.ndarray) -> dict:
    """Foreground Dice and instance scores of (H, W) labels on the right half."""
    pred, truth = pred_instances[EVAL_COLS], instances[EVAL_COLS]
    s = instance_scores(pred, truth)
    return dict(dice=dice(pred > 0, truth > 0), f1=s.f1, tp=s.tp, fp=s.fp, fn=s.fn, merged=s.merged, split=s.split)


def evaluate_model(path: Path) -> dict:
    """Score the checkpoint at ``path`` on the right half, predicting the stored image as a file would be."""
    model, _, history, meta = load_checkpoint(path)
    with np.load(course_file(REAL_NUCLEI_FILES["image"])) as f:
        raw = f["image"].astype(np.uint8)                           # (512, 512) as stored
    _, instances = load_real_nuclei()
    labels, _ = predict_image(model, raw[None], meta)               # (H, W) instances
    result = score(labels, instances)
    result.update(best_epoch=history.get("best_epoch", [None])[0], epochs=len(history["epoch"]),
                  train_seconds=history["seconds"][-1], val_images=meta["val_images"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ship", type=int, default=None, metavar="SEED",
                        help=f"copy this seed's checkpoint to {SHIPPED}")
    parser.add_argument("--json", action="store_true", help=f"write the results to {RESULTS}")
    args = parser.parse_args()
    _, instances = load_real_nuclei()
    fair = score(classical_instances(load_real_nuclei()[0]), instances)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"fair classical pipeline on the right half: Dice {fair['dice']:.3f}, F1 {fair['f1']:.3f}, "
          f"merged {fair['merged']}, split {fair['split']}")
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        images, masks = write_left_half(Path(tmp) / "nuclei")
        for seed in args.seeds:
            out = Path(tmp) / f"unet_nuclei_seed{seed}.pt"
            argv = ["--images", str(images), "--masks", str(masks), "--out", str(out), "--seed", str(seed)] + TRAIN_ARGS
            print("\npython -m unet_lib.train " + " ".join(argv), flush=True)
            start = time.perf_counter()
            train_main(argv)
            runs[seed] = evaluate_model(out)
            runs[seed]["wall_seconds"] = time.perf_counter() - start
            r = runs[seed]
            print(f"seed {seed}: Dice {r['dice']:.3f}, F1 {r['f1']:.3f}, merged {r['merged']}, split {r['split']} "
                  f"(best epoch {r['best_epoch']:.0f} of {r['epochs']})", flush=True)
            if seed == args.ship:
                shutil.copyfile(out, SHIPPED)
                print(f"copied to {SHIPPED} ({SHIPPED.stat().st_size / 1e6:.1f} MB)")
    print(f"\n| seed | U-Net Dice | U-Net F1 | merged | split | F1 - fair F1 | Dice - fair Dice |")
    for seed, r in runs.items():
        print(f"| {seed} | {r['dice']:.3f} | {r['f1']:.3f} | {r['merged']} | {r['split']} | "
              f"{r['f1'] - fair['f1']:+.3f} | {r['dice'] - fair['dice']:+.3f} |")
    summary = {}
    for key in ("dice", "f1"):
        values = np.array([r[key] for r in runs.values()])
        margins = values - fair[key]                                # paired: the same held-out half
        summary[key] = dict(mean=float(values.mean()), sd=float(values.std(ddof=1)) if len(values) > 1 else None,
                            margin_mean=float(margins.mean()),
                            margin_sd=float(margins.std(ddof=1)) if len(values) > 1 else None,
                            margin_min=float(margins.min()))
        sd = f", SD {summary[key]['sd']:.3f}" if len(values) > 1 else ""
        print(f"{key}: mean {values.mean():.3f}{sd} over {len(values)} seed(s); fair {fair[key]:.3f}; "
              f"margin mean {margins.mean():+.3f}, smallest {margins.min():+.3f}")
    if args.json:
        RESULTS.write_text(json.dumps(dict(
            recipe="python -m unet_lib.train --images IMAGES --masks MASKS --out MODEL.pt --seed S " + " ".join(TRAIN_ARGS),
            data="left half of the real nuclei image as eight 128x128 files (real_nuclei_crops); scored on the right half",
            shipped_seed=args.ship, fair=fair, runs={str(k): v for k, v in runs.items()}, summary=summary,
            torch=torch.__version__, threads=torch.get_num_threads()), indent=1) + "\n")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
