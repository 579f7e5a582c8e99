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
2. "Prediction at least 1 megapixel per second, any image size": ``predict_labels`` with the
   shipped course checkpoint on random images of 512x512, 1000x700 (not a valid input size),
   1024x1024 and 2048x2048; megapixels per second, the best of 3 after a warm-up. With the
   default tiles (a 220x220 input for each 128x128 step: 2.95x the pixels it predicts) and, for
   comparison, with ``tile_size=604`` (a 604x604 input for each 512x512 step: 1.39x).

    .venv/bin/python benchmarks/own_images.py

Timings depend on the CPU and on what else runs; run it on a quiet machine.
"""

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
    # fit end to end on a fresh dataset: its first epoch checks the first draws, the second is steady
    torch.manual_seed(0)
    model = UNet(**COURSE_MODEL)
    fresh = ImageFolder(images, masks, tile_size=TILE_SIZE)
    history = fit(model, fresh, None, TrainConfig(epochs=2, batch_size=BATCH_SIZE, augment=True, progress=False))
    return dict(build=build, first_epoch=first_epoch, batches=len(batches), load=load, train=train,
                share=load / (load + train), fit_epoch=history["seconds"][1] - history["seconds"][0],
                steps_per_epoch=len(loader))


def prediction_speed(model: UNet, tile_size: int | None = None, rounds: int = 3) -> list[tuple[str, float, float]]:
    """(size, best seconds, megapixels per second) of ``predict_labels`` for each of PREDICTION_SIZES."""
    rng = np.random.default_rng(0)
    results = []
    for h, w in PREDICTION_SIZES:
        image = rng.random((h, w), dtype=np.float32)                   # (H, W) in [0, 1]
        predict_labels(model, image, tile_size)                        # warm-up
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            predict_labels(model, image, tile_size)
            best = min(best, time.perf_counter() - start)
        results.append((f"{h}x{w}", best, h * w / 1e6 / best))
    return results


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        images, masks = write_folder(Path(tmp))
        written = time.perf_counter() - start
        print(f"wrote {N_IMAGES} {IMAGE_SIZE}x{IMAGE_SIZE} uint16 TIFFs and their uint16 masks in {written:.1f} s")
        r = loading_share(images, masks)
    print(f"\n1. loading ({N_IMAGES} images, tile {TILE_SIZE}, batch {BATCH_SIZE}, augment on, num_workers=0)")
    print(f"  ImageFolder built (read, checked, normalised): {r['build']:.2f} s once "
          f"({r['build'] / N_IMAGES * 1000:.0f} ms per image)")
    print(f"  first epoch of loading (targets checked once): {r['first_epoch']:.2f} s")
    print(f"  | {'what':<34} | {'s total':>7} | {'ms/batch':>8} |")
    print(f"  | {'(a) draw + augment + collate':<34} | {r['load']:7.2f} | {r['load'] / r['batches'] * 1000:8.0f} |")
    print(f"  | {'(b) train_step (fwd+bwd+Adam)':<34} | {r['train']:7.2f} | {r['train'] / r['batches'] * 1000:8.0f} |")
    verdict = "met" if r["share"] <= LOADING_TARGET else "NOT met"
    print(f"  loading share a / (a + b) over {r['batches']} batches: {r['share']:.2%} "
          f"(target <= {LOADING_TARGET:.0%}: {verdict})")
    print(f"  fit, 2nd epoch end to end ({r['steps_per_epoch']} steps): {r['fit_epoch']:.2f} s "
          f"(a + b per epoch: {(r['load'] + r['train']) / LOADING_EPOCHS:.2f} s)")
    model = load_checkpoint(COURSE_CHECKPOINT).model
    print(f"\n2. prediction (predict_labels, course checkpoint; best of 3 after a warm-up; "
          f"target >= {PREDICTION_TARGET:g} Mpx/s)")
    print(f"  | {'image (HxW)':<11} | {'default tiles':>21} | {f'tile_size={LARGE_TILE}':>21} |")
    print(f"  | {'':<11} | {'s':>5} {'Mpx/s':>6} {'target':>8} | {'s':>5} {'Mpx/s':>6} {'target':>8} |")
    for (size, s1, mpx1), (_, s2, mpx2) in zip(prediction_speed(model), prediction_speed(model, LARGE_TILE)):
        met1, met2 = ("met" if m >= PREDICTION_TARGET else "NOT met" for m in (mpx1, mpx2))
        print(f"  | {size:<11} | {s1:5.2f} {mpx1:6.2f} {met1:>8} | {s2:5.2f} {mpx2:6.2f} {met2:>8} |")


if __name__ == "__main__":
    main()
