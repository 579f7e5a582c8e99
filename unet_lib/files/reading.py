"""Reading your own files: images as (C, H, W), masks as (H, W) labels, and labels written back.

Every pair of a folder is read and checked once (``read_pairs``); label images are written
back with ``write_labels``.

C, H, W = channels, height, width. The formats and the rules (the channel axis, the mask kinds)
are described in ``unet_lib.files``.
"""

import io
import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import imageio.v3 as iio
import numpy as np
import tifffile
from scipy import ndimage

from ..atomic import atomic_write
from ..data import percentile_normalize
from ..validate import check_array, check_int, check_labels, describe
from .normalization import CLIP_LIMIT, Clipping

__all__ = ["read_image", "normalize_image", "read_mask", "write_labels", "read_pairs", "summarize", "IMAGE_SUFFIXES",
           "MASK_SUFFIXES"]

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = TIFF_SUFFIXES + (".png", ".jpg", ".jpeg")
MASK_SUFFIXES = TIFF_SUFFIXES + (".png",)          # not JPEG: lossy compression changes label values
MAX_CHANNELS = 4                                   # the layout rule's "a few channels"
_LISTED = 10                                       # file names listed in an error, at most

MaskKind = Literal["instances", "classes"]


def _names(items: Sequence, limit: int = _LISTED) -> str:
    """'a.png, b.png' or 'a.png, b.png, ... (12 in all)'."""
    items = [str(i) for i in items]
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown}, ... ({len(items)} in all)"


def _as_path(name: str, value) -> Path:
    if not isinstance(value, (str, Path)):
        raise TypeError(f"{name} must be a path (str or pathlib.Path), got {describe(value)}")
    return Path(value)


# -- one file ------------------------------------------------------------------------------

def _read_array(path: Path, what: str) -> np.ndarray:
    """The array stored in ``path`` (TIFF, PNG or JPEG), or a ValueError that names the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist (or is not a file)")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"{what} {path} has the extension {path.suffix!r}, which is not supported; "
                         f"use one of {', '.join(IMAGE_SUFFIXES)} (convert it, e.g. with Fiji or imageio)")
    reader = "tifffile" if suffix in TIFF_SUFFIXES else "imageio (pillow)"
    try:
        # pillow named: otherwise imageio tries every plugin it has (DICOM, video, ...) on a damaged file
        array = tifffile.imread(path) if suffix in TIFF_SUFFIXES else iio.imread(path, plugin="pillow")
    except Exception as error:   # each reader raises its own kinds (OSError, ValueError, TiffFileError, ...)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{what} {path} could not be read by {reader} ({reason}); the file is damaged, "
                         f"truncated or not really a {suffix[1:].upper()} file: export it again") from None
    array = np.asarray(array)
    if array.size == 0 or array.ndim < 2:
        raise ValueError(f"{what} {path} holds no image (the reader gave shape {array.shape}); the file is damaged "
                         f"or not really a {suffix[1:].upper()} file: export it again")
    if array.dtype.kind not in "buif":
        raise ValueError(f"{what} {path} has pixels of dtype {array.dtype}; use integer or float pixels")
    # ImageJ and some microscopes store (1, 1, H, W) or (1, H, W, 1): drop size-1 axes beyond three
    while array.ndim > 3 and 1 in array.shape:
        array = array.squeeze(array.shape.index(1))
    return array


def _layout(array: np.ndarray, path: Path, channel_axis: int | None) -> np.ndarray:
    """(H, W), (H, W, C) or (C, H, W) -> (C, H, W), by the module's rule or ``channel_axis``."""
    if array.ndim == 2:
        return array[None]                                        # (1, H, W)
    if array.ndim != 3:
        raise ValueError(f"image {path} has shape {array.shape}: {array.ndim}-D; an image must be (H, W), "
                         f"(H, W, C) or (C, H, W) (a z-stack or time series is not a 2-D image: save one plane "
                         f"per file)")
    if channel_axis is None:
        if array.shape[-1] <= MAX_CHANNELS:
            channel_axis = -1
        elif array.shape[0] <= MAX_CHANNELS:
            channel_axis = 0
        else:
            raise ValueError(f"image {path} has shape {array.shape}: neither the first nor the last axis has "
                             f"<= {MAX_CHANNELS} entries, so it is not (H, W, C) or (C, H, W) with a few channels "
                             f"(a z-stack or time series?); save one 2-D plane per file, or pass channel_axis=0 "
                             f"(or -1) if it really has {array.shape[0]} (or {array.shape[-1]}) channels")
    return np.moveaxis(array, channel_axis, 0)                    # (C, H, W)


def read_image(path: str | Path, channel_axis: int | None = None) -> np.ndarray:
    """The image in ``path`` as a (C, H, W) array in its stored dtype (not normalised).

    TIFF is read with ``tifffile``, PNG and JPEG with ``imageio.v3``. The channel axis follows the
    module's rule (a last axis of <= 4 entries is channels, else a first axis of <= 4 entries)
    unless ``channel_axis`` (0, 2 or -1 of the stored 3-D array) is given. A fully opaque alpha
    channel (the 4th of an RGBA PNG, at the dtype's maximum everywhere) is dropped.
    """
    path = _as_path("path", path)
    if channel_axis is not None:
        channel_axis = check_int("channel_axis", channel_axis, min=-3, max=2,
                                 hint="the axis of the stored 3-D array that holds channels: 0 or -1")
    array = _read_array(path, "image")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    image = _layout(array, path, channel_axis)                    # (C, H, W)
    if (image.shape[0] == 4 and path.suffix.lower() == ".png" and image.dtype.kind == "u"
            and np.all(image[3] == np.iinfo(image.dtype).max)):
        image = image[:3]                                         # (3, H, W): an opaque alpha says nothing
    return image


def normalize_image(image, low: float = 1.0, high: float = 99.8, name: str = "image") -> np.ndarray:
    """Each channel of a (C, H, W) image mapped to [0, 1] by its own ``low`` and ``high``
    percentiles (``unet_lib.data.percentile_normalize``). Returns float32 (C, H, W)."""
    image = check_array(name, image, 3, dims="a 3-D (C, H, W) image", kind="real",
                        hint="replace them first, e.g. np.nan_to_num(image)")
    out = np.empty(image.shape, np.float32)
    for c, channel in enumerate(image):
        try:
            out[c] = percentile_normalize(channel, low, high)
        except ValueError as error:
            raise ValueError(f"{name}, channel {c} of {image.shape[0]}: {error}") from None
    return out


def read_mask(path: str | Path) -> np.ndarray:
    """The label image in ``path`` as int64 (H, W): 0 = background, positive ids or classes.

    PNG or TIFF, any integer dtype; a float mask only if every value is a whole number; an RGB(A)
    mask only if its colour channels are equal (a gray mask saved as RGB). Refuses JPEG (lossy),
    colour masks, negative values and NaN, naming the file and the fix.
    """
    path = _as_path("path", path)
    if path.suffix.lower() in IMAGE_SUFFIXES and path.suffix.lower() not in MASK_SUFFIXES:
        raise ValueError(f"mask {path} is a JPEG: its lossy compression changes label values along object edges "
                         f"(a 0/1 mask comes back with 2, 3, 254, ...); save masks as PNG or TIFF")
    array = _read_array(path, "mask")
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        colour = array[..., :3]                                   # (H, W, 3)
        if not (np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2])):
            raise ValueError(f"mask {path} is a colour (RGB) image of shape {array.shape}: a mask must hold one label "
                             f"per pixel, not a colour. Map each colour to its class or object id and save a 2-D "
                             f"(H, W) image, e.g. ids = np.unique(rgb.reshape(-1, 3), axis=0, "
                             f"return_inverse=True)[1].reshape(H, W), with the background colour as 0")
        array = colour[..., 0]                                    # (H, W): a gray mask saved as RGB
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"mask {path} has shape {array.shape}; a mask must be one 2-D (H, W) label image")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)):
            raise ValueError(f"mask {path} has {int((~np.isfinite(array)).sum())} NaN or infinite values; "
                             f"a mask holds whole-number labels")
        fractional = array != np.round(array)
        if fractional.any():
            example = array[fractional].flat[0]
            raise ValueError(f"mask {path} is stored as {array.dtype} with {int(fractional.sum())} values that are "
                             f"not whole numbers (e.g. {example:g}): labels must be integers. Was it resized with "
                             f"interpolation (resize masks with nearest-neighbour, order=0) or is it a probability "
                             f"map (threshold it)? Save it with an integer dtype")
        if array.size and array.max() > 2**53:
            raise ValueError(f"mask {path} is stored as {array.dtype} with values up to {array.max():g}, beyond the "
                             f"whole numbers a float holds exactly; save it with an integer dtype")
    if array.size and array.min() < 0:
        raise ValueError(f"mask {path} has negative values (min {array.min()}); use 0 for background and "
                         f"positive ids or classes 0..K-1")
    labels = check_labels(f"mask {path}", array.astype(np.int64) if array.dtype.kind == "f" else array)
    return labels.astype(np.int64)


def write_labels(path: str | Path, labels) -> Path:
    """Write an (H, W) label image (0 = background) as a TIFF, atomically (``atomic_write``: a
    crash never leaves half a file). uint16 when the ids fit (Fiji and napari open it), else
    uint32 or uint64. Returns the path. ``read_mask`` reads it back."""
    path = _as_path("path", path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        raise ValueError(f"path {path} must end in .tif or .tiff: labels are written as TIFF "
                         f"(PNG and JPEG cannot hold more than 65535 ids; JPEG would change them)")
    labels = check_labels("labels", labels)
    top = int(labels.max())
    dtype = np.uint16 if top <= np.iinfo(np.uint16).max else np.uint32 if top <= np.iinfo(np.uint32).max else np.uint64
    # encoded in memory first: tifffile wants a named file, and atomic_write's temporary file has none
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.ascontiguousarray(labels.astype(dtype)))
    return atomic_write(path, buffer.getvalue())


# -- every pair of a folder, once -------------------------------------------------------------

def _compact(labels: np.ndarray) -> np.ndarray:
    """``labels`` in the smallest of int32 and int64 that holds them: memory, not meaning."""
    return labels.astype(np.int32) if labels.size == 0 or labels.max() <= np.iinfo(np.int32).max else labels



class Pairs(NamedTuple):
    """What ``read_pairs`` read, by stem."""
    images: dict[str, np.ndarray]       # float32 (C, H, W), each channel normalised to [0, 1]
    labels: dict[str, np.ndarray]       # int32 or int64 (H, W): instances or classes
    dtypes: dict[str, str]              # each image's stored dtype, e.g. "uint16"
    binary_masks: list[str]             # stems whose 0/1 masks were labelled into components
    in_channels: int                    # the same for every image
    clipping: dict                      # the percentiles used and the foreground they clip (keeping_percentiles)


def read_pairs(paths: dict[str, tuple[Path, Path]], mask_kind: MaskKind, num_classes: int, channel_axis: int | None,
               low: float, high: float, keep_objects: bool = False) -> Pairs:
    """Read every (image, mask) pair of ``paths`` ({stem: (image_path, mask_path)}), check it and
    normalise the image: what ``ImageFolder`` keeps in memory. Refuses a mask of another size than
    its image, a binary mask saved white on black, images with different numbers of channels and
    (class maps) labels of ``num_classes`` or more, naming the files; warns about binary masks,
    which are labelled into connected components (4-connectivity) when ``mask_kind`` is
    "instances". Its warning points at the caller of the caller (``ImageFolder(...)``).
    ``clipping`` says which share of the masks' foreground the percentiles clip; with
    ``keep_objects`` they are widened until it is at most ``CLIP_LIMIT`` (``keeping_percentiles``)."""
    images, labels_of, dtypes, binary_masks = {}, {}, {}, []
    clipping = Clipping(low, high)
    for stem, (image_path, mask_path) in paths.items():
        raw = read_image(image_path, channel_axis)                        # (C, H, W) stored dtype
        labels = read_mask(mask_path)                                     # (H, W) int64
        if raw.shape[1:] != labels.shape:
            hint = ("" if channel_axis is not None or raw.shape[0] == 1 else
                    f" (the image was read as {raw.shape[0]} channels of {raw.shape[1]}x{raw.shape[2]}; if "
                    f"that is wrong, pass channel_axis)")
            raise ValueError(f"image {image_path} is {raw.shape[1]}x{raw.shape[2]} (H x W) but its mask "
                             f"{mask_path} is {labels.shape[0]}x{labels.shape[1]}{hint}; a mask must label "
                             f"every pixel of its image: was one of them cropped, resized or rotated?")
        _check_white_on_black(mask_path, labels, mask_kind, num_classes)
        if mask_kind == "instances" and labels.max() == 1:
            labels = ndimage.label(labels)[0]                             # 4-connectivity components
            binary_masks.append(stem)
        clipping.add(raw, labels)
        # normalised now, or (keep_objects) once the percentiles are chosen from every mask
        images[stem] = raw if keep_objects else normalize_image(raw, low, high, name=f"image {image_path}")
        labels_of[stem] = _compact(labels)
        dtypes[stem] = str(raw.dtype)
    folder = next(iter(paths.values()))[0].parent
    in_channels = _same_channels(images, paths, folder)
    chosen = clipping.choose(CLIP_LIMIT if keep_objects else 1.0)
    if keep_objects:
        images = {stem: normalize_image(raw, chosen["low"], chosen["high"], name=f"image {paths[stem][0]}")
                  for stem, raw in images.items()}
    if mask_kind == "classes":
        _check_class_range(labels_of, paths, num_classes)
    if binary_masks:
        n, names = len(binary_masks), _names([paths[s][1].name for s in binary_masks], 5)
        holds = "masks in {} hold" if n > 1 else "mask in {} holds"
        warnings.warn(f"{n} {holds.format(paths[binary_masks[0]][1].parent)} only 0 and 1 ({names}): "
                      f"read as binary masks, each connected component an object. Touching objects are one "
                      f"component in a binary mask and cannot be told apart (the separation borders of the "
                      f"paper need them apart): save instance masks with a distinct id per object if you can",
                      stacklevel=3)
    return Pairs(images, labels_of, dtypes, binary_masks, in_channels, chosen)


def summarize(labels: dict[str, np.ndarray], dtypes: dict[str, str], stems: Sequence[str], mask_kind: MaskKind,
              num_classes: int) -> dict:
    """What the pairs of ``stems`` hold (``ImageFolder.summary`` says which keys): the number of
    images, their sizes and dtypes, and the objects per image (instances) or each class's share of
    the pixels (class maps)."""
    sizes: dict[str, int] = defaultdict(int)
    dtype_counts: dict[str, int] = defaultdict(int)
    for stem in stems:
        h, w = labels[stem].shape
        sizes[f"{h}x{w}"] += 1
        dtype_counts[dtypes[stem]] += 1
    info = dict(images=len(stems), sizes=dict(sizes), dtypes=dict(dtype_counts), mask_kind=mask_kind,
                num_classes=num_classes)
    if mask_kind == "instances":
        counts = [int(np.count_nonzero(np.unique(labels[s]))) for s in stems]
        info.update(objects=sum(counts), objects_per_image=(min(counts), max(counts)))
    else:
        totals = sum(np.bincount(labels[s].ravel(), minlength=num_classes) for s in stems)
        info["class_fractions"] = [round(float(c) / float(totals.sum()), 4) for c in totals]
    return info


def _same_channels(images: dict[str, np.ndarray], paths: dict[str, tuple[Path, Path]], folder: Path) -> int:
    """The number of channels that every image has, or a ValueError listing the images by count."""
    channels = defaultdict(list)
    for stem, image in images.items():
        channels[image.shape[0]].append(paths[stem][0].name)
    if len(channels) > 1:
        listed = "; ".join(f"{c} channel{'s' if c > 1 else ''}: {_names(names, 5)}"
                           for c, names in sorted(channels.items()))
        raise ValueError(f"the images in {folder} have different numbers of channels ({listed}); a "
                         f"network takes a fixed number: convert them to one layout (e.g. gray = rgb.mean(-1)), "
                         f"or put them in separate folders. If a channel axis was guessed wrong, pass channel_axis")
    return next(iter(channels))


def _check_class_range(labels: dict[str, np.ndarray], paths: dict[str, tuple[Path, Path]], num_classes: int) -> None:
    """Refuse class maps with values of ``num_classes`` or more, naming the masks and their maxima."""
    beyond = {stem: int(mask.max()) for stem, mask in labels.items() if mask.max() >= num_classes}
    if beyond:
        top = max(beyond.values())
        listed = _names([f"{paths[s][1].name} (max {v})" for s, v in beyond.items()])
        holds = "masks hold" if len(beyond) > 1 else "mask holds"
        raise ValueError(f"num_classes={num_classes} (masks hold 0..{num_classes - 1}), but "
                         f"{len(beyond)} {holds} larger values: {listed}; "
                         f"pass num_classes={top + 1} if there are that many classes, or fix those masks")


def _check_white_on_black(path: Path, labels: np.ndarray, mask_kind: MaskKind, num_classes: int) -> None:
    """Refuse a binary mask saved as 0 and 255 (or 65535), the classic cause of a model that
    predicts all background: as instances it is one object, as classes it is class 255."""
    top = int(labels.max())
    if top not in (255, 65535) or (mask_kind == "classes" and num_classes > top):
        return
    if np.any((labels != 0) & (labels != top)):
        return
    if mask_kind == "classes":
        read_as, fix = f"class {top}", f"save mask // {top} (values 0, 1) with num_classes=2"
    else:
        read_as = f"one object with id {top}"
        fix = (f"label its connected components and save those, e.g. scipy.ndimage.label(mask // {top})[0], "
               f"or save mask // {top} (values 0, 1: read as binary and labelled for you)")
    raise ValueError(f"mask {path} holds only 0 and {top}: a binary mask saved white on black. Read as "
                     f"{mask_kind} it is {read_as} (the classic cause of a model that predicts all black); "
                     f"convert it: {fix}")
