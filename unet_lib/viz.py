"""Pictures and source listings for the notebooks. Functions return figures; notebooks show them.

B, C, H, W = batch, channels, height, width.
"""

import html
import inspect
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["Source", "show_source", "show_images", "show_feature_maps", "plot_history"]


class Source:
    """Source code that renders highlighted in Jupyter and as plain text elsewhere."""

    def __init__(self, code: str):
        self.code = code

    def __repr__(self) -> str:
        return self.code

    def _repr_html_(self) -> str:
        try:
            from pygments import highlight
            from pygments.formatters import HtmlFormatter
            from pygments.lexers import PythonLexer
        except ImportError:   # pygments comes with IPython, but do not depend on it
            return f"<pre>{html.escape(self.code)}</pre>"
        return highlight(self.code, PythonLexer(), HtmlFormatter(noclasses=True, nobackground=True))


def show_source(obj) -> Source:
    """The source of a ``unet_lib`` class or function, for a notebook to display.

    Notebooks show the library's real code this way, so there is only one copy of it.
    """
    return Source(inspect.getsource(obj))


def _to_numpy(image) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().float().numpy()
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3):   # (C, H, W) -> (H, W) or (H, W, 3)
        image = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    return image


def show_images(images: Sequence, titles: Sequence[str] | None = None, cmap: str | Sequence[str] = "gray",
                size: float = 3.0, colorbar: bool = False, **imshow_kwargs) -> plt.Figure:
    """Show images side by side; each is (H, W), (1, H, W) or (3, H, W), numpy or torch."""
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(size * n, size), squeeze=False)
    cmaps = [cmap] * n if isinstance(cmap, str) else list(cmap)
    for i, (ax, image) in enumerate(zip(axes[0], images)):
        im = ax.imshow(_to_numpy(image), cmap=cmaps[i], **imshow_kwargs)
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(titles[i], fontsize=10)
        if colorbar:
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


def plot_history(history: dict[str, list[float]], size: float = 3.2) -> plt.Figure:
    """Training curves from ``unet_lib.train.fit``'s history: the training (and validation)
    loss, and the validation foreground IoU and instance F1 where the history has them."""
    if not history.get("epoch"):
        raise ValueError("the history has no epochs; pass the dict that fit returns")
    panels = [("loss", ["train_loss", "val_loss"])]
    panels += [(title, [key]) for title, key in [("validation foreground IoU", "val_iou"),
                                                 ("validation instance F1", "val_f1")] if key in history]
    fig, axes = plt.subplots(1, len(panels), figsize=(size * 1.25 * len(panels), size), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels):
        for key in keys:
            if key in history:
                ax.plot(history["epoch"], history[key], label=key.replace("_", " "))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        if len(keys) > 1:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
