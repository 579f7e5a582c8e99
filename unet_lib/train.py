"""Training a U-Net on toy cells, evaluating it, and saving and loading checkpoints.

B, C, K, H, W = batch, channels, classes (num_classes), height, width.

> The input images and their corresponding segmentation maps are used to train the network
> with the stochastic gradient descent implementation of Caffe. [...] we favor large input
> tiles over a large batch size and hence reduce the batch to a single image. Accordingly we
> use a high momentum (0.99) such that a large number of the previously seen training samples
> determine the update in the current optimization step. (Sec. 3)

``fit`` does both: the paper's SGD with momentum 0.99, and Adam (not in the paper; with
BatchNorm it trains the course model in under a minute on a CPU).

The course model (``COURSE_MODEL``, ``COURSE_TRAIN``, ``course_data``) is trained from the
command line with ``python -m unet_lib.train``, which writes ``COURSE_CHECKPOINT``, the file
that the later notebooks load so that they never retrain. With ``--images DIR --masks DIR --out
MODEL.pt`` (console script ``unet-train``) it trains on your own images instead
(``unet_lib.files.ImageFolder``) and stores what ``python -m unet_lib.predict`` needs in the
checkpoint's ``meta``.
"""

import argparse
import contextlib
import dataclasses
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from . import distributed
from .augment import Augmented
from .losses import weighted_cross_entropy
from .metrics import (InstanceScores, class_scores, confusion_matrix, instance_scores, label_instances,
                      rand_error)
from .model import UNet
from .tiling import padded_forward
from .validate import (check_bool, check_choice, check_finite, check_instance, check_int, check_number, check_seed,
                       check_tensor, describe)

__all__ = ["TrainConfig", "fit", "train_step", "evaluate", "make_optimizer", "Checkpoint", "save_checkpoint",
           "load_checkpoint", "COURSE_CHECKPOINT", "COURSE_MODEL", "COURSE_TRAIN", "course_data", "train_course_model",
           "NonFiniteLossError"]

# the checkpoint that the course ships, next to the package (works from any working directory)
COURSE_CHECKPOINT = Path(__file__).resolve().parent.parent / "data" / "unet_toycells.pt"

# The course model: the paper's valid padding and up-convolutions, at a size a CPU trains in a
# minute. Departures from the paper: depth 3 instead of 4 (toy cells are ~25 px across; a
# depth-3 output pixel sees a 92-px window, measured by model.receptive_field, with a 44-px
# margin instead of 92),
# 16 channels at the top instead of 64 (1/16 of the compute per pixel), and BatchNorm.
COURSE_MODEL = dict(in_channels=1, num_classes=2, depth=3, base_channels=16, padding="valid",
                    upsampling="transpose", batch_norm=True)


@dataclass
class TrainConfig:
    """How ``fit`` trains. The defaults are the course's fast CPU recipe."""

    epochs: int = 10
    batch_size: int = 4                                  # the paper: 1 large tile per step
    optimizer: Literal["adam", "sgd"] = "adam"           # "sgd": the paper's SGD with momentum
    lr: float = 2e-3                                     # try 0.01 for "sgd"
    momentum: float = 0.99                               # SGD only: the paper's value
    cosine: bool = True                                  # lr decays to 0 along a cosine; not in the paper
    weighted: bool = True                                # the weight map of Eq. 2; False: w(x) = 1
    augment: bool = True                                 # flips, rotations, elastic deformation
    seed: int = 0                                        # shuffling and augmentation
    channels_last: bool | None = None                    # None: on the CPU, where it is faster
    device: str | None = None                            # None: "cuda" when present, else "cpu"
    progress: bool = True                                # a tqdm progress bar with the running loss
    # Training a user can leave alone (defaults: off, as the course trains). None = no limit.
    max_minutes: float | None = None                     # wall-clock budget, checked after every step
    patience: int | None = None                          # stop after this many epochs without a better `monitor`
    monitor: str | None = None                           # e.g. "val_f1", "val_mean_iou", "val_loss"; None: see fit
    keep_best: bool = False                              # restore the weights of the best epoch at the end
    amp: bool = False                                    # mixed precision on CUDA (torch.autocast); no-op on CPU
    num_workers: int = 0                                 # DataLoader worker processes (0: the notebooks' setting)


class _Cached(Dataset):
    """The samples of a dataset, computed once (``ToyCells`` draws on every access)."""

    def __init__(self, dataset: Dataset, samples: list | None = None):
        self.samples = samples if samples is not None else [dataset[i] for i in range(len(dataset))]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        return self.samples[i]


class NonFiniteLossError(FloatingPointError, ValueError):
    """The training loss became NaN or infinite. ``train_step`` raises it before the optimizer
    step (the weights stay as they were); ``fit`` adds the epoch and the step."""


def _check_config(config: TrainConfig) -> None:
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    check_choice("optimizer", config.optimizer, ("adam", "sgd"))
    for name in ("epochs", "batch_size"):
        check_int(name, getattr(config, name), min=1)
    check_number("lr", config.lr, positive=True, hint="the course uses 2e-3 with Adam; try 0.01 with SGD")
    check_number("momentum", config.momentum, min=0.0, max=1.0, hint="SGD's momentum; the paper uses 0.99")
    for name in ("cosine", "weighted", "augment", "progress", "keep_best", "amp"):
        check_bool(name, getattr(config, name))
    if config.max_minutes is not None:
        check_number("max_minutes", config.max_minutes, positive=True, hint="a wall-clock budget in minutes, or None")
    if config.patience is not None:
        check_int("patience", config.patience, min=1, hint="epochs without improvement before stopping, or None")
    if config.monitor is not None and not (isinstance(config.monitor, str) and config.monitor.startswith("val_")):
        raise ValueError(f"monitor must be None or the name of a validation score such as 'val_f1', 'val_mean_iou' "
                         f"or 'val_loss', got {config.monitor!r}")
    check_int("num_workers", config.num_workers, min=0, hint="DataLoader worker processes; 0 loads in the main process")
    check_seed("seed", config.seed)
    if config.channels_last is not None:
        check_bool("channels_last", config.channels_last)
    if config.device is not None:
        if not isinstance(config.device, (str, torch.device)):
            raise TypeError(f"device must be None, a string such as 'cpu' or 'cuda', or a torch.device, "
                            f"got {describe(config.device)}")
        try:
            torch.device(config.device)
        except RuntimeError as error:
            raise ValueError(f"device={config.device!r} is not a torch device ({str(error).splitlines()[0]}); "
                             f"use 'cpu', 'cuda' or None") from None


def _check_model(model, ddp: bool = True) -> None:
    """A UNet; with ``ddp`` also the DDP-wrapped UNet that ``fit`` passes to ``train_step`` on several ranks."""
    if ddp and isinstance(model, DistributedDataParallel) and isinstance(getattr(model.module, "unet", None), UNet):
        return
    if not isinstance(model, UNet):
        raise TypeError(f"model must be a unet_lib.UNet, got {type(model).__name__}")


def _check_batch(batch, weighted: bool) -> None:
    """A batch dict: its image finite, so that one NaN pixel is named here instead of turning the
    loss and then every weight into NaN."""
    keys = ("image", "mask", "weight_map") if weighted else ("image", "mask")
    if not isinstance(batch, dict) or any(k not in batch for k in keys):
        found = sorted(batch) if isinstance(batch, dict) else describe(batch)
        raise TypeError(f"batch must be a dict with {', '.join(map(repr, keys))}, got {found}")
    check_tensor("batch['image']", batch["image"], 4, "(B, C, H, W)", kind="float", finite=True,
                 hint="one NaN pixel makes the loss NaN and then every weight; replace them (torch.nan_to_num)")


def _check_samples(samples: list, name: str, num_classes: int) -> None:
    """Every sample's image finite and mask labels in [0, num_classes), before any training."""
    for i, sample in enumerate(samples):
        if not isinstance(sample, dict) or "image" not in sample or "mask" not in sample:
            found = sorted(sample) if isinstance(sample, dict) else describe(sample)
            raise TypeError(f"{name}[{i}] must be a dict with 'image', 'mask', 'weight_map' and 'instances', "
                            f"got {found}")
        check_finite(f"{name}[{i}]['image']", torch.as_tensor(sample["image"]),
                     "one NaN pixel makes the loss NaN and then every weight; replace them (torch.nan_to_num)")
        mask = torch.as_tensor(sample["mask"])
        if mask.numel() and (mask.min() < 0 or mask.max() >= num_classes):
            labels = torch.unique(mask).tolist()
            bad = [v for v in labels if not 0 <= v < num_classes]
            raise ValueError(f"{name}[{i}]['mask'] has labels {bad[:10]} (all labels: {labels[:10]}), but the model "
                             f"has num_classes={num_classes}: mask labels must be in [0, {num_classes - 1}]; "
                             f"build the UNet with num_classes={max(labels) + 1} or fix the masks")


def _device(config: TrainConfig) -> torch.device:
    return torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _to_model(model: "UNet | DistributedDataParallel", images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Logits (B, K, H, W) for images (B, C, H, W), mirror-padded for a valid-padding model;
    through DDP's forward for a UNet that ``fit`` wrapped for several ranks."""
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    if isinstance(model, DistributedDataParallel):
        return model(images)                                     # DDP(_Padded(unet))
    return padded_forward(model, images)


def train_step(model: UNet, optimizer: torch.optim.Optimizer, batch: dict, weighted: bool = True,
               channels_last: bool = False, amp: bool = False,
               scaler: "torch.amp.GradScaler | None" = None) -> float:
    """One optimisation step on ``batch`` (a dict with ``image`` (B, C, H, W), ``mask`` (B, H, W)
    and ``weight_map`` (B, H, W)); returns the loss before the step as a float.

    forward (mirror-padded, so every pixel gets a prediction) -> Eq. 1 loss with the weight map
    (or w = 1) -> zero the old gradients -> backward -> optimizer step. Raises
    ``NonFiniteLossError`` instead of stepping when the loss is NaN or infinite, and
    ``ValueError`` for an image with NaN or mask labels outside [0, num_classes).

    ``amp``: the forward pass in bfloat16 (float16 with ``scaler`` where the GPU lacks bfloat16)
    under ``torch.autocast``, on CUDA only; the loss in float32. Ignored for a model on the CPU.
    """
    _check_model(model)
    check_instance("optimizer", optimizer, torch.optim.Optimizer, "a torch.optim.Optimizer")
    check_bool("weighted", weighted)
    check_bool("channels_last", channels_last)
    _check_batch(batch, weighted)
    param = next(model.parameters())
    images = batch["image"].to(param.device, param.dtype)               # (B, C, H, W)
    mask = batch["mask"].to(param.device)                               # (B, H, W)
    weight_map = batch["weight_map"].to(param.device) if weighted else None
    if amp and images.is_cuda:
        dtype = torch.float16 if scaler is not None else torch.bfloat16
        with torch.autocast(device_type="cuda", dtype=dtype):
            logits = _to_model(model, images, channels_last)            # (B, K, H, W) half precision
        logits = logits.float()                                         # the loss in float32
    else:
        logits = _to_model(model, images, channels_last)                # (B, K, H, W)
    loss = weighted_cross_entropy(logits, mask, weight_map)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None and amp and images.is_cuda:
        scaler.scale(loss).backward()
    else:
        loss.backward()
    value = loss.item()
    if not np.isfinite(value):   # stop here: one step with a NaN gradient makes every weight NaN
        lr = optimizer.param_groups[0].get("lr")
        raise NonFiniteLossError(f"the loss is {value} (not finite); the weights were not updated. Likely causes: "
                                 f"a learning rate too high for {type(optimizer).__name__} (lr={lr:g}), so the "
                                 f"weights diverged; or an input or weight map with NaN or inf values")
    if scaler is not None and amp and images.is_cuda:
        scaler.step(optimizer)   # skips the step when the scaled gradients overflowed float16
        scaler.update()
    else:
        optimizer.step()
    return value


class _Padded(nn.Module):
    """``padded_forward`` of a UNet as a module, so that DDP can wrap it (``fit`` on several
    ranks): DDP's ``forward`` is where it prepares the gradient averaging of the backward pass."""

    def __init__(self, unet: UNet) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> logits (B, K, H, W)."""
        return padded_forward(self.unet, images)


def _batches(data: Dataset, batch_size: int):
    """Consecutive samples of ``data`` in batches of at most ``batch_size``, a new batch where
    the image size changes (whole images of different sizes cannot be stacked): (start, samples)."""
    batch, start = [], 0
    for i in range(len(data)):
        sample = data[i]
        if batch and (len(batch) == batch_size or sample["image"].shape != batch[0]["image"].shape):
            yield start, batch
            batch, start = [], i
        batch.append(sample)
    if batch:
        yield start, batch


@torch.no_grad()
def evaluate(model: UNet, data: Dataset, weighted: bool = True, batch_size: int = 8) -> dict:
    """Score ``model`` on every sample of ``data`` (dicts with image, instances, mask, weight_map).

    Returns plain floats: ``loss`` (the training loss, weighted or not), pixel-level ``iou``
    (of the foreground, classes > 0, pooled over all pixels) and ``pixel_error`` (the fraction
    of pixels of the wrong class), the mean ``rand_error`` per image, and the instance counts
    pooled over all images: ``precision``, ``recall``, ``f1``, ``merged`` and ``split`` (see
    ``unet_lib.metrics``). Predicted cells are the connected components of the predicted
    foreground; the true cells are ``instances``. The rand error and the instance scores are
    left out when no sample has instances (class maps). For a model with K > 2 classes it adds
    ``class_iou`` and ``class_dice`` (lists of K floats, NaN for a class absent from both truth
    and prediction), ``mean_iou`` and ``mean_dice`` (their mean over the classes 1..K-1, the
    background left out, NaN classes skipped) and ``confusion`` (K x K pixel counts, rows the
    true class, columns the predicted one), all pooled over the images.

    Images may differ in size: each image is scored on its own and the counts are pooled. The
    model is left in its mode.
    """
    _check_model(model, ddp=False)
    if not (hasattr(data, "__len__") and hasattr(data, "__getitem__")):
        raise TypeError(f"data must be a Dataset of dicts (e.g. ToyCells), got {describe(data)}")
    check_bool("weighted", weighted)
    batch_size = check_int("batch_size", batch_size, min=1)
    if len(data) == 0:
        raise ValueError("evaluate needs at least one sample, got an empty dataset")
    return _scores(_counts(model, data, weighted, batch_size), model.num_classes)


# the sums that evaluate pools over images, in a fixed order (so that ranks can add them up)
_COUNTS = ("loss", "pixels", "wrong", "inter", "union", "tp", "fp", "fn", "merged", "split", "rand_error_sum",
           "rand_error_n")


@torch.no_grad()
def _counts(model: UNet, data, weighted: bool, batch_size: int) -> dict:
    """The pooled sums behind ``evaluate`` (``_COUNTS``, and ``confusion`` (K, K) for K > 2):
    sums, so that the counts of parts of the data (one per rank) add up to those of the whole."""
    param = next(model.parameters())
    k = model.num_classes
    was_training = model.training
    model.eval()
    loss, pixels, wrong, inter, union = 0.0, 0, 0, 0, 0
    rand_errors, scores = [], InstanceScores()
    confusion = np.zeros((k, k), np.int64)
    try:
        for start, batch in _batches(data, batch_size):
            images = torch.stack([b["image"] for b in batch]).to(param.device, param.dtype)   # (B, C, H, W)
            check_finite(f"the image of data[{start}:{start + len(batch)}]", images,
                         "a NaN pixel gives NaN logits; replace them (torch.nan_to_num)")
            mask = torch.stack([b["mask"] for b in batch]).to(param.device)                 # (B, H, W)
            weight_map = torch.stack([b["weight_map"] for b in batch]).to(param.device) if weighted else None
            logits = padded_forward(model, images)                                          # (B, K, H, W)
            loss += weighted_cross_entropy(logits, mask, weight_map, reduction="sum").item()
            preds, masks = logits.argmax(1).cpu().numpy(), mask.cpu().numpy()              # (B, H, W)
            pixels += masks.size
            wrong += int((preds != masks).sum())
            inter += int(((preds > 0) & (masks > 0)).sum())
            union += int(((preds > 0) | (masks > 0)).sum())
            if k > 2:
                confusion += confusion_matrix(preds, masks, k)
            for pred, sample in zip(preds, batch):                                         # (H, W) each
                true = sample["instances"].numpy()
                pred_instances = label_instances(pred > 0)
                scores = scores + instance_scores(pred_instances, true)   # an empty image's cells are fp
                if true.any():
                    rand_errors.append(rand_error(pred_instances, true))
    finally:
        model.train(was_training)
    counts = dict(loss=loss, pixels=pixels, wrong=wrong, inter=inter, union=union, tp=scores.tp, fp=scores.fp,
                  fn=scores.fn, merged=scores.merged, split=scores.split,
                  # np.sum / n is np.mean to the last bit; the images without cells have no rand error
                  rand_error_sum=float(np.sum(rand_errors)) if rand_errors else 0.0, rand_error_n=len(rand_errors))
    if k > 2:
        counts["confusion"] = confusion
    return counts


def _scores(counts: dict, k: int) -> dict:
    """``evaluate``'s scores from the pooled ``_counts`` of a model with ``k`` classes."""
    c = {key: counts[key] for key in _COUNTS}
    pixels, inter, union = int(c["pixels"]), int(c["inter"]), int(c["union"])
    # pooled counts: the same numbers as scoring all pixels at once (iou, pixel_error)
    result = {
        "loss": c["loss"] / pixels,
        "iou": 1.0 if union == 0 else float(np.int64(inter) / np.int64(union)),
        "pixel_error": float(int(c["wrong"]) / pixels),
    }
    if c["rand_error_n"] > 0:   # class maps have no instances: no cells to match
        scores = InstanceScores(*(int(c[key]) for key in ("tp", "fp", "fn", "merged", "split")))
        result.update(rand_error=float(c["rand_error_sum"] / c["rand_error_n"]), precision=scores.precision,
                      recall=scores.recall, f1=scores.f1, merged=scores.merged, split=scores.split)
    if k > 2:
        confusion = np.asarray(counts["confusion"], np.int64)
        ious, dices = class_scores(confusion)
        with warnings.catch_warnings():   # all foreground classes absent: NaN, said by the NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            result.update(class_iou=ious, class_dice=dices, mean_iou=float(np.nanmean(ious[1:])),
                          mean_dice=float(np.nanmean(dices[1:])), confusion=confusion.tolist())
    return result


def _validate(model: UNet, data: Dataset, weighted: bool, rank: int, world_size: int) -> dict:
    """``evaluate`` on ``data``; on several ranks, each scores every world_size-th image (each image
    once: no sampler padding) and the counts are summed over the ranks, so every rank gets the scores
    of the whole set."""
    if world_size == 1:
        return evaluate(model, data, weighted=weighted)
    part = [data[i] for i in range(rank, len(data), world_size)]   # may be empty: it adds zeros
    counts = _counts(model, part, weighted, batch_size=8)
    k = model.num_classes
    flat = [counts[key] for key in _COUNTS] + (counts["confusion"].ravel().tolist() if k > 2 else [])
    total = distributed.sum_over_ranks(flat)
    summed = dict(zip(_COUNTS, total))
    if k > 2:
        summed["confusion"] = np.asarray(total[len(_COUNTS):]).reshape(k, k)
    return _scores(summed, k)


def make_optimizer(model: UNet, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer that ``fit`` steps: Adam, or SGD with ``config.momentum``, at ``config.lr``
    over the model's parameters. Build it yourself to restore its state before ``fit``
    (``optimizer.load_state_dict``; see ``unet_lib.checkpoint.load_optimizer_state``)."""
    _check_config(config)
    _check_model(model, ddp=False)
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)


def _check_optimizer(optimizer, model: UNet, config: TrainConfig) -> None:
    """An optimizer of the config's kind over exactly the model's parameters."""
    kind = torch.optim.Adam if config.optimizer == "adam" else torch.optim.SGD
    check_instance("optimizer", optimizer, kind, f"a torch.optim.{kind.__name__} (config.optimizer="
                   f"{config.optimizer!r})", hint="build it with make_optimizer(model, config)")
    given = {id(p) for group in optimizer.param_groups for p in group["params"]}
    own = {id(p) for p in model.parameters()}
    if given != own:
        raise ValueError(f"optimizer must step exactly this model's parameters, it holds {len(given)} tensors of which "
                         f"{len(given - own)} are not the model's ({len(own - given)} of the model's missing); "
                         f"build it with make_optimizer(model, config)")


def fit(model: UNet, train_data: Dataset, val_data: Dataset | None, config: TrainConfig | None = None,
        optimizer: torch.optim.Optimizer | None = None) -> dict[str, list[float]]:
    """Train ``model`` in place on ``train_data`` and return the history.

    ``train_data`` and ``val_data``: datasets of dicts with ``image`` (C, H, W), ``instances``
    (H, W), ``mask`` (H, W) and ``weight_map`` (H, W), such as ``ToyCells`` or
    ``unet_lib.files.ImageFolder``. The samples are computed once, except for a training set
    with ``draws_on_access = True`` (an ImageFolder with ``tile_size``: a new random tile per
    access), whose first draw of each sample is checked and which is then asked anew every
    epoch; validation images may differ in size. With ``config.augment`` every epoch sees new augmentations of them
    (``unet_lib.augment.Augmented``: flips, 90-degree rotations, the paper's elastic
    deformation, every channel alike; the paper's targets are recomputed from the augmented
    instances with the dataset's ``w0``, ``sigma`` and ``class_weights``, and a mask of the
    dataset's own (a class map, K > 2 classes) is warped with the image by nearest neighbour
    and its class-balance weights recomputed, so training sees the targets the data gives). Images are
    mirror-padded so a valid-padding model predicts every pixel (``padded_forward``).

    The history has one entry per epoch in each list: ``epoch``, ``train_loss`` (mean over the
    epoch's steps), ``seconds`` (since the start), and ``val_loss``, ``val_iou``, ``val_f1``,
    ``val_merged`` and ``val_split`` (``evaluate`` on ``val_data``; absent when it is None).
    For class maps (no instances in ``val_data``) the instance scores are left out; for K > 2
    classes ``val_mean_iou`` and ``val_mean_dice`` are added.
    Seeded by ``config.seed`` through explicit generators: the same seed, model initialisation
    and machine give the same result. The model ends in eval mode, on its training device.

    Training that can be left alone (all off by default): ``max_minutes`` stops after the step
    that exceeds the budget, records that epoch (validated) and ``out_of_time`` = [epoch];
    ``patience`` stops after that many epochs without a better ``monitor`` (default: ``val_f1``
    for instances, ``val_mean_iou`` for K > 2 classes, else ``val_iou``; ``*_loss`` is better
    lower) and records ``stopped_early`` = [epoch]; with ``patience`` or ``keep_best`` the
    history holds ``best_epoch`` = [epoch], and ``keep_best`` restores that epoch's weights at
    the end. ``amp`` runs the forward pass in bfloat16 on CUDA (warns and does nothing on the
    CPU). ``num_workers`` > 0 loads in persistent worker processes (each holds its own copy of a
    dataset's access counts, so random tiles and augmentations are drawn per worker).

    ``optimizer``: the one to step, e.g. restored from a checkpoint (Adam's moments, SGD's momentum
    carry on); default ``make_optimizer(model, config)``. Either way it trains at ``config.lr``
    along a new cosine over ``config.epochs`` (a given optimizer's learning rate is reset to it).
    After ``fit``, ``optimizer.state_dict()`` is what a later run resumes from.

    Several processes (a ``torch.distributed`` process group of more than one, as torchrun and
    ``python -m unet_lib.train`` make it; ``unet_lib.distributed``): the same call on every rank
    trains one model with DistributedDataParallel. Each epoch, a ``DistributedSampler`` gives each
    rank its own part of the shuffled samples (padded by repeating samples so the parts are equal),
    ``config.batch_size`` per rank: a global batch of world_size x batch_size; DDP averages the
    gradients. BatchNorm layers are ``SyncBatchNorm`` on CUDA (torch has no CPU kernels for it: on
    the CPU each rank normalises with its own batch's statistics, and rank 0's running statistics
    are copied to all before validating). Validation is split over the ranks, each image scored
    once, the counts summed over the ranks; ``train_loss`` is the mean over ranks; stopping
    decisions are taken by all ranks together. Every rank returns the same history (but
    ``seconds``, by its own clock) and holds the same weights, in the model's own BatchNorm
    layers. A progress bar on rank 0 only.
    """
    config = config or TrainConfig()
    _check_config(config)
    if not isinstance(model, UNet):
        raise TypeError(f"fit trains a unet_lib.UNet, got {type(model).__name__}")
    for name, data in (("train_data", train_data), ("val_data", val_data)):
        if not (hasattr(data, "__len__") and hasattr(data, "__getitem__")) and not (name == "val_data" and data is None):
            raise TypeError(f"{name} must be a Dataset of dicts (e.g. ToyCells){' or None' if name == 'val_data' else ''}, "
                            f"got {describe(data)}")
    if len(train_data) == 0:
        raise ValueError("train_data is empty")
    if optimizer is not None:
        _check_optimizer(optimizer, model, config)
    rank, world_size = distributed.world()
    device = _device(config)
    # channels_last: 1.2-1.4x faster convolutions on this course's CPUs (oneDNN prefers NHWC)
    channels_last = config.channels_last if config.channels_last is not None else device.type == "cpu"
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    target_kwargs = getattr(train_data, "target_kwargs", None) or {}
    # Datasets that give the same sample on every access (ToyCells draws it anew: same seed, same
    # sample, at a cost) are computed once. One that draws a new sample per access (ImageFolder
    # with tile_size: a new random tile) is left alone, so every epoch sees new tiles; its first
    # draw of each sample is still checked below.
    if getattr(train_data, "draws_on_access", False):
        train_samples = [train_data[i] for i in range(len(train_data))]
    else:
        train_data = _Cached(train_data)
        train_samples = train_data.samples
    val_data = _Cached(val_data) if val_data is not None else None
    # refuse now what would otherwise fail (or train on NaN) in the middle of an epoch
    _check_samples(train_samples, "train_data", model.num_classes)
    if val_data is not None:
        if len(val_data) == 0:
            raise ValueError("val_data is empty; pass None to train without validation")
        _check_samples(val_data.samples, "val_data", model.num_classes)
    val_keys = ["loss", "iou", "f1", "merged", "split"]
    if val_data is not None:
        if not any(torch.as_tensor(sample["instances"]).any() for sample in val_data.samples):
            val_keys = ["loss", "iou"]                      # class maps: no cells, no instance scores
        if model.num_classes > 2:
            val_keys += ["mean_iou", "mean_dice"]
    monitor = config.monitor
    if (config.patience is not None or config.keep_best) and monitor is None:
        # instance masks: the instance F1; class maps: the mean IoU of the classes (the IoU for K = 2)
        monitor = ("val_f1" if "f1" in val_keys else "val_mean_iou" if "mean_iou" in val_keys else "val_iou")
    if monitor is not None:
        if val_data is None:
            raise ValueError(f"early stopping and keep_best need val_data to monitor {monitor!r}; pass val_data "
                             f"or set patience=None, keep_best=False")
        if monitor.removeprefix("val_") not in val_keys:
            raise ValueError(f"monitor={monitor!r} is not a validation score of this data; choose one of "
                             f"{', '.join('val_' + k for k in val_keys)}")
    if config.amp and device.type != "cuda":
        warnings.warn(f"amp=True has no effect on {device.type!r}: mixed precision is used on CUDA only; "
                      f"training runs in float32", stacklevel=2)
    use_amp = config.amp and device.type == "cuda"
    # bfloat16 needs no loss scaling; float16 (GPUs without bfloat16) does
    scaler = (torch.amp.GradScaler("cuda") if use_amp and not torch.cuda.is_bf16_supported() else None)
    if config.augment:
        # the weight map recomputed after each deformation with the dataset's w0, sigma, class_weights;
        # a seed per rank, so that ranks never repeat each other's draws (distributed.rank_seed)
        train_data = Augmented(train_data, seed=distributed.rank_seed(config.seed, rank), **target_kwargs)
    workers = dict(num_workers=config.num_workers, persistent_workers=config.num_workers > 0,
                   pin_memory=device.type == "cuda" and config.num_workers > 0)
    if world_size > 1:
        # the same permutation on every rank (seed + epoch, set_epoch below), each rank its own slice
        sampler = DistributedSampler(train_data, num_replicas=world_size, rank=rank, shuffle=True, seed=config.seed)
        loader = DataLoader(train_data, batch_size=config.batch_size, sampler=sampler,
                            drop_last=len(sampler) >= config.batch_size, **workers)
    else:
        sampler = None
        loader = DataLoader(train_data, batch_size=config.batch_size, shuffle=True,
                            drop_last=len(train_data) >= config.batch_size,
                            generator=torch.Generator().manual_seed(config.seed), **workers)
    if optimizer is None:
        optimizer = make_optimizer(model, config)
    else:
        # its state to the parameters' device (load_state_dict casts it), and the config's lr: a
        # stored lr is where the last run's schedule ended (0 after a cosine), and a stored
        # initial_lr would become the new schedule's base
        optimizer.load_state_dict(optimizer.state_dict())
        for group in optimizer.param_groups:
            group["lr"] = config.lr
            group.pop("initial_lr", None)
    # a cosine decay settles the weights at the end, so the last epoch's result does not depend
    # on where in its oscillations the run stopped
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * len(loader))
                if config.cosine else None)

    history: dict[str, list[float]] = {"epoch": [], "train_loss": [], "seconds": []}
    if val_data is not None:
        history.update({f"val_{key}": [] for key in val_keys})
    lower_is_better = monitor is not None and monitor.endswith("loss")
    best, best_epoch, best_state, stale = None, None, None, 0
    budget = None if config.max_minutes is None else 60.0 * config.max_minutes
    out_of_time = False
    start = time.perf_counter()
    bar = tqdm(total=config.epochs * len(loader), disable=not config.progress or rank > 0, desc="training",
               unit="step")
    # SyncBatchNorm (CUDA, several ranks) for the whole run; the model's own layers are back after it
    with distributed.sync_batch_norm(model, device) if world_size > 1 else contextlib.nullcontext(model):
        net = model
        if world_size > 1:
            # DDP copies rank 0's weights to all ranks now and averages the gradients in every backward
            net = DistributedDataParallel(_Padded(model), device_ids=[device.index] if device.type == "cuda" else None)
        for epoch in range(1, config.epochs + 1):
            if sampler is not None:
                sampler.set_epoch(epoch - 1)   # a new order each epoch, the same on every rank
            net.train()
            total, steps = 0.0, 0
            for step, batch in enumerate(loader, start=1):
                failed = None
                try:
                    loss = train_step(net, optimizer, batch, config.weighted, channels_last, use_amp, scaler)
                except NonFiniteLossError as error:
                    failed = str(error)
                # several ranks: a non-finite loss on one stops all (DDP averaged its NaN gradient into
                # every rank's); the failed rank takes part in this vote too, or the others would wait
                if world_size > 1 and distributed.any_rank(failed is not None) and failed is None:
                    failed = "the loss on another rank is not finite (its gradient, averaged, made these weights NaN)"
                if failed is not None:
                    raise NonFiniteLossError(f"training stopped at epoch {epoch}, step {step} of {len(loader)}: "
                                             f"{failed}") from None
                if schedule is not None:
                    schedule.step()
                total, steps = total + loss, steps + 1
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{total / steps:.3f}")
                if budget is not None:
                    # each rank's clock differs: all stop after the step in which any ran out
                    out_of_time = time.perf_counter() - start > budget
                    if world_size > 1:
                        out_of_time = distributed.any_rank(out_of_time)
                    if out_of_time:
                        break   # the epoch ends here; it is recorded and validated as a whole one
            if world_size > 1:
                total, steps = distributed.sum_over_ranks([total, steps])   # the mean over all ranks' steps
                distributed.broadcast_buffers(model)   # validate (and save) rank 0's running statistics
            history["epoch"].append(epoch)
            history["train_loss"].append(total / steps)
            if val_data is not None:
                scores = _validate(model, val_data, config.weighted, rank, world_size)
                for key in val_keys:
                    history[f"val_{key}"].append(scores[key])
            history["seconds"].append(time.perf_counter() - start)
            if monitor is not None:
                # every rank holds the same summed scores: every rank takes the same decisions
                value = history[monitor][-1]
                # a NaN score (no foreground class in truth or prediction) is never better than a number
                better = (best is None or (np.isnan(best) and not np.isnan(value))
                          or (value < best if lower_is_better else value > best))
                if better:
                    best, best_epoch, stale = value, epoch, 0
                    if config.keep_best:
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    stale += 1
                stop = config.patience is not None and stale >= config.patience
                if world_size > 1:   # rank 0's decision is everyone's, whatever the rounding elsewhere
                    stop = distributed.any_rank(stop and rank == 0)
                if stop:
                    history["stopped_early"] = [float(epoch)]   # the last epoch trained
                    break
            if out_of_time:
                history["out_of_time"] = [float(epoch)]         # max_minutes ran out during this epoch
                break
    bar.close()
    if monitor is not None:
        history["best_epoch"] = [float(best_epoch)]
        if config.keep_best and best_state is not None:
            model.load_state_dict(best_state)
    model.eval()
    return history


# -- checkpoints -----------------------------------------------------------------------------

# Checkpoints live in unet_lib.checkpoint, which imports TrainConfig from here. Older code
# imports them from unet_lib.train: they are looked up there on first use (PEP 562), so that
# neither module imports the other at import time.
_MOVED_TO_CHECKPOINT = ("Checkpoint", "save_checkpoint", "load_checkpoint")


def __getattr__(name: str):
    if name in _MOVED_TO_CHECKPOINT:
        from . import checkpoint
        return getattr(checkpoint, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- the course model ------------------------------------------------------------------------

# One 256x256 tile per step, as the paper advises (Sec. 3: "we favor large input tiles over a
# large batch size"): a valid-padding net needs a 44-px mirrored margin around what it predicts,
# so a 128x128 image costs a 220x220 input (2.95x the pixels it is trained on), a 256x256 one a
# 348x348 input (1.85x). Measured on held-out cells: IoU 0.921 after 16 epochs of 16 such tiles
# (43 s), against 0.906 after 12 epochs of 64 128x128 images in batches of 4 (40 s). 18 epochs
# at lr 3e-3 was the best of the recipes tried on the validation images that fit in 50 s.
COURSE_TRAIN = TrainConfig(epochs=18, batch_size=1, optimizer="adam", lr=3e-3, seed=0)


def course_data(n_train: int = 16, n_val: int = 16, seed: int = 0, **toy_kwargs):
    """The course's training tiles and validation images: ``n_train`` 256x256 ``ToyCells`` (24 to
    48 cells each: the density of the 128x128 default) with seed ``seed``, and ``n_val`` 128x128
    ones with seed ``seed + 1000``. Held-out test images use other seeds (the benchmarks: 2000+).
    ``toy_kwargs`` (e.g. ``noise=0.03``) go to both ``ToyCells``."""
    from .data import ToyCells   # imported here: data is optional for the rest of this module
    return (ToyCells(n_train, size=256, n_cells=(24, 48), seed=seed, **toy_kwargs),
            ToyCells(n_val, seed=seed + 1000, **toy_kwargs))


def train_course_model(config: TrainConfig = COURSE_TRAIN, data_seed: int = 0, model_seed: int = 0,
                       **toy_kwargs) -> tuple[UNet, dict[str, list[float]]]:
    """Build the course model (``COURSE_MODEL``, initialised with ``torch.manual_seed(model_seed)``)
    and train it with ``fit`` on ``course_data(seed=data_seed, **toy_kwargs)`` (e.g. ``w0=0.0``
    for a weight map without the border term). Returns (model, history)."""
    train_data, val_data = course_data(seed=data_seed, **toy_kwargs)
    torch.manual_seed(model_seed)   # the He initialisation draws from torch's generator
    model = UNet(**COURSE_MODEL)
    history = fit(model, train_data, val_data, config)
    return model, history


def _positive(kind):
    """An argparse type: a number of ``kind`` > 0 (argparse names the flag in its message)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1) (the fraction of images kept for validation), got {text}")
    return value


def _device_arg(parser: argparse.ArgumentParser, device: str | None) -> str | None:
    if device is None:
        return None
    try:
        parsed = torch.device(device)
    except RuntimeError:
        parser.error(f"argument --device: {device!r} is not a torch device; use cpu, cuda or cuda:N")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"argument --device: {device!r} asked for, but torch sees no CUDA GPU here; use --device cpu")
    return device


def _check_tile(parser: argparse.ArgumentParser, model: UNet, tile: int) -> None:
    """A tile must be a valid input size of the model (the prediction tiles are input tiles)."""
    try:
        model.output_size(tile)
    except ValueError as error:
        parser.error(f"argument --tile: {error}")


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


_FOLDER_FLAGS = ("masks", "classes", "max_minutes", "tile", "val_fraction", "depth", "base_channels", "batch_norm",
                 "device", "resume", "patience", "workers", "force", "batch_size", "tiles_per_image")


def main(argv: list[str] | None = None) -> None:
    """``python -m unet_lib.train``: train the course model and write the course checkpoint; with
    ``--images DIR --masks DIR --out MODEL.pt``, train a U-Net on your own images instead."""
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
    parser.add_argument("--epochs", type=_positive(int), default=None,
                        help=f"default: {COURSE_TRAIN.epochs} for the course model, 50 with --images")
    parser.add_argument("--seed", type=int, default=0, help="model initialisation, shuffling, augmentation")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default=COURSE_TRAIN.optimizer)
    parser.add_argument("--lr", type=_positive(float), default=COURSE_TRAIN.lr)
    parser.add_argument("--unweighted", action="store_true", help="w(x) = 1 instead of the weight map")
    own = parser.add_argument_group("your own images")
    own.add_argument("--images", type=Path, help="folder of images (TIFF, PNG, JPEG)")
    own.add_argument("--masks", type=Path, help="folder of masks with the images' names (TIFF, PNG)")
    own.add_argument("--classes", type=int, default=None, metavar="K",
                     help="masks are class maps with values 0..K-1 (K >= 2); absent: instance masks")
    own.add_argument("--max-minutes", type=_positive(float), default=None, help="stop training after this long")
    own.add_argument("--tile", type=_positive(int), default=None,
                     help="training tile side: a valid input size of the model (default: the smallest >= 128)")
    own.add_argument("--val-fraction", type=_fraction, default=0.2,
                     help="fraction of the images (whole images) kept for validation; 0: none (default 0.2)")
    own.add_argument("--depth", type=_positive(int), default=3, help="poolings on the contracting path (default 3)")
    own.add_argument("--base-channels", type=_positive(int), default=16, help="channels at the top (default 16)")
    own.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=True,
                     help="BatchNorm after each convolution (not in the paper; default on)")
    own.add_argument("--batch-size", type=_positive(int), default=4,
                     help="tiles per step and per process (default 4; under torchrun the global batch is "
                          "processes x this)")
    own.add_argument("--tiles-per-image", type=_positive(int), default=None, metavar="R",
                     help="random tiles drawn from each training image per epoch (default: about as many as cover "
                          "an image of the mean size, 1 to 64)")
    own.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when present)")
    own.add_argument("--resume", type=Path, default=None, metavar="CKPT",
                     help="continue training this checkpoint: its network and its optimizer state (Adam's moments, "
                          "SGD's momentum), at --lr along a new cosine over --epochs")
    own.add_argument("--patience", type=_positive(int), default=None,
                     help="stop after this many epochs without a better validation score (default: off)")
    own.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    own.add_argument("--force", action="store_true", help="overwrite an existing --out")
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
    else:
        try:
            _main_folder(parser, args, world_size)
        finally:   # also after an error, so that the other ranks are not left waiting
            if world_size > 1:   # the group that _main_folder joined (one process: none to close)
                distributed.close()


def _main_course(args: argparse.Namespace) -> None:
    """The course model on toy cells, written to ``COURSE_CHECKPOINT`` (unchanged since notebook 07)."""
    out = args.out if args.out is not None else COURSE_CHECKPOINT
    epochs = args.epochs if args.epochs is not None else COURSE_TRAIN.epochs
    config = dataclasses.replace(COURSE_TRAIN, epochs=epochs, seed=args.seed, optimizer=args.optimizer,
                                 lr=args.lr, weighted=not args.unweighted)
    torch.manual_seed(args.seed)
    model, history = train_course_model(config, model_seed=args.seed)
    from .data import ToyCells
    test = evaluate(model, ToyCells(32, seed=2000), weighted=config.weighted)
    from .checkpoint import save_checkpoint   # checkpoint imports this module
    save_checkpoint(out, model.cpu(), config, history)
    print(f"trained {history['epoch'][-1]} epochs in {history['seconds'][-1]:.0f} s; held-out toy cells "
          f"(ToyCells(32, seed=2000)): IoU {test['iou']:.3f}, instance F1 {test['f1']:.3f}, "
          f"merged {test['merged']}, split {test['split']}")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


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


def _quiet(*args, **kwargs) -> None:
    """``print`` on ranks other than 0: one process speaks for all."""


def _main_folder(parser: argparse.ArgumentParser, args: argparse.Namespace, world_size: int = 1) -> None:
    """Train on ``--images``/``--masks`` and write ``--out`` with what prediction needs. With
    ``world_size`` > 1 (torchrun), every rank runs this: all train, rank 0 prints and writes."""
    from .checkpoint import load_checkpoint, load_optimizer_state, save_checkpoint   # it imports this module
    from .files import ImageFolder, split_by_image
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
    device = _device_arg(parser, args.device)
    rank, say = 0, print
    if world_size > 1:
        try:
            device = str(distributed.init_from_env(device))
        except ValueError as error:
            parser.error(f"argument --device: {error}")
        rank = distributed.world()[0]
        say = print if rank == 0 else _quiet
    # the network: a new one, or the resumed checkpoint's
    prior_history, prior_meta, prior_config, optimizer_state = None, {}, None, None
    if args.resume is not None:
        try:
            model, prior_config, prior_history, prior_meta = load_checkpoint(args.resume)
            optimizer_state = load_optimizer_state(args.resume)
        except ValueError as error:
            raise SystemExit(f"error: --resume {args.resume}: {error}") from None
    else:
        try:
            UNet.check_config(num_classes=args.classes or 2, depth=args.depth, base_channels=args.base_channels)
        except (TypeError, ValueError) as error:
            parser.error(f"argument --depth/--base-channels: {error}")
        model = None
    depth = model.depth if model is not None else args.depth
    probe = model if model is not None else UNet(depth=depth, base_channels=1)   # size arithmetic only
    tile = args.tile if args.tile is not None else probe.valid_input_sizes(128, 128 + 2**depth)[0]
    _check_tile(parser, probe, tile)
    mask_kind = "classes" if args.classes is not None else "instances"
    try:
        # the random tiles: a seed per rank (distributed.rank_seed); the split below uses --seed itself
        data = ImageFolder(args.images, args.masks, mask_kind, num_classes=args.classes,
                           seed=distributed.rank_seed(args.seed, rank))
        train_stems, val_stems = split_by_image(data, args.val_fraction, seed=args.seed)
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError) as error:
        raise SystemExit(f"error: {error}") from None
    if rank == 0:
        _print_summary(data.summary(), train_stems, val_stems)
    if model is None:
        torch.manual_seed(args.seed)   # the He initialisation draws from torch's generator
        model = UNet(in_channels=data.in_channels, num_classes=data.num_classes, depth=args.depth,
                     base_channels=args.base_channels, padding="valid", upsampling="transpose",
                     batch_norm=args.batch_norm)
    elif (model.in_channels, model.num_classes) != (data.in_channels, data.num_classes) or \
            prior_meta.get("mask_kind", mask_kind) != mask_kind:
        raise SystemExit(f"error: --resume {args.resume} is a model for {model.in_channels}-channel images and "
                         f"{model.num_classes} classes ({prior_meta.get('mask_kind', 'unknown')} masks), the data "
                         f"is {data.in_channels}-channel {mask_kind} with {data.num_classes} classes")
    augment = True   # every channel alike; class maps warped with the image (unet_lib.augment.Augmented)
    config = TrainConfig(epochs=args.epochs or 50, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                         weighted=not args.unweighted, augment=augment, seed=args.seed, device=device,
                         max_minutes=args.max_minutes, patience=args.patience if val_stems else None,
                         keep_best=bool(val_stems), num_workers=args.workers)
    train_data = data.subset(train_stems, tile_size=tile)
    if args.tiles_per_image is not None:
        repeats = args.tiles_per_image
    else:   # an epoch sees about every pixel once: mean image area / tile area
        sizes = train_data.summary()["sizes"]                        # {"HxW": count}
        area = sum(np.prod([int(n) for n in hw.split("x")]) * c for hw, c in sizes.items()) / len(train_stems)
        repeats = int(np.clip(round(area / tile**2), 1, 64))
    say(f"{repeats} random {tile}x{tile} tile(s) per training image per epoch")
    if world_size > 1:
        say(f"{world_size} processes on {device}: a global batch of {world_size} x {config.batch_size} tiles")
    train_data = _Repeated(train_data, repeats) if repeats > 1 else train_data
    val_data = data.subset(val_stems) if val_stems else None
    optimizer = make_optimizer(model, config)
    if args.resume is not None:
        if optimizer_state is None:
            say(f"note: {args.resume} holds no optimizer state (written before unet_lib stored it): its weights "
                f"train on with a fresh {config.optimizer} optimizer")
        elif prior_config.optimizer != config.optimizer:
            say(f"note: {args.resume} was trained with {prior_config.optimizer}, this run uses {config.optimizer}: "
                f"its weights train on with a fresh optimizer")
        else:
            try:
                optimizer.load_state_dict(optimizer_state)
            except (ValueError, KeyError) as error:
                raise SystemExit(f"error: --resume {args.resume}: its optimizer state does not fit the model: "
                                 f"{error}") from None
            say(f"resuming {args.resume}: its weights and its {config.optimizer} optimizer state")
    history = fit(model, train_data, val_data, config, optimizer=optimizer)
    if prior_history:   # one history: the earlier epochs, then these
        done, took = prior_history["epoch"][-1], prior_history["seconds"][-1]
        shift = {"epoch": done, "seconds": took, "best_epoch": done, "stopped_early": done, "out_of_time": done}
        history = {key: [v + shift.get(key, 0) for v in history[key]] for key in history}
        for key, values in prior_history.items():
            if key in history and key not in ("best_epoch", "stopped_early", "out_of_time"):
                history[key] = values + history[key]
    epochs = len(history["epoch"]) - (len(prior_history["epoch"]) if prior_history else 0)
    why = ("the time budget ran out" if "out_of_time" in history else
           f"no better validation score for {args.patience} epochs" if "stopped_early" in history else
           f"{config.epochs} epochs done")
    say(f"trained {epochs} epoch(s) in {history['seconds'][-1]:.0f} s ({why})")
    if rank > 0:   # rank 0 validates and writes; the others wait for it
        distributed.barrier()
        return
    meta = dict(data="unet_lib.files.ImageFolder", mask_kind=mask_kind, num_classes=data.num_classes,
                in_channels=data.in_channels, low=data.low, high=data.high, channel_axis=data.channel_axis,
                tile_size=tile, tiles_per_image=repeats, w0=data.target_kwargs["w0"], sigma=data.target_kwargs["sigma"],
                train_images=list(train_stems), val_images=list(val_stems))
    if val_data is not None:
        scores = evaluate(model, val_data, weighted=config.weighted)
        best = f" (the weights of epoch {history['best_epoch'][0]:.0f}, the best)" if "best_epoch" in history else ""
        shown = [k for k in ("loss", "iou", "mean_iou", "mean_dice", "f1", "precision", "recall", "merged", "split")
                 if k in scores]
        print(f"validation ({len(val_stems)} image(s)){best}: "
              + ", ".join(f"{k} {scores[k]:.3f}" if isinstance(scores[k], float) else f"{k} {scores[k]}"
                          for k in shown))
        if "class_iou" in scores:
            print("  IoU per class: " + ", ".join(f"{c}: {v:.3f}" for c, v in enumerate(scores["class_iou"])))
    path = save_checkpoint(args.out, model.cpu(), config, history, meta, optimizer_state=optimizer.state_dict())
    distributed.barrier()   # the file is whole before any rank goes on (a no-op in one process)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); predict with: python -m unet_lib.predict {path} "
          f"IMAGES_DIR --out OUT_DIR")


if __name__ == "__main__":
    # run the package's copy of this module, not this __main__ copy: its TrainConfig is the class
    # that unet_lib.checkpoint checks for
    from unet_lib.train import main as package_main
    package_main()
