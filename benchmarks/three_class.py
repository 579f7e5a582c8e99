"""Touching cells: the paper's weight map (2 classes) against a border class (3 classes).

Two ways to keep touching cells apart, trained on the same toy cells with the same recipe:

* **weight map**: the paper's targets, cell or background, with the borders between touching
  cells cut out as background and weighted by Eq. 2 (w0 = 10, sigma = 5); instances are the
  connected components of the predicted cell class (``label_instances``);
* **border class**: three classes, background, interior and the cell's own 2-px border ring
  (``unet_lib.data.interior_border_classes``), balanced class weights (w_c of Eq. 2, no border
  term); instances are the interiors grown into their borders (``instances_from_classes``).

The course model (``COURSE_MODEL``, with 3 output classes for the second arm) is trained with the
course recipe (``COURSE_TRAIN``: 18 epochs of 16 256x256 tiles, with augmentation) on
``course_data(seed=S)``. With augmentation (the default), the weight map's targets are recomputed
from the deformed instances and the three-class map is deformed with the image by nearest
neighbour (``unet_lib.augment.Augmented``, as ``python -m unet_lib.train --classes 3`` does);
``--no-augment`` trains both arms without it (the first version of this benchmark, run before
``fit`` could deform class maps). The seed sets the training images, the initialisation, the
shuffling and the augmentation. Each model is scored on ``ToyCells(32, seed=2000)``: instance F1
at IoU >= 0.5, merged and split cells, and the foreground Dice.

``data/three_class.json`` keeps one entry per recipe ("with augmentation", "without
augmentation"); a run replaces the entry of its own recipe only:

    .venv/bin/python benchmarks/three_class.py --seeds 0 1 2 --json                # with augmentation
    .venv/bin/python benchmarks/three_class.py --seeds 0 1 2 --json --no-augment   # without

or one process per seed, then the merge (what made the shipped file, on a busy 2-core machine):

    .venv/bin/python benchmarks/three_class.py --seeds 0 --out /tmp/three_class_0.json   # and 1, 2
    .venv/bin/python benchmarks/three_class.py --merge /tmp/three_class_*.json --json

Prints per-seed values, mean and sample SD (ddof=1), and the paired differences (border class
minus weight map, same seed: same images, the same initialisation of the shared layers and the
same draws of the augmentation).
"""

import argparse
import dataclasses
import json
import os

import numpy as np
import torch

from unet_lib.atomic import atomic_write
from unet_lib.data import ToyCells, interior_border_classes
from unet_lib.shipped import course_file
from unet_lib.metrics import dice, instance_scores, instances_from_classes, label_instances
from unet_lib.tiling import padded_forward
from unet_lib.train import COURSE_MODEL, COURSE_TRAIN, course_data, fit
from unet_lib.model import UNet
from unet_lib.weights import class_balance_map

RESULTS = course_file("three_class.json", must_exist=False)
TEST = dict(n=32, seed=2000)
RECIPES = {True: "with augmentation", False: "without augmentation"}


def three_class(data) -> list[dict]:
    """The samples of ``data`` with a three-class mask and its balanced class weights."""
    samples = []
    for i in range(len(data)):
        sample = dict(data[i])
        classes = interior_border_classes(sample["instances"].numpy())            # (H, W) in {0, 1, 2}
        sample["mask"] = torch.from_numpy(classes)
        sample["weight_map"] = torch.from_numpy(class_balance_map(classes, 3))
        samples.append(sample)
    return samples


@torch.no_grad()
def score(model: UNet, arm: str) -> dict:
    """Instance scores pooled over the test images, and the pooled foreground Dice."""
    model.eval()
    test = ToyCells(TEST["n"], seed=TEST["seed"])
    total, fg_pred, fg_true = None, [], []
    for i in range(len(test)):
        sample = test[i]
        pred = padded_forward(model, sample["image"][None])[0].argmax(0).numpy()  # (H, W) classes
        pred_instances = instances_from_classes(pred) if arm == "border class" else label_instances(pred > 0)
        s = instance_scores(pred_instances, sample["instances"].numpy())
        total = s if total is None else total + s
        fg_pred.append(pred_instances > 0)
        fg_true.append(sample["instances"].numpy() > 0)
    return dict(f1=total.f1, merged=total.merged, split=total.split, tp=total.tp, fp=total.fp, fn=total.fn,
                dice=dice(np.stack(fg_pred), np.stack(fg_true)))


def run(seed: int, augment: bool = True) -> dict:
    train, val = course_data(seed=seed)
    config = dataclasses.replace(COURSE_TRAIN, augment=augment, progress=False, seed=seed)
    result = {}
    for arm in ("weight map", "border class"):
        if arm == "weight map":
            train_data, val_data, k = train, val, 2
        else:
            train_data, val_data, k = three_class(train), three_class(val), 3
        torch.manual_seed(seed)
        model = UNet(**{**COURSE_MODEL, "num_classes": k})
        fit(model, train_data, val_data, config)
        result[arm] = score(model, arm)
        r = result[arm]
        print(f"{RECIPES[augment]}, seed {seed}, {arm:12}: F1 {r['f1']:.3f}, merged {r['merged']}, split {r['split']}, "
              f"Dice {r['dice']:.3f}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-augment", dest="augment", action="store_false",
                        help="train both arms without augmentation (default: with, as the course recipe)")
    parser.add_argument("--json", action="store_true", help=f"write the results to {RESULTS} (this recipe's entry)")
    parser.add_argument("--out", default=None, help="write this process's runs to this JSON file (for --merge)")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON", help="combine the runs of --out files")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}")
    threads = torch.get_num_threads()
    if args.merge:
        runs, threads, recipes = {}, set(), set()
        for path in args.merge:
            part = json.loads(open(path).read())
            runs.update({int(s): r for s, r in part["runs"].items()})
            threads.add(part["threads"])
            recipes.add(part.get("augment", False))   # files written before --no-augment existed: without
        if len(recipes) > 1:
            raise SystemExit("the --merge files mix runs with and without augmentation; merge each recipe alone")
        args.augment = recipes.pop()
        threads = sorted(threads)[0] if len(threads) == 1 else sorted(threads)   # of the training processes
        runs = dict(sorted(runs.items()))
        args.seeds = list(runs)
    else:
        runs = {seed: run(seed, args.augment) for seed in args.seeds}
    if args.out:
        atomic_write(args.out, json.dumps(dict(runs={str(s): r for s, r in runs.items()}, augment=args.augment,
                                               threads=torch.get_num_threads()), indent=1) + "\n")
        return
    summary = {}
    for key in ("f1", "merged", "split", "dice"):
        per_arm = {arm: np.array([runs[s][arm][key] for s in args.seeds], float) for arm in ("weight map", "border class")}
        diff = per_arm["border class"] - per_arm["weight map"]
        sd = (lambda v: float(v.std(ddof=1)) if len(v) > 1 else None)
        summary[key] = {arm: dict(mean=float(v.mean()), sd=sd(v)) for arm, v in per_arm.items()}
        summary[key]["difference"] = dict(values=diff.tolist(), mean=float(diff.mean()), sd=sd(diff))
        print(f"{key:7} weight map {per_arm['weight map'].mean():.3f} | border class {per_arm['border class'].mean():.3f}"
              f" | paired differences {', '.join(f'{d:+.3f}' for d in diff)} (mean {diff.mean():+.3f})")
    if args.json:
        results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
        results = results if "recipes" in results else {"recipes": {}}   # the first version held one recipe
        recipe = RECIPES[args.augment]
        results["recipes"][recipe] = dict(
            recipe=f"COURSE_MODEL, COURSE_TRAIN {recipe}, course_data(seed=S); test ToyCells(32, seed=2000)",
            augment=args.augment, runs={str(s): r for s, r in runs.items()}, summary=summary,
            torch=torch.__version__, threads=threads)
        atomic_write(RESULTS, json.dumps(results, indent=1) + "\n")
        print(f"wrote the entry {recipe!r} of {RESULTS}")

if __name__ == "__main__":
    main()
