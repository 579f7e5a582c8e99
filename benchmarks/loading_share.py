"""The share of a training step spent loading, on crowded, sparse and class-map data (#21).

Target: loading (drawing a tile, augmenting it, its mask and weight map, collating the batch) at
most 15% of a training step, whatever the data. Three folders of 512x512 16-bit TIFFs, read by
``ImageFolder(tile_size=132)`` (the command line's default tile for the default model):

* crowded: toy cells of radius 4-7 px packed over the image (``draw_cells``, 1000 per image,
  90% touching, 31% of the pixels): a 132x132 tile holds about 80, and Eq. 2's per-cell boxes
  would cover it about 12 times;
* sparse: phase-contrast-like rods under 2% of the image (``benchmarks/rods.py``), instance masks;
* class maps: the same rods as 3-class maps (background, interior, a 2-px border:
  ``interior_border_classes``), the alternative the issue compared with (same images).

The loader is the one ``fit`` builds (``Augmented`` around the dataset, a shuffled ``DataLoader``,
batch 4, ``num_workers=0``); the model the command line's default (``COURSE_MODEL``, 2 or 3
classes), trained with ``train_step`` in channels_last as ``fit`` does on the CPU. After a warm-up
epoch, (a) loading ``--batches`` batches and (b) training on the same batches are timed in CPU
seconds of this process with one torch thread (``time.process_time``: what the process computed,
not the time it waited for a core, so a busy machine changes it less than the wall clock);
the share is a / (a + b). Also: the Eq. 2 weight map of the tiles by both of ``border_term``'s
ways, and the validation at the end of an epoch (``evaluate`` on 2 whole images), in CPU seconds.

``--part metrics``: what the validation of instance masks adds at the end of every epoch and class
maps do not: matching predicted with true objects (``instance_scores``) and the Rand error, on an
early model's prediction (the true cells and specks of noise, each speck an object), by image size.

    .venv/bin/python benchmarks/loading_share.py [--batches 20] [--repeats 3] [--part share|metrics|both]
"""

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rods import draw_rods  # noqa: E402

import unet_lib.weights as weights  # noqa: E402
from unet_lib import UNet  # noqa: E402
from unet_lib.augment import Augmented  # noqa: E402
from unet_lib.data import draw_cells, interior_border_classes, separate_touching  # noqa: E402
from unet_lib.files import ImageFolder, write_labels  # noqa: E402
from unet_lib.train import COURSE_MODEL, evaluate, train_step  # noqa: E402

TILE, BATCH, SIZE, N_IMAGES = 132, 4, 512, 8
TARGET = 0.15


def write_folders(root: Path) -> dict[str, tuple[Path, Path, str]]:
    """{name: (images_dir, masks_dir, mask_kind)} of the three kinds of data."""
    folders = {}
    for name in ("crowded", "sparse", "classes"):
        for sub in ("images", "masks"):
            (root / name / sub).mkdir(parents=True)
    for i in range(N_IMAGES):
        image, cells = draw_cells(SIZE, np.random.default_rng([7, i]), n_cells=(1000, 1000), radius=(4.0, 7.0))
        tifffile.imwrite(root / "crowded" / "images" / f"c{i}.tif", np.round(image * 60000).astype(np.uint16))
        write_labels(root / "crowded" / "masks" / f"c{i}.tif", cells)
        image, rods = draw_rods(SIZE, np.random.default_rng([8, i]))
        for name in ("sparse", "classes"):
            tifffile.imwrite(root / name / "images" / f"r{i}.tif", image)
        write_labels(root / "sparse" / "masks" / f"r{i}.tif", rods)
        write_labels(root / "classes" / "masks" / f"r{i}.tif", interior_border_classes(rods.astype(np.int64)))
    for name in ("crowded", "sparse", "classes"):
        folders[name] = (root / name / "images", root / name / "masks", "classes" if name == "classes" else "instances")
    return folders


def cpu_seconds(fn) -> tuple[float, object]:
    start = time.process_time()
    result = fn()
    return time.process_time() - start, result


def share(images: Path, masks: Path, kind: str, n_batches: int) -> dict:
    """CPU seconds of loading and of training n_batches, and the weight maps' and the validation's."""
    k = 3 if kind == "classes" else 2
    data = ImageFolder(images, masks, kind, num_classes=k if kind == "classes" else None, tile_size=TILE)
    train = data.subset(data.stems[:-2], tile_size=TILE)
    val = data.subset(data.stems[-2:])
    loader = DataLoader(Augmented(train, seed=0, **data.target_kwargs), batch_size=BATCH, shuffle=True,
                        drop_last=True, generator=torch.Generator().manual_seed(0))
    list(loader)                                                   # warm-up: first accesses check targets
    load, batches = cpu_seconds(lambda: [b for _ in range(math.ceil(n_batches / len(loader))) for b in loader][:n_batches])
    torch.manual_seed(0)
    model = UNet(**{**COURSE_MODEL, "num_classes": k}).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    train_step(model, optimizer, batches[0], channels_last=True)                            # warm-up
    step, _ = cpu_seconds(lambda: [train_step(model, optimizer, b, channels_last=True) for b in batches])
    first, _ = cpu_seconds(lambda: evaluate(model, val))           # whole images' targets computed here
    again, _ = cpu_seconds(lambda: evaluate(model, val))           # every later epoch
    result = dict(load=load / n_batches, step=step / n_batches, share=load / (load + step), val_first=first,
                  val=again, steps_per_epoch=len(loader))
    if kind == "instances":                                        # Eq. 2 of the training tiles, both ways
        tiles = [separate_touching(b["instances"][j].numpy()) for b in batches[:5] for j in range(BATCH)]
        radius = 5.0 * math.sqrt(2 * math.log(10.0 / 1e-4))
        result["cover"] = statistics.median(weights._boxes_cover(t, int(radius) + 1)[1] for t in tiles)
        result["boxes_ms"] = 1e3 * cpu_seconds(lambda: [weights.two_nearest_distances(t, radius) for t in tiles])[0] / len(tiles)
        result["scan_ms"] = 1e3 * cpu_seconds(lambda: [weights._two_nearest_by_scan(t, int(radius)) for t in tiles])[0] / len(tiles)
    return result


def metrics_cost() -> None:
    """CPU seconds of the instance metrics of one validation image, by size and predicted objects."""
    from unet_lib.metrics import instance_scores, label_instances, rand_error
    print("\nvalidation metrics of instance masks, one image (CPU s): an early prediction = true cells + specks")
    print("| image | predicted objects | true objects | instance_scores | rand_error |")
    print("|---|---|---|---|---|")
    for size, specks in [(512, 0.02), (1024, 0.02), (2048, 0.03)]:
        rng = np.random.default_rng(0)
        _, truth = draw_cells(size, rng, n_cells=(size // 8, size // 8), radius=(4.0, 7.0))
        pred = label_instances((rng.random((size, size)) < specks) | (truth > 0))
        matching, _ = cpu_seconds(lambda: instance_scores(pred, truth))
        rand, _ = cpu_seconds(lambda: rand_error(pred, truth))
        print(f"| {size}x{size} | {int(pred.max())} | {int(truth.max())} | {matching:.2f} | {rand:.2f} |")


def spread(values, fmt="{:.1f}") -> str:
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--part", choices=["share", "metrics", "both"], default="both")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import os
    print(f"torch {torch.__version__}, 1 thread, CPU seconds of this process; load average at the start "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.part in ("metrics", "both"):
        metrics_cost()
    if args.part == "metrics":
        return
    with tempfile.TemporaryDirectory() as tmp:
        folders = write_folders(Path(tmp))
        runs = {name: [share(*folders[name], args.batches) for _ in range(args.repeats)] for name in folders}
    print(f"\n{N_IMAGES} images of {SIZE}x{SIZE} per kind (6 train, 2 validation), tile {TILE}, batch {BATCH}, augment on, "
          f"median [range] of {args.repeats} runs of {args.batches} batches")
    print(f"| data | load ms/batch | train_step ms/batch | loading share | validation s (first, later) |")
    print("|---|---|---|---|---|")
    for name, rs in runs.items():
        r = {key: [run[key] for run in rs] for key in rs[0]}
        verdict = "met" if statistics.median(r["share"]) <= TARGET else "NOT met"
        print(f"| {name} | {spread([x * 1e3 for x in r['load']])} | {spread([x * 1e3 for x in r['step']], '{:.0f}')} | "
              f"{spread([x * 100 for x in r['share']])} % ({verdict}) | {spread(r['val_first'], '{:.2f}')}, "
              f"{spread(r['val'], '{:.2f}')} |")
    print("\nEq. 2 of the training tiles (d1 and d2), CPU ms per tile:")
    for name in ("crowded", "sparse"):
        r = {key: [run[key] for run in runs[name]] for key in ("cover", "boxes_ms", "scan_ms")}
        print(f"  {name}: boxes cover the tile {statistics.median(r['cover']):.1f} times; boxes "
              f"{spread(r['boxes_ms'], '{:.2f}')} ms, scan {spread(r['scan_ms'], '{:.2f}')} ms")


if __name__ == "__main__":
    main()
