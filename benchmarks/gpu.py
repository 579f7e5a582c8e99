"""GPU speed of the paper's network and of the course model (issue #14).

1. Scale: large-matmul TFLOP/s of this GPU in float32 (TF32 off), TF32 and bfloat16, the
   practical peak the other numbers are read against.
2. Inference latency of the paper's network (depth 4, 64 channels at the top, valid padding,
   ``UNet()``): one 572x572 tile (its 388x388 output), and one 512x512 image by overlap-tile
   (``predict_tiled``, every pixel predicted, mirrored borders), in float32, channels_last,
   and bfloat16 autocast. The paper (its abstract) segments a 512x512 image in less than a
   second on a GPU of 2015 (an NVIDIA Titan, 6 GB). Our target on an H100: under 10 ms per
   512x512 image.
3. Training throughput in images (tiles) per second, forward + loss + backward + Adam step:
   the course model on 256x256 tiles (mirror-padded to 348x348, batch 16) and the paper's
   network on 572x572 tiles (batch 4), in float32 and with mixed precision (``TrainConfig.amp``:
   bfloat16 autocast, as ``unet_lib.train.train_step`` does it).

Timings use CUDA events after warm-up; each is the median of ``--repeats`` runs, with the
spread (min to max) printed next to it. Results also go to ``--json`` if given.

    .venv/bin/python benchmarks/gpu.py [--json gpu.json] [--repeats 20]
    .venv/bin/python benchmarks/gpu.py --device cpu --quick     # a smoke run of the script itself

Without a CUDA GPU (and without ``--device cpu``) it says so and exits: nothing is measured.
"""

import argparse
import json
import statistics
import sys
import time

import torch

from unet_lib import UNet
from unet_lib.losses import weighted_cross_entropy
from unet_lib.tiling import padded_forward, predict_tiled
from unet_lib.train import COURSE_MODEL


def _timer(device: torch.device):
    """A function that runs ``fn`` once and returns its wall time in ms (CUDA events on a GPU)."""
    if device.type == "cuda":
        def run(fn) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            return start.elapsed_time(end)
    else:
        def run(fn) -> float:
            start = time.perf_counter()
            fn()
            return 1e3 * (time.perf_counter() - start)
    return run


def measure(fn, device: torch.device, repeats: int, warmup: int = 2) -> dict:
    """Median, min and max milliseconds of ``repeats`` calls of ``fn`` after ``warmup`` calls."""
    timer = _timer(device)
    for _ in range(warmup):
        timer(fn)
    times = [timer(fn) for _ in range(repeats)]
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times), "runs": repeats}


def matmul_tflops(device: torch.device, dtype: torch.dtype, tf32: bool, n: int, repeats: int) -> float:
    torch.backends.cuda.matmul.allow_tf32 = tf32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t = measure(lambda: a @ b, device, repeats)
    torch.backends.cuda.matmul.allow_tf32 = False
    return 2 * n**3 / (t["median_ms"] / 1e3) / 1e12


def _autocast(device: torch.device, amp: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp)


def inference(device: torch.device, repeats: int, quick: bool) -> dict:
    torch.manual_seed(0)
    # the paper's network: 572 -> 388, 64 -> 1024 channels (quick: 8 -> 128, to check the script only)
    model = UNet(base_channels=8 if quick else 64).to(device).eval()
    side = 204 if quick else 572                          # 204: a small valid tile, for a CPU smoke run
    image = 40 if quick else 512                          # quick: 2x2 tiles of 20 output pixels
    tile = torch.rand(1, 1, side, side, device=device)
    picture = torch.rand(image, image)
    results = {}
    for name, channels_last, amp in (("fp32", False, False), ("fp32 channels_last", True, False),
                                     ("bf16 autocast channels_last", True, True)):
        if amp and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            continue
        model = model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        x = tile.contiguous(memory_format=torch.channels_last) if channels_last else tile

        def one_tile():
            with torch.inference_mode(), _autocast(device, amp):
                model(x)

        def whole_image():
            with torch.inference_mode(), _autocast(device, amp):
                predict_tiled(model, picture, tile_size=side)

        results[name] = {f"tile {side}x{side}": measure(one_tile, device, repeats),
                         f"image {image}x{image}, overlap-tile": measure(whole_image, device, max(3, repeats // 4))}
    return results


def training(device: torch.device, repeats: int, quick: bool) -> dict:
    cases = {"course model, 256x256 tiles": (UNet(**COURSE_MODEL), 64 if quick else 256, 2 if quick else 16),
             "paper network, 572x572 tiles": (UNet(base_channels=8 if quick else 64), 20 if quick else 388, 1 if quick else 4)}
    results = {}
    for name, (model, out, batch) in cases.items():
        torch.manual_seed(0)
        model = model.to(device).to(memory_format=torch.channels_last).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        if name.startswith("course"):      # mirror-padded in the step, as fit trains it
            images = torch.rand(batch, 1, out, out, device=device)
            forward = lambda x: padded_forward(model, x)                          # noqa: E731
        else:                              # the paper's way: a 572 tile gives a 388 output
            images = torch.rand(batch, 1, out + 184, out + 184, device=device)
            forward = model
        images = images.contiguous(memory_format=torch.channels_last)
        mask = torch.randint(0, 2, (batch, out, out), device=device)
        weight_map = torch.ones(batch, out, out, device=device)
        for precision, amp in (("fp32", False), ("bf16 autocast", True)):
            if amp and device.type == "cuda" and not torch.cuda.is_bf16_supported():
                continue

            def step():
                with _autocast(device, amp):
                    logits = forward(images)
                loss = weighted_cross_entropy(logits.float(), mask, weight_map)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            t = measure(step, device, repeats)
            results[f"{name}, batch {batch}, {precision}"] = {**t, "images_per_s": batch / (t["median_ms"] / 1e3)}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/gpu.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu for a smoke run")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats: checks the script runs")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU here: nothing measured (use --device cpu --quick to check the script itself)")
        return 0
    repeats = 3 if args.quick else args.repeats
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "quick": args.quick}
    n = 512 if args.quick else 8192
    report["matmul_tflops"] = {"fp32 (TF32 off)": matmul_tflops(device, torch.float32, False, n, repeats)}
    if device.type == "cuda":
        report["matmul_tflops"]["tf32"] = matmul_tflops(device, torch.float32, True, n, repeats)
        report["matmul_tflops"]["bf16"] = matmul_tflops(device, torch.bfloat16, False, n, repeats)
    report["inference"] = inference(device, repeats, args.quick)
    report["training"] = training(device, repeats, args.quick)

    print(f"{report['device']}, torch {report['torch']}{' (quick: small sizes)' if args.quick else ''}")
    for name, value in report["matmul_tflops"].items():
        print(f"  matmul {n}x{n} {name}: {value:.1f} TFLOP/s")
    for precision, cases in report["inference"].items():
        for case, t in cases.items():
            print(f"  inference, paper network, {precision}, {case}: {t['median_ms']:.2f} ms "
                  f"(min {t['min_ms']:.2f}, max {t['max_ms']:.2f}, {t['runs']} runs)")
    for case, t in report["training"].items():
        print(f"  training, {case}: {t['images_per_s']:.1f} images/s ({t['median_ms']:.1f} ms per step, "
              f"min {t['min_ms']:.1f}, max {t['max_ms']:.1f})")
    if args.json:
        from unet_lib.atomic import atomic_write
        atomic_write(args.json, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
