"""``python -m unet_lib.train --images DIR --masks DIR --out MODEL.pt``: a U-Net trained on your own
images, written with what ``python -m unet_lib.predict`` needs.

``train_own_images`` reads as the command runs: check the flags, join the other ranks (under
torchrun), load the checkpoint to resume or check the new network, read and split the folders,
build the network, plan the epochs (``_config``, ``_training_tiles``), train with ``fit``, report
and write. Each step is a function below, in that order.
"""

import argparse
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import distributed
from ..arguments import device_arg
from ..checkpoint import load_checkpoint, load_optimizer_state, save_checkpoint
from ..config import TrainConfig
from ..files import ImageFolder, split_by_image
from ..model import UNet
from .evaluation import evaluate
from .loop import fit
from .optimizer import make_optimizer

__all__ = ["train_own_images"]


def train_own_images(parser: argparse.ArgumentParser, args: argparse.Namespace, world_size: int = 1) -> None:
    """Train on ``--images``/``--masks`` and write ``--out`` with what prediction needs. With
    ``world_size`` > 1 (torchrun), every rank runs this: all train, rank 0 prints and writes."""
    _check_flags(parser, args)
    device, rank, say = _join_ranks(parser, args, world_size)
    prior = _load_resumed(args) if args.resume is not None else None
    if prior is None:
        _check_new_network(parser, args)
    tile = _tile(parser, args, prior)
    mask_kind = "classes" if args.classes is not None else "instances"
    data, train_stems, val_stems = _read_folders(args, mask_kind, rank)
    if rank == 0:
        _print_summary(data.summary(), train_stems, val_stems)
    model = _network(args, data, mask_kind, prior)
    config = _config(args, device, val_stems)
    train_data, repeats = _training_tiles(data, train_stems, tile, args.tiles_per_image)
    say(f"{repeats} random {tile}x{tile} tile(s) per training image per epoch")
    if world_size > 1:
        say(f"{world_size} processes on {device}: a global batch of {world_size} x {config.batch_size} tiles")
    val_data = data.subset(val_stems) if val_stems else None
    optimizer = _optimizer(model, config, args, prior, say)
    history = _continued(prior, fit(model, train_data, val_data, config, optimizer=optimizer))
    say(_trained(history, prior, config, args.patience))
    if rank > 0:   # rank 0 validates and writes; the others wait for it
        distributed.barrier()
        return
    if val_data is not None:
        _print_validation(evaluate(model, val_data, weighted=config.weighted), history, len(val_stems))
    meta = _meta(data, tile, repeats, train_stems, val_stems)
    path = save_checkpoint(args.out, model.cpu(), config, history, meta, optimizer_state=optimizer.state_dict())
    distributed.barrier()   # the file is whole before any rank goes on (a no-op in one process)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); predict with: python -m unet_lib.predict {path} "
          f"IMAGES_DIR --out OUT_DIR")


class _Resumed(NamedTuple):
    """The checkpoint of ``--resume``: its network and how it was trained."""
    model: UNet
    config: TrainConfig
    history: dict
    meta: dict
    optimizer_state: dict | None


def _quiet(*args, **kwargs) -> None:
    """``print`` on ranks other than 0: one process speaks for all."""


def _check_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``parser.error`` for flags that cannot work together, before anything is read."""
    if args.masks is None:
        parser.error("argument --masks: required with --images (the folder of masks named like the images)")
    if args.out is None:
        parser.error("argument --out: required with --images (the checkpoint to write, e.g. model.pt)")
    if args.classes is not None and args.classes < 2:
        parser.error(f"argument --classes: K must be >= 2 (background and at least one class), got {args.classes}")
    if args.workers < 0:
        parser.error(f"argument --workers: must be >= 0, got {args.workers}")
    resuming_out = args.resume is not None and args.resume.resolve() == args.out.resolve()
    if args.out.exists() and not (args.force or resuming_out):
        parser.error(f"argument --out: {args.out} exists; this command does not overwrite what it may not have "
                     f"written: pass --force to overwrite it, --resume {args.out} to continue training it, or "
                     f"another --out")
    if args.resume is not None and not args.resume.is_file():
        parser.error(f"argument --resume: no checkpoint at {args.resume}")


def _join_ranks(parser: argparse.ArgumentParser, args: argparse.Namespace, world_size: int):
    """(device, rank, say): under torchrun this process joins the group on its device, and only
    rank 0 says what happens (``say`` is ``print`` there, silent elsewhere)."""
    device = device_arg(parser, args.device)
    if world_size == 1:
        return device, 0, print
    try:
        device = str(distributed.init_from_env(device))
    except ValueError as error:
        parser.error(f"argument --device: {error}")
    rank = distributed.world()[0]
    return device, rank, (print if rank == 0 else _quiet)


def _load_resumed(args: argparse.Namespace) -> _Resumed:
    try:
        model, config, history, meta = load_checkpoint(args.resume)
        return _Resumed(model, config, history, meta, load_optimizer_state(args.resume))
    except ValueError as error:
        raise SystemExit(f"error: --resume {args.resume}: {error}") from None


def _check_new_network(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    try:
        UNet.check_config(num_classes=args.classes or 2, depth=args.depth, base_channels=args.base_channels)
    except (TypeError, ValueError) as error:
        parser.error(f"argument --depth/--base-channels: {error}")


def _tile(parser: argparse.ArgumentParser, args: argparse.Namespace, prior: _Resumed | None) -> int:
    """``--tile``, or the smallest valid input size >= 128 of the network to train: a tile must
    be a valid input size (the prediction tiles are input tiles)."""
    depth = prior.model.depth if prior is not None else args.depth
    probe = prior.model if prior is not None else UNet(depth=depth, base_channels=1)   # size arithmetic only
    tile = args.tile if args.tile is not None else probe.valid_input_sizes(128, 128 + 2**depth)[0]
    try:
        probe.output_size(tile)
    except ValueError as error:
        parser.error(f"argument --tile: {error}")
    return tile


def _read_folders(args: argparse.Namespace, mask_kind: str, rank: int) -> tuple[ImageFolder, list, list]:
    """(every pair read and checked, training stems, validation stems), or the library's message."""
    try:
        # the random tiles: a seed per rank (distributed.rank_seed); the split below uses --seed itself
        data = ImageFolder(args.images, args.masks, mask_kind, num_classes=args.classes,
                           seed=distributed.rank_seed(args.seed, rank))
        train_stems, val_stems = split_by_image(data, args.val_fraction, seed=args.seed)
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError) as error:
        raise SystemExit(f"error: {error}") from None
    return data, train_stems, val_stems


def _print_summary(info: dict, train: list, val: list) -> None:
    sizes = ", ".join(f"{size} x{n}" for size, n in info["sizes"].items())
    print(f"found {info['images']} image/mask pairs: {info['in_channels']} channel(s), sizes {sizes}, "
          f"pixels {', '.join(f'{d} x{n}' for d, n in info['dtypes'].items())}")
    if info["mask_kind"] == "instances":
        lo, hi = info["objects_per_image"]
        print(f"instance masks: {info['objects']} objects ({lo} to {hi} per image)"
              + (f"; {len(info['binary_masks'])} binary masks labelled into components" if info["binary_masks"] else ""))
    else:
        print(f"class maps, K = {info['num_classes']}: class fractions {info['class_fractions']}")
    print(f"training on {len(train)} image(s), validating on {len(val)}" + (f" ({', '.join(val[:5])}"
          f"{', ...' if len(val) > 5 else ''})" if val else " (no validation: --val-fraction 0)"))


def _network(args: argparse.Namespace, data: ImageFolder, mask_kind: str, prior: _Resumed | None) -> UNet:
    """A new U-Net for the data (He-initialised from ``--seed``), or the resumed one if it fits."""
    if prior is None:
        torch.manual_seed(args.seed)   # the He initialisation draws from torch's generator
        return UNet(in_channels=data.in_channels, num_classes=data.num_classes, depth=args.depth,
                    base_channels=args.base_channels, padding="valid", upsampling="transpose",
                    batch_norm=args.batch_norm)
    model = prior.model
    if (model.in_channels, model.num_classes) != (data.in_channels, data.num_classes) or \
            prior.meta.get("mask_kind", mask_kind) != mask_kind:
        raise SystemExit(f"error: --resume {args.resume} is a model for {model.in_channels}-channel images and "
                         f"{model.num_classes} classes ({prior.meta.get('mask_kind', 'unknown')} masks), the data "
                         f"is {data.in_channels}-channel {mask_kind} with {data.num_classes} classes")
    return model


def _config(args: argparse.Namespace, device: str | None, val_stems: list) -> TrainConfig:
    """How ``fit`` trains: the flags, with augmentation always on (every channel alike; class maps
    warped with the image: ``unet_lib.augment.Augmented``) and, when there are validation images,
    the best epoch's weights kept (and ``--patience`` applied)."""
    return TrainConfig(epochs=args.epochs or 50, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                       weighted=not args.unweighted, augment=True, seed=args.seed, device=device,
                       max_minutes=args.max_minutes, patience=args.patience if val_stems else None,
                       keep_best=bool(val_stems), num_workers=args.workers)


class _Repeated(Dataset):
    """``repeats`` accesses of every sample of ``dataset`` per epoch (item j is sample j % n): with
    random tiles, several tiles of each image per epoch. Says what ``fit`` and ``Augmented`` ask."""

    def __init__(self, dataset: Dataset, repeats: int):
        self.dataset, self.repeats = dataset, repeats
        self.draws_on_access = getattr(dataset, "draws_on_access", False)
        self.target_kwargs = getattr(dataset, "target_kwargs", None)

    def __len__(self) -> int:
        return len(self.dataset) * self.repeats

    def __getitem__(self, j: int) -> dict:
        return self.dataset[j % len(self.dataset)]


def _training_tiles(data: ImageFolder, train_stems: list, tile: int, tiles_per_image: int | None
                    ) -> tuple[Dataset, int]:
    """(the training images as random tile x tile tiles, repeats): ``repeats`` tiles of each image
    per epoch, ``--tiles-per-image`` or about as many as cover an image of the mean size (mean image
    area / tile area, 1 to 64)."""
    train_data = data.subset(train_stems, tile_size=tile)
    if tiles_per_image is not None:
        repeats = tiles_per_image
    else:   # an epoch sees about every pixel once
        sizes = train_data.summary()["sizes"]                        # {"HxW": count}
        area = sum(np.prod([int(n) for n in hw.split("x")]) * c for hw, c in sizes.items()) / len(train_stems)
        repeats = int(np.clip(round(area / tile**2), 1, 64))
    return (_Repeated(train_data, repeats) if repeats > 1 else train_data), repeats


def _optimizer(model: UNet, config: TrainConfig, args: argparse.Namespace, prior: _Resumed | None, say):
    """A new optimizer, with the resumed checkpoint's state where it has one of this kind."""
    optimizer = make_optimizer(model, config)
    if prior is None:
        return optimizer
    if prior.optimizer_state is None:
        say(f"note: {args.resume} holds no optimizer state (written before unet_lib stored it): its weights "
            f"train on with a fresh {config.optimizer} optimizer")
    elif prior.config.optimizer != config.optimizer:
        say(f"note: {args.resume} was trained with {prior.config.optimizer}, this run uses {config.optimizer}: "
            f"its weights train on with a fresh optimizer")
    else:
        try:
            optimizer.load_state_dict(prior.optimizer_state)
        except (ValueError, KeyError) as error:
            raise SystemExit(f"error: --resume {args.resume}: its optimizer state does not fit the model: "
                             f"{error}") from None
        say(f"resuming {args.resume}: its weights and its {config.optimizer} optimizer state")
    return optimizer


def _continued(prior: _Resumed | None, history: dict) -> dict:
    """One history: the resumed checkpoint's epochs, then these (epochs and seconds counted on)."""
    if prior is None or not prior.history:
        return history
    done, took = prior.history["epoch"][-1], prior.history["seconds"][-1]
    shift = {"epoch": done, "seconds": took, "best_epoch": done, "stopped_early": done, "out_of_time": done}
    history = {key: [v + shift.get(key, 0) for v in history[key]] for key in history}
    for key, values in prior.history.items():
        if key in history and key not in ("best_epoch", "stopped_early", "out_of_time"):
            history[key] = values + history[key]
    return history


def _trained(history: dict, prior: _Resumed | None, config: TrainConfig, patience: int | None) -> str:
    """How many epochs this run trained, for how long, and why it stopped."""
    epochs = len(history["epoch"]) - (len(prior.history["epoch"]) if prior is not None and prior.history else 0)
    why = ("the time budget ran out" if "out_of_time" in history else
           f"no better validation score for {patience} epochs" if "stopped_early" in history else
           f"{config.epochs} epochs done")
    return f"trained {epochs} epoch(s) in {history['seconds'][-1]:.0f} s ({why})"


def _meta(data: ImageFolder, tile: int, repeats: int, train_stems: list, val_stems: list) -> dict:
    """What ``python -m unet_lib.predict`` needs beyond the network (the normalisation, the mask
    kind, the channel axis), and how the model was trained, for the checkpoint's ``meta``."""
    return dict(data="unet_lib.files.ImageFolder", mask_kind=data.mask_kind, num_classes=data.num_classes,
                in_channels=data.in_channels, low=data.low, high=data.high, channel_axis=data.channel_axis,
                tile_size=tile, tiles_per_image=repeats, w0=data.target_kwargs["w0"], sigma=data.target_kwargs["sigma"],
                train_images=list(train_stems), val_images=list(val_stems))


def _print_validation(scores: dict, history: dict, n_images: int) -> None:
    best = f" (the weights of epoch {history['best_epoch'][0]:.0f}, the best)" if "best_epoch" in history else ""
    shown = [k for k in ("loss", "iou", "mean_iou", "mean_dice", "f1", "precision", "recall", "merged", "split")
             if k in scores]
    print(f"validation ({n_images} image(s)){best}: "
          + ", ".join(f"{k} {scores[k]:.3f}" if isinstance(scores[k], float) else f"{k} {scores[k]}"
                      for k in shown))
    if "class_iou" in scores:
        print("  IoU per class: " + ", ".join(f"{c}: {v:.3f}" for c, v in enumerate(scores["class_iou"])))
