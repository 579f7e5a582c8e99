"""The paper's weight map against plain cross-entropy, over several seeds.

Trains the course model (unet_lib.train.COURSE_MODEL, COURSE_TRAIN) once with the weight map
of Eq. 2 and once with w(x) = 1, for each seed (model initialisation, shuffling and
augmentation), on the same training tiles (unet_lib.train.course_data), and scores both on 32 held-out toy-cell images
(ToyCells(32, seed=2000): new images, most cells touching another). Writes
data/weighted_vs_unweighted.json, which notebook 07 reads and plots; the notebook re-runs the
weighted seed-0 run live and nbval checks that it agrees with this file.

    .venv/bin/python benchmarks/weighted_vs_unweighted.py [--seeds 0 1 2] [--out PATH]

About 1 minute per run on a 2-core CPU (6 runs for 3 seeds).
"""

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import torch

from unet_lib.atomic import atomic_write
from unet_lib.data import ToyCells
from unet_lib.train import COURSE_MODEL, COURSE_TRAIN, evaluate, train_course_model

OUT = Path(__file__).resolve().parent.parent / "data" / "weighted_vs_unweighted.json"
TEST_SEED, N_TEST = 2000, 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    test = ToyCells(N_TEST, seed=TEST_SEED)
    runs = []
    for seed in args.seeds:
        for weighted in (True, False):
            config = dataclasses.replace(COURSE_TRAIN, seed=seed, weighted=weighted, progress=False)
            start = time.perf_counter()
            model, history = train_course_model(config, model_seed=seed)
            seconds = time.perf_counter() - start
            scores = evaluate(model, test, weighted=True)   # the same yardstick for both
            scores.pop("loss")
            runs.append({"seed": seed, "weighted": weighted, "train_seconds": round(seconds, 1),
                         "final_train_loss": history["train_loss"][-1], **scores})
            print(f"seed {seed} {'weighted  ' if weighted else 'unweighted'}: F1 {scores['f1']:.3f}, "
                  f"merged {scores['merged']}, IoU {scores['iou']:.3f}, {seconds:.0f} s", flush=True)
    result = {
        "what": "course model trained with and without the weight map (Eq. 2), scored on held-out toy cells",
        "model": COURSE_MODEL, "train": dataclasses.asdict(COURSE_TRAIN),
        "test_data": f"ToyCells({N_TEST}, seed={TEST_SEED})",
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "runs": runs,
    }
    atomic_write(args.out, json.dumps(result, indent=1) + "\n")   # a killed run never leaves half a file
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
