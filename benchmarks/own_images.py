"""Your own images on this machine: the two speed targets of issue #13.

1. "Loading is never the bottleneck" (target: at most 15% of a training step): twenty
   1024x1024 16-bit TIFF images with uint16 instance masks (synthetic toy cells,
   ``draw_cells(1024, rng, n_cells=(300, 500))``) are written to a temporary folder and read by
   ``ImageFolder(tile_size=256)``. The loader is the one ``fit`` builds (``Augmented`` around the
   dataset, a shuffled ``DataLoader`` with batch_size 4, ``num_workers=0``). After one warm-up
   epoch (the first access of each sample also checks its targets), we time (a) drawing and
   collating the batches of four epochs (20 batches) and (b) ``train_step`` of the course model
   on the same, pre-fetched batches (channels_last, as ``fit`` trains on the CPU); the loading
   share is a / (a + b). Also: the one-time cost of building the ImageFolder, and the second
   epoch of a two-epoch ``fit`` (the first one also checks the first draws) as a check that
   a + b is what training costs.
2. "Prediction at least 1 megapixel per second, any image size": the course checkpoint on random
   images of 512x512, 1000x700 (not a valid input size), 1024x1024 and 2048x2048; megapixels per
   second after a warm-up. With ``predict_labels``' default tiles (a 220x220 input for each
   128x128 step: 2.95x the pixels it predicts), with the prediction command line's default
   (``fastest_tile_size``: per image the tile of at most 700 px that computes the fewest
   pixels, e.g. 604 for 512x512: 1.39x) and, for comparison, with ``tile_size=604``.

Every number is measured ``--repeats`` times (default 3); the tables give the median and the
range. Timings depend on the CPU and on what else runs; run it on a quiet machine.

    .venv/bin/python benchmarks/own_images.py [--repeats 3]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from torch.utils.data import DataLoader

from unet_lib import COURSE_CHECKPOINT, UNet, load_checkpoint
from unet_lib.augment import Augmented
from unet_lib.data import draw_cells
from unet_lib.files import ImageFolder, write_labels
from unet_lib.tiling import predict_labels

try:
    from unet_lib.tiling import fastest_tile_size
except ImportError:            # the library before fastest_tile_size: the command line used the default tiles
    fastest_tile_size = None
from unet_lib.train import COURSE_MODEL, TrainConfig, fit, train_step

N_IMAGES, IMAGE_SIZE, TILE_SIZE, BATCH_SIZE = 20, 1024, 256, 4
LOADING_TARGET = 0.15                      # issue #13: loading at most 15% of training time
PREDICTION_TARGET = 1.0                    # issue #13: at least 1 megapixel per second
PREDICTION_SIZES = [(512, 512), (1000, 700), (1024, 1024), (2048, 2048)]   # (H, W)
LARGE_TILE = 604                           # a valid input size of the course model: steps of 512 pixels
LOADING_EPOCHS = 4                         # timed epochs of batches: 20 batches, less noise than 5


def write_folder(root: Path, seed: int = 0) -> tuple[Path, Path]:
    """``N_IMAGES`` toy-cell images as uint16 TIFFs in root/images, their instances in root/masks."""
    images, masks = root / "images", root / "masks"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(N_IMAGES):
        image, instances = draw_cells(IMAGE_SIZE, rng, n_cells=(300, 500))     # (H, W) float in [0, 1], int64
        tifffile.imwrite(images / f"cell_{i:02d}.tif", np.round(image * 65535).astype(np.uint16))
        write_labels(masks / f"cell_{i:02d}.tif", instances.astype(np.uint16))
    return images, masks


def fit_loader(data: ImageFolder, config: TrainConfig) -> DataLoader:
    """The training loader ``fit`` builds for ``data`` and ``config`` (num_workers=0)."""
    train_data = Augmented(data, seed=config.seed, **data.target_kwargs) if config.augment else data
    return DataLoader(train_data, batch_size=config.batch_size, shuffle=True,
                      drop_last=len(train_data) >= config.batch_size,
                      generator=torch.Generator().manual_seed(config.seed))


def loading_share(images: Path, masks: Path) -> dict:
    """Seconds to build the ImageFolder, to load batches and to train on them; the loading share."""
    start = time.perf_counter()
    data = ImageFolder(images, masks, tile_size=TILE_SIZE)
    build = time.perf_counter() - start
    config = TrainConfig(epochs=1, batch_size=BATCH_SIZE, augment=True, progress=False)
    loader = fit_loader(data, config)
    start = time.perf_counter()
    list(loader)                                               # warm-up epoch: first accesses check targets
    first_epoch = time.perf_counter() - start
    start = time.perf_counter()
    batches = [batch for _ in range(LOADING_EPOCHS) for batch in loader]   # (B, 1, 256, 256) each
    load = time.perf_counter() - start
    torch.manual_seed(0)
    model = UNet(**COURSE_MODEL).to(memory_format=torch.channels_last)   # as fit trains on the CPU
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    train_step(model, optimizer, batches[0], channels_last=True)         # warm-up
    start = time.perf_counter()
    for batch in batches:
        train_step(model, optimizer, batch, channels_last=True)
    train = time.perf_counter() - start
    return dict(build=build, first_epoch=first_epoch, batches=len(batches), load=load, train=train,
                share=load / (load + train), steps_per_epoch=len(loader))


def fit_epoch(images: Path, masks: Path) -> float:
    """Seconds of the second epoch of a two-epoch ``fit`` on a fresh dataset (the first one also
    checks the first draws): a check that a + b is what training costs."""
    torch.manual_seed(0)
    model = UNet(**COURSE_MODEL)
    fresh = ImageFolder(images, masks, tile_size=TILE_SIZE)
    history = fit(model, fresh, None, TrainConfig(epochs=2, batch_size=BATCH_SIZE, augment=True, progress=False))
    return history["seconds"][1] - history["seconds"][0]


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """median [min-max] of repeated measurements."""
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def prediction_speed(model: UNet, tile: str, repeats: int) -> list[tuple[str, list[float]]]:
    """(size, megapixels per second of each repeat) of the prediction of each of PREDICTION_SIZES,
    with ``tile`` "default" (predict_labels' ~128 px tiles), "cli" (the command line's default)
    or "604"."""
    rng = np.random.default_rng(0)
    results = []
    for h, w in PREDICTION_SIZES:
        image = rng.random((h, w), dtype=np.float32)                   # (H, W) in [0, 1]
        if tile == "default" or (tile == "cli" and fastest_tile_size is None):
            tile_size = None
        else:
            tile_size = fastest_tile_size(model, h, w) if tile == "cli" else LARGE_TILE
        predict_labels(model, image, tile_size)                        # warm-up
        speeds = []
        for _ in range(repeats):
            start = time.perf_counter()
            predict_labels(model, image, tile_size)
            speeds.append(h * w / 1e6 / (time.perf_counter() - start))
        results.append((f"{h}x{w}" + (f" ({tile_size})" if tile == "cli" else ""), speeds))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each number (median and range)")
    parser.add_argument("--part", choices=["loading", "prediction", "both"], default="both")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average at the start "
          f"{' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}")
    if args.part in ("loading", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            images, masks = write_folder(Path(tmp))
            written = time.perf_counter() - start
            print(f"wrote {N_IMAGES} {IMAGE_SIZE}x{IMAGE_SIZE} uint16 TIFFs and their masks in {written:.1f} s")
            runs = [loading_share(images, masks) for _ in range(args.repeats)]
            fit_seconds = fit_epoch(images, masks)
        r = {key: [run[key] for run in runs] for key in runs[0]}
        n = runs[0]["batches"]
        print(f"\n1. loading ({N_IMAGES} images, tile {TILE_SIZE}, batch {BATCH_SIZE}, augment on, num_workers=0; "
              f"median [range] of {args.repeats})")
        print(f"  ImageFolder built (read, checked, normalised): {spread(r['build'])} s once")
        print(f"  first epoch of loading (targets checked once): {spread(r['first_epoch'])} s")
        print(f"  | {'what':<34} | {'ms/batch':>18} |")
        load_ms, train_ms = [x / n * 1000 for x in r["load"]], [x / n * 1000 for x in r["train"]]
        print(f"  | {'(a) draw + augment + collate':<34} | {spread(load_ms, '{:.0f}'):>18} |")
        print(f"  | {'(b) train_step (fwd+bwd+Adam)':<34} | {spread(train_ms, '{:.0f}'):>18} |")
        verdict = "met" if statistics.median(r["share"]) <= LOADING_TARGET else "NOT met"
        print(f"  loading share a / (a + b) over {n} batches: {spread([x * 100 for x in r['share']], '{:.1f}')} % "
              f"(target <= {LOADING_TARGET:.0%}: {verdict})")
        per_epoch = (statistics.median(r["load"]) + statistics.median(r["train"])) / LOADING_EPOCHS
        print(f"  fit, 2nd epoch end to end ({runs[0]['steps_per_epoch']} steps): {fit_seconds:.2f} s "
              f"(a + b per epoch: {per_epoch:.2f} s)")
    if args.part in ("prediction", "both"):
        model = load_checkpoint(COURSE_CHECKPOINT).model
        print(f"\n2. prediction (course checkpoint; Mpx/s, median [range] of {args.repeats} after a warm-up; "
              f"target >= {PREDICTION_TARGET:g} Mpx/s)")
        for tile, what in (("default", "predict_labels, default tiles (~128 px outputs)"),
                           ("cli", "python -m unet_lib.predict default (fastest_tile_size; tile in brackets)"),
                           ("604", f"tile_size={LARGE_TILE}")):
            print(f"  {what}")
            for size, speeds in prediction_speed(model, tile, args.repeats):
                met = "met" if statistics.median(speeds) >= PREDICTION_TARGET else "NOT met"
                print(f"    {size:<18} {spread(speeds):>18} Mpx/s  {met}")


if __name__ == "__main__":
    main()
