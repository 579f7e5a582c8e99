"""A U-Net trained on your images: ``python -m unet_lib.train --images DIR --masks DIR --out MODEL.pt``.

The checkpoint holds what ``python -m unet_lib.predict`` needs.

``train_own_images`` reads as the command runs: check the flags, join the other ranks (under
torchrun), load the checkpoint to resume (or to start from, ``--init``) or check the new
network, read and split the folders, build the network, plan the epochs (``_plan``: the steps
that reach a good model, cut to the time budget; ``unet_lib.train.plan``), train with ``fit``,
report and write. Each step is a function below, in that order.
"""

import argparse
import math
import time
from typing import NamedTuple

import torch

from .. import distributed
from ..arguments import device_arg
from ..baselines import ObjectSize
from ..checkpoint import load_checkpoint, load_optimizer_state, save_checkpoint
from ..config import TrainConfig
from ..files import ImageFolder, split_by_image, split_by_region
from ..files.normalization import CLIP_LIMIT
from ..model import UNet
from ..tiling import context_margin
from .evaluation import evaluate
from .loop import fit
from .optimizer import make_optimizer
from .plan import Plan, TileEpochs, plan_training, time_steps, within_budget

__all__ = ["train_own_images"]

SAVE_SECONDS = 2.0      # kept for writing the checkpoint at the end of a time budget (a few MB: well under 1 s)


def train_own_images(parser: argparse.ArgumentParser, args: argparse.Namespace, world_size: int = 1,
                     started: float | None = None) -> None:
    """Train on ``--images``/``--masks`` and write ``--out`` with what prediction needs. With
    ``world_size`` > 1 (torchrun), every rank runs this: all train, rank 0 prints and writes.
    ``started``: ``time.perf_counter()`` when the command began (``--max-minutes`` counts from it)."""
    started = time.perf_counter() if started is None else started
    _check_flags(parser, args)
    device, rank, say = _join_ranks(parser, args, world_size)
    prior = _load_checkpoint("--resume", args.resume) if args.resume is not None else None
    init = _load_checkpoint("--init", args.init) if args.init is not None else None
    if prior is None and init is None:
        _check_new_network(parser, args)
    tile = _tile(parser, args, (prior or init).model if (prior or init) else None)
    mask_kind = "classes" if args.classes is not None else "instances"
    data, train_part, val_part, held_out = _read_folders(args, mask_kind, rank, prior)
    size = train_part.object_size()                 # post-processing at prediction scales with it
    if rank == 0:
        _print_summary(data, train_part, held_out, size)
    model = _network(args, data, mask_kind, prior, init, say)
    if prior is None and init is None:
        say(_depth_hint(size, model))
    plan, warning = _plan(args, train_part, tile, world_size)
    config = _config(args, device, val_part is not None, plan)
    if warning:
        say(warning)
    if args.max_minutes is not None:
        plan, config = _within_budget(args, model, train_part, val_part, tile, config, plan, started, say)
    say(plan.describe(tile))
    if world_size > 1:
        say(f"{world_size} processes on {device}: a global batch of {world_size} x {config.batch_size} tiles")
    train_data = TileEpochs(train_part.subset(train_part.stems, tile_size=tile), plan.tiles_per_epoch)
    optimizer = _optimizer(model, config, args, prior, say)
    history = fit(model, train_data, val_part, config, optimizer=optimizer)
    say(_trained(history, config, args.patience))
    if rank > 0:   # rank 0 validates and writes; the others wait for it
        distributed.barrier()
        return
    if val_part is not None:
        _print_validation(evaluate(model, val_part, weighted=config.weighted), history, held_out)
    meta = _meta(args, data, tile, plan, train_part, val_part, prior, len(history["epoch"]), size)
    path = save_checkpoint(args.out, model.cpu(), config, _continued(prior, history), meta,
                           optimizer_state=optimizer.state_dict())
    distributed.barrier()   # the file is whole before any rank goes on (a no-op in one process)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) after {time.perf_counter() - started:.0f} s; predict "
          f"with: python -m unet_lib.predict {path} IMAGES_DIR --out OUT_DIR")


class _Loaded(NamedTuple):
    """The checkpoint of ``--resume`` or ``--init``: its network and how it was trained."""
    path: str
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
    for flag, path in (("--resume", args.resume), ("--init", args.init)):
        if path is not None and not path.is_file():
            parser.error(f"argument {flag}: no checkpoint at {path}")
    if args.resume is not None and args.init is not None:
        parser.error("argument --init: not with --resume (which continues a checkpoint's weights and optimizer "
                     "already); --init starts a new training from a checkpoint's weights")
    if args.percentiles is not None and not 0 <= args.percentiles[0] < args.percentiles[1] <= 100:
        parser.error(f"argument --percentiles: LOW HIGH with 0 <= LOW < HIGH <= 100, got "
                     f"{args.percentiles[0]:g} {args.percentiles[1]:g}")
    if args.val_region is not None and args.val_fraction == 0:
        parser.error("argument --val-region: holds out --val-fraction of every image; --val-fraction is 0")


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


def _load_checkpoint(flag: str, path) -> _Loaded:
    try:
        model, config, history, meta = load_checkpoint(path)
        return _Loaded(str(path), model, config, history, meta, load_optimizer_state(path))
    except ValueError as error:
        raise SystemExit(f"error: {flag} {path}: {error}") from None


def _check_new_network(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    try:
        UNet.check_config(num_classes=args.classes or 2, depth=args.depth, base_channels=args.base_channels)
    except (TypeError, ValueError) as error:
        parser.error(f"argument --depth/--base-channels: {error}")


def _tile(parser: argparse.ArgumentParser, args: argparse.Namespace, base: UNet | None) -> int:
    """``--tile``, or the smallest valid input size >= 128 of the network to train (``base``: the
    resumed or initial network, whose depth it keeps): a tile must be a valid input size (the
    prediction tiles are input tiles)."""
    depth = base.depth if base is not None else args.depth
    probe = base if base is not None else UNet(depth=depth, base_channels=1)   # size arithmetic only
    tile = args.tile if args.tile is not None else probe.valid_input_sizes(128, 128 + 2**depth)[0]
    try:
        probe.output_size(tile)
    except ValueError as error:
        parser.error(f"argument --tile: {error}")
    return tile


def _read_folders(args: argparse.Namespace, mask_kind: str, rank: int, prior: _Loaded | None):
    """(every pair read and checked, the training part, the validation part or None, what is held
    out), or the library's message. The normalisation: a resumed model's, ``--percentiles``, or
    the course's 1st and 99.8th percentiles widened until they keep the objects (``keep_objects``)."""
    low, high = (prior.meta.get("low", 1.0), prior.meta.get("high", 99.8)) if prior is not None else \
        (args.percentiles or (1.0, 99.8))
    try:
        # the random tiles: a seed per rank (distributed.rank_seed); the split below uses --seed itself
        data = ImageFolder(args.images, args.masks, mask_kind, num_classes=args.classes, low=low, high=high,
                           keep_objects=prior is None and args.percentiles is None, channel_axis=args.channel_axis,
                           seed=distributed.rank_seed(args.seed, rank))
        if args.val_region is not None:
            train, val = split_by_region(data, args.val_fraction, args.val_region)
            return data, train, val, f"the {args.val_region} {args.val_fraction:.0%} of every image"
        train_stems, val_stems = split_by_image(data, args.val_fraction, seed=args.seed)
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError) as error:
        raise SystemExit(f"error: {error}".replace("pass channel_axis=", "pass --channel-axis ")) from None
    held_out = f"{len(val_stems)} image(s)" if val_stems else None
    return data, data.subset(train_stems), (data.subset(val_stems) if val_stems else None), held_out


def _print_summary(data: ImageFolder, train: ImageFolder, held_out: str | None, size: ObjectSize) -> None:
    info = data.summary()
    sizes = ", ".join(f"{size} x{n}" for size, n in info["sizes"].items())
    print(f"found {info['images']} image/mask pairs: {info['in_channels']} channel(s), sizes {sizes}, "
          f"pixels {', '.join(f'{d} x{n}' for d, n in info['dtypes'].items())}")
    if info["mask_kind"] == "instances":
        lo, hi = info["objects_per_image"]
        print(f"instance masks: {info['objects']} objects ({lo} to {hi} per image)"
              + (f"; {len(info['binary_masks'])} binary masks labelled into components" if info["binary_masks"] else ""))
    else:
        print(f"class maps, K = {info['num_classes']}: class fractions {info['class_fractions']}")
    print(f"objects in the training masks: median {size.area:.0f} px, inscribed radius {size.radius:.1f} px "
          f"({size.count} objects measured); predict scales its post-processing to them")
    print(_normalisation_note(data.clipping))
    val = [s for s in data.stems if s not in train.stems]
    print(f"training on {len(train)} image(s), validating on "
          + (f"{held_out} ({', '.join(val[:5])}{', ...' if len(val) > 5 else ''})" if held_out and val else held_out
             if held_out else "none (--val-fraction 0): the last epoch's weights are kept"))


def _nth(q: float) -> str:
    """'1st', '2nd', '99.8th', '0.05th': a percentile's ordinal."""
    last = {1: "st", 2: "nd", 3: "rd"}.get(int(q) % 10, "th") if q == int(q) and int(q) % 100 not in (11, 12, 13) else "th"
    return f"{q:g}{last}"


def _normalisation_note(c: dict) -> str:
    """What the percentiles do to the objects, and the fix where they clip a large share of them."""
    given, chosen = (c["given_low"], c["given_high"]), (c["low"], c["high"])
    clipped = (f"{c['given_clipped_low']:.1%} of the objects' pixels lie at or below the {_nth(given[0])} "
               f"percentile, {c['given_clipped_high']:.1%} at or above the {_nth(given[1])}")
    if chosen != given:
        return (f"normalisation: {clipped}: each of those pixels would be 0 (or 1), the objects' inner detail lost; "
                f"using the {_nth(chosen[0])} and {_nth(chosen[1])} percentiles instead, which clip "
                f"{c['clipped_low']:.1%} and {c['clipped_high']:.1%} (stored with the model; --percentiles "
                f"{given[0]:g} {given[1]:g} forces the others)")
    if max(c["given_clipped_low"], c["given_clipped_high"]) > CLIP_LIMIT:
        return (f"warning: normalisation by the {_nth(given[0])} and {_nth(given[1])} percentiles: {clipped}, each "
                f"mapped to one value: dark (or bright) objects lose their inner detail. Leave --percentiles out "
                f"and the command widens them until at most {CLIP_LIMIT:.0%} are clipped")
    return f"normalisation: each channel's {_nth(given[0])} and {_nth(given[1])} percentiles to 0 and 1 ({clipped})"


def _network(args: argparse.Namespace, data: ImageFolder, mask_kind: str, prior: _Loaded | None,
             init: _Loaded | None, say) -> UNet:
    """A new U-Net for the data (He-initialised from ``--seed``; with ``--init`` the checkpoint's
    network and weights), or the resumed one if it fits."""
    if prior is None and init is None:
        torch.manual_seed(args.seed)   # the He initialisation draws from torch's generator
        return UNet(in_channels=data.in_channels, num_classes=data.num_classes, depth=args.depth,
                    base_channels=args.base_channels, padding="valid", upsampling="transpose",
                    batch_norm=args.batch_norm)
    if init is not None:
        return _initialised(args, data, init, say)
    model = prior.model
    if (model.in_channels, model.num_classes) != (data.in_channels, data.num_classes) or \
            prior.meta.get("mask_kind", mask_kind) != mask_kind:
        raise SystemExit(f"error: --resume {args.resume} is a model for {model.in_channels}-channel images and "
                         f"{model.num_classes} classes ({prior.meta.get('mask_kind', 'unknown')} masks), the data "
                         f"is {data.in_channels}-channel {mask_kind} with {data.num_classes} classes")
    return model


def _depth_hint(size: ObjectSize, model: UNet) -> str:
    """The objects' size against what the network sees on each side of a pixel (its context
    margin, notebook 11's table), and a deeper network where the objects are wider than that."""
    margin = context_margin(model)
    across = 2 * math.sqrt(size.area / math.pi)
    if across <= margin:
        return (f"the network sees a context margin of {margin} px on each side of each pixel (depth {model.depth}): "
                f"objects about {across:.0f} px across fit with their neighbours")
    deeper = context_margin(UNet(depth=model.depth + 1, base_channels=1))
    return (f"note: the objects are about {across:.0f} px across and the network sees a context margin of {margin} px "
            f"on each side of each pixel (depth {model.depth}): --depth {model.depth + 1} sees {deeper} px (a larger "
            f"--tile follows)")


def _initialised(args: argparse.Namespace, data: ImageFolder, init: _Loaded, say) -> UNet:
    """``--init``: the checkpoint's network (its depth and widths) with its weights, for data of its
    channels; for another number of classes every layer but the last 1x1 convolution."""
    base = init.model
    if base.in_channels != data.in_channels:
        raise SystemExit(f"error: --init {args.init} takes {base.in_channels}-channel images, the images in "
                         f"{args.images} have {data.in_channels}: its first convolution cannot read them. Convert "
                         f"the images (e.g. gray = rgb.mean(-1)), or train from scratch (leave --init out)")
    if base.num_classes == data.num_classes:
        say(f"starting from the weights of {args.init} (depth {base.depth}, {base.config['base_channels']} "
            f"channels; --depth and --base-channels are its own)")
        return base
    torch.manual_seed(args.seed)
    model = UNet(**{**base.config, "num_classes": data.num_classes})
    kept = {k: v for k, v in base.state_dict().items() if not k.startswith("outc.")}
    model.load_state_dict(kept, strict=False)
    say(f"starting from the weights of {args.init} but its last 1x1 convolution ({base.num_classes} classes; the "
        f"data has {data.num_classes}), which starts new")
    return model


def _plan(args: argparse.Namespace, train: ImageFolder, tile: int, world_size: int) -> tuple[Plan, str | None]:
    """The plan from ``--epochs`` and ``--tiles-per-image`` where given (``plan_training``); a
    cover is the tiles that hold about every pixel of the training images once."""
    pixels = sum(math.prod(int(n) for n in hw.split("x")) * count for hw, count in train.summary()["sizes"].items())
    cover = max(len(train), round(pixels / tile**2))
    return plan_training(len(train), cover, args.batch_size, world_size, args.epochs, args.tiles_per_image)


def _config(args: argparse.Namespace, device: str | None, validating: bool, plan: Plan) -> TrainConfig:
    """How ``fit`` trains: the flags and the plan, with augmentation always on (every channel alike;
    class maps warped with the image: ``unet_lib.augment.Augmented``) and, when there is validation,
    the best epoch's weights kept (and ``--patience`` applied)."""
    return TrainConfig(epochs=plan.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                       weighted=not args.unweighted, augment=True, seed=args.seed, device=device,
                       patience=args.patience if validating else None, keep_best=validating,
                       num_workers=args.workers)


def _within_budget(args, model: UNet, train: ImageFolder, val: ImageFolder | None, tile: int, config: TrainConfig,
                   plan: Plan, started: float, say) -> tuple[Plan, TrainConfig]:
    """The plan cut to end, with the final validation and the save, within ``--max-minutes`` of
    ``started`` (``within_budget``, on steps timed here), and ``fit``'s own budget set to the same
    end, a guard should the machine slow down."""
    deadline = started + 60 * args.max_minutes
    timing = time_steps(model, TileEpochs(train.subset(train.stems, tile_size=tile), plan.tiles_per_epoch),
                        val, config)
    if distributed.world()[1] > 1:   # one plan for all ranks: their mean timings
        timing = type(timing)(*(v / distributed.world()[1] for v in distributed.sum_over_ranks(list(timing))))
    reserve = timing.validation + SAVE_SECONDS
    now = time.perf_counter()
    try:
        plan, note = within_budget(plan, timing, deadline - now - reserve, other_seconds=now - started + reserve)
    except ValueError as error:
        raise SystemExit(f"error: --max-minutes {args.max_minutes:g}: {error}, after {now - started:.0f} s of "
                         f"reading and timing; raise --max-minutes") from None
    say(f"time budget {args.max_minutes:g} min for the whole command: {note}")
    config.epochs = plan.epochs
    config.max_minutes = max(deadline - reserve - time.perf_counter(), 1.0) / 60
    return plan, config


def _optimizer(model: UNet, config: TrainConfig, args: argparse.Namespace, prior: _Loaded | None, say):
    """A new optimizer, with the resumed checkpoint's state where it has one of this kind."""
    optimizer = make_optimizer(model, config)
    if prior is None:
        return optimizer
    done = len(prior.history.get("epoch", []))
    best = prior.history.get("best_epoch")
    say(f"resumed from {args.resume}: {done} epoch(s) trained before" + (f", the weights of epoch {best[0]:.0f} (the "
        f"best then)" if best else "") + "; this run's epochs and seconds count from 0")
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


def _continued(prior: _Loaded | None, history: dict) -> dict:
    """The checkpoint's history: the resumed checkpoint's epochs, then these (epochs and seconds
    counted on; ``best_epoch`` and the reasons for stopping are this run's, counted on)."""
    if prior is None or not prior.history:
        return history
    done, took = prior.history["epoch"][-1], prior.history["seconds"][-1]
    shift = {"epoch": done, "seconds": took, "best_epoch": done, "stopped_early": done, "out_of_time": done}
    history = {key: [v + shift.get(key, 0) for v in history[key]] for key in history}
    for key, values in prior.history.items():
        if key in history and key not in ("best_epoch", "stopped_early", "out_of_time"):
            history[key] = values + history[key]
    return history


def _trained(history: dict, config: TrainConfig, patience: int | None) -> str:
    """How many epochs this run trained, for how long, and why it stopped."""
    epochs = len(history["epoch"])
    why = ("the time budget ended it" if "out_of_time" in history else
           f"no better validation score for {patience} epochs" if "stopped_early" in history else
           f"{config.epochs} epochs done")
    return f"trained {epochs} epoch(s) in {history['seconds'][-1]:.0f} s ({why})"


def _meta(args: argparse.Namespace, data: ImageFolder, tile: int, plan: Plan, train: ImageFolder,
          val: ImageFolder | None, prior: _Loaded | None, epochs: int, size: ObjectSize) -> dict:
    """What ``python -m unet_lib.predict`` needs beyond the network (the normalisation, the mask
    kind, the channel axis, the objects' size), and how the model was trained (``steps``: this run's
    ``epochs`` of the plan's steps), for the checkpoint's ``meta``."""
    return dict(data="unet_lib.files.ImageFolder", mask_kind=data.mask_kind, num_classes=data.num_classes,
                in_channels=data.in_channels, low=data.low, high=data.high, channel_axis=data.channel_axis,
                object_area=size.area, object_radius=size.radius, object_large_area=size.large,
                objects_measured=size.count,
                tile_size=tile, tiles_per_epoch=plan.tiles_per_epoch, tiles_per_image=plan.tiles_per_epoch / len(train),
                steps=epochs * plan.steps_per_epoch, w0=data.target_kwargs["w0"], sigma=data.target_kwargs["sigma"],
                images_dir=str(args.images.resolve()),   # export --bioimageio's default test image is from here
                train_images=list(train.stems), val_images=list(val.stems) if val is not None else [],
                val_region=None if args.val_region is None else f"{args.val_region} {args.val_fraction:g}",
                init=None if args.init is None else str(args.init),
                resumed_from=None if prior is None else prior.path)


def _print_validation(scores: dict, history: dict, held_out: str) -> None:
    best = f" (the weights of epoch {history['best_epoch'][0]:.0f}, the best)" if "best_epoch" in history else ""
    shown = [k for k in ("loss", "iou", "mean_iou", "mean_dice", "f1", "precision", "recall", "merged", "split")
             if k in scores]
    print(f"validation ({held_out}){best}: "
          + ", ".join(f"{k} {scores[k]:.3f}" if isinstance(scores[k], float) else f"{k} {scores[k]}"
                      for k in shown))
    if "class_iou" in scores:
        print("  IoU per class: " + ", ".join(f"{c}: {v:.3f}" for c, v in enumerate(scores["class_iou"])))
