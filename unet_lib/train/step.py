"""One optimisation step, ``train_step``: forward, the loss of Eq. 1, backward, step.

B, C, K, H, W = batch, channels, classes (num_classes), height, width.

> The input images and their corresponding segmentation maps are used to train the network
> with the stochastic gradient descent implementation of Caffe. (Sec. 3)

``fit`` (``unet_lib.train.loop``) takes one such step per batch; notebook 07 shows this one.
"""

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..losses import weighted_cross_entropy
from ..model import UNet
from ..tiling import padded_forward
from ..validate import check_bool, check_instance, check_tensor, describe

__all__ = ["train_step", "NonFiniteLossError"]


class NonFiniteLossError(FloatingPointError, ValueError):
    """The training loss became NaN or infinite. ``train_step`` raises it before the optimizer
    step (the weights stay as they were); ``fit`` adds the epoch and the step."""


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
