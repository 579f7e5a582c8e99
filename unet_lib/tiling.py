"""Overlap-tile inference: segment an image of any size with a fixed-size network (Sec. 1, Fig. 2).

B, C, H, W = batch, channels, height, width. K = num_classes.

> "This strategy allows the seamless segmentation of arbitrarily large images by an
> overlap-tile strategy (see Figure 2). To predict the pixels in the border region of the
> image, the missing context is extrapolated by mirroring the input image. This tiling
> strategy is important to apply the network to large images, since otherwise the resolution
> would be limited by the GPU memory." (Sec. 1)

A valid-padding U-Net's output is the centre of its input: ``margin`` pixels on each side
only provide context. So to predict an H x W region we feed it with ``margin`` more pixels on
every side, taken from the neighbouring tiles inside the image and mirrored at its borders.

Seamless means exact here: tiles start at multiples of 2**depth, so every max-pool sees the
same 2x2 windows as it would on the whole image, and the stitched prediction equals the
prediction of the whole mirror-padded image up to float rounding.
"""

import contextlib
import functools
from collections.abc import Iterator

import numpy as np
import torch

from .model import UNet, _output_side, _valid_sizes_rule
from .validate import check_finite, check_instance, check_int, check_parameters_finite, check_spatial, check_tensor

__all__ = ["mirror_pad", "context_margin", "padded_forward", "predict_tiled", "predict_labels", "predict_naive_tiles",
           "fastest_tile_size"]


def _reflect_index(n: int, before: int, after: int, device=None) -> torch.Tensor:
    """Indices into a length-n axis that mirror it by ``before`` and ``after`` pixels; the
    edge pixel is not repeated (… 2 1 | 0 1 2 … n-1 | n-2 …), and pads longer than the
    axis keep reflecting back and forth."""
    i = torch.arange(-before, n + after, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = i.remainder(period)
    return torch.where(i < n, i, period - i)


def mirror_pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Mirror the last two dimensions of ``x``: (..., H, W) -> (..., H + top + bottom, W + left + right).

    Like ``F.pad(mode="reflect")``, but any pad width works, also wider than the image.
    """
    check_tensor("x", x, dims="(..., H, W)", nonempty=False)
    check_spatial("x", x)
    for name, value in (("top", top), ("bottom", bottom), ("left", left), ("right", right)):
        check_int(name, value, hint=f"pad widths are whole pixels, got top={top}, bottom={bottom}, left={left}, "
                                    f"right={right}")
    if min(top, bottom, left, right) < 0:
        raise ValueError(f"pad widths must be >= 0, got top={top}, bottom={bottom}, left={left}, right={right}")
    h, w = x.shape[-2:]
    x = x.index_select(-2, _reflect_index(h, top, bottom, x.device))
    return x.index_select(-1, _reflect_index(w, left, right, x.device))


def context_margin(model: UNet) -> int:
    """Pixels of context a valid-padding ``model`` needs on each side of what it predicts:
    (input size - output size) / 2, e.g. 92 for the paper's net (572 -> 388).

    For a ``padding="same"`` model it is how far one output pixel can see: the valid margin
    plus 2**depth - 1, because a pixel's place within the 2x2 pooling windows shifts its view by
    up to that much (measured with ``receptive_field``). Output pixels that far from a tile's
    border never see its zero padding, so the overlap-tile strategy is seamless for them too.
    """
    if not isinstance(model, UNet):
        raise TypeError(f"expected a unet_lib.UNet (it knows its size arithmetic), got {type(model).__name__}")
    margin = _valid_margin(model.depth)
    return margin if model.padding == "valid" else margin + 2**model.depth - 1


@functools.lru_cache(maxsize=None)
def _valid_margin(depth: int) -> int:
    """(n - output_size(n)) / 2 of a valid-padding net of this depth, from the model's own size
    arithmetic (no network is built: this runs on every training step)."""
    n, _ = _valid_sizes_rule(depth, "valid")        # the smallest valid input length
    return (n - _output_side(n, depth, "valid")) // 2


def _input_for(model: UNet, out: int) -> tuple[int, int]:
    """The smallest valid input side whose prediction covers ``out`` pixels, and its output side."""
    step = 2**model.depth
    if model.padding == "same":
        n = -(-(out + 2 * context_margin(model)) // step) * step   # round up to a multiple of 2**depth
        return n, n - 2 * context_margin(model)
    n = model.min_input_size()
    while model.output_size(n) < out:
        n += step
    return n, model.output_size(n)


def padded_forward(model: UNet, x: torch.Tensor) -> torch.Tensor:
    """Logits for every pixel of ``x``: (B, C, H, W) -> (B, K, H, W), any H and W.

    ``x`` is mirror-padded by the model's context margin (more at the bottom and right where a
    valid input size needs it) and the output is cropped to H x W. This is how training and
    evaluation feed whole toy images to a valid-padding net; gradients flow through. ``x`` is
    moved to the model's device; the logits stay there.
    """
    check_instance("model", model, UNet, "a unet_lib.UNet")
    check_tensor("x", x, dims="(B, C, H, W)", nonempty=False)
    if x.ndim != 4:
        raise ValueError(f"padded_forward expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    check_spatial("x", x)
    check_finite("x", x, "a NaN pixel spreads to every output pixel it is context for; replace them first")
    x = x.to(next(model.parameters()).device)
    h, w = x.shape[-2:]
    m = context_margin(model)
    (in_h, out_h), (in_w, out_w) = _input_for(model, h), _input_for(model, w)
    offset = m if model.padding == "valid" else 0   # where the output starts in input coordinates
    x = mirror_pad(x, m, in_h - h - m, m, in_w - w - m)       # (B, C, in_h, in_w)
    logits = model(x)                                          # (B, K, out_h, out_w) or (B, K, in_h, in_w)
    top = m - offset
    return logits[..., top : top + h, top : top + w]           # (B, K, H, W)


def _check_predict_args(model: UNet, image) -> None:
    """A UNet with finite weights and an image (numpy or torch) that is not empty and finite:
    otherwise the "probabilities" are NaN and argmax says background everywhere."""
    check_instance("model", model, UNet, "a unet_lib.UNet")
    check_parameters_finite("model", model)
    check_instance("image", image, (torch.Tensor, np.ndarray), "a numpy array or torch tensor (H, W) or (C, H, W)")
    check_spatial("image", image)
    check_finite("image", image, "replace them first, e.g. np.nan_to_num(image)")


def _as_chw(model: UNet, image) -> torch.Tensor:
    image = torch.as_tensor(image)
    if image.ndim == 2:
        image = image[None]                                    # (H, W) -> (1, H, W)
    if image.ndim != 3:
        raise ValueError(f"image must be (H, W) or (C, H, W), got shape {tuple(image.shape)}")
    if image.shape[0] != model.in_channels:
        raise ValueError(f"the model takes {model.in_channels} channel(s), the image has {image.shape[0]} "
                         f"(shape {tuple(image.shape)}); images are (C, H, W), channels first")
    if not image.is_floating_point():
        raise TypeError(f"image must be floating point, got {image.dtype}; images in 0..255? use image.float() / 255")
    return image


def _tile_geometry(model: UNet, tile_size: int | None, h: int, w: int) -> tuple[int, int, int]:
    """(tile input side, output side, stride) for overlap-tile inference."""
    step = 2**model.depth
    if tile_size is None:
        # output tiles of about 128 pixels (less for a smaller image): a few MB of activations
        # for the course model, and little recomputed overlap
        tile_size, _ = _input_for(model, min(max(h, w), 128))
    if not isinstance(tile_size, int) or isinstance(tile_size, bool):
        raise TypeError(f"tile_size must be an int or None, got {type(tile_size).__name__}")
    if model.padding == "valid":
        try:
            out = model.output_size(tile_size)
        except ValueError as error:   # the model's message names the nearest valid sizes
            raise ValueError(f"tile_size {tile_size}: {error}") from None
    else:
        if tile_size % step:
            raise ValueError(f"tile_size {tile_size} is not valid for depth={model.depth}, padding='same': "
                             f"it must be a multiple of {step}")
        out = tile_size - 2 * context_margin(model)
    stride = out // step * step   # a multiple of 2**depth keeps every max-pool on the whole image's grid
    if stride < step:
        smallest = _input_for(model, step)[0]
        raise ValueError(f"tile_size {tile_size} leaves {out} output pixels per tile, fewer than the "
                         f"{step} needed to step between tiles; use tile_size >= {smallest}")
    return tile_size, out, stride


@contextlib.contextmanager
def _channels_last_on_cpu(model: UNet) -> Iterator[None]:
    """On the CPU, run the model with channels_last (NHWC) convolution weights and give every
    weight its own tensor back afterwards: oneDNN's convolutions are 1.3-1.8x faster in NHWC on
    this course's CPUs (the same values up to float rounding, ~1e-6). Elsewhere a no-op.

    The very tensors the weights held are given back (same storage, strides, ``requires_grad``),
    never a copy: a copy made under ``torch.inference_mode`` is an inference tensor, and the next
    training step would fail ("Inference tensors cannot be saved for backward")."""
    weights = [p for p in model.parameters() if p.ndim == 4]
    if not weights or weights[0].device.type != "cpu":
        yield
        return
    originals = [p.data for p in weights]
    try:
        for p in weights:
            p.data = p.data.contiguous(memory_format=torch.channels_last)   # no copy if it already is
        yield
    finally:
        for p, original in zip(weights, originals):
            p.data = original


def fastest_tile_size(model: UNet, h: int, w: int, max_tile: int | None = None) -> int:
    """The input tile side for ``predict_tiled`` with which it computes the fewest input pixels
    (rows x columns x tile**2) for an h x w image: large tiles recompute less overlap (a 604 tile
    of the course model predicts 512 new pixels a side, a 220 tile 128), small ones waste less
    beyond the image's edge. ``max_tile`` (default: 700, or the smallest tile that can step if
    that is larger) bounds the memory: the course model's activations for a 700 x 700 tile take
    a few hundred MB."""
    check_instance("model", model, UNet, "a unet_lib.UNet")
    h = check_int("h", h, min=1, hint="the image height in pixels")
    w = check_int("w", w, min=1, hint="the image width in pixels")
    step = 2**model.depth
    smallest = _input_for(model, step)[0]
    if max_tile is None:
        max_tile = max(700, smallest)
    max_tile = check_int("max_tile", max_tile, min=smallest,
                         hint=f"the largest input tile side; the smallest that can step is {smallest}")
    best, best_cost = smallest, None
    for tile in range(smallest, max_tile + 1, step):      # valid sizes (or multiples of 2**depth) in steps of 2**depth
        _, _, stride = _tile_geometry(model, tile, h, w)
        cost = -(-h // stride) * -(-w // stride) * tile**2
        if best_cost is None or cost < best_cost:
            best, best_cost = tile, cost
    return best


@torch.no_grad()
def predict_tiled(model: UNet, image, tile_size: int | None = None) -> torch.Tensor:
    """Class probabilities for an image of any size by the paper's overlap-tile strategy.

    ``image``: (H, W) or (C, H, W) float, numpy or torch. Returns (K, H, W) float32 softmax
    probabilities on the CPU; ``probs.argmax(0)`` is the predicted label map.

    ``tile_size`` is the side of the input tiles: a valid input size of the model
    (``model.valid_input_sizes()``), or a multiple of 2**depth for a ``padding="same"`` model;
    ``None`` picks one whose output tiles are about 128 pixels (``fastest_tile_size`` picks the
    one that computes the fewest pixels, as the prediction command line does). Neighbouring input tiles
    overlap by twice the context margin; their outputs tile the image without gaps, and the
    image is mirrored at its borders. The model runs in eval mode (BatchNorm uses its running
    statistics) and is left exactly as it was found: its mode, and its parameters as the same
    ordinary tensors (layout, ``requires_grad``), so training can go on after a prediction.
    """
    _check_predict_args(model, image)
    image = _as_chw(model, image)
    _, h, w = image.shape
    tile, out, stride = _tile_geometry(model, tile_size, h, w)
    m = context_margin(model)
    offset = m if model.padding == "valid" else 0   # where a tile's output starts in input coordinates
    n_rows, n_cols = -(-h // stride), -(-w // stride)
    # the last tile reaches (n - 1) * stride + tile input pixels into the padded image
    pad_bottom = (n_rows - 1) * stride + tile - h - m
    pad_right = (n_cols - 1) * stride + tile - w - m
    param = next(model.parameters())
    padded = mirror_pad(image.to(param.device, param.dtype), m, pad_bottom, m, pad_right)   # (C, H', W')
    probs = torch.empty(model.num_classes, h, w)    # outside inference mode: an ordinary tensor
    was_training = model.training
    model.eval()
    try:
        # inference_mode: no autograd bookkeeping at all (no_grad still tracks versions); entered
        # after the layout change, so that the weights never become inference tensors
        with _channels_last_on_cpu(model), torch.inference_mode():
            for r in range(n_rows):
                for c in range(n_cols):
                    y, x = r * stride, c * stride  # tile origin: image pixel (y, x) <-> padded (y + m, x + m)
                    hh, ww = min(stride, h - y), min(stride, w - x)
                    tile_in = padded[None, :, y : y + tile, x : x + tile]              # (1, C, tile, tile)
                    logits = model(tile_in)                        # (1, K, out, out) or (1, K, tile, tile)
                    top = m - offset                                                   # starts at image pixel (y, x)
                    tile_probs = logits[0, :, top : top + hh, top : top + ww].softmax(0)   # (K, hh, ww)
                    probs[:, y : y + hh, x : x + ww] = tile_probs.float().cpu()
    finally:
        model.train(was_training)
    return probs


def predict_labels(model: UNet, image, tile_size: int | None = None) -> torch.Tensor:
    """The predicted label map of one image: (H, W) or (C, H, W) float, numpy or torch, on any
    device -> (H, W) int64 on the CPU, the most probable class of every pixel.

    The one way the course turns an image into a prediction: ``predict_tiled(model, image,
    tile_size).argmax(0)``, so it runs on the model's device, in eval mode, by overlap-tile, for
    an image of any size. Predicted cells: ``label_instances(predict_labels(model, image))``.
    """
    return predict_tiled(model, image, tile_size).argmax(0)


@torch.no_grad()
def predict_naive_tiles(model: UNet, image, tile_size: int) -> torch.Tensor:
    """The naive alternative, for comparison: cut the image into non-overlapping
    ``tile_size`` x ``tile_size`` tiles and predict each one on its own, mirroring each tile at
    its own borders. Returns (K, H, W) probabilities. The tiles' borders see mirrored instead
    of real context, which shows as seams in the prediction.
    """
    _check_predict_args(model, image)
    image = _as_chw(model, image)
    if not isinstance(tile_size, int) or isinstance(tile_size, bool) or tile_size < 1:
        raise ValueError(f"tile_size must be a positive int, got {tile_size!r}")
    _, h, w = image.shape
    param = next(model.parameters())
    probs = torch.empty(model.num_classes, h, w)
    was_training = model.training
    model.eval()
    try:
        for y in range(0, h, tile_size):
            for x in range(0, w, tile_size):
                tile_in = image[None, :, y : y + tile_size, x : x + tile_size].to(param.device, param.dtype)
                probs[:, y : y + tile_size, x : x + tile_size] = padded_forward(model, tile_in).softmax(1)[0].float().cpu()
    finally:
        model.train(was_training)
    return probs

