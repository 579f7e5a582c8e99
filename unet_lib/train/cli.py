"""The command line ``python -m unet_lib.train`` (console script ``unet-train``) and its arguments.

Without ``--images`` it trains the course model.

With ``--images DIR --masks DIR --out MODEL.pt`` it trains on your own images instead
(``unet_lib.train.own_images``) and stores what ``python -m unet_lib.predict`` needs in the
checkpoint's ``meta``. ``unet_lib/train/__main__.py`` runs ``main``.
"""

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from .. import distributed
from ..arguments import fraction, positive
from ..checkpoint import COURSE_CHECKPOINT, save_checkpoint
from ..data import ToyCells
from .course import COURSE_TRAIN, train_course_model
from .evaluation import evaluate
from .own_images import train_own_images
from .plan import TARGET_STEPS

__all__ = ["main"]

# the flags that only training on your own images reads (refused without --images)
_FOLDER_FLAGS = ("masks", "classes", "max_minutes", "tile", "val_fraction", "depth", "base_channels", "batch_norm",
                 "device", "resume", "patience", "workers", "force", "batch_size", "tiles_per_image", "init",
                 "channel_axis", "val_region", "percentiles")


def main(argv: list[str] | None = None) -> None:
    """``python -m unet_lib.train``: train the course model and write the course checkpoint; with
    ``--images DIR --masks DIR --out MODEL.pt``, train a U-Net on your own images instead."""
    started = time.perf_counter()   # --max-minutes limits the whole command
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        world_size = distributed.env_world_size()
    except ValueError as error:
        parser.error(str(error))
    if args.images is None and world_size > 1:
        parser.error(f"WORLD_SIZE={world_size}: torchrun trains on your own images (--images, --masks, --out); "
                     f"the course model trains in one process: python -m unet_lib.train")
    if args.images is None:
        given = [f"--{name.replace('_', '-')}" for name in _FOLDER_FLAGS
                 if getattr(args, name) != parser.get_default(name)]
        if given:
            parser.error(f"{', '.join(given)} need{'s' if len(given) == 1 else ''} --images (your own images); "
                         f"without --images this trains the course model on toy cells")
        _main_course(args)
        return
    try:
        train_own_images(parser, args, world_size, started)
    finally:   # also after an error, so that the other ranks are not left waiting
        if world_size > 1:   # the group that train_own_images joined (one process: none to close)
            distributed.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m unet_lib.train", description=main.__doc__,
        epilog="Your own images: images and masks are paired by file name (see unet_lib.files). Instance masks "
               "(a distinct id per object; without --classes) train with the paper's weight map, class maps "
               "(--classes K) with class-balanced weights; both with flips, rotations and the paper's elastic "
               "deformation, applied to every channel alike. Each epoch draws --tiles-per-image random --tile x --tile tiles per training "
               "image; the "
               "best epoch's weights (by the validation F1 for instances, the mean IoU of classes 1..K-1 for class "
               "maps) are kept. Predict with `python -m unet_lib.predict MODEL.pt IMAGES_DIR --out OUT_DIR`. "
               "Several GPUs or processes: `torchrun --standalone --nproc_per_node=N -m unet_lib.train --images ...` (DDP; "
               "--batch-size is per process; see the README, 'Beyond one machine').")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"where to write the checkpoint (default without --images: {COURSE_CHECKPOINT})")
    parser.add_argument("--epochs", type=positive(int), default=None,
                        help=f"default: {COURSE_TRAIN.epochs} for the course model; with --images chosen from the data "
                             f"so that training takes about {TARGET_STEPS} optimizer steps (the plan is printed)")
    parser.add_argument("--seed", type=int, default=0, help="model initialisation, shuffling, augmentation")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default=COURSE_TRAIN.optimizer)
    parser.add_argument("--lr", type=positive(float), default=COURSE_TRAIN.lr)
    parser.add_argument("--unweighted", action="store_true", help="w(x) = 1 instead of the weight map")
    own = parser.add_argument_group("your own images")
    own.add_argument("--images", type=Path, help="folder of images (TIFF, PNG, JPEG)")
    own.add_argument("--masks", type=Path, help="folder of masks with the images' names (TIFF, PNG)")
    own.add_argument("--classes", type=int, default=None, metavar="K",
                     help="masks are class maps with values 0..K-1 (K >= 2); absent: instance masks")
    own.add_argument("--max-minutes", type=positive(float), default=None,
                     help="a limit on the whole command, reading and saving included: the first steps are timed and "
                          "the plan cut to whole epochs that end in time (a plan that fits is not stretched)")
    own.add_argument("--tile", type=positive(int), default=None,
                     help="training tile side: a valid input size of the model (default: the smallest >= 128)")
    own.add_argument("--val-fraction", type=fraction, default=0.2,
                     help="fraction of the images (whole images) kept for validation; 0: none (default 0.2)")
    own.add_argument("--val-region", choices=["right", "bottom"], default=None,
                     help="validate on the right (bottom) --val-fraction of every image instead of on whole images: "
                          "for one large image, or a few")
    own.add_argument("--channel-axis", type=int, choices=[0, -1, 2], default=None, metavar="AXIS",
                     help="the axis of 3-D images that holds the channels (0: C x H x W, -1: H x W x C); needed for "
                          "images with more than 4 channels (default: the last axis if it has <= 4 entries, else the "
                          "first)")
    own.add_argument("--percentiles", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                     help="map each channel's LOW and HIGH percentiles to 0 and 1 (default: 1 and 99.8, widened until "
                          "they clip at most 5%% of the objects' pixels in the masks: dark or bright objects that "
                          "cover under 1%% of an image keep their detail); stored with the model for predict")
    own.add_argument("--depth", type=positive(int), default=3, help="poolings on the contracting path (default 3)")
    own.add_argument("--base-channels", type=positive(int), default=16, help="channels at the top (default 16)")
    own.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=True,
                     help="BatchNorm after each convolution (not in the paper; default on)")
    own.add_argument("--batch-size", type=positive(int), default=4,
                     help="tiles per step and per process (default 4; under torchrun the global batch is "
                          "processes x this)")
    own.add_argument("--tiles-per-image", type=positive(int), default=None, metavar="R",
                     help="random tiles drawn from each training image per epoch (default: chosen with --epochs from "
                          f"the data: about every pixel once per epoch, within 5 to 25 epochs of {TARGET_STEPS} steps)")
    own.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when present)")
    own.add_argument("--resume", type=Path, default=None, metavar="CKPT",
                     help="continue training this checkpoint: its network, its normalisation and its optimizer state "
                          "(Adam's moments, SGD's momentum), at --lr along a new cosine over --epochs")
    own.add_argument("--init", type=Path, default=None, metavar="CKPT",
                     help="start from this checkpoint's network and weights (fine-tuning), e.g. data/unet_nuclei.pt "
                          "or data/unet_toycells.pt (1-channel images; --depth and --base-channels are its own)")
    own.add_argument("--patience", type=positive(int), default=None,
                     help="stop after this many epochs without a better validation score (default: off)")
    own.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    own.add_argument("--force", action="store_true", help="overwrite an existing --out")
    return parser


def _main_course(args: argparse.Namespace) -> None:
    """The course model on toy cells, written to ``COURSE_CHECKPOINT`` (unchanged since notebook 07)."""
    out = args.out if args.out is not None else COURSE_CHECKPOINT
    epochs = args.epochs if args.epochs is not None else COURSE_TRAIN.epochs
    config = dataclasses.replace(COURSE_TRAIN, epochs=epochs, seed=args.seed, optimizer=args.optimizer,
                                 lr=args.lr, weighted=not args.unweighted)
    torch.manual_seed(args.seed)
    model, history = train_course_model(config, model_seed=args.seed)
    test = evaluate(model, ToyCells(32, seed=2000), weighted=config.weighted)
    save_checkpoint(out, model.cpu(), config, history)
    print(f"trained {history['epoch'][-1]} epochs in {history['seconds'][-1]:.0f} s; held-out toy cells "
          f"(ToyCells(32, seed=2000)): IoU {test['iou']:.3f}, instance F1 {test['f1']:.3f}, "
          f"merged {test['merged']}, split {test['split']}")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
