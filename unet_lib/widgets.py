"""The feature-map explorer: an ipywidgets widget that shows a U-Net's feature maps, layer by layer.

It also holds the pictures the widget draws.

B, C, H, W = batch, channels, height, width.

``FeatureMapExplorer(model, images)`` shows the maps that ``unet_lib.hooks.feature_maps`` records:
pick an image, a layer (each block of the contracting path, the bottleneck, each block of the
expansive path, the output) and a channel, and see the input, the chosen channel, the
prediction, the layer's shape, the channel's statistics and a grid of all the layer's channels.
The maps of an image are computed once and cached, so moving a slider only redraws.

Pictures are PNG bytes in ``ipywidgets.Image`` (not matplotlib figures): encoding a small PNG
takes a few milliseconds, redrawing a figure takes a hundred, and a widget must answer fast.
"""

import io
import math
from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib
import numpy as np
import torch
import traitlets
from PIL import Image as PILImage   # Pillow: a dependency of matplotlib

# the hooks behind the explorer, found here too (notebook 09 and its checks import them from here)
from .hooks import (FeatureMaps, Layer, _check_image, _check_model, average_skips, feature_maps, feature_maps_batch,
                    unet_layers)
from .model import UNet
from .tiling import context_margin

__all__ = ["Layer", "FeatureMaps", "unet_layers", "feature_maps", "feature_maps_batch", "average_skips",
           "FeatureMapExplorer", "image_box", "draw_box"]


def _as_image_list(images, in_channels: int) -> list[torch.Tensor]:
    if isinstance(images, (torch.Tensor, np.ndarray)):
        if images.ndim == 4:                      # (N, C, H, W)
            images = list(images)
        else:                                     # one (C, H, W) or (H, W) image
            images = [images]
    elif not isinstance(images, Sequence) and not hasattr(images, "__getitem__"):
        raise TypeError(f"images must be a tensor (N, C, H, W) or a sequence of (C, H, W) images, "
                        f"got {type(images).__name__}")
    else:
        images = [images[i] for i in range(len(images))]
    if len(images) == 0:
        raise ValueError("images is empty; give at least one (C, H, W) image")
    # dataset items such as ToyCells' {"image": ..., "mask": ...}: take the image
    images = [item["image"] if isinstance(item, dict) else item for item in images]
    return [_check_image(image, in_channels, f"images[{i}]") for i, image in enumerate(images)]



def _all_feature_maps(model: UNet, images: list[torch.Tensor], batch_size: int = 8) -> dict[int, FeatureMaps]:
    """``feature_maps`` of every image, by index, images of one size in batches: much faster than
    one by one on a CPU."""
    maps: dict[int, FeatureMaps] = {}
    by_size: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        by_size.setdefault(tuple(image.shape), []).append(index)
    for indices in by_size.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            batch = torch.stack([images[i] for i in chunk])   # (B, C, H, W)
            for index, fm in zip(chunk, feature_maps_batch(model, batch)):
                maps[index] = fm
    return maps


# -- pictures ----------------------------------------------------------------------------------

def _lut(cmap: str) -> np.ndarray:
    """(256, 3) uint8 colours of a matplotlib colormap."""
    return (matplotlib.colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def _to_index(array: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Scale ``array`` to 0..255 (its own min..max unless given); a constant array gives 0."""
    lo = float(array.min()) if vmin is None else vmin
    hi = float(array.max()) if vmax is None else vmax
    if hi <= lo:
        return np.zeros(array.shape, np.uint8)
    return (np.clip((array - lo) / (hi - lo), 0, 1) * 255).round().astype(np.uint8)


def _resize_nearest(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of the first two axes: the pixels stay visible as blocks."""
    rows = np.arange(height) * array.shape[0] // height
    cols = np.arange(width) * array.shape[1] // width
    return array[rows[:, None], cols[None, :]]


def _display_size(h: int, w: int, target: int) -> tuple[int, int]:
    """Scale (h, w) by a whole number so the longer side is close to ``target`` pixels."""
    k = max(1, round(target / max(h, w)))
    return h * k, w * k


def _png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format="PNG", compress_level=1)   # speed over size
    return buffer.getvalue()


def _format(x: float) -> str:
    return f"{x:.3g}"


def image_box(map_shape: tuple[int, int], input_shape: tuple[int, int], image_shape: tuple[int, int],
              margin: int, level: int) -> tuple[float, float, float, float]:
    """Where the image lies on a feature map: (top, left, bottom, right) in map pixels.

    The network sees the image mirror-padded, ``margin`` pixels above and to the left
    (``tiling.context_margin``), so every map covers mirrored context around the image. A map
    of size h at ``level`` k covers input pixels o + i 2^k .. o + (i + 1) 2^k with
    o = (H_in - h 2^k) / 2: valid convolutions crop both sides alike, same ones crop nothing.
    The image, input rows margin .. margin + H, is therefore map rows (margin - o) / 2^k ..
    (margin + H - o) / 2^k; the values may be fractional and may lie outside the map.
    """
    step = 2**level
    box = []
    for n_map, n_in, n_image in zip(map_shape, input_shape, image_shape):
        origin = (n_in - n_map * step) / 2
        box.append(((margin - origin) / step, (margin + n_image - origin) / step))
    (top, bottom), (left, right) = box
    return top, left, bottom, right


def draw_box(rgb: np.ndarray, box: tuple[float, float, float, float], scale: int,
             colour: tuple[int, int, int] = (255, 255, 255), width: int = 2) -> np.ndarray:
    """A copy of ``rgb`` (a map enlarged ``scale`` times, (h * scale, w * scale, 3) uint8) with
    the outline of ``box`` (top, left, bottom, right in map pixels) drawn ``width`` pixels wide,
    just inside the box; the parts of the outline outside the picture are left out."""
    out = rgb.copy()
    h, w = out.shape[:2]
    top, left, bottom, right = (round(v * scale) for v in box)
    rows, cols = slice(max(top, 0), min(bottom, h)), slice(max(left, 0), min(right, w))
    if 0 <= top < h:
        out[top : top + width, cols] = colour
    if 0 < bottom <= h:
        out[max(bottom - width, 0) : bottom, cols] = colour
    if 0 <= left < w:
        out[rows, left : left + width] = colour
    if 0 < right <= w:
        out[rows, max(right - width, 0) : right] = colour
    return out


def _input_rgb(image: torch.Tensor, gray: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 of an input image (C, H, W): its colours when it has three channels, else
    its first channel in gray."""
    first = image[0].numpy() if image.shape[0] != 3 else image.numpy().transpose(1, 2, 0)
    return gray[_to_index(first)] if first.ndim == 2 else _to_index(first)


def _prediction_rgb(logits: torch.Tensor, gray: np.ndarray) -> tuple[np.ndarray, str]:
    """(H, W, 3) uint8 of a prediction from logits (K, H, W), and what it shows."""
    num_classes = logits.shape[0]
    if num_classes == 1:        # one logit: a sigmoid gives the probability
        pred, what = logits[0].sigmoid().numpy(), "P(foreground)"
        return gray[_to_index(pred, 0.0, 1.0)], what
    if num_classes == 2:        # the paper's two classes: show P(class 1), the cells
        pred, what = logits.softmax(0)[1].numpy(), "P(class 1)"
        return gray[_to_index(pred, 0.0, 1.0)], what
    pred, what = logits.argmax(0).numpy(), "predicted class"   # several classes: the predicted class
    return (matplotlib.colormaps["tab10"](pred % 10)[..., :3] * 255).astype(np.uint8), what


def _stats_html(layer: Layer, shape: tuple[int, int, int], channel: np.ndarray, c: int) -> str:
    """The table under the views: the layer, its shape and resolution, the channel's statistics."""
    C, h, w = shape
    active = float((channel > 0).mean())
    rows = [("layer", layer.label), ("shape (C, H, W)", f"({C}, {h}, {w})"),
            ("resolution", "full" if layer.level == 0 else f"1/{2**layer.level} of level 0"),
            (f"channel {c}: min / mean / max",
             f"{_format(channel.min())} / {_format(channel.mean())} / {_format(channel.max())}"),
            (f"channel {c}: active (> 0)", f"{active:.0%}"),
            ("white frame", "where the image lies; outside it the map covers mirrored context")]
    return "<table>" + "".join(f"<tr><td>{k}</td><td><b>{v}</b></td></tr>" for k, v in rows) + "</table>"


def _grid_picture(fmap: np.ndarray, lut: np.ndarray, width: int) -> tuple[np.ndarray, int, int]:
    """All channels of ``fmap`` (C, h, w) as one picture of about ``width`` px, each channel on its
    own colour scale: ((rows * (tile + 2), cols * (tile + 2), 3) uint8, tile, cols)."""
    n = fmap.shape[0]
    cols = min(n, 16)
    rows = math.ceil(n / cols)
    tile = min(96, width // cols - 2)
    grid = np.full((rows * (tile + 2), cols * (tile + 2), 3), 255, np.uint8)   # white gaps
    for i, channel in enumerate(fmap):
        top, left = (i // cols) * (tile + 2) + 1, (i % cols) * (tile + 2) + 1
        grid[top : top + tile, left : left + tile] = _resize_nearest(lut[_to_index(channel)], tile, tile)
    return grid, tile, cols


def _framed(grid: np.ndarray, c: int, tile: int, cols: int) -> np.ndarray:
    """A copy of ``grid`` with channel ``c`` framed in red."""
    grid = grid.copy()
    top, left = (c // cols) * (tile + 2), (c % cols) * (tile + 2)
    grid[top : top + tile + 2, left : left + tile + 2][[0, 1, -2, -1], :] = (220, 30, 30)
    grid[top : top + tile + 2, left : left + tile + 2][:, [0, 1, -2, -1]] = (220, 30, 30)
    return grid


def _check_settings(layers: list[Layer], layer: str | None, cmap: str, max_grid_channels: int) -> str:
    """The layer to show first (default: the first), after checking the explorer's settings."""
    names = [layer_.name for layer_ in layers]
    layer = names[0] if layer is None else layer
    if layer not in names:
        raise ValueError(f"layer={layer!r} is not a layer of this U-Net; choose one of {', '.join(names)}")
    if cmap not in matplotlib.colormaps:
        raise ValueError(f"cmap={cmap!r} is not a matplotlib colormap; try 'viridis', 'magma' or 'gray'")
    if not isinstance(max_grid_channels, int) or max_grid_channels < 1:
        raise ValueError(f"max_grid_channels must be an integer >= 1, got {max_grid_channels!r}")
    return layer


class _Pictures:
    """What the explorer shows, drawn from the maps: the input, the prediction and the chosen channel
    as PNG bytes of about ``display`` px, with their titles, the layer's statistics, and the grid of
    the layer's channels (cached per image and layer: a slider only moves the red frame)."""

    def __init__(self, cmap: str, display: int, grid_width: int, max_grid_channels: int):
        self.lut, self.gray = _lut(cmap), _lut("gray")
        self.display, self.grid_width, self.max_grid_channels = display, grid_width, max_grid_channels
        self._grids: dict[tuple[int, str], tuple[np.ndarray, int, int]] = {}

    def image(self, image: torch.Tensor, logits: torch.Tensor) -> tuple[bytes, str, bytes, str]:
        """(input PNG, its title, prediction PNG, its title) of an image (C, H, W) and its logits."""
        h, w = image.shape[-2:]
        size = _display_size(h, w, self.display)
        rgb, what = _prediction_rgb(logits, self.gray)
        return (_png(_resize_nearest(_input_rgb(image, self.gray), *size)), f"<b>input</b> {h}×{w}",
                _png(_resize_nearest(rgb, *size)), f"<b>prediction</b> {what}")

    def channel(self, fm: FeatureMaps, layer: Layer, c: int, margin: int, index: int) -> tuple[bytes, str, str, bytes, str]:
        """(channel PNG framed where the image lies, its title, the statistics table, the grid PNG with
        channel ``c`` framed in red, its title) for channel ``c`` of ``layer`` in image ``index``."""
        fmap = fm.maps[layer.name]                            # (C, h, w)
        channel = fmap[c].numpy()                             # (h, w)
        size = _display_size(*channel.shape, self.display)
        box = image_box(channel.shape, fm.input.shape[-2:], fm.logits.shape[-2:], margin, layer.level)
        picture = draw_box(_resize_nearest(self.lut[_to_index(channel)], *size), box, size[0] // channel.shape[0])
        key = (index, layer.name)
        if key not in self._grids:
            self._grids[key] = _grid_picture(fmap[: self.max_grid_channels].numpy(), self.lut, self.grid_width)
        grid, tile, cols = self._grids[key]
        C, n = fmap.shape[0], min(fmap.shape[0], self.max_grid_channels)
        shown = f"all {C} channels" if C <= n else f"the first {n} of {C} channels"
        return (_png(picture), f"<b>{layer.name}</b>, channel {c}", _stats_html(layer, tuple(fmap.shape), channel, c),
                _png(_framed(grid, c, tile, cols) if c < n else grid),
                f"<b>{layer.name}</b>: {shown}, each on its own colour scale")


def _parts(n_images: int, layers: list[Layer], layer: str) -> tuple[list, list]:
    """The explorer's controls and views, each tagged with a CSS class ``unet-explorer-*``, and its
    rows: (the parts in the order that ``FeatureMapExplorer`` unpacks them, the VBox's children)."""
    image_slider = widgets.IntSlider(value=0, min=0, max=n_images - 1, description="image",
                                     continuous_update=True, disabled=n_images == 1)
    layer_dropdown = _LayerDropdown(options=[(layer_.label, layer_.name) for layer_ in layers], value=layer,
                                    description="layer", layout=widgets.Layout(width="28em"))
    channel_slider = widgets.IntSlider(value=0, min=0, max=0, description="channel", continuous_update=True)
    input_title, fmap_title, pred_title, grid_title, stats = (widgets.HTML() for _ in range(5))
    input_view, fmap_view, pred_view, grid_view = (widgets.Image(format="png") for _ in range(4))
    parts = [image_slider, layer_dropdown, channel_slider, input_title, input_view, fmap_title, fmap_view,
             pred_title, pred_view, stats, grid_title, grid_view]
    for part, css in zip(parts, ["image", "layer", "channel", "input-title", "input", "fmap-title", "fmap",
                                 "pred-title", "pred", "stats", "grid-title", "grid"]):
        part.add_class(f"unet-explorer-{css}")

    def column(title, view):
        return widgets.VBox([title, view], layout=widgets.Layout(margin="0 12px 0 0"))

    rows = [widgets.HBox([image_slider, layer_dropdown, channel_slider]),
            widgets.HBox([column(input_title, input_view), column(fmap_title, fmap_view),
                          column(pred_title, pred_view)]),
            stats, grid_title, grid_view]
    return parts, rows


# -- the widget ----------------------------------------------------------------------------------

class _LayerDropdown(widgets.Dropdown):
    """A Dropdown of layer names whose error for a name that is not a layer lists the names."""

    @traitlets.validate("value")
    def _validate_value(self, proposal):
        try:
            return super()._validate_value(proposal)
        except traitlets.TraitError:
            raise traitlets.TraitError(f"Invalid selection: layer {proposal.value!r} is not a layer of this U-Net; "
                                       f"choose one of {', '.join(map(str, self._options_values))}") from None


class FeatureMapExplorer(widgets.VBox):
    """An ipywidgets explorer of a U-Net's feature maps; display it as a cell's last expression.

    ``FeatureMapExplorer(model, images)``: ``model`` is a ``UNet`` (any depth, valid or same
    padding), ``images`` a tensor (N, C, H, W), one (C, H, W) image, or a sequence of (C, H, W)
    images (dataset items with an ``"image"`` key are accepted too).

    Controls: ``image_slider``, ``layer_dropdown`` (values: the names of ``unet_layers(model)``),
    ``channel_slider`` (its maximum follows the layer). Views: ``input_view``, ``fmap_view`` (the
    chosen channel on its own colour scale, a white frame where the image lies: the rest is
    mirrored context, see ``image_box``), ``pred_view`` (the probability of the last class, or the
    predicted class for more than two), ``grid_view`` (all the layer's channels, each on its own
    scale, the chosen one framed in red), ``stats`` (the layer's shape, the channel's min, mean,
    max and active fraction). Every part has a CSS class ``unet-explorer-*`` (tests, styling).

    Each image goes through the network once (``feature_maps``), cached, so a change only redraws
    (``_Pictures``). ``precompute=True`` (the default) runs all images when the explorer is built;
    ``False`` runs each when it is first chosen (many images or a large network: the maps of one
    128x128 image take a few MB). Over 60 lines: a widget, its state and its event handlers.
    """

    DISPLAY = 256        # px: the longer side of the input, feature-map and prediction views
    GRID_WIDTH = 640     # px: the width of the grid of all channels

    def __init__(self, model: UNet, images, *, layer: str | None = None, channel: int = 0,
                 cmap: str = "viridis", max_grid_channels: int = 128, precompute: bool = True):
        _check_model(model)
        self.model = model
        self.images = _as_image_list(images, model.in_channels)
        self.layers = unet_layers(model)
        layer = _check_settings(self.layers, layer, cmap, max_grid_channels)
        self.max_grid_channels = max_grid_channels
        self._pictures = _Pictures(cmap, self.DISPLAY, self.GRID_WIDTH, max_grid_channels)
        self._cache: dict[int, FeatureMaps] = {}
        self._quiet = False   # set while one change adjusts another control
        parts, rows = _parts(len(self.images), self.layers, layer)
        (self.image_slider, self.layer_dropdown, self.channel_slider, self.input_title, self.input_view,
         self.fmap_title, self.fmap_view, self.pred_title, self.pred_view, self.stats, self.grid_title,
         self.grid_view) = parts
        super().__init__(rows)
        self.add_class("unet-explorer")
        if precompute:   # every image through the network now, so that no change waits for it
            self._cache.update(_all_feature_maps(self.model, self.images))
        self._show_image()
        self._show_layer(channel)
        self.image_slider.observe(self._on_image, names="value")
        self.layer_dropdown.observe(self._on_layer, names="value")
        self.channel_slider.observe(self._on_channel, names="value")

    def __repr__(self) -> str:
        # short and stable: a widget's default repr lists every trait, PNG bytes included
        return (f"FeatureMapExplorer({len(self.images)} images, {len(self.layers)} layers, "
                f"depth={self.model.depth}, padding={self.model.padding!r})")

    def maps(self, index: int | None = None) -> FeatureMaps:
        """The feature maps of image ``index`` (default: the one shown), computed once, then cached."""
        index = self.image_slider.value if index is None else index
        if not 0 <= index < len(self.images):
            raise IndexError(f"image index {index} is out of range; there are {len(self.images)} images")
        if index not in self._cache:
            self._cache[index] = feature_maps(self.model, self.images[index])
        return self._cache[index]

    def current(self) -> torch.Tensor:
        """The channel on show: a (h, w) tensor."""
        return self.maps().maps[self.layer_dropdown.value][self.channel_slider.value]

    def _on_image(self, change) -> None:
        self._show_image()
        self._show_layer(self.channel_slider.value)

    def _on_layer(self, change) -> None:
        self._show_layer(self.channel_slider.value)

    def _on_channel(self, change) -> None:
        if not self._quiet:
            self._show_channel()

    def _show_image(self) -> None:
        image = self.images[self.image_slider.value]
        self.input_view.value, self.input_title.value, self.pred_view.value, self.pred_title.value = (
            self._pictures.image(image, self.maps().logits))

    def _show_layer(self, channel: int) -> None:
        fmap = self.maps().maps[self.layer_dropdown.value]   # (C, h, w)
        self._quiet = True
        try:
            self.channel_slider.max = fmap.shape[0] - 1       # clamps the value when it is too large
            self.channel_slider.value = min(max(channel, 0), fmap.shape[0] - 1)
        finally:
            self._quiet = False
        self._show_channel()

    def _show_channel(self) -> None:
        layer = next(layer_ for layer_ in self.layers if layer_.name == self.layer_dropdown.value)
        (self.fmap_view.value, self.fmap_title.value, self.stats.value, self.grid_view.value,
         self.grid_title.value) = self._pictures.channel(self.maps(), layer, self.channel_slider.value,
                                                         context_margin(self.model), self.image_slider.value)
