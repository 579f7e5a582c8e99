"""Look inside a U-Net: its feature maps, layer by layer, in an interactive widget.

B, C, H, W = batch, channels, height, width.

``feature_maps(model, image)`` runs the network once with forward hooks on every block and
returns what each block produced; ``FeatureMapExplorer(model, images)`` shows those maps with
ipywidgets: pick an image, a layer (each block of the contracting path, the bottleneck, each
block of the expansive path, the output) and a channel, and see the input, the chosen channel,
the prediction, the layer's shape, the channel's statistics and a grid of all the layer's
channels. The maps of an image are computed once and cached, so moving a slider only redraws.

Pictures are PNG bytes in ``ipywidgets.Image`` (not matplotlib figures): encoding a small PNG
takes a few milliseconds, redrawing a figure takes a hundred, and a widget must answer fast.
"""

import io
import math
from collections.abc import Sequence
from typing import NamedTuple

import ipywidgets as widgets
import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
import traitlets
from PIL import Image as PILImage   # Pillow: a dependency of matplotlib

from .model import UNet, named_blocks
from .tiling import context_margin, padded_forward
from .validate import check_finite, check_spatial

__all__ = ["Layer", "FeatureMaps", "unet_layers", "feature_maps", "feature_maps_batch", "average_skips",
           "FeatureMapExplorer", "image_box", "draw_box"]


class Layer(NamedTuple):
    """One block of a ``UNet`` whose output the explorer can show."""
    name: str     # the block's name in ``named_blocks(model)``: "inc", "downs[0]", "ups[1]", "outc"
    label: str    # what the learner reads: "contracting path, level 1 (downs[0])"
    level: int    # 0 at full resolution; level k is downsampled by 2**k


class FeatureMaps(NamedTuple):
    """What ``feature_maps`` returns for one image."""
    maps: dict[str, torch.Tensor]   # layer name -> (C, h, w) output of that block, float32, CPU
    logits: torch.Tensor            # (num_classes, H, W): the output for every pixel of the image
    input: torch.Tensor             # (in_channels, H_in, W_in): what the network saw (mirror-padded)


def unet_layers(model: UNet) -> list[Layer]:
    """The blocks of ``model`` in the order the data flows through them (``named_blocks``): the
    first ``DoubleConv``, each ``Down`` of the contracting path (the last one is the
    bottleneck), each ``Up`` of the expansive path, and the ``OutConv``."""
    _check_model(model)
    depth = model.depth
    layers = []
    for name, _ in named_blocks(model):
        if name == "inc":
            layers.append(Layer(name, f"contracting path, level 0 ({name})", 0))
        elif name.startswith("downs"):
            level = int(name[6:-1]) + 1
            part = "bottleneck" if level == depth else "contracting path"
            layers.append(Layer(name, f"{part}, level {level} ({name})", level))
        elif name.startswith("ups"):
            level = depth - 1 - int(name[4:-1])   # ups[0] sits just above the bottleneck
            layers.append(Layer(name, f"expansive path, level {level} ({name})", level))
        else:
            layers.append(Layer(name, f"output: logits ({name})", 0))
    return layers


def feature_maps(model: UNet, image: torch.Tensor) -> FeatureMaps:
    """Run ``model`` once on ``image`` (C, H, W) and record every block's output with forward hooks.

    The image goes through ``tiling.padded_forward``: it is mirror-padded by the model's context
    margin so that the logits cover every pixel of the image (Fig. 2: "the missing context is
    extrapolated by mirroring the input image"). The feature maps are those of the padded input,
    so they are larger than the image at the top level. The model runs in eval mode (BatchNorm
    uses its running statistics and is not updated) and is put back in the mode it was in; the
    hooks are removed. ``feature_maps_batch`` does the work, for several images at once.
    """
    _check_model(model)
    image = _check_image(image, model.in_channels, "image")
    return feature_maps_batch(model, image[None])[0]


@torch.no_grad()
def feature_maps_batch(model: UNet, images: torch.Tensor) -> list[FeatureMaps]:
    """``feature_maps`` for a batch (B, C, H, W) in one forward pass: a list of B ``FeatureMaps``.

    One pass over a batch costs much less on a CPU than B passes over single images.
    """
    _check_model(model)
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a (B, C, H, W) tensor, got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    param = next(model.parameters())
    maps: dict[str, torch.Tensor] = {}
    seen: list[torch.Tensor] = []

    def recorder(name: str):
        def hook(module, inputs, output):
            # clone: the next block must not be able to change what we keep (in-place ReLUs)
            maps[name] = output.detach().to("cpu", torch.float32).clone()   # (B, C, h, w)
        return hook

    blocks = dict(named_blocks(model))
    handles = [blocks[layer.name].register_forward_hook(recorder(layer.name)) for layer in unet_layers(model)]
    # and what the network saw: the mirror-padded batch
    handles.append(model.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].detach().cpu())))
    was_training = model.training
    try:
        model.eval()
        logits = padded_forward(model, images.to(param.device, param.dtype))   # (B, num_classes, H, W)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    logits = logits.to("cpu", torch.float32)
    return [FeatureMaps({name: fmap[b] for name, fmap in maps.items()}, logits[b], seen[0][b].float())
            for b in range(len(images))]


def average_skips(model: UNet, blocks: Sequence[str] | None = None) -> list[torch.utils.hooks.RemovableHandle]:
    """Block-average the skip connections of ``model``: a forward pre-hook on each chosen ``Up``
    block replaces the map it receives from the contracting path by that map averaged over
    f x f blocks and upsampled back (nearest), where f = 2**(j + 1) for ``ups[j]``: the factor
    that brings the skip down to the bottleneck's resolution (``ups[0]``, just above the
    bottleneck, 2 x 2; the last ``Up``, at full resolution, 2**depth x 2**depth).

    The skip keeps what it says at the bottleneck's scale and loses only the finer detail, and
    every ``Up`` block still gets inputs of the kind it saw in training (unlike ``cut_skips``,
    whose zeros it never saw). The weights are not changed.

    ``blocks``: names from ``named_blocks`` (``"ups[0]"``, ...); ``None`` = every ``Up`` block.
    Returns the hooks' handles; ``handle.remove()`` restores the skips. Raises ``TypeError`` for
    a model that is not a ``UNet`` and ``ValueError`` listing the names for a name that is not
    an ``Up`` block of ``model``.
    """
    _check_model(model)
    names = [f"ups[{j}]" for j in range(len(model.ups))]
    if isinstance(blocks, str):
        blocks = [blocks]
    chosen = names if blocks is None else list(blocks)
    unknown = [name for name in chosen if name not in names]
    if unknown:
        raise ValueError(f"blocks={unknown[0]!r} is not an Up block of this U-Net; choose from "
                         f"{', '.join(names) or '(none: depth 0 has no skips)'}")

    def hook(module: torch.nn.Module, args: tuple[torch.Tensor, torch.Tensor], factor: int):
        x, skip = args                                                        # skip: (B, C, H_s, W_s)
        coarse = F.avg_pool2d(skip, factor, ceil_mode=True)                   # (B, C, ceil(H_s/f), ceil(W_s/f))
        fine = F.interpolate(coarse, scale_factor=factor)                     # (B, C, >= H_s, >= W_s)
        return x, fine[..., : skip.shape[-2], : skip.shape[-1]]               # (B, C, H_s, W_s)

    return [model.ups[j].register_forward_pre_hook(lambda m, args, f=2 ** (j + 1): hook(m, args, f))
            for j in range(len(model.ups)) if names[j] in chosen]


# -- validation ------------------------------------------------------------------------------

def _check_model(model) -> None:
    if not isinstance(model, UNet):
        hint = " (a Checkpoint? pass checkpoint.model)" if hasattr(model, "model") else ""
        raise TypeError(f"expected a unet_lib.UNet, got {type(model).__name__}{hint}")


def _check_image(image, in_channels: int, what: str) -> torch.Tensor:
    """An image as a (C, H, W) float32 CPU tensor, or a clear error."""
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(image)
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor or numpy array of shape (C, H, W), got {type(image).__name__}")
    if image.ndim == 2 and in_channels == 1:
        image = image[None]                       # (H, W) -> (1, H, W)
    if image.ndim != 3 or image.shape[0] != in_channels:
        raise ValueError(f"{what} must have shape ({in_channels}, H, W) for a model with "
                         f"in_channels={in_channels}, got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"{what} must be a float tensor, got {image.dtype}; "
                        f"convert with image.float() (divide by 255 if it holds 0..255)")
    check_spatial(what, image)
    check_finite(what, image, "a NaN pixel spreads through every feature map; replace them (torch.nan_to_num)")
    return image.detach().to("cpu", torch.float32)


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

    Controls: ``image_slider`` (which image), ``layer_dropdown`` (values are the layer names of
    ``unet_layers(model)``), ``channel_slider`` (its maximum follows the layer). Views:
    ``input_view``, ``fmap_view`` (the chosen channel, its own colour scale, with a white frame
    where the image lies: the rest is mirrored context, see ``image_box``), ``pred_view``
    (the probability of the last class, or the predicted class when there are more than two),
    ``grid_view`` (all channels of the layer, each on its own scale, the chosen one framed in
    red), and ``stats`` (the layer's shape and the channel's min, mean, max and active fraction).
    Every part carries a CSS class ``unet-explorer-*`` for tests and styling.

    Each image goes through the network once (``feature_maps``); the result is cached, so a
    slider or layer change only redraws. With ``precompute=True`` (the default) all images run
    when the explorer is built; with ``False`` each one runs when it is first chosen (for many
    images or a large network: the maps of one 128x128 image take a few MB).
    """

    DISPLAY = 256        # px: the longer side of the input, feature-map and prediction views
    GRID_WIDTH = 640     # px: the width of the grid of all channels

    def __init__(self, model: UNet, images, *, layer: str | None = None, channel: int = 0,
                 cmap: str = "viridis", max_grid_channels: int = 128, precompute: bool = True):
        _check_model(model)
        self.model = model
        self.images = _as_image_list(images, model.in_channels)
        self.layers = unet_layers(model)
        names = [layer_.name for layer_ in self.layers]
        layer = names[0] if layer is None else layer
        if layer not in names:
            raise ValueError(f"layer={layer!r} is not a layer of this U-Net; choose one of {', '.join(names)}")
        if cmap not in matplotlib.colormaps:
            raise ValueError(f"cmap={cmap!r} is not a matplotlib colormap; try 'viridis', 'magma' or 'gray'")
        if not isinstance(max_grid_channels, int) or max_grid_channels < 1:
            raise ValueError(f"max_grid_channels must be an integer >= 1, got {max_grid_channels!r}")
        self.max_grid_channels = max_grid_channels
        self._lut, self._gray = _lut(cmap), _lut("gray")
        self._cache: dict[int, FeatureMaps] = {}
        self._grid_cache: dict[tuple[int, str], tuple[np.ndarray, int, int]] = {}
        self._quiet = False   # set while one change adjusts another control

        self.image_slider = widgets.IntSlider(value=0, min=0, max=len(self.images) - 1, description="image",
                                              continuous_update=True, disabled=len(self.images) == 1)
        self.layer_dropdown = _LayerDropdown(options=[(l.label, l.name) for l in self.layers], value=layer,
                                               description="layer", layout=widgets.Layout(width="28em"))
        self.channel_slider = widgets.IntSlider(value=0, min=0, max=0, description="channel", continuous_update=True)
        self.input_title, self.fmap_title, self.pred_title = widgets.HTML(), widgets.HTML(), widgets.HTML()
        self.input_view, self.fmap_view, self.pred_view = (widgets.Image(format="png") for _ in range(3))
        self.grid_title, self.grid_view = widgets.HTML(), widgets.Image(format="png")
        self.stats = widgets.HTML()
        for part, css in [(self.image_slider, "image"), (self.layer_dropdown, "layer"),
                          (self.channel_slider, "channel"), (self.input_view, "input"), (self.fmap_view, "fmap"),
                          (self.pred_view, "pred"), (self.grid_view, "grid"), (self.stats, "stats"),
                          (self.input_title, "input-title"), (self.fmap_title, "fmap-title"),
                          (self.pred_title, "pred-title"), (self.grid_title, "grid-title")]:
            part.add_class(f"unet-explorer-{css}")

        def column(title, view):
            return widgets.VBox([title, view], layout=widgets.Layout(margin="0 12px 0 0"))

        super().__init__([
            widgets.HBox([self.image_slider, self.layer_dropdown, self.channel_slider]),
            widgets.HBox([column(self.input_title, self.input_view), column(self.fmap_title, self.fmap_view),
                          column(self.pred_title, self.pred_view)]),
            self.stats, self.grid_title, self.grid_view,
        ])
        self.add_class("unet-explorer")

        if precompute:   # every image through the network now, so that no change waits for it
            self._precompute()
        self._show_image()
        self._show_layer(channel)
        self.image_slider.observe(self._on_image, names="value")
        self.layer_dropdown.observe(self._on_layer, names="value")
        self.channel_slider.observe(self._on_channel, names="value")

    def __repr__(self) -> str:
        # short and stable: a widget's default repr lists every trait, PNG bytes included
        return (f"FeatureMapExplorer({len(self.images)} images, {len(self.layers)} layers, "
                f"depth={self.model.depth}, padding={self.model.padding!r})")

    # -- data --------------------------------------------------------------------------------

    def maps(self, index: int | None = None) -> FeatureMaps:
        """The feature maps of image ``index`` (default: the one shown), computed once, then cached."""
        index = self.image_slider.value if index is None else index
        if not 0 <= index < len(self.images):
            raise IndexError(f"image index {index} is out of range; there are {len(self.images)} images")
        if index not in self._cache:
            self._cache[index] = feature_maps(self.model, self.images[index])
        return self._cache[index]

    def _precompute(self, batch_size: int = 8) -> None:
        """Fill the cache, images of one size in batches: much faster than one by one on a CPU."""
        by_size: dict[tuple[int, ...], list[int]] = {}
        for index, image in enumerate(self.images):
            by_size.setdefault(tuple(image.shape), []).append(index)
        for indices in by_size.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                batch = torch.stack([self.images[i] for i in chunk])   # (B, C, H, W)
                for index, fm in zip(chunk, feature_maps_batch(self.model, batch)):
                    self._cache[index] = fm

    def current(self) -> torch.Tensor:
        """The channel on show: a (h, w) tensor."""
        return self.maps().maps[self.layer_dropdown.value][self.channel_slider.value]

    # -- events --------------------------------------------------------------------------------

    def _on_image(self, change) -> None:
        self._show_image()
        self._show_layer(self.channel_slider.value)

    def _on_layer(self, change) -> None:
        self._show_layer(self.channel_slider.value)

    def _on_channel(self, change) -> None:
        if not self._quiet:
            self._show_channel()

    def _show_image(self) -> None:
        fm = self.maps()
        image = self.images[self.image_slider.value]
        h, w = image.shape[-2:]
        size = _display_size(h, w, self.DISPLAY)
        first = image[0].numpy() if image.shape[0] != 3 else image.numpy().transpose(1, 2, 0)
        rgb = self._gray[_to_index(first)] if first.ndim == 2 else _to_index(first)
        self.input_view.value = _png(_resize_nearest(rgb, *size))
        self.input_title.value = f"<b>input</b> {h}×{w}"

        num_classes = fm.logits.shape[0]
        if num_classes == 1:        # one logit: a sigmoid gives the probability
            pred, what = fm.logits[0].sigmoid().numpy(), "P(foreground)"
            rgb = self._gray[_to_index(pred, 0.0, 1.0)]
        elif num_classes == 2:      # the paper's two classes: show P(class 1), the cells
            pred, what = fm.logits.softmax(0)[1].numpy(), "P(class 1)"
            rgb = self._gray[_to_index(pred, 0.0, 1.0)]
        else:                       # several classes: the predicted class
            pred, what = fm.logits.argmax(0).numpy(), "predicted class"
            rgb = (matplotlib.colormaps["tab10"](pred % 10)[..., :3] * 255).astype(np.uint8)
        self.pred_view.value = _png(_resize_nearest(rgb, *size))
        self.pred_title.value = f"<b>prediction</b> {what}"

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
        layer = next(l for l in self.layers if l.name == self.layer_dropdown.value)
        fmap = self.maps().maps[layer.name]                   # (C, h, w)
        c = self.channel_slider.value
        channel = fmap[c].numpy()                             # (h, w)
        size = _display_size(*channel.shape, self.DISPLAY)
        fm = self.maps()
        box = image_box(channel.shape, fm.input.shape[-2:], fm.logits.shape[-2:], context_margin(self.model), layer.level)
        picture = draw_box(_resize_nearest(self._lut[_to_index(channel)], *size), box, size[0] // channel.shape[0])
        self.fmap_view.value = _png(picture)
        self.fmap_title.value = f"<b>{layer.name}</b>, channel {c}"

        C, h, w = fmap.shape
        active = float((channel > 0).mean())
        rows = [("layer", layer.label), ("shape (C, H, W)", f"({C}, {h}, {w})"),
                ("resolution", "full" if layer.level == 0 else f"1/{2**layer.level} of level 0"),
                (f"channel {c}: min / mean / max",
                 f"{_format(channel.min())} / {_format(channel.mean())} / {_format(channel.max())}"),
                (f"channel {c}: active (> 0)", f"{active:.0%}"),
                ("white frame", "where the image lies; outside it the map covers mirrored context")]
        self.stats.value = "<table>" + "".join(f"<tr><td>{k}</td><td><b>{v}</b></td></tr>" for k, v in rows) + "</table>"

        grid, tile, cols = self._grid(layer.name)
        n = min(C, self.max_grid_channels)
        if c < n:   # frame the chosen channel in red
            grid = grid.copy()
            top, left = (c // cols) * (tile + 2), (c % cols) * (tile + 2)
            grid[top : top + tile + 2, left : left + tile + 2][[0, 1, -2, -1], :] = (220, 30, 30)
            grid[top : top + tile + 2, left : left + tile + 2][:, [0, 1, -2, -1]] = (220, 30, 30)
        self.grid_view.value = _png(grid)
        shown = f"all {C} channels" if C <= n else f"the first {n} of {C} channels"
        self.grid_title.value = f"<b>{layer.name}</b>: {shown}, each on its own colour scale"

    def _grid(self, name: str) -> tuple[np.ndarray, int, int]:
        """All channels of a layer as one picture: (rows * (tile + 2), cols * (tile + 2), 3) uint8."""
        key = (self.image_slider.value, name)
        if key not in self._grid_cache:
            fmap = self.maps().maps[name][: self.max_grid_channels].numpy()   # (C, h, w)
            n = fmap.shape[0]
            cols = min(n, 16)
            rows = math.ceil(n / cols)
            tile = min(96, self.GRID_WIDTH // cols - 2)
            grid = np.full((rows * (tile + 2), cols * (tile + 2), 3), 255, np.uint8)   # white gaps
            for i, channel in enumerate(fmap):
                top, left = (i // cols) * (tile + 2) + 1, (i % cols) * (tile + 2) + 1
                grid[top : top + tile, left : left + tile] = _resize_nearest(self._lut[_to_index(channel)], tile, tile)
            self._grid_cache[key] = (grid, tile, cols)
        return self._grid_cache[key]
