"""What each term of the paper's weight map (Eq. 2) does: four arms over several seeds.

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2))                          (2)

The arms, all on the course model and recipe (unet_lib.train.COURSE_MODEL, COURSE_TRAIN):

  none     w(x) = 1: plain cross-entropy
  w_c      class balancing only (w0 = 0)
  border   the border term only (w_c = 1 for both classes)
  both     Eq. 2 as in the paper (balanced w_c, w0 = 10, sigma = 5)

Seed s sets the training tiles (unet_lib.train.course_data(seed=s)), the model initialisation,
the shuffling and the augmentation, so the seeds vary the data as well as the initialisation.
The arms of one seed share all of them: their differences are paired. Every run is scored on
the same 32 held-out toy images (ToyCells(32, seed=2000)). Writes data/loss_ablation.json,
which notebook 07 reads and plots, and prints per-seed values, mean, sample SD (ddof=1) and the
paired differences to "both".

    .venv/bin/python benchmarks/loss_ablation.py [--seeds 0 1 2 3 4] [--out PATH]
    .venv/bin/python benchmarks/loss_ablation.py --merge PART1.json PART2.json [--out PATH]

About 50 s per run on a 2-core CPU (20 runs for 5 seeds). To use both cores of a busy machine,
run two processes with OMP_NUM_THREADS=1 on different seeds (--out to two files), then --merge.
"""

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from unet_lib.atomic import atomic_write
from unet_lib.data import ToyCells
from unet_lib.shipped import course_file
from unet_lib.train import COURSE_MODEL, COURSE_TRAIN, evaluate, train_course_model

OUT = course_file("loss_ablation.json", must_exist=False)   # notebook 07 reads it
TEST_SEED, N_TEST = 2000, 32
# (weighted, the dataset's weight-map settings) per arm
ARMS = {
    "none": (False, {}),
    "w_c": (True, dict(w0=0.0)),
    "border": (True, dict(class_weights=(1.0, 1.0))),
    "both": (True, {}),
}
METRICS = ("f1", "merged", "split", "iou")


def summary(runs: list[dict]) -> str:
    """Per-seed values, mean and sample SD per arm, and paired differences to "both"."""
    lines = []
    seeds = sorted({r["seed"] for r in runs})
    table = {(r["arm"], r["seed"]): r for r in runs}
    for metric in METRICS:
        lines.append(f"{metric}: " + "  ".join(f"seed {s}" for s in seeds) + "   mean   SD (ddof=1)")
        for arm in ARMS:
            values = np.array([table[arm, s][metric] for s in seeds], float)
            lines.append(f"  {arm:7s} " + " ".join(f"{v:7.3f}" for v in values)
                         + f"  {values.mean():7.3f} {values.std(ddof=1):7.3f}")
        for arm in ARMS:
            if arm == "both":
                continue
            diff = np.array([table["both", s][metric] - table[arm, s][metric] for s in seeds], float)
            lines.append(f"  both - {arm:7s}" + " ".join(f"{v:7.3f}" for v in diff)
                         + f"  {diff.mean():7.3f} {diff.std(ddof=1):7.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--merge", type=Path, nargs="+", help="combine the runs of these results files")
    args = parser.parse_args()
    if args.merge:
        parts = [json.loads(path.read_text()) for path in args.merge]
        result = {**parts[0], "machine": " + ".join(sorted({p["machine"] for p in parts})),
                  "runs": sorted((r for p in parts for r in p["runs"]), key=lambda r: (r["seed"], list(ARMS).index(r["arm"])))}
        atomic_write(args.out, json.dumps(result, indent=1) + "\n")
        print(summary(result["runs"]))
        print(f"wrote {args.out}")
        return
    test = ToyCells(N_TEST, seed=TEST_SEED)
    runs = []
    for seed in args.seeds:
        for arm, (weighted, target_kwargs) in ARMS.items():
            config = dataclasses.replace(COURSE_TRAIN, seed=seed, weighted=weighted, progress=False)
            start = time.perf_counter()
            model, history = train_course_model(config, data_seed=seed, model_seed=seed, **target_kwargs)
            seconds = time.perf_counter() - start
            scores = evaluate(model, test)                  # the same yardstick for every arm
            scores.pop("loss")
            runs.append({"seed": seed, "arm": arm, "train_seconds": round(seconds, 1),
                         "final_train_loss": history["train_loss"][-1], **scores})
            print(f"seed {seed} {arm:7s}: F1 {scores['f1']:.3f}, merged {scores['merged']}, "
                  f"split {scores['split']}, IoU {scores['iou']:.3f}, {seconds:.0f} s", flush=True)
    result = {
        "what": "the terms of Eq. 2, four arms (none, w_c only, border term only, both), "
                "course model, scored on held-out toy cells",
        "arms": {arm: {"weighted": weighted, "dataset": target_kwargs} for arm, (weighted, target_kwargs) in ARMS.items()},
        "model": COURSE_MODEL, "train": dataclasses.asdict(COURSE_TRAIN),
        "test_data": f"ToyCells({N_TEST}, seed={TEST_SEED})",
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "runs": runs,
    }
    atomic_write(args.out, json.dumps(result, indent=1) + "\n")
    if len(args.seeds) > 1:
        print(summary(runs))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
