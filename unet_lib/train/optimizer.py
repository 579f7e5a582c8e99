"""The optimizer that ``fit`` steps and its learning-rate schedule.

``make_optimizer``, the checks of one you pass in, and its reset to the config's rate.

> [...] we favor large input tiles over a large batch size and hence reduce the batch to a
> single image. Accordingly we use a high momentum (0.99) such that a large number of the
> previously seen training samples determine the update in the current optimization step. (Sec. 3)

``fit`` does both: the paper's SGD with momentum 0.99, and Adam (not in the paper; with
BatchNorm it trains the course model in under a minute on a CPU).
"""

import torch

from ..config import TrainConfig, check_train_config
from ..model import UNet
from ..validate import check_instance
from .step import _check_model

__all__ = ["make_optimizer"]


def make_optimizer(model: UNet, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer that ``fit`` steps: Adam, or SGD with ``config.momentum``, at ``config.lr``
    over the model's parameters. Build it yourself to restore its state before ``fit``
    (``optimizer.load_state_dict``; see ``unet_lib.checkpoint.load_optimizer_state``)."""
    check_train_config(config)
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


def _ready(optimizer: torch.optim.Optimizer | None, model: UNet, config: TrainConfig) -> torch.optim.Optimizer:
    """``optimizer`` (``make_optimizer``'s when None) ready to train at ``config.lr``: a given
    one's state moved to its parameters' device (``load_state_dict`` casts it) and its rate reset,
    because a stored lr is where the last run's schedule ended (0 after a cosine) and a stored
    ``initial_lr`` would become the new schedule's base."""
    if optimizer is None:
        return make_optimizer(model, config)
    optimizer.load_state_dict(optimizer.state_dict())
    for group in optimizer.param_groups:
        group["lr"] = config.lr
        group.pop("initial_lr", None)
    return optimizer


def _schedule(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    """The cosine decay over the run (None without ``config.cosine``). Not in the paper: it settles
    the weights at the end, so the last epoch's result does not depend on where in its
    oscillations the run stopped."""
    if not config.cosine:
        return None
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch)
