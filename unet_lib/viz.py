"""Pictures and source listings for the notebooks. Functions return figures; notebooks show them.

B, C, H, W = batch, channels, height, width.
"""

import copy
import html
import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import matplotlib
import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.legend_handler import HandlerBase
from matplotlib.patches import FancyArrowPatch, Rectangle
from torch import nn

from .blocks import DoubleConv, Down, Up
from .model import UNet, named_blocks
from .validate import check_instance, check_int, check_tensor

__all__ = ["Source", "show_source", "use_course_style", "label_colours", "show_images", "show_feature_maps",
           "plot_history", "draw_unet", "COURSE_DPI",
           "draw_skip_crop",
           "painted_kernels", "show_transposed_conv",
           "plot_lr_sweep",
           "plot_paired_arms",
           "show_zoom",
           "plot_boundary_profile",
           ]

# The course's figure resolution: 8-px tick labels stay readable at JupyterLab's default zoom,
# and a notebook of about twenty figures stays under 1.5 MB.
COURSE_DPI = 80


def use_course_style() -> None:
    """The course's figure style, for the first cell of every notebook: ``COURSE_DPI`` dots per
    inch, 10-pt titles, 9-pt labels and ticks (no text smaller than 8 px on screen), no grid."""
    plt.rcParams.update({"figure.dpi": COURSE_DPI, "axes.titlesize": 10, "axes.labelsize": 9,
                         "xtick.labelsize": 9, "ytick.labelsize": 9, "legend.fontsize": 9, "font.size": 9})


def label_colours(instances) -> np.ndarray:
    """An (H, W) label image (0 = background, a distinct positive id per object) as (H, W, 3)
    RGB in [0, 1]: background black, each id a bright colour of its own, the same colour for the
    same id in every figure. Hues are spread by the golden ratio, so neighbouring ids differ
    strongly (tab20 repeats after 20 ids and paints the background blue)."""
    labels = _to_numpy(instances)
    if labels.ndim != 2:
        raise ValueError(f"instances must be an (H, W) label image, got shape {labels.shape}")
    if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)) or labels.min(initial=0) < 0:
        raise ValueError("instances must hold non-negative integer labels (0 = background)")
    ids = labels.astype(np.int64)
    top = int(ids.max(initial=0))
    k = np.arange(top + 1)
    hue = (k * 0.618033988749895) % 1.0
    saturation = 0.65 + 0.3 * ((k * 7) % 3) / 2                   # 0.65, 0.8, 0.95
    value = 1.0 - 0.15 * ((k * 5) % 2)                            # 1.0, 0.85
    palette = matplotlib.colors.hsv_to_rgb(np.stack([hue, saturation, value], axis=-1))   # (top + 1, 3)
    palette[0] = 0.0                                                # background: black
    return palette[ids]


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


# -- the U, drawn from the model (Fig. 1) ----------------------------------------------------

class _Map(NamedTuple):
    """One feature map of a forward pass, as ``draw_unet`` draws it: one box."""
    block: str      # the name in ``named_blocks`` of the block that makes it ("inc", "downs[0]", ...)
    kind: str       # "input", "conv" (after a 3x3 conv), "pool", "up" (after the up-conv), "concat", "out"
    channels: int
    height: int
    width: int


def _meta_copy(model: UNet) -> UNet:
    """A copy of ``model`` on the ``meta`` device: the same modules, parameters of the same shapes
    and no data, so a forward pass computes nothing however large the input. The model's own
    hooks are left out of the copy (one that reads data would fail on 'meta')."""
    memo = {id(p): nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
            for p in model.parameters()}
    memo.update({id(b): torch.empty_like(b, device="meta") for b in model.buffers()})
    meta = copy.deepcopy(model, memo)
    for module in meta.modules():
        module._forward_hooks.clear()
        module._forward_pre_hooks.clear()
    return meta.eval()


def _feature_maps(model: UNet, size: tuple[int, int]) -> list[_Map]:
    """Every feature map of Fig. 1 in the order ``forward`` makes them: the input, the output of
    each 3x3 conv, of each pooling, of each up-conv, each concatenation (copied skip + up-conv)
    and the output. Recorded with forward hooks on a ``meta`` copy of ``model`` for a
    (1, in_channels, *size) input."""
    meta = _meta_copy(model)
    maps: list[_Map] = []

    def record(block: str, kind: str):
        def hook(module, args, output=None):   # a forward hook, or a pre-hook (then: the module's input)
            t = args[0] if output is None else output
            maps.append(_Map(block, kind, *(int(s) for s in t.shape[1:])))   # (B, C, H, W) -> C, H, W
        return hook

    meta.register_forward_pre_hook(record("inc", "input"))
    for name, block in named_blocks(meta):
        if isinstance(block, Up):
            block.up.register_forward_hook(record(name, "up"))
            block.conv.register_forward_pre_hook(record(name, "concat"))   # (B, C_skip + C_up, H, W)
            convs = block.conv
        elif isinstance(block, Down):
            pool, convs = block
            pool.register_forward_hook(record(name, "pool"))
        elif isinstance(block, DoubleConv):
            convs = block
        else:                                                              # OutConv
            block.register_forward_hook(record(name, "out"))
            continue
        for module in convs.modules():
            if isinstance(module, nn.Conv2d):
                module.register_forward_hook(record(name, "conv"))
    with torch.no_grad():
        meta(torch.empty(1, model.in_channels, *size, device="meta"))
    return maps


_PARTS = ("contracting", "bottleneck", "expansive", "skips")


def _highlight_tags(model: UNet, highlight: str | Sequence[str] | None) -> set[str] | None:
    """The block names (and "skips") that ``highlight`` asks for; None when nothing is highlighted."""
    if highlight is None:
        return None
    names = [highlight] if isinstance(highlight, str) else highlight
    if not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"highlight must be a block name, a part or a list of them, got {highlight!r}")
    if not names:
        raise ValueError("highlight is an empty list; name a block or a part, or pass None to highlight nothing")
    blocks = [name for name, _ in named_blocks(model)]
    downs = [b for b in blocks if b.startswith("downs")]
    parts = {"contracting": ["inc", *downs[:-1]],
             "bottleneck": downs[-1:] or ["inc"],          # depth 0: the first DoubleConv is the bottom
             "expansive": [b for b in blocks if b.startswith("ups")] + ["outc"],
             "skips": ["skips"]}
    tags = set()
    for name in names:
        if name in parts:
            tags.update(parts[name])
        elif name in blocks:
            tags.add(name)
        else:
            raise ValueError(f"highlight={name!r} is not a block or a part of this U-Net; use one of the blocks "
                             f"{', '.join(blocks)} or the parts {', '.join(_PARTS)}")
    return tags


# Fig. 1's colours: a box per feature map, white for the copied ones; an arrow colour per operation
_BOX, _BOX_COPY, _BOX_EDGE, _BOX_HIGHLIGHT = "#9ecae1", "white", "#08306b", "#fdae6b"
_ARROWS = {"conv": "#1f4e9c", "copy": "#8c8c8c", "pool": "#d62728", "up": "#2ca02c", "out": "#00877a"}
_FADE = 0.2          # alpha of what is not highlighted
_FONT = 8            # points: the labels and the legend (8 pt reads at JupyterLab's default zoom)
_TITLE_FONT = 10
# The drawing is laid out in points: 1 data unit is 1 pt when draw_unet makes the figure
_GAP = 16            # between the boxes of a row: an arrow above, the size written upright below
_VGAP = 24           # between rows: the channel counts and the pooling and up-conv arrows
_SLOPE = 12          # box height added per doubling of the feature map's height


def _text_len(text: str, size: float = _FONT) -> float:
    """A generous estimate of a one-line text's length in points (DejaVu Sans digits: 0.64 em)."""
    return 0.64 * size * len(text)


def _size_label(m: _Map) -> str:
    return f"{m.height} x {m.width}"


def _box_width(channels: int) -> float:
    return 4 + 2.4 * math.log2(channels)


@dataclass
class _Box:
    x: float
    y: float
    w: float
    h: float
    tags: set[str] = field(default_factory=set)   # highlighted by: its block's name; "skips" for copies and sources
    copy: bool = False                            # a copied (and cropped) map from the contracting path: white


class _Text(NamedTuple):
    x: float
    y: float
    text: str
    rotation: float        # 90: the size, upright at the box's lower left; 0: the channels, above the box
    ha: str
    box: _Box              # emphasised and faded with this box


class _Arrow(NamedTuple):
    start: tuple[float, float]
    end: tuple[float, float]
    kind: str              # a key of _ARROWS
    tags: set[str]
    bend: bool = False     # right, then up: the up-conv from the last box of the level below


class _Layout(NamedTuple):
    boxes: list[_Box]
    texts: list[_Text]
    arrows: list[_Arrow]
    xlim: tuple[float, float]
    ylim: tuple[float, float]


def _layout(maps: list[_Map], legend_size: tuple[float, float], min_width: float) -> _Layout:
    """Where ``draw_unet`` puts each box, label and arrow, in points: arithmetic on the maps.

    A row per level of the U (level k: maps pooled k times), the bottleneck at the bottom. Along
    a row the boxes follow one another left to right, an arrow-and-label gap apart; a pooling's
    box sits right under the box it pools, an up-conv's box right of and above the box it
    upsamples, so the contracting path steps down and the expansive path steps up. The limits
    leave room for a legend of ``legend_size`` (w, h) in the lower right corner and are at least
    ``min_width`` wide.
    """
    levels, level = [], 0
    for m in maps:
        level += {"pool": 1, "up": -1}.get(m.kind, 0)
        levels.append(level)
    depth = max(levels)
    rows = range(depth + 1)
    # each box high enough for its upright size label under the row's arrows
    label_len = {k: max(_text_len(_size_label(m)) for m, kk in zip(maps, levels) if kk == k) for k in rows}
    smallest = min(m.height for m in maps)
    row_smallest = {k: min(m.height for m, kk in zip(maps, levels) if kk == k) for k in rows}
    base = max(30.0, *(label_len[k] + 12 - _SLOPE * math.log2(row_smallest[k] / smallest) for k in rows))

    def height(n: int) -> float:
        return base + _SLOPE * math.log2(n / smallest)   # log of the size: 572 and 28 both fit

    row_h = {k: max(height(m.height) for m, kk in zip(maps, levels) if kk == k) for k in rows}
    arrow_dy = {k: max(label_len[k] + 6, height(row_smallest[k]) / 2) for k in rows}
    row_y = {depth: 0.0}
    for k in reversed(range(depth)):
        row_y[k] = row_y[k + 1] + row_h[k + 1] + _VGAP

    boxes: list[_Box] = []
    texts: list[_Text] = []
    arrows: list[_Arrow] = []
    last_left: dict[int, _Box] = {}      # the last box of each level of the contracting path: what is copied
    prev = up = None
    up_map = None
    for m, k in zip(maps, levels):
        y, w, h = row_y[k], _box_width(m.channels), height(m.height)
        tags = {m.block}
        if m.kind == "input":
            box = _Box(0.0, y, w, h, tags)
        elif m.kind in ("conv", "out"):
            box = _Box(prev.x + prev.w + _GAP, y, w, h, tags)
            ay = y + arrow_dy[k]
            arrows.append(_Arrow((prev.x + prev.w + 1, ay), (box.x - 1, ay), m.kind, {m.block}))
        elif m.kind == "pool":
            box = _Box(prev.x + (prev.w - w) / 2, y, w, h, tags)           # right under the map it pools
            cx = prev.x + prev.w / 2
            arrows.append(_Arrow((cx, prev.y - 1), (cx, y + h + 1), "pool", {m.block}))
        elif m.kind == "up":
            up, up_map = _Box(prev.x + prev.w + 4, y, w, h, tags), m
            boxes.append(up)
            arrows.append(_Arrow((prev.x + prev.w + 1, prev.y + arrow_dy[k + 1]), (up.x + w / 2, y - 1), "up",
                                 {m.block}, bend=True))
            prev = up
            continue
        else:   # "concat": the copied and cropped map, white, left of the up-conv's output
            w = _box_width(m.channels - up_map.channels)
            box = _Box(up.x - w, y, w, up.h, tags | {"skips"}, copy=True)
            source = last_left[k]
            source.tags.add("skips")
            ay = y + arrow_dy[k]
            arrows.append(_Arrow((source.x + source.w + 1, ay), (box.x - 1, ay), "copy", {m.block, "skips"}))
            texts.append(_Text(box.x - 2, y, _size_label(m), 90, "right", box))
            texts.append(_Text((box.x + up.x + up.w) / 2, y + h + 2, str(m.channels), 0, "center", box))
            boxes.append(box)
            continue
        boxes.append(box)
        prev = box
        if up is None:
            last_left[k] = box
        texts.append(_Text(box.x - 2, y, _size_label(m), 90, "right", box))
        if m.kind != "pool":   # a pooling keeps the channels; Fig. 1 writes them once
            texts.append(_Text(box.x + w / 2, y + h + 2, str(m.channels), 0, "center", box))

    # the limits: everything, a margin, and the legend in the lower right corner, clear of it all
    text_h = 1.25 * _FONT
    extents = [(b.x - 2 - text_h, b.x + b.w, b.y, b.y + b.h + 2 + text_h) for b in boxes]
    extents += [(min(a.start[0], a.end[0]), max(a.start[0], a.end[0]), min(a.start[1], a.end[1]),
                 max(a.start[1], a.end[1])) for a in arrows]
    x0, x1 = min(e[0] for e in extents) - 6, max(e[1] for e in extents) + 6
    if x1 - x0 < min_width:
        x0, x1 = x0 - (min_width - (x1 - x0)) / 2, x1 + (min_width - (x1 - x0)) / 2
    legend_w, legend_h = legend_size
    under_legend = [e[2] for e in extents if e[1] > x1 - legend_w - 8]
    y0 = min(min(e[2] for e in extents) - 6, min(under_legend, default=0.0) - legend_h - 8)
    y1 = max(e[3] for e in extents) + 4
    return _Layout(boxes, texts, arrows, (x0, x1), (y0, y1))


class _LegendArrow(HandlerBase):
    """Draws a legend handle as an arrow pointing the way its operation goes in the U (gid)."""

    def create_artists(self, legend, orig_handle, xdescent, ydescent, width, height, fontsize, trans):
        x0, y0 = -xdescent, -ydescent
        ends = {"right": ((x0, y0 + height / 2), (x0 + width, y0 + height / 2)),
                "down": ((x0 + width / 2, y0 + height), (x0 + width / 2, y0)),
                "up": ((x0 + width / 2, y0), (x0 + width / 2, y0 + height))}[orig_handle.get_gid()]
        return [FancyArrowPatch(*ends, arrowstyle="-|>", mutation_scale=fontsize, color=orig_handle.get_edgecolor(),
                                lw=1.6, shrinkA=0, shrinkB=0, transform=trans)]


def draw_unet(model: UNet, input_size: int | tuple[int, int], highlight: str | Sequence[str] | None = None,
              ax: plt.Axes | None = None, title: str | None = None) -> plt.Figure:
    """Draw ``model`` the way the paper's Fig. 1 draws U-Net, from the model itself: a box for
    every feature map of a forward pass on an input of ``input_size`` (an int, or (height, width)),
    its number of channels above it and its height x width written upright at its lower left.

    The boxes are the input, the output of each 3x3 convolution, of each 2x2 max pooling and of
    each up-convolution (left of it, white, the copied and cropped map from the contracting path
    that it is concatenated with; the channel count above the pair is the concatenation's), and
    the output. A box's height grows with the log of the map's height in pixels, its width with
    the log of its channels. The contracting path goes down on the left, the expansive path up on
    the right; the arrows, with a legend: conv 3x3 + ReLU (blue), copy and crop (grey), max pool
    2x2 (red, down), up-conv 2x2 (green, up), conv 1x1 (teal) to the output.

    The sizes come from forward hooks on a copy of the model on the ``meta`` device (shapes, no
    data; ``block_shapes`` reports the same for each block's output), so nothing is computed and
    the paper's network draws in a fraction of a second at any tile size. ``padding="same"``
    keeps the sizes; ``upsampling="bilinear"`` draws its upsampling + 1x1 conv as the up-conv.

    ``highlight``: a block name from ``named_blocks`` ("inc", "downs[0]", ..., "ups[k]", "outc"),
    a part ("contracting": inc and the downs above the bottleneck, "bottleneck": the last down,
    "expansive": the ups and outc, "skips": the copied maps and their sources) or a list of them.
    Their boxes and arrows are drawn emphasised and the rest faded: where we are in the U.

    ``ax``: draw into these axes. By default a new figure is sized so that a data unit is a point
    (about 12 x 7.4 inches for the paper's network), which keeps every label apart at 8 pt.
    ``title``: in place of the default (the configuration, input and output sizes, what is
    highlighted).
    Raises ``TypeError`` when ``model`` is not a ``UNet``, ``ValueError`` naming the nearest valid
    sizes when ``input_size`` is not valid for it, and ``ValueError`` listing the names when
    ``highlight`` names no block or part.
    """
    check_instance("model", model, UNet, "a unet_lib.UNet", "draw_unet reads its blocks from named_blocks")
    if isinstance(input_size, (tuple, list, torch.Size)):
        if len(input_size) != 2:
            raise ValueError(f"input_size must be an int or (height, width), got {tuple(input_size)}")
        size = tuple(input_size)
    else:
        size = (input_size, input_size)
    out_size = model.output_size(size)   # raises with the nearest valid sizes
    tags_on = _highlight_tags(model, highlight)
    maps = _feature_maps(model, size)

    config = model.config
    conv = "conv 3x3, BatchNorm, ReLU" if config["batch_norm"] else "conv 3x3, ReLU"
    kinds = [("conv", "right", conv + (" (padded)" if config["padding"] == "same" else "")),
             ("copy", "right", "copy" if config["padding"] == "same" else "copy and crop"),
             ("pool", "down", "max pool 2x2"),
             ("up", "up", "up-conv 2x2" if config["upsampling"] == "transpose" else "upsample x2 (bilinear), conv 1x1"),
             ("out", "right", "conv 1x1")]
    present = {m.kind for m in maps} | {"conv", "out"}
    kinds = [kind for kind in kinds if {"copy": "concat"}.get(kind[0], kind[0]) in present]   # none but conv at depth 0
    labels = ["feature map", "copied feature map"][:1 + ("up" in present)] + [label for _, _, label in kinds]
    # a legend entry is 1.6 + 0.5 font sizes high, its handle and padding about 4.5 wide
    legend_size = (_FONT * 4.5 + max(_text_len(label) for label in labels), len(labels) * _FONT * 2.1 + 8)
    if title is None:
        title = (f"U-Net (depth {config['depth']}, {config['base_channels']} base channels, {config['padding']} "
                 f"padding): input {size[0]} x {size[1]}, output {out_size[0]} x {out_size[1]}\n"
                 f"a box per feature map: channels above it, height x width at its lower left")
        if highlight is not None:
            title += f"\nhighlighted: {highlight if isinstance(highlight, str) else ', '.join(highlight)}"
    title_lines = title.split("\n")
    layout = _layout(maps, legend_size, min_width=max(0.56 * _TITLE_FONT * len(line) for line in title_lines))

    if ax is None:
        width, height = layout.xlim[1] - layout.xlim[0], layout.ylim[1] - layout.ylim[0]
        title_h = 1.5 * _TITLE_FONT * len(title_lines) + 8
        fig = plt.figure(figsize=(width / 72, (height + title_h) / 72))
        ax = fig.add_axes((0, 0, 1, height / (height + title_h)))
    ax.set_xlim(*layout.xlim)
    ax.set_ylim(*layout.ylim)
    ax.set_axis_off()

    def emphasised(tags: set[str]) -> bool:
        return tags_on is not None and bool(tags & tags_on)

    def alpha(tags: set[str]) -> float:
        return 1.0 if tags_on is None or tags & tags_on else _FADE

    for box in layout.boxes:
        face = _BOX_COPY if box.copy else _BOX_HIGHLIGHT if emphasised(box.tags) else _BOX
        ax.add_patch(Rectangle((box.x, box.y), box.w, box.h, facecolor=face, edgecolor=_BOX_EDGE,
                               lw=1.4 if emphasised(box.tags) else 0.8, alpha=alpha(box.tags)))
    for t in layout.texts:
        ax.text(t.x, t.y, t.text, fontsize=_FONT, rotation=t.rotation, ha=t.ha, va="bottom", alpha=alpha(t.box.tags),
                fontweight="bold" if emphasised(t.box.tags) else "normal")
    for a in layout.arrows:
        ax.add_patch(FancyArrowPatch(a.start, a.end, arrowstyle="-|>", mutation_scale=9, color=_ARROWS[a.kind],
                                     lw=1.6, shrinkA=0, shrinkB=0, alpha=alpha(a.tags),
                                     connectionstyle="angle,angleA=0,angleB=90,rad=0" if a.bend else "arc3"))

    handles = [Rectangle((0, 0), 1, 1, facecolor=_BOX, edgecolor=_BOX_EDGE, lw=0.8),
               Rectangle((0, 0), 1, 1, facecolor=_BOX_COPY, edgecolor=_BOX_EDGE, lw=0.8)][:1 + ("up" in present)]
    handles += [FancyArrowPatch((0, 0), (1, 0), color=_ARROWS[kind], gid=direction) for kind, direction, _ in kinds]
    ax.legend(handles, labels, handler_map={FancyArrowPatch: _LegendArrow()}, loc="lower right", fontsize=_FONT,
              handleheight=1.6, handlelength=2.0, frameon=False, borderaxespad=0.5)
    ax.set_title(title, fontsize=_TITLE_FONT)
    return ax.figure


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
    from .blocks import center_crop   # here, so that this section stays one block at the end

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

# -- your own images: outlines (#21) --
# A biologist looks at outlines on the image before reading a number: the predicted outlines
# (and the true ones) drawn into the image's own pixels, written as <stem>_overlay.png.
# (Imported here, where this section starts, so that the sections appended below stay apart.)
import io                                       # noqa: E402
from pathlib import Path                        # noqa: E402

import imageio.v3 as iio                        # noqa: E402

from .atomic import atomic_write                # noqa: E402
from .data import percentile_normalize          # noqa: E402
from .validate import check_bool, check_labels  # noqa: E402

__all__ += ["outlines", "draw_outlines", "write_overlay", "OUTLINE_COLOURS"]

# RGB: predicted outlines magenta, true outlines green, yellow where they coincide. None of them is
# a grey (R = G = B), so no pixel of a grey image can be taken for an outline; magenta and green
# stay apart for the common colour-vision deficiencies.
OUTLINE_COLOURS = {"prediction": (255, 0, 255), "truth": (0, 255, 0), "both": (255, 255, 0)}


def outlines(labels) -> np.ndarray:
    """The outline of every object of an (H, W) label image (0 = background): bool (H, W), True on
    the object pixels that have a 4-neighbour with another label (background or another object).

    So an outline is one pixel wide, lies inside its object, and two touching objects each get
    their own. Beyond the image's edge counts as the same label: an object cut by the edge is
    left open there (nothing says where it ends).
    """
    labels = check_labels("labels", labels)
    other = np.zeros(labels.shape, bool)
    other[1:] |= labels[1:] != labels[:-1]          # the neighbour above differs
    other[:-1] |= labels[:-1] != labels[1:]         # below
    other[:, 1:] |= labels[:, 1:] != labels[:, :-1]     # left
    other[:, :-1] |= labels[:, :-1] != labels[:, 1:]    # right
    return other & (labels > 0)


def _grey_or_rgb(image) -> np.ndarray:
    """(H, W) or (C, H, W) image of any dtype -> (H, W, 3) uint8: each channel stretched from its
    1st to its 99.8th percentile (as the U-Net sees it); 3 channels as RGB, others as the grey of
    their mean."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 2:
        array = array[None]                                       # (1, H, W)
    if array.ndim != 3 or array.dtype.kind not in "buif" or array.size == 0:
        raise ValueError(f"image must be a real (H, W) or (C, H, W) image, got shape {array.shape}, dtype {array.dtype}")
    channels = []
    for channel in array.astype(np.float64):
        try:
            channels.append(percentile_normalize(channel))
        except ValueError:                                        # a flat channel: no contrast to stretch
            channels.append(np.zeros(channel.shape, np.float32))
    rgb = np.stack(channels, -1) if len(channels) == 3 else np.repeat(np.mean(channels, 0)[..., None], 3, -1)
    return np.round(rgb * 255).astype(np.uint8)                   # (H, W, 3)


def draw_outlines(image, pred, instances=None) -> np.ndarray:
    """The image with the outlines of the predicted objects ``pred`` drawn in (and of the true
    ``instances``, when given): (H, W, 3) uint8 RGB at the image's own resolution.

    ``image``: (H, W) or (C, H, W), any dtype (each channel stretched from its 1st to its 99.8th
    percentile; 3 channels shown as RGB, others as the grey of their mean). ``pred`` and
    ``instances``: (H, W) label images (0 = background). Outline pixels (``outlines``) are
    ``OUTLINE_COLOURS["prediction"]`` (magenta), ``["truth"]`` (green), or ``["both"]`` (yellow)
    where a predicted and a true outline share a pixel; every other pixel is the image's.
    """
    rgb = _grey_or_rgb(image)
    shape = rgb.shape[:2]
    drawn = {"prediction": outlines(pred), "truth": None}
    if drawn["prediction"].shape != shape:
        raise ValueError(f"pred is {drawn['prediction'].shape[0]}x{drawn['prediction'].shape[1]} but the image is "
                         f"{shape[0]}x{shape[1]}; give the prediction of this image")
    if instances is not None:
        drawn["truth"] = outlines(instances)
        if drawn["truth"].shape != shape:
            raise ValueError(f"instances is {drawn['truth'].shape[0]}x{drawn['truth'].shape[1]} but the image is "
                             f"{shape[0]}x{shape[1]}; give the true labels of this image")
    ours, theirs = drawn["prediction"], drawn["truth"] if drawn["truth"] is not None else np.zeros(shape, bool)
    rgb[ours & ~theirs] = OUTLINE_COLOURS["prediction"]
    rgb[theirs & ~ours] = OUTLINE_COLOURS["truth"]
    rgb[ours & theirs] = OUTLINE_COLOURS["both"]
    return rgb


def write_overlay(path, image, pred, instances=None, overwrite: bool = False) -> Path:
    """Write ``draw_outlines(image, pred, instances)`` as a PNG to ``path`` (by convention
    ``<stem>_overlay.png`` beside the prediction ``<stem>.tif``), atomically. An existing file is
    replaced only with ``overwrite=True``. Returns the path."""
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a file name (str or pathlib.Path), got {type(path).__name__}")
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path {path} must end in .png: an overlay is a picture, and PNG keeps every outline "
                         f"pixel exact (e.g. {path.with_suffix('.png').name})")
    if path.exists() and not check_bool("overwrite", overwrite):
        raise FileExistsError(f"path {path} exists; no command overwrites work it did not create: give another "
                              f"name, or replace it on purpose with overwrite=True")
    buffer = io.BytesIO()
    iio.imwrite(buffer, draw_outlines(image, pred, instances), extension=".png")
    return atomic_write(path, buffer.getvalue())

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


# -- notebook 07: a learning-rate sweep, and paired runs over seeds --

def plot_lr_sweep(lrs: Sequence[float], curves: Sequence[Sequence[float]], mark: float | None = None,
                  size: float = 3.4) -> plt.Figure:
    """What a learning-rate sweep shows: left, every run's loss step by step (one line per learning
    rate, on a log axis so that a loss that falls tenfold and one that climbs both show); right,
    each run's last loss as a share of its first, against the learning rate (log axis), with
    ``mark`` (e.g. the course's learning rate) drawn as a dashed line. ``curves[i]`` is the run
    at ``lrs[i]``, all from the same starting weights."""
    if len(lrs) != len(curves) or not lrs:
        raise ValueError(f"plot_lr_sweep needs one curve per learning rate, got {len(lrs)} learning rates and "
                         f"{len(curves)} curves")
    if any(len(c) == 0 for c in curves) or any(not lr > 0 for lr in lrs):
        raise ValueError("every curve needs at least one loss, and every learning rate must be > 0")
    from matplotlib.ticker import MaxNLocator
    fig, (left, right) = plt.subplots(1, 2, figsize=(size * 2.6, size))
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(lrs)))
    for lr, curve, colour in zip(lrs, curves, colours):
        left.plot(range(1, len(curve) + 1), curve, color=colour, label=f"lr {lr:g}")
    left.set_yscale("log")
    left.set_xlabel("step")
    left.set_ylabel("training loss (log axis)")
    left.set_title("every run, step by step")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    shares = [curve[-1] / curve[0] for curve in curves]
    right.plot(lrs, shares, "o-", color="tab:blue")
    right.axhline(1.0, color="grey", lw=0.8, ls=":")
    right.text(lrs[0], 1.0, " no change", va="bottom", fontsize=8, color="grey")
    if mark is not None:
        right.axvline(mark, color="tab:red", lw=1, ls="--")
        right.text(mark, max(shares + [1.0]) * 1.02, f" lr {mark:g}", color="tab:red", fontsize=8, va="bottom")
    right.set_xscale("log")
    right.set_ylim(0, max(shares + [1.0]) * 1.12)
    right.set_xlabel("learning rate (log axis)")
    right.set_ylabel("last loss / first loss")
    right.set_title(f"after {len(curves[0])} steps")
    fig.tight_layout()
    return fig


def plot_paired_arms(runs: Sequence[dict], arms: Sequence[str], panels: Sequence[tuple[str, str, tuple[float, float]]],
                     difference: tuple[str, str, float] | None = None, size: float = 3.0) -> plt.Figure:
    """An experiment with several arms run over several seeds: for each ``(key, title, (ymin, ymax))``
    of ``panels`` one line per seed across the arms (the arms of one seed are paired: same data,
    same start). ``difference = (key, reference, half_range)`` adds a last panel of the paired
    differences ``key(arm) - key(reference)`` per seed, on an axis from ``-half_range`` to
    ``+half_range`` with a line at 0: a difference of a few hundredths drawn at its true size
    next to the seeds' spread, where a 0-to-1 axis would hide it; titled with the name of the
    panel of the same key. ``runs``: dicts with "arm",
    "seed" and the keys."""
    seeds = sorted({r["seed"] for r in runs})
    value = {(r["arm"], r["seed"]): r for r in runs}
    missing = [(a, s) for a in arms for s in seeds if (a, s) not in value]
    if missing:
        raise ValueError(f"runs lacks arm {missing[0][0]!r} for seed {missing[0][1]}; every arm needs every seed")
    n = len(panels) + (difference is not None)
    fig, axes = plt.subplots(1, n, figsize=(size * n, size * 1.15), squeeze=False)
    colours = plt.cm.tab10(np.arange(len(seeds)) % 10)
    for ax, (key, title, limits) in zip(axes[0], panels):
        for s, colour in zip(seeds, colours):
            ax.plot(range(len(arms)), [value[arm, s][key] for arm in arms], "o-", color=colour, alpha=0.7,
                    label=f"seed {s}")
        ax.set_xticks(range(len(arms)), arms)
        ax.set_ylim(*limits)
        ax.set_title(title)
    if difference is not None:
        key, reference, half = difference
        ax = axes[0][-1]
        others = [a for a in arms if a != reference]
        for s, colour in zip(seeds, colours):
            ax.plot(range(len(others)), [value[a, s][key] - value[reference, s][key] for a in others], "o",
                    color=colour, alpha=0.8)
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xticks(range(len(others)), others)
        ax.set_xlim(-0.5, len(others) - 0.5)
        ax.set_ylim(-half, half)
        name = next((title for k, title, _ in panels if k == key), key)   # the panel's name for the key
        ax.set_title(f"{name}: arm minus {reference!r}, per seed")
    axes[0][0].legend(fontsize=8, loc="lower right")
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
