"""The U diagram: ``draw_unet`` draws a U-Net the way the paper's Fig. 1 does, from the model itself.

B, C, H, W = batch, channels, height, width.
"""

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import matplotlib.pyplot as plt
import torch
from matplotlib.legend_handler import HandlerBase
from matplotlib.patches import FancyArrowPatch, Rectangle
from torch import nn

from ..blocks import DoubleConv, Down, Up
from ..model import UNet, named_blocks
from ..validate import check_instance
from .style import FONT as _FONT
from .style import TITLE_FONT as _TITLE_FONT

__all__ = ["draw_unet"]


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


class _Rows(NamedTuple):
    """The rows of the drawing, one per level of the U (level k: maps pooled k times)."""
    y: dict[int, float]          # the bottom of each row's boxes
    arrow_dy: dict[int, float]   # how high above that bottom a row's horizontal arrows run
    base: float                  # the height of the box of the smallest map
    smallest: int                # the smallest map's height in pixels

    def height(self, n: int) -> float:
        """The height of the box of a map ``n`` pixels high: the log of the size, so 572 and 28 both fit."""
        return self.base + _SLOPE * math.log2(n / self.smallest)


def _levels(maps: list[_Map]) -> list[int]:
    """The level of each map: how many poolings it is below the input."""
    levels, level = [], 0
    for m in maps:
        level += {"pool": 1, "up": -1}.get(m.kind, 0)
        levels.append(level)
    return levels


def _rows(maps: list[_Map], levels: list[int]) -> _Rows:
    """Row heights and places: each box high enough for its upright size label under the row's arrows."""
    depth = max(levels)
    rows = range(depth + 1)
    label_len = {k: max(_text_len(_size_label(m)) for m, kk in zip(maps, levels) if kk == k) for k in rows}
    smallest = min(m.height for m in maps)
    row_smallest = {k: min(m.height for m, kk in zip(maps, levels) if kk == k) for k in rows}
    base = max(30.0, *(label_len[k] + 12 - _SLOPE * math.log2(row_smallest[k] / smallest) for k in rows))
    sized = _Rows({}, {}, base, smallest)
    row_h = {k: max(sized.height(m.height) for m, kk in zip(maps, levels) if kk == k) for k in rows}
    arrow_dy = {k: max(label_len[k] + 6, sized.height(row_smallest[k]) / 2) for k in rows}
    row_y = {depth: 0.0}
    for k in reversed(range(depth)):
        row_y[k] = row_y[k + 1] + row_h[k + 1] + _VGAP
    return _Rows(row_y, arrow_dy, base, smallest)


def _layout(maps: list[_Map], legend_size: tuple[float, float], min_width: float) -> _Layout:
    """Where ``draw_unet`` puts each box, label and arrow, in points: arithmetic on the maps.

    A row per level of the U (level k: maps pooled k times), the bottleneck at the bottom. Along
    a row the boxes follow one another left to right, an arrow-and-label gap apart; a pooling's
    box sits right under the box it pools, an up-conv's box right of and above the box it
    upsamples, so the contracting path steps down and the expansive path steps up. The limits
    leave room for a legend of ``legend_size`` (w, h) in the lower right corner and are at least
    ``min_width`` wide.
    """
    levels = _levels(maps)
    boxes, texts, arrows = _place(maps, levels, _rows(maps, levels))
    xlim, ylim = _limits(boxes, arrows, legend_size, min_width)
    return _Layout(boxes, texts, arrows, xlim, ylim)


def _place(maps: list[_Map], levels: list[int], rows: _Rows) -> tuple[list[_Box], list[_Text], list[_Arrow]]:
    """Every box, label and arrow, map after map in the order of the forward pass."""
    boxes: list[_Box] = []
    texts: list[_Text] = []
    arrows: list[_Arrow] = []
    last_left: dict[int, _Box] = {}      # the last box of each level of the contracting path: what is copied
    prev = up = None
    up_map = None
    for m, k in zip(maps, levels):
        y, w, h = rows.y[k], _box_width(m.channels), rows.height(m.height)
        tags = {m.block}
        if m.kind == "input":
            box = _Box(0.0, y, w, h, tags)
        elif m.kind in ("conv", "out"):
            box = _Box(prev.x + prev.w + _GAP, y, w, h, tags)
            ay = y + rows.arrow_dy[k]
            arrows.append(_Arrow((prev.x + prev.w + 1, ay), (box.x - 1, ay), m.kind, {m.block}))
        elif m.kind == "pool":
            box = _Box(prev.x + (prev.w - w) / 2, y, w, h, tags)           # right under the map it pools
            cx = prev.x + prev.w / 2
            arrows.append(_Arrow((cx, prev.y - 1), (cx, y + h + 1), "pool", {m.block}))
        elif m.kind == "up":
            up, up_map = _Box(prev.x + prev.w + 4, y, w, h, tags), m
            boxes.append(up)
            arrows.append(_Arrow((prev.x + prev.w + 1, prev.y + rows.arrow_dy[k + 1]), (up.x + w / 2, y - 1), "up",
                                 {m.block}, bend=True))
            prev = up
            continue
        else:   # "concat": the copied and cropped map, white, left of the up-conv's output
            w = _box_width(m.channels - up_map.channels)
            box = _Box(up.x - w, y, w, up.h, tags | {"skips"}, copy=True)
            source = last_left[k]
            source.tags.add("skips")
            ay = y + rows.arrow_dy[k]
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
    return boxes, texts, arrows


def _limits(boxes: list[_Box], arrows: list[_Arrow], legend_size: tuple[float, float],
            min_width: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """The limits: everything, a margin, and the legend in the lower right corner, clear of it all."""
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
    return (x0, x1), (y0, y1)


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
    size = _input_size(input_size)
    out_size = model.output_size(size)   # raises with the nearest valid sizes
    tags_on = _highlight_tags(model, highlight)
    maps = _feature_maps(model, size)
    kinds, labels = _legend_entries(model.config, {m.kind for m in maps})
    # a legend entry is 1.6 + 0.5 font sizes high, its handle and padding about 4.5 wide
    legend_size = (_FONT * 4.5 + max(_text_len(label) for label in labels), len(labels) * _FONT * 2.1 + 8)
    if title is None:
        title = _default_title(model.config, size, out_size, highlight)
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
    _draw(ax, layout, tags_on)
    handles = [Rectangle((0, 0), 1, 1, facecolor=_BOX, edgecolor=_BOX_EDGE, lw=0.8),
               Rectangle((0, 0), 1, 1, facecolor=_BOX_COPY, edgecolor=_BOX_EDGE, lw=0.8)][:len(labels) - len(kinds)]
    handles += [FancyArrowPatch((0, 0), (1, 0), color=_ARROWS[kind], gid=direction) for kind, direction, _ in kinds]
    ax.legend(handles, labels, handler_map={FancyArrowPatch: _LegendArrow()}, loc="lower right", fontsize=_FONT,
              handleheight=1.6, handlelength=2.0, frameon=False, borderaxespad=0.5)
    ax.set_title(title, fontsize=_TITLE_FONT)
    return ax.figure


def _input_size(input_size: int | tuple[int, int]) -> tuple[int, int]:
    """``input_size`` as (height, width)."""
    if isinstance(input_size, (tuple, list, torch.Size)):
        if len(input_size) != 2:
            raise ValueError(f"input_size must be an int or (height, width), got {tuple(input_size)}")
        return tuple(input_size)
    return (input_size, input_size)


def _legend_entries(config: dict, kinds_drawn: set[str]) -> tuple[list[tuple[str, str, str]], list[str]]:
    """The arrows of the legend, (kind, direction, label) for each kind of operation drawn, and every
    legend label: the boxes' ("feature map", and "copied feature map" where there are skips) first."""
    conv = "conv 3x3, BatchNorm, ReLU" if config["batch_norm"] else "conv 3x3, ReLU"
    kinds = [("conv", "right", conv + (" (padded)" if config["padding"] == "same" else "")),
             ("copy", "right", "copy" if config["padding"] == "same" else "copy and crop"),
             ("pool", "down", "max pool 2x2"),
             ("up", "up", "up-conv 2x2" if config["upsampling"] == "transpose" else "upsample x2 (bilinear), conv 1x1"),
             ("out", "right", "conv 1x1")]
    present = kinds_drawn | {"conv", "out"}
    kinds = [kind for kind in kinds if {"copy": "concat"}.get(kind[0], kind[0]) in present]   # none but conv at depth 0
    labels = ["feature map", "copied feature map"][:1 + ("up" in present)] + [label for _, _, label in kinds]
    return kinds, labels


def _default_title(config: dict, size: tuple[int, int], out_size: tuple[int, int],
                   highlight: str | Sequence[str] | None) -> str:
    """The configuration, the input and output sizes, how to read a box, and what is highlighted."""
    title = (f"U-Net (depth {config['depth']}, {config['base_channels']} base channels, {config['padding']} "
             f"padding): input {size[0]} x {size[1]}, output {out_size[0]} x {out_size[1]}\n"
             f"a box per feature map: channels above it, height x width at its lower left")
    if highlight is not None:
        title += f"\nhighlighted: {highlight if isinstance(highlight, str) else ', '.join(highlight)}"
    return title


def _draw(ax: plt.Axes, layout: _Layout, tags_on: set[str] | None) -> None:
    """The boxes, labels and arrows of ``layout``, those tagged in ``tags_on`` emphasised and the rest faded."""
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
