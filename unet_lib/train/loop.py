"""The training loop, ``fit``: set up, then for each epoch train, validate and decide whether to stop.

B, C, K, H, W = batch, channels, classes (num_classes), height, width.

``fit`` reads top to bottom as that loop; what it calls sits below it in the order it runs:
``_set_up`` (checks, device, data, loader, optimizer), ``_train_epoch`` (a ``train_step`` per
batch), ``evaluate_over_ranks`` (``unet_lib.train.evaluation``) and ``_Stopping`` (the time
budget, patience and keep-best).

Data. The samples of a dataset are computed once, except for a training set with
``draws_on_access = True`` (an ImageFolder with ``tile_size``: a new random tile per access),
whose first draw of each sample is checked and which is then asked anew every epoch; validation
images may differ in size. With ``config.augment`` every epoch sees new augmentations
(``unet_lib.augment.Augmented``: flips, 90-degree rotations, the paper's elastic deformation,
every channel alike; the paper's targets are recomputed from the augmented instances with the
dataset's ``w0``, ``sigma`` and ``class_weights``, and a mask of the dataset's own (a class map,
K > 2 classes) is warped with the image by nearest neighbour and its class-balance weights
recomputed, so training sees the targets the data gives). Images are mirror-padded so a
valid-padding model predicts every pixel (``padded_forward``).

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
layers. Progress on rank 0 only: a bar with the running loss and, after each epoch, the
validation score; one line per epoch where the output is not a terminal (``unet_lib.progress``).
"""

import contextlib
import copy
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .. import distributed
from ..augment import Augmented
from ..config import TrainConfig, check_train_config
from ..model import UNet
from ..progress import Progress
from ..validate import check_finite, describe
from .evaluation import evaluate_over_ranks
from .optimizer import _check_optimizer, _ready, _schedule
from .step import NonFiniteLossError, _Padded, train_step

__all__ = ["fit"]


def fit(model: UNet, train_data: Dataset, val_data: Dataset | None, config: TrainConfig | None = None,
        optimizer: torch.optim.Optimizer | None = None) -> dict[str, list[float]]:
    """Train ``model`` in place on ``train_data`` and return the history.

    ``train_data`` and ``val_data``: datasets of dicts with ``image`` (C, H, W), ``instances``
    (H, W), ``mask`` (H, W) and ``weight_map`` (H, W), such as ``ToyCells`` or
    ``unet_lib.files.ImageFolder`` (how they are read and augmented: the module docstring).

    The history has one entry per epoch in each list: ``epoch``, ``train_loss`` (mean over the
    epoch's steps), ``seconds`` (since ``fit`` was called), and ``val_loss``, ``val_iou``, ``val_f1``,
    ``val_merged`` and ``val_split`` (``evaluate`` on ``val_data``; absent when it is None).
    For class maps (no instances in ``val_data``) the instance scores are left out; for K > 2
    classes ``val_mean_iou`` and ``val_mean_dice`` are added. Seeded by ``config.seed`` through
    explicit generators: the same seed, model initialisation and machine give the same result.
    The model ends in eval mode, on its training device.

    Training that can be left alone (all off by default; ``_Stopping``): ``max_minutes`` starts
    no epoch that would not end within the budget (as long as the longest so far) and stops after
    a step that exceeds it, records the last epoch (validated) and ``out_of_time`` = [epoch];
    ``patience`` stops after that many epochs without a better ``monitor`` (default:
    ``val_f1`` for instances, ``val_mean_iou`` for K > 2 classes, else ``val_iou``; ``*_loss`` is
    better lower) and records ``stopped_early`` = [epoch]; with ``patience`` or ``keep_best`` the
    history holds ``best_epoch`` = [epoch], and ``keep_best`` restores that epoch's weights and
    the optimizer's state after it at the end. ``amp`` runs the forward pass in bfloat16 on CUDA (warns and does nothing on the
    CPU). ``num_workers`` > 0 loads in persistent worker processes (each holds its own copy of a
    dataset's access counts, so random tiles and augmentations are drawn per worker).

    ``optimizer``: the one to step, e.g. restored from a checkpoint (Adam's moments, SGD's momentum
    carry on); default ``make_optimizer(model, config)``. Either way it trains at ``config.lr``
    along a new cosine over ``config.epochs`` (a given optimizer's learning rate is reset to it).
    After ``fit``, ``optimizer.state_dict()`` is what a later run resumes from. On several ranks
    (torchrun): the same call on every rank trains one model (the module docstring).
    """
    started = time.perf_counter()   # the time budget and the history's seconds count the set-up too
    config = config or TrainConfig()
    run = _set_up(model, train_data, val_data, config, optimizer)
    history = {"epoch": [], "train_loss": [], "seconds": [], **{f"val_{key}": [] for key in run.val_keys}}
    stopping = _Stopping(config, run.monitor, run.rank, run.world_size, started)
    bar = Progress(config.epochs * len(run.loader), "training", "step", disable=not config.progress or run.rank > 0)
    with _network(model, run) as net:   # the model itself, or its DDP wrapper on several ranks
        for epoch in range(1, config.epochs + 1):
            train_loss = _train_epoch(net, run, epoch, stopping, bar)
            history["epoch"].append(epoch)
            history["train_loss"].append(train_loss)
            if run.val_data is not None:
                scores = evaluate_over_ranks(model, run.val_data, config.weighted, run.rank, run.world_size)
                for key in run.val_keys:
                    history[f"val_{key}"].append(scores[key])
            history["seconds"].append(stopping.elapsed())
            stop = stopping.decide(epoch, history, model, run.optimizer)   # "stopped_early", "out_of_time" or None
            bar.done(_epoch_line(history, config.epochs, run.val_keys))
            if stop is not None:
                history[stop] = [float(epoch)]               # the last epoch trained
                break
    bar.close()
    stopping.finish(model, run.optimizer, history)   # best_epoch; with keep_best that epoch's weights and optimizer
    model.eval()
    return history


# -- set up ----------------------------------------------------------------------------------

@dataclass
class _Run:
    """What ``_set_up`` prepared for ``fit``'s epochs."""
    model: UNet
    config: TrainConfig
    rank: int                                   # this process among world_size (0 of 1 without torchrun)
    world_size: int
    device: torch.device
    channels_last: bool                         # inputs and weights in NHWC (the CPU default)
    val_data: "_Cached | None"
    val_keys: list[str]                         # the history records val_<key> for each
    monitor: str | None                         # the score that patience and keep_best follow
    loader: DataLoader
    sampler: DistributedSampler | None          # several ranks: each rank's part of every epoch
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler | None
    use_amp: bool
    scaler: "torch.amp.GradScaler | None"


def _set_up(model: UNet, train_data: Dataset, val_data: Dataset | None, config: TrainConfig,
            optimizer: torch.optim.Optimizer | None) -> _Run:
    """Everything before the first epoch, in this order: the arguments checked; the model on its
    device and memory layout; the samples computed once (or first drawn) and checked; what the
    history records and what stops the run; mixed precision; augmentation, sampler and loader; the
    optimizer and its schedule."""
    _check_arguments(model, train_data, val_data, config, optimizer)
    rank, world_size = distributed.world()
    device, channels_last = _place(model, config)
    target_kwargs = getattr(train_data, "target_kwargs", None) or {}   # the weight map's settings, for Augmented
    train_data, val_data = _cached_and_checked(train_data, val_data, model.num_classes)
    val_keys, monitor = _scores_to_record(model, val_data, config)
    use_amp, scaler = _amp(config, device)
    loader, sampler = _loader(train_data, config, device, rank, world_size, target_kwargs)
    optimizer = _ready(optimizer, model, config)
    return _Run(model, config, rank, world_size, device, channels_last, val_data, val_keys, monitor, loader,
                sampler, optimizer, _schedule(optimizer, config, len(loader)), use_amp, scaler)


def _check_arguments(model, train_data, val_data, config: TrainConfig, optimizer) -> None:
    check_train_config(config)
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


def _place(model: UNet, config: TrainConfig) -> tuple[torch.device, bool]:
    """(device, channels_last), with the model moved there and into that memory layout."""
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    # channels_last: 1.2-1.4x faster convolutions on this course's CPUs (oneDNN prefers NHWC)
    channels_last = config.channels_last if config.channels_last is not None else device.type == "cpu"
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return device, channels_last


class _Cached(Dataset):
    """The samples of a dataset, computed once (``ToyCells`` draws on every access)."""

    def __init__(self, dataset: Dataset, samples: list | None = None):
        self.samples = samples if samples is not None else [dataset[i] for i in range(len(dataset))]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        return self.samples[i]


def _cached_and_checked(train_data: Dataset, val_data: Dataset | None, num_classes: int):
    """(train_data, val_data) as the epochs read them, every sample checked now: refused here is
    what would otherwise fail (or train on NaN) in the middle of an epoch."""
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
    _check_samples(train_samples, "train_data", num_classes)
    if val_data is not None:
        if len(val_data) == 0:
            raise ValueError("val_data is empty; pass None to train without validation")
        _check_samples(val_data.samples, "val_data", num_classes)
    return train_data, val_data


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


def _scores_to_record(model: UNet, val_data: "_Cached | None", config: TrainConfig) -> tuple[list[str], str | None]:
    """(val_keys, monitor): the validation scores the history records (``val_<key>``), and the one
    that patience and keep_best follow, by default the instance F1 for instance masks, the mean
    IoU of the classes for class maps (the IoU for K = 2)."""
    val_keys = ["loss", "iou", "f1", "merged", "split"]
    if val_data is not None:
        if not any(torch.as_tensor(sample["instances"]).any() for sample in val_data.samples):
            val_keys = ["loss", "iou"]                      # class maps: no cells, no instance scores
        if model.num_classes > 2:
            val_keys += ["mean_iou", "mean_dice"]
    monitor = config.monitor
    if (config.patience is not None or config.keep_best) and monitor is None:
        monitor = ("val_f1" if "f1" in val_keys else "val_mean_iou" if "mean_iou" in val_keys else "val_iou")
    if monitor is not None:
        if val_data is None:
            raise ValueError(f"early stopping and keep_best need val_data to monitor {monitor!r}; pass val_data "
                             f"or set patience=None, keep_best=False")
        if monitor.removeprefix("val_") not in val_keys:
            raise ValueError(f"monitor={monitor!r} is not a validation score of this data; choose one of "
                             f"{', '.join('val_' + k for k in val_keys)}")
    return (val_keys if val_data is not None else []), monitor


def _amp(config: TrainConfig, device: torch.device) -> tuple[bool, "torch.amp.GradScaler | None"]:
    """(use_amp, scaler): mixed precision on CUDA only (a warning elsewhere), with a loss scaler
    for float16 where the GPU lacks bfloat16 (which needs none)."""
    if config.amp and device.type != "cuda":
        warnings.warn(f"amp=True has no effect on {device.type!r}: mixed precision is used on CUDA only; "
                      f"training runs in float32", stacklevel=4)   # _amp < _set_up < fit < fit's caller
    use_amp = config.amp and device.type == "cuda"
    return use_amp, (torch.amp.GradScaler("cuda") if use_amp and not torch.cuda.is_bf16_supported() else None)


def _loader(train_data: Dataset, config: TrainConfig, device: torch.device, rank: int, world_size: int,
            target_kwargs: dict) -> tuple[DataLoader, DistributedSampler | None]:
    """The loader of the (augmented) training data, shuffled by ``config.seed``; on several ranks
    with the sampler that gives each rank its part of every epoch."""
    if config.augment:
        # the weight map recomputed after each deformation with the dataset's w0, sigma, class_weights;
        # a seed per rank, so that ranks never repeat each other's draws (distributed.rank_seed)
        train_data = Augmented(train_data, seed=distributed.rank_seed(config.seed, rank), **target_kwargs)
    workers = dict(num_workers=config.num_workers, persistent_workers=config.num_workers > 0,
                   pin_memory=device.type == "cuda" and config.num_workers > 0)
    if world_size == 1:
        loader = DataLoader(train_data, batch_size=config.batch_size, shuffle=True,
                            drop_last=len(train_data) >= config.batch_size,
                            generator=torch.Generator().manual_seed(config.seed), **workers)
        return loader, None
    # the same permutation on every rank (seed + epoch, set_epoch in _train_epoch), each rank its own slice
    sampler = DistributedSampler(train_data, num_replicas=world_size, rank=rank, shuffle=True, seed=config.seed)
    loader = DataLoader(train_data, batch_size=config.batch_size, sampler=sampler,
                        drop_last=len(sampler) >= config.batch_size, **workers)
    return loader, sampler


# -- each epoch ------------------------------------------------------------------------------

@contextlib.contextmanager
def _network(model: UNet, run: _Run):
    """The network that trains: ``model`` itself in one process. On several ranks ``model`` with
    SyncBatchNorm layers (CUDA) in DistributedDataParallel, which copies rank 0's weights to all
    ranks now and averages the gradients in every backward pass; the model's own layers are back
    after the block."""
    if run.world_size == 1:
        yield model
        return
    with distributed.sync_batch_norm(model, run.device):
        yield DistributedDataParallel(_Padded(model), device_ids=[run.device.index] if run.device.type == "cuda" else None)


def _train_epoch(net, run: _Run, epoch: int, stopping: "_Stopping", bar: Progress) -> float:
    """One pass over the training batches, a ``train_step`` each, until the time budget runs out
    (the epoch ends there and is recorded as a whole one). Returns the mean loss of its steps, over
    all ranks."""
    if run.sampler is not None:
        run.sampler.set_epoch(epoch - 1)   # a new order each epoch, the same on every rank
    net.train()
    total, steps = 0.0, 0
    for step, batch in enumerate(run.loader, start=1):
        loss = _step(net, run, batch, f"epoch {epoch}, step {step} of {len(run.loader)}")
        if run.schedule is not None:
            run.schedule.step()
        total, steps = total + loss, steps + 1
        bar.step(epoch=epoch, loss=f"{total / steps:.3f}")
        if stopping.out_of_time_after_step():
            break
    if run.world_size > 1:
        total, steps = distributed.sum_over_ranks([total, steps])   # the mean over all ranks' steps
        distributed.broadcast_buffers(run.model)   # validate (and save) rank 0's running statistics
    return total / steps


def _step(net, run: _Run, batch: dict, where: str) -> float:
    """``train_step`` on ``batch``, or ``NonFiniteLossError`` naming ``where`` in the run. On
    several ranks a non-finite loss on one stops all (DDP averaged its NaN gradient into every
    rank's); the failed rank takes part in this vote too, or the others would wait."""
    failed = None
    try:
        loss = train_step(net, run.optimizer, batch, run.config.weighted, run.channels_last, run.use_amp, run.scaler)
    except NonFiniteLossError as error:
        failed = str(error)
    if run.world_size > 1 and distributed.any_rank(failed is not None) and failed is None:
        failed = "the loss on another rank is not finite (its gradient, averaged, made these weights NaN)"
    if failed is not None:
        raise NonFiniteLossError(f"training stopped at {where}: {failed}") from None
    return loss


# -- decide ----------------------------------------------------------------------------------

class _Stopping:
    """When ``fit`` stops, and which epoch was best: the time budget (``max_minutes``: no epoch is
    started that would not end within it, and a step that exceeds it ends the run), ``patience``
    (epochs without a better ``monitor``) and ``keep_best`` (the best epoch's weights and optimizer
    state, restored at the end). On several ranks every rank takes the same decision at the same
    step (votes through ``unet_lib.distributed``), or the others would wait forever."""

    def __init__(self, config: TrainConfig, monitor: str | None, rank: int, world_size: int, start: float):
        self.monitor, self.patience, self.keep_best = monitor, config.patience, config.keep_best
        self.lower_is_better = monitor is not None and monitor.endswith("loss")
        self.best, self.best_epoch, self.best_state, self.stale = None, None, None, 0
        self.budget = None if config.max_minutes is None else 60.0 * config.max_minutes
        self.epochs = config.epochs
        self.out_of_time = False
        self.rank, self.world_size = rank, world_size
        self.start = start                      # time.perf_counter() when fit was called

    def elapsed(self) -> float:
        """Seconds since the run started, by this rank's clock."""
        return time.perf_counter() - self.start

    def out_of_time_after_step(self) -> bool:
        """Whether the budget ran out; each rank's clock differs, so all stop after the step in
        which any ran out."""
        if self.budget is not None:
            self.out_of_time = self.elapsed() > self.budget
            if self.world_size > 1:
                self.out_of_time = distributed.any_rank(self.out_of_time)
        return self.out_of_time

    def _no_room_for_another_epoch(self, epoch: int, history: dict) -> bool:
        """Whether the next epoch, as long as the longest so far, would end after the budget: whole
        epochs, so the last one is validated and the cosine is not cut in the middle of an epoch."""
        if self.budget is None or epoch >= self.epochs:
            return False
        seconds = [0.0] + history["seconds"]
        longest = max(b - a for a, b in zip(seconds, seconds[1:]))
        late = self.elapsed() + longest > self.budget
        return distributed.any_rank(late) if self.world_size > 1 else late

    def decide(self, epoch: int, history: dict, model: UNet, optimizer: torch.optim.Optimizer) -> str | None:
        """After an epoch is recorded: "stopped_early" when patience ran out, "out_of_time" when
        the budget ran out during it or would run out during the next one, else None; the best
        epoch so far (and with keep_best its weights and optimizer state) kept."""
        if self.monitor is not None:
            value = history[self.monitor][-1]   # every rank holds the same summed scores
            if self._better(value):
                self.best, self.best_epoch, self.stale = value, epoch, 0
                if self.keep_best:   # the optimizer's state too, so that a resumed run continues from this epoch
                    self.best_state = ({k: v.detach().clone() for k, v in model.state_dict().items()},
                                       copy.deepcopy(optimizer.state_dict()))
            else:
                self.stale += 1
            stop = self.patience is not None and self.stale >= self.patience
            if self.world_size > 1:   # rank 0's decision is everyone's, whatever the rounding elsewhere
                stop = distributed.any_rank(stop and self.rank == 0)
            if stop:
                return "stopped_early"
        if self.out_of_time or self._no_room_for_another_epoch(epoch, history):
            self.out_of_time = True
            return "out_of_time"
        return None

    def _better(self, value: float) -> bool:
        """Better than the best so far; a NaN score (no foreground class in truth or prediction)
        is never better than a number."""
        best = self.best
        return (best is None or (np.isnan(best) and not np.isnan(value))
                or (value < best if self.lower_is_better else value > best))

    def finish(self, model: UNet, optimizer: torch.optim.Optimizer, history: dict) -> None:
        """Record ``best_epoch`` (when a score was monitored) and, with keep_best, load its weights
        and its optimizer state (Adam's moments, SGD's momentum as they were after that epoch)."""
        if self.monitor is not None:
            history["best_epoch"] = [float(self.best_epoch)]
            if self.keep_best and self.best_state is not None:
                weights, optimizer_state = self.best_state
                model.load_state_dict(weights)
                optimizer.load_state_dict(optimizer_state)


def _epoch_line(history: dict, epochs: int, val_keys: list[str]) -> str:
    """"epoch 3 of 40: train_loss 0.310, val_f1 0.712": what the progress shows after each epoch,
    with the validation score that keep_best follows by default."""
    shown = next((f"val_{k}" for k in ("f1", "mean_iou", "iou") if k in val_keys), None)
    text = f"epoch {history['epoch'][-1]} of {epochs}: train_loss {history['train_loss'][-1]:.3f}"
    return text + (f", {shown} {history[shown][-1]:.3f}" if shown is not None else "")
