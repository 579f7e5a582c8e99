"""The paper's training loss: pixel-wise softmax, then a weighted cross-entropy (Sec. 3, Eq. 1).

B, K, H, W = batch, classes (num_classes), height, width.

> The energy function is computed by a pixel-wise soft-max over the final feature map combined
> with the cross entropy loss function. The soft-max is defined as
> p_k(x) = exp(a_k(x)) / sum_k' exp(a_k'(x)) [...]. The cross entropy then penalizes at each
> position the deviation of p_l(x)(x) from 1 using
>
>     E = sum_x w(x) log(p_l(x)(x))                                                     (1)
>
> where l is the true label of each pixel and w is a weight map.

The printed Eq. 1 drops the minus sign: as written, E is a log-likelihood to be *maximised*.
We minimise its negative, -sum_x w(x) log p_l(x)(x), as every cross-entropy loss does.

API
---
* ``weighted_cross_entropy(logits, mask, weight_map=None, reduction="mean")``: ``logits``
  float (B, K, H, W), ``mask`` int64 (B, H, W) with values in [0, K), ``weight_map`` float
  (B, H, W) or None (all ones). Returns a scalar for "mean" and "sum", (B, H, W) for "none".
"""

from typing import Literal

import torch
import torch.nn.functional as F

__all__ = ["weighted_cross_entropy"]

Reduction = Literal["mean", "sum", "none"]


def _check_shapes(logits: torch.Tensor, mask: torch.Tensor, weight_map: torch.Tensor | None) -> None:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 4:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a (B, K, H, W) tensor of raw scores, got {shape}")
    if not isinstance(mask, torch.Tensor) or mask.ndim != 3:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        hint = "; add the batch dimension with mask[None]" if getattr(mask, "ndim", 0) == 2 else ""
        raise ValueError(f"mask must be a (B, H, W) tensor of class indices, got {shape}{hint}")
    B, K, H, W = logits.shape
    if tuple(mask.shape) != (B, H, W):
        hint = ""
        if mask.shape[0] == B and mask.shape[-2] > H and mask.shape[-1] > W:
            hint = ("; a valid-padding U-Net's output is smaller than its input: crop the targets "
                    "with unet_lib.center_crop(mask, logits.shape[-2:])")
        raise ValueError(f"mask has shape {tuple(mask.shape)} but logits {tuple(logits.shape)} need "
                         f"(B, H, W) = {(B, H, W)}{hint}")
    if mask.dtype.is_floating_point or mask.dtype == torch.bool:
        raise TypeError(f"mask must hold integer class indices (torch.int64), got {mask.dtype}; "
                        f"use mask.long()")
    if mask.numel() and (mask.min() < 0 or mask.max() >= K):
        raise ValueError(f"mask values must be class indices in [0, {K - 1}] for {K} classes, "
                         f"found values in [{int(mask.min())}, {int(mask.max())}]")
    if weight_map is not None:
        if not isinstance(weight_map, torch.Tensor) or tuple(weight_map.shape) != (B, H, W):
            shape = tuple(weight_map.shape) if isinstance(weight_map, torch.Tensor) else type(weight_map).__name__
            raise ValueError(f"weight_map has shape {shape} but must match mask: (B, H, W) = {(B, H, W)}"
                             f" (crop it like the mask when the logits are smaller than the input)")


def weighted_cross_entropy(logits: torch.Tensor, mask: torch.Tensor, weight_map: torch.Tensor | None = None,
                           reduction: Reduction = "mean") -> torch.Tensor:
    """Eq. 1 of the paper as a loss: -w(x) log p_l(x)(x) per pixel, with the pixel-wise softmax
    p_k(x) = exp(a_k(x)) / sum_k' exp(a_k'(x)).

    logits (B, K, H, W) raw scores a_k(x); mask (B, H, W) int64 true labels l(x) in [0, K);
    weight_map (B, H, W) float w(x), or None for w = 1. ``reduction``: "mean" averages over all
    B*H*W pixels (not over the sum of the weights, so a larger weight means a larger loss, as in
    the paper's sum), "sum" is the paper's E with the sign fixed, "none" returns (B, H, W).
    With w = 1 this equals ``F.cross_entropy(logits, mask)``.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction={reduction!r} is not supported; use 'mean', 'sum' or 'none'")
    _check_shapes(logits, mask, weight_map)
    # log_softmax instead of log(softmax(.)): the same value, without overflow for large scores
    log_probs = F.log_softmax(logits, dim=1)                     # (B, K, H, W) log p_k(x)
    nll = -log_probs.gather(1, mask[:, None]).squeeze(1)         # (B, H, W) -log p_l(x)(x)
    if weight_map is not None:
        nll = nll * weight_map.to(nll.dtype)                     # (B, H, W) -w(x) log p_l(x)(x)
    if reduction == "mean":
        return nll.mean()
    if reduction == "sum":
        return nll.sum()
    return nll
