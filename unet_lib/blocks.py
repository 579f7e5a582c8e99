"""The building blocks of U-Net, named after the paper (Ronneberger et al., 2015, Sec. 2).

B, C, H, W = batch, channels, height, width.

The paper's architecture (Fig. 1) is built from four parts:

* ``DoubleConv``: "the repeated application of two 3x3 convolutions (unpadded convolutions),
  each followed by a rectified linear unit (ReLU)".
* ``Down``: "a 2x2 max pooling operation with stride 2 for downsampling", then a ``DoubleConv``
  that doubles the number of feature channels. One step of the contracting path.
* ``Up``: "an upsampling of the feature map followed by a 2x2 convolution ("up-convolution")
  that halves the number of feature channels, a concatenation with the correspondingly cropped
  feature map from the contracting path, and two 3x3 convolutions". One step of the expansive path.
* ``OutConv``: "a 1x1 convolution is used to map each 64-component feature vector to the
  desired number of classes".
"""

from typing import Literal

import torch
from torch import nn

# _check_choice: also imported under this name by unet_lib.model
from .validate import check_bool, check_choice as _check_choice, check_int, check_tensor, concrete_size

Padding = Literal["valid", "same"]
Upsampling = Literal["transpose", "bilinear"]

__all__ = ["DoubleConv", "Down", "Up", "OutConv", "center_crop", "Padding", "Upsampling"]


def _check_channels(**channels: int) -> None:
    for name, value in channels.items():
        check_int(name, value, min=1)


def center_crop(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Crop the last two dimensions of ``x`` to ``size``, keeping the centre.

    Takes (..., H, W) and returns (..., h, w) with ``(h, w) = size`` (an int means h = w).
    When ``H - h`` is odd the extra row is dropped at the bottom (likewise for columns), so the
    result always has exactly the requested size. In a U-Net with a valid input size the
    difference is always even. Below this function: ``_crop_size``, which checks the arguments,
    and ``_ChannelsLastCrop``, the same crop for a channels_last ``x``, kept channels_last.
    """
    h, w = _crop_size(x, size)
    H, W = x.shape[-2:]
    top, left = (H - h) // 2, (W - w) // 2
    if _is_channels_last(x):
        return _ChannelsLastCrop.apply(x, top, left, h, w)    # the same crop, kept channels_last
    return x[..., top : top + h, left : left + w]


def _crop_size(x: torch.Tensor, size: int | tuple[int, int]) -> tuple:
    """(h, w), the target of ``center_crop``: ``size`` checked against ``x`` (..., H, W).

    While an exporter traces a forward pass (``unet_lib.export``), sizes are traced values: they
    are checked at the traced example's values (``concrete_size``), and (h, w) comes back as the
    map's own traced size less the example's difference. A U-Net crops each skip by the same
    margin at every valid input size, so the exported graph crops that fixed margin, and an input
    of an invalid size fails at the concatenation (onnxruntime names a ``Concat``) instead of
    giving an answer shifted by a pixel.
    """
    check_tensor("x", x)
    if x.ndim < 2:
        raise ValueError(f"x must have at least 2 dimensions (..., H, W), got shape {tuple(x.shape)}")
    if isinstance(size, (tuple, list, torch.Size)) and len(size) == 2:
        h, w = check_int("size[0]", concrete_size(size[0])), check_int("size[1]", concrete_size(size[1]))
    else:
        h = w = check_int("size", concrete_size(size), hint="give an int or a pair (h, w)")
    H, W = (concrete_size(n) for n in x.shape[-2:])
    if h > H or w > W or h < 1 or w < 1:
        raise ValueError(f"size={size!r}: cannot crop a {H}x{W} map to {h}x{w}; the target must be between 1x1 "
                         f"and {H}x{W}")
    if torch.jit.is_tracing():
        traced_h, traced_w = x.shape[-2:]
        return traced_h - (H - h), traced_w - (W - w)
    return h, w


def _is_channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` is a (B, C, H, W) tensor stored channels_last (and not also plain contiguous)."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


class _ChannelsLastCrop(torch.autograd.Function):
    """``x[..., top:top + h, left:left + w]`` for a channels_last ``x``, channels_last both ways.

    channels_last makes convolutions faster on CPUs, but a plain crop breaks it twice. Backward:
    torch's gradient of a crop is an NCHW zero map; added to the channels_last gradient that a
    skip gets from the next layer, it makes the backward of the ReLU before it 15x slower.
    Forward: a cropped view of a batch of one does not look channels_last to ``torch.cat``, which
    then returns NCHW for the next convolution to convert back, forward and backward. Here the
    crop is a channels_last copy and its gradient a channels_last zero map with the gradient
    pasted in. Measured on the course's training step: 146 -> 129 ms.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, top: int, left: int, h: int, w: int) -> torch.Tensor:
        ctx.shape, ctx.box = x.shape, (top, left, h, w)
        return x[..., top : top + h, left : left + w].contiguous(memory_format=torch.channels_last)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        top, left, h, w = ctx.box
        grad_x = torch.empty(ctx.shape, dtype=grad.dtype, device=grad.device, memory_format=torch.channels_last)
        grad_x.zero_()
        grad_x[..., top : top + h, left : left + w] = grad
        return grad_x, None, None, None, None


class DoubleConv(nn.Sequential):
    """(3x3 conv -> [BatchNorm] -> ReLU) x 2.

    forward: (B, in_channels, H, W) -> (B, out_channels, H - 4, W - 4) with ``padding="valid"``
    (each unpadded 3x3 convolution removes a one-pixel border), or (B, out_channels, H, W) with
    ``padding="same"``. Any H, W >= 5 (valid) or >= 1 (same).
    """

    def __init__(self, in_channels: int, out_channels: int, padding: Padding = "valid", batch_norm: bool = False):
        _check_choice("padding", padding, ("valid", "same"))
        _check_channels(in_channels=in_channels, out_channels=out_channels)
        check_bool("batch_norm", batch_norm)
        pad = 0 if padding == "valid" else 1
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            # bias is redundant before BatchNorm, which subtracts the mean anyway
            layers.append(nn.Conv2d(c_in, out_channels, kernel_size=3, padding=pad, bias=not batch_norm))
            if batch_norm:
                # BatchNorm: not in the paper (Ioffe & Szegedy's preprint came out in Feb 2015, three
                # months before it); the course model uses it (notebook 07 trains it from scratch).
                # Order: conv -> BN -> ReLU.
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Down(nn.Sequential):
    """2x2 max-pool with stride 2, then ``DoubleConv``: one step down the contracting path.

    forward: (B, in_channels, H, W) -> (B, out_channels, H/2 - 4, W/2 - 4) with
    ``padding="valid"``, or (B, out_channels, H/2, W/2) with ``padding="same"``.
    H and W must be even, or the pooling silently drops the last row or column.
    """

    def __init__(self, in_channels: int, out_channels: int, padding: Padding = "valid", batch_norm: bool = False):
        super().__init__(
            nn.MaxPool2d(kernel_size=2, stride=2),
            DoubleConv(in_channels, out_channels, padding, batch_norm),
        )


class Up(nn.Module):
    """Upsample x2, halve the channels, crop and concatenate the skip, then ``DoubleConv``.

    forward(x, skip): x is (B, in_channels, H, W) from the level below, skip is
    (B, in_channels / 2, H_s, W_s) from the contracting path with H_s >= 2H, W_s >= 2W.
    Returns (B, out_channels, 2H - 4, 2W - 4) with ``padding="valid"``, or
    (B, out_channels, 2H, 2W) with ``padding="same"``.

    ``upsampling="transpose"`` is the paper's up-convolution: a learned 2x2 transposed
    convolution with stride 2. ``"bilinear"`` interpolates instead (no learned weights, no
    checkerboard pattern) and halves the channels with a 1x1 convolution.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        padding: Padding = "valid",
        upsampling: Upsampling = "transpose",
        batch_norm: bool = False,
    ):
        super().__init__()
        _check_choice("upsampling", upsampling, ("transpose", "bilinear"))
        _check_channels(in_channels=in_channels, out_channels=out_channels)
        if in_channels < 2:
            raise ValueError(f"in_channels must be an integer >= 2 (the up-convolution halves it), got {in_channels}")
        if upsampling == "transpose":
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, in_channels // 2, kernel_size=1),
            )
        self.conv = DoubleConv(in_channels // 2 * 2, out_channels, padding, batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)                              # (B, C, H, W) -> (B, C/2, 2H, 2W)
        skip = center_crop(skip, x.shape[-2:])      # (B, C/2, H_s, W_s) -> (B, C/2, 2H, 2W)
        x = torch.cat([skip, x], dim=1)             # (B, C, 2H, 2W)
        return self.conv(x)                         # (B, out_channels, 2H - 4, 2W - 4) if valid


class OutConv(nn.Conv2d):
    """1x1 convolution to class scores.

    forward: (B, in_channels, H, W) -> (B, num_classes, H, W) raw logits. No activation and no
    normalisation here: the softmax belongs to the loss (and to ``probs = logits.softmax(1)``).
    """

    def __init__(self, in_channels: int, num_classes: int):
        _check_channels(in_channels=in_channels, num_classes=num_classes)
        super().__init__(in_channels, num_classes, kernel_size=1)
