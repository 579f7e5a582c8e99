"""Images and feature maps side by side: whole, zoomed in, and profiled across the cell outlines.

B, C, H, W = batch, channels, height, width.
"""

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from .style import _to_numpy, label_colours

__all__ = ["show_images", "show_feature_maps", "show_zoom", "plot_boundary_profile"]


def show_images(images: Sequence, titles: Sequence[str] | None = None, cmap: str | Sequence[str] = "gray",
                size: float = 3.0, colorbar: bool | Sequence[bool] = False, **imshow_kwargs) -> plt.Figure:
    """Show images side by side; each is (H, W), (1, H, W) or (3, H, W), numpy or torch.

    ``cmap``: one colour map for all, or one per image; ``"labels"`` draws a label image with
    ``label_colours`` (black background, a colour per object, never interpolated).
    ``colorbar``: for all images or one flag per image (never on a ``"labels"`` panel).
    Extra keywords (``vmin``, ``vmax`` for a shared scale) go to ``imshow``."""
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(size * n, size), squeeze=False)
    cmaps = [cmap] * n if cmap is None or isinstance(cmap, str) else list(cmap)
    bars = [colorbar] * n if isinstance(colorbar, bool) else list(colorbar)
    if len(cmaps) != n or len(bars) != n or (titles is not None and len(titles) != n):
        raise ValueError(f"show_images got {n} images but {len(cmaps)} cmaps, {len(bars)} colorbar flags and "
                         f"{'no' if titles is None else len(titles)} titles; give one of each per image")
    for i, (ax, image) in enumerate(zip(axes[0], images)):
        if cmaps[i] == "labels":
            kwargs = {k: v for k, v in imshow_kwargs.items() if k not in ("vmin", "vmax", "interpolation")}
            im = ax.imshow(label_colours(image), interpolation="nearest", **kwargs)
        else:
            im = ax.imshow(_to_numpy(image), cmap=cmaps[i], **imshow_kwargs)
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(titles[i], fontsize=10)
        if bars[i] and cmaps[i] != "labels":
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def show_feature_maps(fmap: torch.Tensor, max_channels: int = 16, cols: int = 8, size: float = 1.5,
                      title: str | None = None) -> plt.Figure:
    """The first ``max_channels`` channels of a (C, H, W) or (1, C, H, W) feature map as a grid,
    each with its own colour scale."""
    if fmap.ndim == 4:
        fmap = fmap[0]
    fmap = fmap.detach().cpu().float()
    n = min(max_channels, fmap.shape[0])
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, min(cols, n), figsize=(size * min(cols, n), size * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            ax.imshow(fmap[i].numpy(), cmap="viridis")
            ax.set_title(f"ch {i}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# -- notebook 08: a detail too small to see at full size --

def show_zoom(images: Sequence, box: tuple[int, int, int, int], titles: Sequence[str] | None = None,
              cmap: str | Sequence[str] = "gray", size: float = 2.6) -> plt.Figure:
    """The same images twice: whole in the top row with ``box`` = (top, left, bottom, right) drawn
    as a yellow frame, and that box enlarged in the bottom row, pixels drawn as squares (no
    interpolation). For a detail of a few pixels, which is invisible at full size. ``images`` and
    ``cmap`` as in ``show_images`` (``"labels"`` for a label image)."""
    top, left, bottom, right = (int(v) for v in box)
    n = len(images)
    cmaps = [cmap] * n if isinstance(cmap, str) else list(cmap)
    if len(cmaps) != n or (titles is not None and len(titles) != n):
        raise ValueError(f"show_zoom got {n} images but {len(cmaps)} cmaps and "
                         f"{'no' if titles is None else len(titles)} titles; give one of each per image")
    fig, axes = plt.subplots(2, n, figsize=(size * n, size * 2), squeeze=False)
    for i, image in enumerate(images):
        array = _to_numpy(image)
        if not (0 <= top < bottom <= array.shape[0] and 0 <= left < right <= array.shape[1]):
            raise ValueError(f"box {box} does not lie inside image {i} of shape {array.shape[:2]}")
        shown = label_colours(array) if cmaps[i] == "labels" else array
        kwargs = {} if cmaps[i] == "labels" or array.ndim == 3 else {"cmap": cmaps[i]}
        whole, zoom = axes[0][i], axes[1][i]
        whole.imshow(shown, interpolation="nearest", **kwargs)
        whole.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False, edgecolor="yellow",
                                  lw=1.5))
        zoom.imshow(shown[top:bottom, left:right], interpolation="nearest",
                    extent=(left - 0.5, right - 0.5, bottom - 0.5, top - 0.5), **kwargs)
        for ax in (whole, zoom):
            ax.set_xticks([])
            ax.set_yticks([])
        if titles is not None:
            whole.set_title(titles[i], fontsize=10)
        zoom.set_title(f"rows {top}-{bottom - 1}, columns {left}-{right - 1}", fontsize=8)
    fig.tight_layout()
    return fig



# -- notebook 09: what a channel does near the cell outlines --

def plot_boundary_profile(fmap, mask, channels: Sequence[int], max_distance: int = 8,
                          size: float = 3.4) -> plt.Figure:
    """The mean activation of each chosen channel of ``fmap`` (C, H, W) against the signed distance
    of a pixel to the nearest cell outline of ``mask`` (H, W, 0/1): negative inside the cells,
    positive outside, rounded to whole pixels, from ``-max_distance`` to ``+max_distance``. A
    channel that traces the outlines as a ring peaks near 0; one that fills the cells is high on
    the left. ``fmap`` and ``mask`` must cover the same pixels."""
    from scipy import ndimage
    maps = _to_numpy(fmap) if not isinstance(fmap, torch.Tensor) else fmap.detach().cpu().float().numpy()
    mask = np.asarray(_to_numpy(mask)) > 0
    if maps.ndim != 3 or maps.shape[1:] != mask.shape:
        raise ValueError(f"fmap must be (C, H, W) over the pixels of mask {mask.shape}, got shape {maps.shape}")
    bad = [c for c in channels if not 0 <= c < maps.shape[0]]
    if bad:
        raise ValueError(f"channel {bad[0]} does not exist; fmap has channels 0 to {maps.shape[0] - 1}")
    inside, outside = ndimage.distance_transform_edt(mask), ndimage.distance_transform_edt(~mask)
    # the outline lies between the last cell pixel (distance -1 inside) and the first background pixel (+1)
    signed = np.where(mask, -inside, outside)
    distances = [d for d in range(-max_distance, max_distance + 1) if d and (np.rint(signed) == d).any()]
    fig, ax = plt.subplots(figsize=(size * 1.6, size))
    for c in channels:
        ax.plot(distances, [maps[c][np.rint(signed) == d].mean() for d in distances], "o-", label=f"channel {c}")
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    ax.text(0, ax.get_ylim()[1], " outline", va="top", fontsize=8, color="grey")
    ax.set_xlabel("distance to the nearest cell outline (px; < 0 inside a cell)")
    ax.set_ylabel("mean activation")
    ax.set_title("activation across the cell outline")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
