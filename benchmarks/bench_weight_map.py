"""Time the paper's weight map (Eq. 2): unet_lib.weights against the naive way, in one run.

A 256x256 label image with 35 cells (ToyCells' drawing, most cells touching, borders separated).
The naive way runs one full-image distance transform per cell and sorts along the cells
(``border_term_naive``); ``unet_weight_map`` runs each cell's transform only on its bounding box
grown by the distance beyond which the border term is below its tolerance (1e-4).
Target: <= 10 ms for unet_weight_map on the course's 2-core CPU.

    .venv/bin/python benchmarks/bench_weight_map.py [--repeats 30] [--size 256] [--cells 35]
"""

import argparse
import os
import platform
import time

import numpy as np

from unet_lib.data import draw_cells, separate_touching
from unet_lib.weights import border_term, border_term_naive, class_weight_map, unet_weight_map


def naive_weight_map(instances: np.ndarray) -> np.ndarray:
    return class_weight_map((instances > 0).astype(np.int64)) + border_term_naive(instances)


def best_and_median_ms(fn, arg, repeats: int) -> tuple[float, float]:
    fn(arg)                                       # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - start)
    return 1e3 * min(times), 1e3 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--cells", type=int, default=35)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    _, instances = draw_cells(args.size, rng, n_cells=(args.cells, args.cells), radius=(9.0, 16.0), touching=0.7)
    instances = separate_touching(instances)
    n_cells = len(np.unique(instances)) - 1

    fast, naive = unet_weight_map(instances), naive_weight_map(instances)
    error = float(np.abs(fast - naive).max())
    fast_ms = best_and_median_ms(unet_weight_map, instances, args.repeats)
    naive_ms = best_and_median_ms(naive_weight_map, instances, args.repeats)
    border_ms = best_and_median_ms(border_term, instances, args.repeats)

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}")
    print(f"label image {args.size}x{args.size}, {n_cells} cells; {args.repeats} repeats (best / median)")
    print(f"  unet_weight_map (bounding boxes):  {fast_ms[0]:6.1f} / {fast_ms[1]:6.1f} ms")
    print(f"    of which border_term:            {border_ms[0]:6.1f} / {border_ms[1]:6.1f} ms")
    print(f"  naive (full-image EDT per cell):   {naive_ms[0]:6.1f} / {naive_ms[1]:6.1f} ms")
    print(f"  speed-up {naive_ms[0] / fast_ms[0]:.1f}x (best), max |difference| {error:.1e} (must be <= 1e-3)")


if __name__ == "__main__":
    main()
