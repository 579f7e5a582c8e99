"""Outlines drawn into an image: the predicted objects' (and the true ones') on the image's own pixels.

A biologist looks at outlines on the image before reading a number: ``write_overlay`` writes them
as ``<stem>_overlay.png`` beside a prediction.
"""

import io
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from ..atomic import atomic_write, check_new_file
from ..data import percentile_normalize
from ..validate import check_labels

__all__ = ["outlines", "draw_outlines", "write_overlay", "OUTLINE_COLOURS"]

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
    path = check_new_file(path, ".png", "an overlay is a picture, and PNG keeps every outline pixel exact", overwrite,
                          example="overlay.png")
    buffer = io.BytesIO()
    iio.imwrite(buffer, draw_outlines(image, pred, instances), extension=".png")
    return atomic_write(path, buffer.getvalue())
