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

from .validate import check_choice, check_finite, check_tensor

__all__ = ["weighted_cross_entropy"]

Reduction = Literal["mean", "sum", "none"]


def _check_shapes(logits: torch.Tensor, mask: torch.Tensor, weight_map: torch.Tensor | None) -> None:
    check_tensor("logits", logits, 4, "(B, K, H, W) tensor of raw scores", nonempty=False)
    if not isinstance(mask, torch.Tensor) or mask.ndim != 3:
        hint = "add the batch dimension with mask[None]" if getattr(mask, "ndim", 0) == 2 else ""
        check_tensor("mask", mask, 3, "(B, H, W) tensor of class indices", nonempty=False, hint=hint)
    B, K, H, W = logits.shape
    if tuple(mask.shape) != (B, H, W):
        hint = ""
        if mask.shape[0] == B and mask.shape[-2] > H and mask.shape[-1] > W:
            hint = ("; a valid-padding U-Net's output is smaller than its input: crop the targets "
                    "with unet_lib.center_crop(mask, logits.shape[-2:])")
        raise ValueError(f"mask has shape {tuple(mask.shape)} but logits {tuple(logits.shape)} need "
                         f"(B, H, W) = {(B, H, W)}{hint}")
    check_tensor("logits", logits, kind="float", hint="an empty batch has no loss")
    check_tensor("mask", mask, kind="integer")
    if mask.min() < 0 or mask.max() >= K:
        found = torch.unique(mask)
        bad = found[(found < 0) | (found >= K)].tolist()
        shown = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
        raise ValueError(f"mask values must be class indices in [0, {K - 1}] for {K} classes "
                         f"(num_classes={K}), found values in [{int(mask.min())}, {int(mask.max())}]: "
                         f"labels {shown} have no class")
    if weight_map is not None:
        check_tensor("weight_map", weight_map, dims="(B, H, W)", kind="float")
        if tuple(weight_map.shape) != (B, H, W):
            raise ValueError(f"weight_map has shape {tuple(weight_map.shape)} but must match mask: (B, H, W) = "
                             f"{(B, H, W)} (crop it like the mask when the logits are smaller than the input)")
        check_finite("weight_map", weight_map)
        if weight_map.min() < 0:
            n = int((weight_map < 0).sum())
            raise ValueError(f"weight_map must be >= 0, got {n} negative value{'s' if n > 1 else ''} "
                             f"(min {float(weight_map.min()):g}); a negative weight rewards the wrong class")


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
    check_choice("reduction", reduction, ("mean", "sum", "none"))
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
