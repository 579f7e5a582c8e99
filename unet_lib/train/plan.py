"""The plan of ``python -m unet_lib.train --images``: tiles per epoch and epochs, within the time budget.

They are chosen so that training takes the optimizer steps that reach a good model, and cut
to the time budget.

What makes a model good on a folder of a few images is the number of optimizer steps it takes,
not the number of epochs: an epoch of eight 128x128 images is one or two steps. ``TARGET_STEPS``
is that number, measured (``benchmarks/own_defaults.py --part steps``; the table is in its
docstring): the held-out instance F1 after runs of 120 to 960 steps on three kinds of data. Without
``--epochs`` and ``--tiles-per-image`` the command trains ``TARGET_STEPS`` steps whatever the size
of the folder: a small folder gets more tiles per epoch (``EPOCHS_WANTED`` epochs, a validation
after each for keep-best to choose from), a large one fewer epochs (at least ``MIN_EPOCHS``),
and an epoch larger than the plan allows draws its tiles from the images in turn
(``TileEpochs``).

The time budget (``--max-minutes``) is a limit on the whole command. ``time_steps`` times a few
training steps and a validation on a copy of the network on the machine at hand; ``within_budget``
then keeps the plan if it fits in the time left, and else trains fewer epochs (or fewer tiles per
epoch) that end, whole, within it. It never stretches a plan that fits.
"""

import copy
import math
import statistics
import time
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
from torch.utils.data import Dataset, default_collate

from ..augment import Augmented
from ..config import TrainConfig
from ..model import UNet
from .evaluation import evaluate
from .loop import _place
from .step import train_step

__all__ = ["TARGET_STEPS", "Plan", "TileEpochs", "Timing", "plan_training", "time_steps", "within_budget"]

# The optimizer steps (batch 4 tiles of 132x132, Adam at 2e-3 along a cosine) after which more
# steps bring little. Measured with benchmarks/own_defaults.py --part steps (seed 0; held-out
# instance F1 as predict writes it, the bare connected components in brackets; a loaded 2-core
# machine, so one seed: differences under about 0.03 are noise; the toy cells' 240 and 480 scored
# with an earlier post-processing that split every object, the others with today's):
#   steps   nuclei crops     dark rods        toy cells
#   120     0.883 (0.745)    0.834 (0.577)    0.874 (0.819)
#   240     0.982 (0.883)    0.828 (0.496)    1.000
#   480     0.956 (0.836)    0.896 (0.687)    0.993
#   960     0.955 (0.911)    0.921 (0.757)    -
# The nuclei and the toy cells level off by 240 steps, the rods by about 500 (a further doubling
# adds 0.025); 500 is within 0.03 of the best seen on all three (the nuclei crops: 6 minutes on a
# shared 2-core machine).
TARGET_STEPS = 500
EPOCHS_WANTED = 25        # epochs of a small folder's plan: keep-best chooses among 25 validations
MIN_EPOCHS = 5            # fewest epochs a plan is cut to before it cuts tiles per epoch instead
PROBE_STEPS = 4           # steps timed, their median: a shared machine's steps vary
PROBE_WARMUP = 2          # untimed steps before: the first steps of a new network set up its kernels


@dataclass(frozen=True)
class Plan:
    """How ``fit`` will train: ``tiles_per_epoch`` random tiles (of ``images`` training images) per
    epoch in batches of ``batch_size`` per process, ``epochs`` times."""
    images: int
    tiles_per_epoch: int
    batch_size: int
    epochs: int
    world_size: int = 1
    chosen: str = "chosen from the data"        # or "as given", "cut to fit the budget"

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch, as ``fit``'s loader batches: each process's share of the
        tiles (``DistributedSampler`` pads to equal shares) in whole batches, at least one."""
        share = math.ceil(self.tiles_per_epoch / self.world_size)
        return share // self.batch_size if share >= self.batch_size else 1

    @property
    def steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    def describe(self, tile: int) -> str:
        per_image = self.tiles_per_epoch / self.images
        ranks = f" per process, {self.world_size} processes" if self.world_size > 1 else ""
        return (f"plan ({self.chosen}): {self.images} training image(s), {self.tiles_per_epoch} random {tile}x{tile} "
                f"tiles per epoch ({per_image:.3g} per image), batch {self.batch_size}{ranks}: "
                f"{self.steps_per_epoch} steps per epoch x {self.epochs} epochs = {self.steps} optimizer steps")


def plan_training(images: int, cover: int, batch_size: int, world_size: int = 1, epochs: int | None = None,
                  tiles_per_image: int | None = None) -> tuple[Plan, str | None]:
    """(plan, warning or None) for ``images`` training images of which ``cover`` tiles cover about
    every pixel once, from ``--epochs`` and ``--tiles-per-image`` where given: the plan takes about
    ``TARGET_STEPS`` steps with whichever of the two is not given (module docstring); the warning
    says when given settings take fewer steps than that, with the flag to change."""
    global_batch = batch_size * world_size
    if tiles_per_image is not None:
        tiles = tiles_per_image * images
    elif epochs is not None:               # every pixel once per epoch: the given epochs say how often
        tiles = cover
    else:                                  # every pixel once per epoch, within EPOCHS_WANTED..MIN_EPOCHS epochs
        fewest, most = TARGET_STEPS // EPOCHS_WANTED * global_batch, TARGET_STEPS // MIN_EPOCHS * global_batch
        tiles = min(max(cover, fewest), most)
    chosen = "as given" if epochs and tiles_per_image else "chosen from the data" if not (epochs or tiles_per_image) \
        else f"--{'epochs' if epochs else 'tiles-per-image'} as given"
    plan = Plan(images, tiles, batch_size, 1, world_size, chosen)
    plan = replace(plan, epochs=epochs if epochs is not None else max(1, math.ceil(TARGET_STEPS / plan.steps_per_epoch)))
    if plan.steps >= TARGET_STEPS or epochs is None:
        return plan, None
    more_epochs = math.ceil(TARGET_STEPS / plan.steps_per_epoch)
    more_tiles = math.ceil(math.ceil(TARGET_STEPS / epochs) * global_batch / images)
    given = f"--epochs {epochs}" + (f" and --tiles-per-image {tiles_per_image}" if tiles_per_image else
                                    f" (and {plan.tiles_per_epoch / images:.3g} tiles per image)")
    return plan, (f"warning: {given} give {plan.steps} optimizer steps; models need about {TARGET_STEPS} (measured on "
                  f"nuclei, toy cells and rods): raise --epochs to {more_epochs} or --tiles-per-image to "
                  f"{more_tiles}, or leave both out and the command chooses")


class TileEpochs(Dataset):
    """``tiles`` accesses of a dataset of ``n`` images per epoch: item j on its k-th access is image
    (j + k tiles) mod n, so an epoch of fewer tiles than images takes the next images each epoch
    and one of r n tiles takes r of each. Passes ``sample(j, targets=False)`` on to the images
    (``Augmented`` asks for tiles without the targets it recomputes: for instances that is Eq. 2
    computed once per tile, not twice)."""

    def __init__(self, dataset: Dataset, tiles: int):
        self.dataset, self.tiles = dataset, tiles
        self.draws_on_access = getattr(dataset, "draws_on_access", False)
        self.target_kwargs = getattr(dataset, "target_kwargs", None)
        self.mask_kind, self.num_classes = getattr(dataset, "mask_kind", None), getattr(dataset, "num_classes", None)
        self._accesses = [0] * tiles

    def __len__(self) -> int:
        return self.tiles

    def _image(self, j: int) -> int:
        k = self._accesses[j]
        self._accesses[j] += 1
        return (j + k * self.tiles) % len(self.dataset)

    def __getitem__(self, j: int) -> dict:
        return self.dataset[self._image(j)]

    def sample(self, j: int, targets: bool = True) -> dict:
        return self.dataset.sample(self._image(j), targets=targets)


class Timing(NamedTuple):
    """Seconds on this machine (``time_steps``)."""
    step: float          # one training step, its batch's loading and augmentation included
    validation: float    # one evaluate() of the validation data (0 without)
    draw: float          # one tile with its targets, as fit's set-up draws each tile of an epoch


def time_steps(model: UNet, train_data: Dataset, val_data: Dataset | None, config: TrainConfig,
               steps: int = PROBE_STEPS) -> Timing:
    """How long training takes here: the median of ``steps`` steps of a copy of ``model`` as
    ``fit`` takes them (its device and memory layout, an augmented batch of ``config.batch_size``
    tiles of ``train_data`` loaded for each, as training loads them after their first access),
    after ``PROBE_WARMUP`` untimed ones; one ``evaluate`` on ``val_data``; and a tile's first draw
    (with its targets). ``model`` is left as it was; ``train_data``'s draws are counted: pass a copy
    that training does not use."""
    augmented = Augmented(train_data, seed=config.seed, **(getattr(train_data, "target_kwargs", None) or {}))
    tiles = [j % len(train_data) for j in range(config.batch_size)]
    start = time.perf_counter()
    for j in tiles:
        augmented[j]                        # a first access: the tile drawn with its targets, the rule decided
    draw = (time.perf_counter() - start) / len(tiles)
    probe = copy.deepcopy(model)
    _, channels_last = _place(probe, config)
    optimizer = torch.optim.Adam(probe.parameters(), lr=config.lr)
    probe.train()
    took = []
    for _ in range(PROBE_WARMUP + steps):   # the first steps of a new network set up its kernels: not timed
        start = time.perf_counter()
        batch = default_collate([augmented[j] for j in tiles])
        train_step(probe, optimizer, batch, config.weighted, channels_last)
        took.append(time.perf_counter() - start)
    start = time.perf_counter()
    if val_data is not None:
        evaluate(probe, val_data, weighted=config.weighted)
    return Timing(statistics.median(took[PROBE_WARMUP:]), time.perf_counter() - start if val_data is not None
                  else 0.0, draw)


def within_budget(plan: Plan, timing: Timing, seconds_left: float, other_seconds: float = 0.0) -> tuple[Plan, str]:
    """(plan, what was decided): ``plan`` itself when its epochs (steps and a validation each) fit
    in ``seconds_left`` (with ``fit``'s set-up, two draws of each tile of an epoch); else as many
    whole epochs as fit, at least ``MIN_EPOCHS`` of fewer tiles if fewer would fit, or at last as
    many one-step epochs as fit. ``other_seconds``: what the command spends besides training
    (reading, saving), for the budget it would need. Raises ``ValueError`` when not one step and
    validation fits."""
    step_seconds, val_seconds = timing.step, timing.validation
    # fit's set-up draws and checks each tile of an epoch, and the first epoch's augmentation asks each once more
    seconds_left -= 2 * plan.tiles_per_epoch * timing.draw
    epoch_seconds = plan.steps_per_epoch * step_seconds + val_seconds
    needed = plan.epochs * epoch_seconds
    timing = f"{step_seconds:.2f} s per step and {val_seconds:.2f} s per validation measured here"
    if needed <= seconds_left:
        return plan, f"{timing}; the plan needs about {needed / 60:.1f} of the {seconds_left / 60:.1f} minutes left"
    epochs = int(seconds_left // epoch_seconds)
    if epochs >= min(MIN_EPOCHS, plan.epochs):
        cut = replace(plan, epochs=epochs, chosen="cut to fit the budget")
    else:                                   # MIN_EPOCHS epochs of fewer steps, or one-step epochs
        epochs = min(MIN_EPOCHS, plan.epochs)
        steps = int((seconds_left / epochs - val_seconds) // step_seconds)
        if steps < 1:
            epochs, steps = int(seconds_left // (step_seconds + val_seconds)), 1
        if epochs < 1:
            raise ValueError(f"the time left ({seconds_left:.0f} s) holds not one training step and validation "
                             f"({step_seconds + val_seconds:.1f} s)")
        tiles = steps * plan.batch_size * plan.world_size
        cut = replace(plan, epochs=epochs, tiles_per_epoch=tiles, chosen="cut to fit the budget")
    return cut, (f"{timing}; {plan.steps} steps would take about {needed / 60:.1f} minutes, {seconds_left / 60:.1f} "
                 f"are left: {cut.steps} steps end within the budget (--max-minutes "
                 f"{math.ceil((needed + other_seconds) / 60)} would hold the whole plan)")
