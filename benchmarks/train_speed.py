"""Training speed and quality of the course model on this machine.

1. Large-matmul GFLOP/s (2048x2048 float32), the machine's practical peak.
2. GFLOP/s of one U-Net training step, in NCHW and in channels_last memory format: the
   course model on the course's batch (one 256x256 tile, mirror-padded to 348x348), and a
   model of the paper's width (depth 4, 64 channels at the top) on one 388x388 tile (572x572
   input). FLOPs are counted by torch.utils.flop_counter (forward + backward, convolutions
   and matmuls); the time includes everything else (BatchNorm, ReLU, the optimizer), and
   torch.profiler says how much of it the convolutions take.
3. The course recipe end to end (python -m unet_lib.train does the same): seconds of training,
   and foreground IoU and instance F1 on held-out toy cells (ToyCells(32, seed=2000)).

    .venv/bin/python benchmarks/train_speed.py [--skip-training]

Timings depend on the CPU and on what else runs; run it on a quiet machine.
"""

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from unet_lib import UNet
from unet_lib.data import ToyCells
from unet_lib.tiling import padded_forward
from unet_lib.train import COURSE_MODEL, COURSE_TRAIN, course_data, evaluate, train_course_model, train_step


def matmul_gflops(n: int = 2048, rounds: int = 5, repeats: int = 4) -> float:
    """The best of ``rounds`` timings of ``repeats`` float32 n x n matmuls: the practical peak."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = max(best, 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9)
    return best


def step_gflops(model_config: dict, batch: dict, channels_last: bool, steps: int = 10
                ) -> tuple[float, float, float]:
    """(GFLOP/s, seconds per step, share of the time in convolutions) of a training step of
    ``UNet(**model_config)`` on ``batch``."""
    torch.manual_seed(0)
    model = UNet(**model_config)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
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
    return flops / seconds / 1e9, seconds, _convolution_share(model, optimizer, batch, channels_last)


def _convolution_share(model, optimizer, batch: dict, channels_last: bool, steps: int = 3) -> float:
    """The fraction of a training step's time spent inside convolutions (torch.profiler)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            train_step(model, optimizer, batch, channels_last=channels_last)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    convolutions = sum(e.self_cpu_time_total for e in events if e.key in _CONVOLUTION_OPS)
    return convolutions / total


_CONVOLUTION_OPS = {"aten::mkldnn_convolution", "aten::convolution_backward", "aten::_slow_conv2d_forward",
                    "aten::_slow_conv2d_backward", "aten::slow_conv_transpose2d", "aten::thnn_conv2d"}


def first_batch(data, batch_size: int) -> dict:
    return {k: torch.stack([data[i][k] for i in range(batch_size)]) for k in ("image", "mask", "weight_map")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-training", action="store_true", help="only the throughput measurements")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    peak = matmul_gflops()
    print(f"large matmul (2048x2048 float32): {peak:.0f} GFLOP/s")
    course_batch = first_batch(course_data()[0], COURSE_TRAIN.batch_size)
    # the paper's width (64 channels at the top, depth 4) on one 388x388 output tile (572x572 input)
    paper_batch = first_batch(ToyCells(1, size=388, n_cells=(54, 108)), 1)
    for name, model_config, batch in [("course model", COURSE_MODEL, course_batch),
                                      ("paper-width model", {**COURSE_MODEL, "depth": 4, "base_channels": 64},
                                       paper_batch)]:
        for channels_last in (False, True):
            gflops, seconds, share = step_gflops(model_config, batch, channels_last,
                                                 steps=10 if name == "course model" else 3)
            print(f"{name} training step, {'channels_last' if channels_last else 'NCHW'}: {gflops:.0f} GFLOP/s "
                  f"= {gflops / peak:.0%} of matmul ({seconds * 1000:.0f} ms/step, batch "
                  f"{tuple(batch['image'].shape)}); {share:.0%} of the time in convolutions, which run at "
                  f"{gflops / share:.0f} GFLOP/s = {gflops / share / peak:.0%} of matmul")
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
