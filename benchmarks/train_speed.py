"""Training speed and quality of the course model on this machine.

1. Large-matmul GFLOP/s (2048x2048 float32), the machine's practical peak.
2. GFLOP/s of one U-Net training step of the course model (batch 4, 128x128 toy cells
   mirror-padded to 220x220), in NCHW and in channels_last memory format. FLOPs are counted
   by torch.utils.flop_counter (forward + backward, convolutions and matmuls).
3. The course recipe end to end (python -m unet_lib.train does the same): seconds of training,
   and foreground IoU and instance F1 on held-out toy cells (ToyCells(32, seed=2000)).

    .venv/bin/python benchmarks/train_speed.py [--skip-training]

Timings depend on the CPU and on what else runs; run it on a quiet machine.
"""

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from unet_lib import UNet
from unet_lib.data import ToyCells
from unet_lib.tiling import padded_forward
from unet_lib.train import COURSE_MODEL, COURSE_TRAIN, course_data, evaluate, train_course_model, train_step


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def step_gflops(channels_last: bool, batch_size: int = 4, steps: int = 10) -> tuple[float, float]:
    """(GFLOP/s, seconds per step) of the course model's training step."""
    torch.manual_seed(0)
    model = UNet(**COURSE_MODEL)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    data = ToyCells(batch_size, seed=0)
    batch = {k: torch.stack([data[i][k] for i in range(batch_size)]) for k in ("image", "mask", "weight_map")}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with FlopCounterMode(display=False) as counter:
        loss = padded_forward(model, batch["image"]).sum()
        loss.backward()
    flops = counter.get_total_flops()
    for _ in range(3):
        train_step(model, optimizer, batch, channels_last=channels_last)
    start = time.perf_counter()
    for _ in range(steps):
        train_step(model, optimizer, batch, channels_last=channels_last)
    seconds = (time.perf_counter() - start) / steps
    return flops / seconds / 1e9, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-training", action="store_true", help="only the throughput measurements")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    peak = matmul_gflops()
    print(f"large matmul (2048x2048 float32): {peak:.0f} GFLOP/s")
    for channels_last in (False, True):
        gflops, seconds = step_gflops(channels_last)
        print(f"U-Net training step, {'channels_last' if channels_last else 'NCHW         '}: "
              f"{gflops:.0f} GFLOP/s = {gflops / peak:.0%} of matmul ({seconds * 1000:.0f} ms/step)")
    if args.skip_training:
        return
    config = COURSE_TRAIN.__class__(**{**COURSE_TRAIN.__dict__, "progress": False})
    model, history = train_course_model(config)
    scores = evaluate(model, ToyCells(32, seed=2000))
    n_train = len(course_data()[0])
    print(f"course recipe: {config.epochs} epochs x {n_train} images in {history['seconds'][-1]:.0f} s; "
          f"held-out IoU {scores['iou']:.3f} (target 0.95), instance F1 {scores['f1']:.3f} (target 0.90), "
          f"merged {scores['merged']}, split {scores['split']}")


if __name__ == "__main__":
    main()
