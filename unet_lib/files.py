"""Your own images: a folder of images and a folder of masks, paired by file name.

C, H, W = channels, height, width. K = num_classes.

``images/cell_01.tif`` pairs with ``masks/cell_01.png``: the stem (the name without its extension)
is the key, the formats may differ. ``ImageFolder`` reads every pair once, checks it, keeps it in
memory and gives the same sample dict as ``unet_lib.data.ToyCells``. With ``tile_size`` it says
``draws_on_access``, so ``fit`` asks it for new tiles every epoch instead of computing each sample
once; ``evaluate`` scores whole images of any sizes. ``fit``'s augmentation (``Augmented``) moves
every channel alike, and warps class maps with the image (nearest neighbour) and rebalances them.

Images
------
TIFF (``.tif``, ``.tiff``; 8-, 16-bit, float; read with ``tifffile``), PNG and JPEG (``.png``,
``.jpg``, ``.jpeg``; 8- or 16-bit gray, 8-bit colour; read with ``imageio.v3`` and its pillow
plugin; save 16-bit colour as TIFF). Grayscale, RGB or more channels.
The channel axis of a 3-D array is decided by one rule, unless ``channel_axis`` says otherwise:

* (H, W): one channel;
* (H, W, C) if the last axis has <= 4 entries (RGB and RGBA files, most microscope exports);
* else (C, H, W) if the first axis has <= 4 entries (multi-page TIFFs, ImageJ stacks);
* else refused: a stack with more than 4 planes is a z-stack or a time series, not a 2-D image.

Size-1 axes beyond three are dropped ((1, 1, H, W) from ImageJ is (H, W)). An alpha channel that
is fully opaque everywhere carries nothing and is dropped. Each channel of each image is mapped to
[0, 1] by its own ``low`` and ``high`` percentiles (``unet_lib.data.percentile_normalize``), so 8-,
16-bit and float images can be mixed; every image must have the same number of channels.

Masks
-----
One label per pixel, any integer dtype, PNG or TIFF (JPEG is refused: its lossy compression
changes label values along object edges). A float mask is accepted when every value is a whole
number (some tools save labels as float32); a value such as 0.5 is refused (a probability map, or
a mask resized with interpolation).

* ``mask_kind="instances"`` (the default): 0 = background, a distinct positive id per object. The
  targets are the paper's: the borders between touching objects become background and the weight
  map is Eq. 2 (``unet_lib.data.targets_from_instances`` with ``w0``, ``sigma``); K = 2. A binary
  mask (values 0 and 1 only) is labelled into connected components (4-connectivity, as
  ``unet_lib.metrics.label_instances``), with a warning: touching objects in a binary mask are one
  component, and cannot be told apart, which is what the separation borders are for.
* ``mask_kind="classes"``: a class map with values 0..K-1, ``num_classes=K`` given. There are no
  instances (``instances`` is all 0) and the weight map is w_c of Eq. 2 alone, balanced over the
  K classes (``class_balance_map``).

Training and evaluation
-----------------------
With ``tile_size`` every access draws a random tile_size x tile_size tile (access k of image i from
``np.random.default_rng([seed, i, k])``, as ``unet_lib.augment.Augmented`` counts; in DataLoader
worker w, which counts its own accesses, from ``[seed, i, k, w + 1]``); an image
smaller than a tile is mirrored up to the tile's size (``unet_lib.tiling.mirror_pad``; image and
targets alike, so they stay a matching pair). Without it each access is the whole image: that is
for evaluation. Mask and weight map are always those of the sample's own labels, as
``unet_lib.augment.Augmented`` recomputes them after a deformation: Eq. 2 on a tile sees the
objects in the tile. A whole image's targets are computed on its first access and kept.

Split by image, never by tile: tiles of one image share its cells, its staining and its
background, so tiles of a validation image are not new data for a model trained on its other
tiles. ``split_by_image`` gives two disjoint lists of stems::

    stems = list(find_pairs("images", "masks"))
    train_stems, val_stems = split_by_image(stems, val_fraction=0.2, seed=0)
    train = ImageFolder("images", "masks", tile_size=128, stems=train_stems)
    val = ImageFolder("images", "masks", stems=val_stems)

API
---
* ``ImageFolder(images_dir, masks_dir, mask_kind="instances", *, num_classes=None,
  tile_size=None, seed=0, w0=10.0, sigma=5.0, low=1.0, high=99.8, stems=None,
  channel_axis=None)``: a ``torch.utils.data.Dataset``; ``ds[i]`` is a dict with ``image``
  float32 (C, H, W) in [0, 1], ``instances`` int64 (H, W), ``mask`` int64 (H, W) in [0, K),
  ``weight_map`` float32 (H, W). Attributes ``stems``, ``in_channels``, ``num_classes``,
  ``mask_kind``, ``tile_size``, ``target_kwargs``; ``summary()`` -> dict; ``subset(stems,
  tile_size=None)`` -> ImageFolder sharing the arrays already read; ``sample(i, targets=True)``:
  ``ds[i]``, with ``targets=False`` without the targets ``Augmented`` recomputes anyway.
* ``find_pairs(images_dir, masks_dir) -> dict[stem, (image_path, mask_path)]``, sorted by stem.
* ``split_by_image(data, val_fraction=0.2, seed=0) -> (train, val)``.
* ``read_image(path, channel_axis=None) -> (C, H, W)`` as stored (dtype kept, not normalised).
* ``normalize_image(image, low=1.0, high=99.8) -> float32 (C, H, W)``, per channel.
* ``read_mask(path) -> int64 (H, W)``.
* ``class_balance_map(mask, num_classes) -> float32 (H, W)`` (from ``unet_lib.weights``, where the other w_c lives).
* ``write_labels(path, labels) -> Path``: a label image as a TIFF, written atomically.
"""

import copy
import io
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import imageio.v3 as iio
import numpy as np
import tifffile
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from .atomic import atomic_write
from .data import percentile_normalize, targets_from_instances
from .tiling import mirror_pad
from .validate import (check_array, check_bool, check_choice, check_index, check_int, check_labels, check_number,
                       check_seed, describe)
from .weights import _check_w0_sigma, class_balance_map   # re-exported: unet_lib.files.class_balance_map

__all__ = [
    "ImageFolder", "find_pairs", "split_by_image", "read_image", "normalize_image", "read_mask",
    "class_balance_map", "write_labels", "IMAGE_SUFFIXES", "MASK_SUFFIXES",
]

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


# -- reading files ---------------------------------------------------------------------------

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


# -- pairing and splitting -------------------------------------------------------------------

def _list_folder(name: str, folder: Path, suffixes: tuple[str, ...]) -> tuple[dict[str, Path], list[Path]]:
    """{stem: path} of the files with ``suffixes`` in ``folder``, and the other (ignored) files."""
    if not folder.exists():
        raise FileNotFoundError(f"{name} {folder} does not exist; give the folder that holds the "
                                f"{'images' if name == 'images_dir' else 'masks'}")
    if not folder.is_dir():
        raise NotADirectoryError(f"{name} {folder} is a file, not a folder; give the folder that holds it")
    found: dict[str, list[Path]] = defaultdict(list)
    ignored = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue                                              # .DS_Store, subfolders
        if path.suffix.lower() in suffixes:
            found[path.stem].append(path)
        else:
            ignored.append(path)
    if not found:
        other = f"; it holds {_names([p.name for p in ignored])}" if ignored else ", it is empty"
        raise ValueError(f"{name} {folder} has no {' / '.join(suffixes)} files{other}; convert the "
                         f"{'images' if name == 'images_dir' else 'masks'} to TIFF or PNG (e.g. with Fiji)")
    twins = {stem: paths for stem, paths in found.items() if len(paths) > 1}
    if twins:
        listed = "; ".join(_names([p.name for p in paths]) for paths in list(twins.values())[:_LISTED])
        raise ValueError(f"{name} {folder} has several files with the same name but different extensions ({listed}); "
                         f"files are paired by name without extension: keep one of each")
    return {stem: paths[0] for stem, paths in found.items()}, ignored


def find_pairs(images_dir: str | Path, masks_dir: str | Path) -> dict[str, tuple[Path, Path]]:
    """{stem: (image_path, mask_path)} for the files of ``images_dir`` and ``masks_dir`` that share
    a name without extension, sorted by stem. Raises ``ValueError`` listing images without a mask
    and masks without an image: every file must have its partner."""
    images_dir, masks_dir = _as_path("images_dir", images_dir), _as_path("masks_dir", masks_dir)
    images, _ = _list_folder("images_dir", images_dir, IMAGE_SUFFIXES)
    # JPEG masks are listed too, so that read_mask can say why they are refused
    masks, _ = _list_folder("masks_dir", masks_dir, IMAGE_SUFFIXES)
    lonely_images = sorted(set(images) - set(masks))
    lonely_masks = sorted(set(masks) - set(images))
    if lonely_images or lonely_masks:
        parts = []
        if lonely_images:
            parts.append(f"{len(lonely_images)} image{'s' if len(lonely_images) > 1 else ''} in {images_dir} without "
                         f"a mask in {masks_dir}: {_names([images[s].name for s in lonely_images])}")
        if lonely_masks:
            parts.append(f"{len(lonely_masks)} mask{'s' if len(lonely_masks) > 1 else ''} in {masks_dir} without "
                         f"an image in {images_dir}: {_names([masks[s].name for s in lonely_masks])}")
        hint = ("images and masks are paired by the file name without its extension (cell_01.tif pairs with "
                "cell_01.png): rename the masks to their image's name, or move the unpaired files out")
        # a common naming scheme: cell_01.tif and cell_01_mask.png
        suffixes = {m[len(i):] for m in lonely_masks for i in lonely_images if m.startswith(i) and len(m) > len(i)}
        if len(suffixes) == 1:
            hint += f" (the masks' names seem to end in {suffixes.pop()!r}: remove that from their names)"
        raise ValueError("; ".join(parts) + f". {hint}")
    return {stem: (images[stem], masks[stem]) for stem in sorted(images)}


def split_by_image(data, val_fraction: float = 0.2, seed: int = 0) -> tuple[list, list]:
    """Split whole images into a training and a validation list, never tiles of one image.

    ``data``: an ``ImageFolder`` (its stems are split), a sequence of stems or paths (split as
    given; the result does not depend on their order), or a number n of images (indices 0..n-1
    are split). Returns ``(train, val)``: disjoint, together everything, each in sorted order;
    ``round(val_fraction * n)`` images for validation but at least one in each list when
    ``val_fraction > 0``. ``val_fraction=0`` gives ``(everything, [])``. The same seed gives
    the same split.
    """
    if isinstance(data, ImageFolder):
        items = list(data.stems)
    elif isinstance(data, (int, np.integer)) and not isinstance(data, bool):
        items = list(range(check_int("data (the number of images)", data, min=0)))
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        items = list(data)
    else:
        raise TypeError(f"data must be an ImageFolder, a sequence of stems or paths, or a number of images, "
                        f"got {describe(data)}")
    val_fraction = check_number("val_fraction", val_fraction, min=0.0, max=1.0,
                                hint="the fraction of images kept for validation, e.g. 0.2")
    seed = check_seed("seed", seed)
    try:
        ordered = sorted(items, key=str)
    except TypeError:
        ordered = items
    counts = Counter(str(i) for i in ordered)
    if len(counts) != len(ordered):
        repeated = sorted(name for name, count in counts.items() if count > 1)
        raise ValueError(f"data lists the same image more than once ({_names(repeated)}); the two lists would "
                         f"share it")
    n = len(ordered)
    if val_fraction == 0:
        return ordered, []
    if val_fraction == 1 or n < 2:
        raise ValueError(f"a split needs >= 2 images and 0 <= val_fraction < 1 so that both lists hold one, got "
                         f"{n} image{'s' if n != 1 else ''} and val_fraction={val_fraction:g}; with a single image, "
                         f"validate on a second image (or train without validation: val_fraction=0)")
    n_val = min(max(round(val_fraction * n), 1), n - 1)
    chosen = set(np.random.default_rng(seed).permutation(n)[:n_val].tolist())
    train = [item for k, item in enumerate(ordered) if k not in chosen]
    val = [item for k, item in enumerate(ordered) if k in chosen]
    return train, val


# -- the dataset ------------------------------------------------------------------------------

def _compact(labels: np.ndarray) -> np.ndarray:
    """``labels`` in the smallest of int32 and int64 that holds them: memory, not meaning."""
    return labels.astype(np.int32) if labels.size == 0 or labels.max() <= np.iinfo(np.int32).max else labels


class ImageFolder(Dataset):
    """Images and masks read from two folders, paired by file name (see the module docstring for
    the formats, the channel rule and the mask kinds).

    ``ds[i]`` is a dict with ``image`` float32 (C, H, W) in [0, 1] (each channel normalised by its
    ``low`` and ``high`` percentiles), ``instances`` int64 (H, W) (0 = background; all 0 for class
    maps), ``mask`` int64 (H, W) with values in [0, ``num_classes``) and ``weight_map`` float32
    (H, W): Eq. 2 with ``w0``, ``sigma`` for instances, balanced w_c over K classes for class maps.
    With ``tile_size`` each access is a new random tile_size x tile_size tile (access k of sample i
    draws from (seed, i, k)); without it, the whole image (evaluation). ``stems`` restricts the
    dataset to those pairs (see ``split_by_image``). All files are read, checked and kept in
    memory when the dataset is built; a whole image's mask and weight map on its first access, a
    tile's on every access (from the tile's own labels, as ``Augmented`` does).
    """

    def __init__(self, images_dir: str | Path, masks_dir: str | Path, mask_kind: MaskKind = "instances", *,
                 num_classes: int | None = None, tile_size: int | None = None, seed: int = 0, w0: float = 10.0,
                 sigma: float = 5.0, low: float = 1.0, high: float = 99.8, stems: Sequence[str] | None = None,
                 channel_axis: int | None = None):
        check_choice("mask_kind", mask_kind, ("instances", "classes"))
        if mask_kind == "classes":
            if num_classes is None:
                raise ValueError("num_classes must be given for mask_kind='classes' (the number of classes K; "
                                 "masks hold 0..K-1), got None")
            num_classes = check_int("num_classes", num_classes, min=2, hint="background and at least one class")
        elif num_classes is not None and num_classes != 2:
            raise ValueError(f"num_classes must be None or 2 for mask_kind='instances' (background and object), "
                             f"got {num_classes!r}; for masks with K classes use mask_kind='classes'")
        if tile_size is not None:
            tile_size = check_int("tile_size", tile_size, min=1, hint="the side of a training tile in pixels, or None")
        seed = check_seed("seed", seed)
        w0, sigma = _check_w0_sigma(w0, sigma)
        low = check_number("low", low, min=0.0, max=100.0, hint="a percentile")
        high = check_number("high", high, min=0.0, max=100.0, hint="a percentile")
        if not low < high:
            raise ValueError(f"low must be below high, got low={low:g}, high={high:g}; the course uses 1 and 99.8")
        if channel_axis is not None:
            channel_axis = check_int("channel_axis", channel_axis, min=-3, max=2,
                                     hint="the axis of the stored 3-D arrays that holds channels: 0 or -1")
        pairs = find_pairs(images_dir, masks_dir)
        if stems is not None:
            if isinstance(stems, (str, bytes)) or not isinstance(stems, Sequence):
                raise TypeError(f"stems must be a list of file names without extension, or None, got {describe(stems)}")
            unknown = [s for s in stems if s not in pairs]
            if unknown:
                raise ValueError(f"stems names {len(unknown)} image{'s' if len(unknown) > 1 else ''} not in "
                                 f"{images_dir} with a mask in {masks_dir}: {_names(unknown)}; stems are file names "
                                 f"without extension, e.g. {_names(list(pairs)[:3])}")
            if not stems:
                raise ValueError("stems is empty; give at least one image, or None for all")
            pairs = {s: pairs[s] for s in sorted(set(stems))}
        self.images_dir, self.masks_dir = Path(images_dir), Path(masks_dir)
        self.mask_kind: MaskKind = mask_kind
        self.num_classes = 2 if mask_kind == "instances" else num_classes
        self.tile_size, self.seed = tile_size, seed
        self.low, self.high, self.channel_axis = low, high, channel_axis
        # Augmented (fit's augmentation) recomputes the weight map of instances with these; a class map's
        # with class_balance_map (it reads mask_kind and num_classes)
        self.target_kwargs = dict(w0=w0, sigma=sigma, class_weights="balanced")
        self.stems = list(pairs)
        self.paths = pairs
        self._read_all()
        self._targets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._accesses: dict[int, int] = defaultdict(int)

    # reading and checking, once
    def _read_all(self) -> None:
        self._images: dict[str, np.ndarray] = {}      # stem -> float32 (C, H, W) normalised
        self._labels: dict[str, np.ndarray] = {}      # stem -> int32/int64 (H, W): instances or classes
        self._dtypes: dict[str, str] = {}
        self.binary_masks: list[str] = []             # stems whose 0/1 masks were labelled into components
        for stem, (image_path, mask_path) in self.paths.items():
            raw = read_image(image_path, self.channel_axis)                   # (C, H, W) stored dtype
            labels = read_mask(mask_path)                                     # (H, W) int64
            if raw.shape[1:] != labels.shape:
                hint = ("" if self.channel_axis is not None or raw.shape[0] == 1 else
                        f" (the image was read as {raw.shape[0]} channels of {raw.shape[1]}x{raw.shape[2]}; if "
                        f"that is wrong, pass channel_axis)")
                raise ValueError(f"image {image_path} is {raw.shape[1]}x{raw.shape[2]} (H x W) but its mask "
                                 f"{mask_path} is {labels.shape[0]}x{labels.shape[1]}{hint}; a mask must label "
                                 f"every pixel of its image: was one of them cropped, resized or rotated?")
            self._check_white_on_black(mask_path, labels)
            if self.mask_kind == "instances" and labels.max() == 1:
                labels = ndimage.label(labels)[0]                             # 4-connectivity components
                self.binary_masks.append(stem)
            self._images[stem] = normalize_image(raw, self.low, self.high, name=f"image {image_path}")
            self._labels[stem] = _compact(labels)
            self._dtypes[stem] = str(raw.dtype)
        channels = defaultdict(list)
        for stem, image in self._images.items():
            channels[image.shape[0]].append(self.paths[stem][0].name)
        if len(channels) > 1:
            listed = "; ".join(f"{c} channel{'s' if c > 1 else ''}: {_names(names, 5)}"
                               for c, names in sorted(channels.items()))
            raise ValueError(f"the images in {self.images_dir} have different numbers of channels ({listed}); a "
                             f"network takes a fixed number: convert them to one layout (e.g. gray = rgb.mean(-1)), "
                             f"or put them in separate folders. If a channel axis was guessed wrong, pass channel_axis")
        self.in_channels = next(iter(channels))
        if self.mask_kind == "classes":
            beyond = {stem: int(labels.max()) for stem, labels in self._labels.items()
                      if labels.max() >= self.num_classes}
            if beyond:
                top = max(beyond.values())
                listed = _names([f"{self.paths[s][1].name} (max {v})" for s, v in beyond.items()])
                holds = "masks hold" if len(beyond) > 1 else "mask holds"
                raise ValueError(f"num_classes={self.num_classes} (masks hold 0..{self.num_classes - 1}), but "
                                 f"{len(beyond)} {holds} larger values: {listed}; "
                                 f"pass num_classes={top + 1} if there are that many classes, or fix those masks")
        if self.binary_masks:
            n, names = len(self.binary_masks), _names([self.paths[s][1].name for s in self.binary_masks], 5)
            holds = "masks in {} hold" if n > 1 else "mask in {} holds"
            warnings.warn(f"{n} {holds.format(self.masks_dir)} only 0 and 1 ({names}): "
                          f"read as binary masks, each connected component an object. Touching objects are one "
                          f"component in a binary mask and cannot be told apart (the separation borders of the "
                          f"paper need them apart): save instance masks with a distinct id per object if you can",
                          stacklevel=3)

    def _check_white_on_black(self, path: Path, labels: np.ndarray) -> None:
        """Refuse a binary mask saved as 0 and 255 (or 65535), the classic cause of a model that
        predicts all background: as instances it is one object, as classes it is class 255."""
        top = int(labels.max())
        if top not in (255, 65535) or (self.mask_kind == "classes" and self.num_classes > top):
            return
        if np.any((labels != 0) & (labels != top)):
            return
        if self.mask_kind == "classes":
            read_as, fix = f"class {top}", f"save mask // {top} (values 0, 1) with num_classes=2"
        else:
            read_as = f"one object with id {top}"
            fix = (f"label its connected components and save those, e.g. scipy.ndimage.label(mask // {top})[0], "
                   f"or save mask // {top} (values 0, 1: read as binary and labelled for you)")
        raise ValueError(f"mask {path} holds only 0 and {top}: a binary mask saved white on black. Read as "
                         f"{self.mask_kind} it is {read_as} (the classic cause of a model that predicts all black); "
                         f"convert it: {fix}")

    def __len__(self) -> int:
        return len(self.stems)

    @property
    def draws_on_access(self) -> bool:
        """True with ``tile_size``: every access draws a new random tile, so ``fit`` must not
        compute the samples once and keep them."""
        return self.tile_size is not None

    def subset(self, stems: Sequence[str], tile_size: int | None = None) -> "ImageFolder":
        """The same dataset restricted to ``stems`` (e.g. one side of ``split_by_image``), with
        its own ``tile_size`` and access counts; shares the arrays already read (no file is read)."""
        if isinstance(stems, (str, bytes)) or not isinstance(stems, Sequence) or not stems:
            raise TypeError(f"stems must be a non-empty list of stems of this dataset, got {describe(stems)}")
        unknown = [s for s in stems if s not in self.paths]
        if unknown:
            raise ValueError(f"stems names {len(unknown)} image{'s' if len(unknown) > 1 else ''} not in this "
                             f"dataset: {_names(unknown)}; its stems are {_names(self.stems)}")
        if tile_size is not None:
            tile_size = check_int("tile_size", tile_size, min=1, hint="the side of a training tile in pixels, or None")
        part = copy.copy(self)
        part.stems = sorted(set(stems))
        part.paths = {s: self.paths[s] for s in part.stems}
        part.binary_masks = [s for s in self.binary_masks if s in part.paths]
        part.tile_size = tile_size
        part._accesses = defaultdict(int)
        return part

    def _targets_of(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mask int64, weight_map float32) of a sample's own labels: Eq. 2 of its instances, or
        its class map balanced over K classes."""
        if self.mask_kind == "instances":
            return targets_from_instances(labels, **self.target_kwargs)
        return labels.astype(np.int64), class_balance_map(labels, self.num_classes)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.sample(i)

    def sample(self, i: int, targets: bool = True) -> dict[str, torch.Tensor]:
        """``ds[i]``; with ``targets=False`` without the targets that ``Augmented`` would recompute
        after deforming the sample anyway (for instances ``mask`` and ``weight_map``, for class maps
        ``weight_map``: a tile's Eq. 2 is most of the cost of drawing it). Counts as an access."""
        i = check_index("index", i, len(self), "ImageFolder")
        check_bool("targets", targets)
        stem = self.stems[i]
        image, labels = self._images[stem], self._labels[stem]        # (C, H, W), (H, W)
        if self.tile_size is None:
            if not targets:
                return self._untargeted(image, labels)
            if stem not in self._targets:                             # a whole image's targets: computed once
                self._targets[stem] = self._targets_of(labels)
            mask, weight_map = self._targets[stem]
        else:
            k = self._accesses[i]
            self._accesses[i] += 1
            # in a DataLoader worker the counts are that worker's own copy: the worker joins the key,
            # so that two workers never draw the same tile
            worker = torch.utils.data.get_worker_info()
            rng = np.random.default_rng([self.seed, i, k] if worker is None else [self.seed, i, k, worker.id + 1])
            t = self.tile_size
            h, w = labels.shape
            if h < t or w < t:
                # mirrored up to the tile: image and labels alike, so they stay a matching pair
                top, left = max(t - h, 0) // 2, max(t - w, 0) // 2
                bottom, right = max(t - h, 0) - top, max(t - w, 0) - left
                image = mirror_pad(torch.from_numpy(image), top, bottom, left, right).numpy()
                labels = mirror_pad(torch.from_numpy(labels), top, bottom, left, right).numpy()
                h, w = labels.shape
            y, x = int(rng.integers(h - t + 1)), int(rng.integers(w - t + 1))
            image, labels = image[:, y : y + t, x : x + t], labels[y : y + t, x : x + t]   # (C, t, t), (t, t)
            if not targets:
                return self._untargeted(image, labels)
            # the tile's own targets, as unet_lib.augment.Augmented computes them after a deformation (it
            # checks that they agree): Eq. 2 sees the cells in the tile, not those just outside it
            mask, weight_map = self._targets_of(labels)
        # copies: the cache stays as read, whatever the caller does to a sample
        return {
            "image": torch.tensor(image),                                                   # (C, H, W) float32
            "instances": (torch.tensor(labels, dtype=torch.int64) if self.mask_kind == "instances"
                          else torch.zeros(labels.shape, dtype=torch.int64)),               # (H, W)
            "mask": torch.tensor(mask, dtype=torch.int64),                                  # (H, W)
            "weight_map": torch.tensor(weight_map),                                         # (H, W) float32
        }

    def _untargeted(self, image: np.ndarray, labels: np.ndarray) -> dict[str, torch.Tensor]:
        """image and instances (and a class map's mask, which is its labels) of a sample, copied.
        Copied by numpy: torch spreads a copy this small over its threads, which costs more than
        the copy where the CPU is shared."""
        labels = torch.from_numpy(labels.astype(np.int64))
        if self.mask_kind == "instances":
            return {"image": torch.from_numpy(image.copy()), "instances": labels}
        return {"image": torch.from_numpy(image.copy()), "instances": torch.zeros(labels.shape, dtype=torch.int64),
                "mask": labels}

    def summary(self) -> dict:
        """What was found, for a command line to print: ``images``, ``sizes`` ({"HxW": count}),
        ``in_channels``, ``dtypes`` ({dtype: count}), ``mask_kind``, ``num_classes``, ``tile_size``;
        for instances ``objects`` (total), ``objects_per_image`` (min, max) and ``binary_masks``
        (stems labelled from 0/1 masks); for class maps ``class_fractions`` (each class's share of
        all mask pixels)."""
        sizes: dict[str, int] = defaultdict(int)
        dtypes: dict[str, int] = defaultdict(int)
        for stem in self.stems:
            h, w = self._labels[stem].shape
            sizes[f"{h}x{w}"] += 1
            dtypes[self._dtypes[stem]] += 1
        info = dict(images=len(self.stems), sizes=dict(sizes), in_channels=self.in_channels, dtypes=dict(dtypes),
                    mask_kind=self.mask_kind, num_classes=self.num_classes, tile_size=self.tile_size)
        if self.mask_kind == "instances":
            counts = [int(np.count_nonzero(np.unique(self._labels[s]))) for s in self.stems]
            info.update(objects=sum(counts), objects_per_image=(min(counts), max(counts)),
                        binary_masks=list(self.binary_masks))
        else:
            totals = sum(np.bincount(self._labels[s].ravel(), minlength=self.num_classes) for s in self.stems)
            info["class_fractions"] = [round(float(c) / float(totals.sum()), 4) for c in totals]
        return info
