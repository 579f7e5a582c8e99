"""The expansive path's up step, drawn from real tensors.

A transposed convolution painting its kernels (notebook 03), and the crop that aligns a skip with
the map coming up (notebook 04).

B, C, H, W = batch, channels, height, width.
"""

from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from ..blocks import center_crop
from ..validate import check_int, check_tensor
from .style import FONT as _FONT
from .style import TITLE_FONT as _TITLE_FONT

__all__ = ["painted_kernels", "PaintedKernels", "show_transposed_conv", "draw_skip_crop"]


# -- notebook 03: a transposed convolution paints overlapping kernels --

_PAINT_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324", "#800000")


class PaintedKernels(NamedTuple):
    """What ``show_transposed_conv`` draws, computed with torch's own transposed convolution."""
    painted: torch.Tensor    # (H_in * W_in, H_out, W_out): input pixel (i, j)'s kernel, scaled by x[i, j], in place
    output: torch.Tensor     # (H_out, W_out): F.conv_transpose2d(x, kernel, stride), the painted kernels summed
    footprints: torch.Tensor  # (H_in * W_in, H_out, W_out) bool: where each input pixel's kernel lands
    counts: torch.Tensor     # (H_out, W_out) int64: how many footprints cover each output pixel


def painted_kernels(x: torch.Tensor, kernel: torch.Tensor, stride: int) -> PaintedKernels:
    """Each input pixel's contribution to a one-channel transposed convolution, from torch itself:
    the transposed convolution of ``x`` with every pixel but (i, j) set to zero is pixel (i, j)'s
    kernel, scaled by ``x[i, j]`` and written at (i * stride, j * stride). Their sum is the output."""
    x = check_tensor("x", x, ndim=2, dims="(H, W)", kind="float", finite=True)
    kernel = check_tensor("kernel", kernel, ndim=2, dims="(k, k)", kind="float", finite=True)
    stride = check_int("stride", stride, min=1)
    h, w = x.shape
    if h * w > len(_PAINT_COLOURS):
        raise ValueError(f"x must have at most {len(_PAINT_COLOURS)} pixels, one panel each, got shape {tuple(x.shape)}")
    x, kernel = x.detach().cpu(), kernel.detach().cpu()
    one_hot = torch.eye(h * w).view(h * w, 1, h, w)                                  # (N, 1, H, W), N = H * W
    conv = torch.nn.functional.conv_transpose2d
    painted = conv(one_hot * x, kernel[None, None], stride=stride)[:, 0]            # (N, H_out, W_out)
    footprints = conv(one_hot, torch.ones_like(kernel)[None, None], stride=stride)[:, 0] > 0
    output = conv(x[None, None], kernel[None, None], stride=stride)[0, 0]          # (H_out, W_out)
    return PaintedKernels(painted, output, footprints, footprints.sum(0))


def show_transposed_conv(x: torch.Tensor, kernel: torch.Tensor, stride: int, size: float = 2.3) -> plt.Figure:
    """A one-channel transposed convolution drawn as painting: the (H, W) input ``x`` and the
    kernel; below them each input pixel's kernel, scaled by its value and painted ``stride``
    pixels from its neighbour's (a coloured frame per input pixel); the output, where the
    painted kernels are summed, with every footprint framed; and how many footprints cover each
    output pixel. Every value is written in its cell; the painted kernels and the output share
    one colour scale. At most 9 input pixels (one panel each)."""
    parts = painted_kernels(x, kernel, stride)
    x, kernel = x.detach().cpu(), kernel.detach().cpu()
    n, (h, w), k = parts.painted.shape[0], x.shape, kernel.shape
    cols = 4
    rows = 1 + -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows * 1.05), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    values = torch.cat([parts.painted.flatten(), parts.output.flatten(), torch.zeros(1)])
    scale = {"cmap": "viridis", "vmin": values.min().item(), "vmax": values.max().item()}

    out_h, out_w = parts.output.shape

    def grid(ax, data, title, frames=(), mask=None, **imshow):
        data = data.float().numpy()
        shown = np.ma.masked_array(data, mask=mask) if mask is not None else data
        ax.set_facecolor("#eeeeee" if mask is not None else "white")   # grey: pixels this kernel does not paint
        im = ax.imshow(shown, interpolation="nearest", **imshow)
        # every panel on the output's grid, so that a pixel is the same size everywhere
        top, left = (out_h - data.shape[0]) / 2, (out_w - data.shape[1]) / 2
        ax.set_xlim(-0.5 - left, out_w - 0.5 - left)
        ax.set_ylim(out_h - 0.5 - top, -0.5 - top)
        norm, cmap = im.norm, im.get_cmap()
        for (r, c), v in np.ndenumerate(data):
            if mask is not None and mask[r, c]:
                continue
            dark = sum(cmap(norm(v))[:3]) < 1.5
            ax.text(c, r, f"{v:g}", ha="center", va="center", fontsize=_FONT, color="white" if dark else "black")
        for colour, (top, left, height, width), inset in frames:
            ax.add_patch(Rectangle((left - 0.5 + inset, top - 0.5 + inset), width - 2 * inset, height - 2 * inset,
                                   fill=False, edgecolor=colour, linewidth=2))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_axis_on()
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(title, fontsize=_TITLE_FONT)
        return im

    def frame(p: int, inset: float = 0.0):
        i, j = divmod(p, w)
        return _PAINT_COLOURS[p], (i * stride, j * stride, k[0], k[1]), inset

    grid(axes[0, 0], x, f"input x ({h}x{w})", frames=[(_PAINT_COLOURS[p], (*divmod(p, w), 1, 1), 0.04)
                                                      for p in range(n)], **scale)
    grid(axes[0, 1], kernel, f"kernel ({k[0]}x{k[1]}), stride {stride}", **scale)
    im = grid(axes[0, 2], parts.output, "output: the painted\nkernels summed",
              frames=[frame(p, 0.04 + 0.08 * (p % 3)) for p in range(n)], **scale)
    fig.colorbar(im, ax=axes[0, 2], fraction=0.046, pad=0.04)
    top = int(parts.counts.max())
    im = grid(axes[0, 3], parts.counts, "footprints covering\neach output pixel", cmap="Blues",
              vmin=0, vmax=max(top, 1))
    fig.colorbar(im, ax=axes[0, 3], fraction=0.046, pad=0.04, ticks=range(top + 1))
    for p in range(n):
        i, j = divmod(p, w)
        grid(axes[1 + p // cols, p % cols], parts.painted[p], f"x[{i}, {j}] = {x[i, j].item():g} times the kernel",
             frames=[frame(p, 0.04)], mask=~parts.footprints[p].numpy(), **scale)
    fig.tight_layout()
    return fig
# -- notebook 04: the crop that aligns a skip with the upsampled map ---------------------------

def _most_varied_channel(x: torch.Tensor) -> int:
    """The channel of x[0] (C, H, W) with the largest spread: the most legible one to draw."""
    return int(x[0].flatten(1).std(dim=1).argmax())


def draw_skip_crop(skip: torch.Tensor, x: torch.Tensor, skip_channel: int | None = None,
                   x_channel: int | None = None, size: float = 3.0) -> plt.Figure:
    """How ``Up`` joins a skip connection to the map coming up, drawn from the real tensors.

    ``skip`` (B, C_s, H_s, W_s) is the contracting path's map at one level, ``x`` (B, C_x, h, w)
    the map the up-convolution brings back to that level, h <= H_s, w <= W_s. Four panels, for
    the first image of the batch: the skip with its centre crop window (the rows and columns
    ``center_crop`` removes on each side written beside it), the cropped skip, ``x``, and the
    concatenation, drawn as one channel of each part overlaid (magenta: skip, green: ``x``) so that
    pixel (i, j) of one is seen to lie on pixel (i, j) of the other. The skip and its crop share
    one colour scale. A channel left as None is the one with the largest spread.
    """
    for name, t in (("skip", skip), ("x", x)):
        if not isinstance(t, torch.Tensor) or t.ndim != 4:
            raise ValueError(f"{name} must be a (B, C, H, W) tensor, got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    (H, W), (h, w) = skip.shape[-2:], x.shape[-2:]
    if h > H or w > W:
        raise ValueError(f"x ({h}x{w}) must not be larger than skip ({H}x{W}): the skip is cropped to x's size")
    skip_channel = _most_varied_channel(skip) if skip_channel is None else skip_channel
    x_channel = _most_varied_channel(x) if x_channel is None else x_channel
    for name, channel, t in (("skip_channel", skip_channel, skip), ("x_channel", x_channel, x)):
        if not 0 <= channel < t.shape[1]:
            raise ValueError(f"{name} must be in 0..{t.shape[1] - 1}, got {channel}")
    cropped = center_crop(skip, (h, w))                                   # (B, C_s, h, w)
    top, left = (H - h) // 2, (W - w) // 2                                # where center_crop starts
    s = skip[0, skip_channel].detach().cpu().float().numpy()              # (H_s, W_s)
    c = cropped[0, skip_channel].detach().cpu().float().numpy()           # (h, w)
    u = x[0, x_channel].detach().cpu().float().numpy()                    # (h, w)
    lo, hi = float(s.min()), float(s.max())

    def unit(a: np.ndarray) -> np.ndarray:
        return (a - a.min()) / (np.ptp(a) + 1e-12)

    overlay = np.stack([unit(c), unit(u), unit(c)], axis=-1)             # (h, w, 3): magenta + green

    fig, axes = plt.subplots(1, 4, figsize=(4 * size + 1.0, size + 0.9))
    axes[0].imshow(s, cmap="gray", vmin=lo, vmax=hi)
    axes[0].add_patch(Rectangle((left - 0.5, top - 0.5), w, h, fill=False, edgecolor="orange", lw=1.6, ls="--"))
    axes[0].text(W / 2, top / 2, f"{top} rows off", color="orange", ha="center", va="center", fontsize=8)
    axes[0].text(W / 2, top + h + (H - top - h) / 2, f"{H - top - h} rows off", color="orange", ha="center",
                 va="center", fontsize=8)
    axes[0].text(left / 2, H / 2, f"{left} columns off", color="orange", ha="center", va="center", fontsize=8,
                 rotation=90)
    axes[0].text(left + w + (W - left - w) / 2, H / 2, f"{W - left - w} columns off", color="orange", ha="center",
                 va="center", fontsize=8, rotation=90)
    axes[0].set_title(f"skip (contracting path): {H} x {W}\ndashed: its centre {h} x {w}")
    axes[1].imshow(c, cmap="gray", vmin=lo, vmax=hi)
    axes[1].set_title(f"skip, centre-cropped: {h} x {w}\n(the same colour scale)")
    axes[2].imshow(u, cmap="gray")
    axes[2].set_title(f"map from below,\nup-convolved: {h} x {w}")
    axes[3].imshow(overlay)
    axes[3].set_title(f"concatenated: {skip.shape[1]} + {x.shape[1]} = {skip.shape[1] + x.shape[1]} channels\n"
                      f"magenta: ch {skip_channel}, green: ch {skip.shape[1] + x_channel}")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig
