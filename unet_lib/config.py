"""``TrainConfig``: the settings of a training run, which ``fit`` follows and a checkpoint records.

It sits below both ``unet_lib.train`` (which trains by it) and ``unet_lib.checkpoint`` (which
stores it and rebuilds it), so that neither of those imports the other to know it.
"""

from dataclasses import dataclass
from typing import Literal

import torch

from .validate import check_bool, check_choice, check_int, check_number, check_seed, describe

__all__ = ["TrainConfig", "check_train_config"]


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


def check_train_config(config: TrainConfig) -> None:
    """Refuse a ``config`` that is not a TrainConfig or has a field of the wrong type or range,
    naming the field, before anything is trained."""
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
