"""``ImageFolder`` (your own images as a dataset) and ``split_by_image``.

An ``ImageFolder`` gives whole images, or random tiles that change every epoch;
``split_by_image`` splits whole images into training and validation.

C, H, W = channels, height, width. K = num_classes.

The dataset's jobs are in the modules beside it: finding and pairing the files
(``unet_lib.files.pairing``), reading and checking them once (``unet_lib.files.reading``); the
random tiles are ``_random_tile`` below.
"""

import copy
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from scipy import ndimage

from ..baselines import ObjectSize, object_size
from ..data import targets_from_instances
from ..metrics import instances_from_classes
from ..tiling import mirror_pad
from ..validate import check_bool, check_choice, check_index, check_int, check_number, check_seed, describe
from ..weights import _check_w0_sigma, class_balance_map
from .pairing import chosen_pairs
from .reading import MaskKind, _names, read_pairs, summarize

__all__ = ["ImageFolder", "split_by_image", "split_by_region"]


class ImageFolder(Dataset):
    """The image/mask pairs of two folders as a dataset (formats, channel rule, mask kinds: the
    ``unet_lib.files`` docstring), every file read, checked and kept in memory when it is built.

    ``ds[i]`` is a dict with ``image`` float32 (C, H, W) in [0, 1] (each channel by its ``low`` and
    ``high`` percentiles), ``instances`` int64 (H, W) (0 = background; all 0 for class maps),
    ``mask`` int64 (H, W) in [0, ``num_classes``) and ``weight_map`` float32 (H, W) (Eq. 2 with
    ``w0``, ``sigma``; balanced w_c for class maps). Without ``tile_size`` that is the whole image,
    its targets computed on its first access (evaluation); with it, each access is a new random
    tile_size x tile_size tile, access k of sample i drawn from (seed, i, k), with the targets of
    the tile's own labels, as ``Augmented`` computes them (training). ``stems`` restricts it to
    those pairs (``split_by_image``). ``keep_objects``: ``low`` and ``high`` widened until they clip
    at most 5% of the masks' foreground (``unet_lib.files.normalization``); ``low``, ``high`` and
    ``clipping`` say what was used. Over 60 lines because a Dataset's construction, subset and
    sampling belong together; its other jobs (pairing, reading and checking, the random tile, the
    sample dict) are the functions it calls.
    """

    def __init__(self, images_dir: str | Path, masks_dir: str | Path, mask_kind: MaskKind = "instances", *,
                 num_classes: int | None = None, tile_size: int | None = None, seed: int = 0, w0: float = 10.0,
                 sigma: float = 5.0, low: float = 1.0, high: float = 99.8, stems: Sequence[str] | None = None,
                 channel_axis: int | None = None, keep_objects: bool = False):
        num_classes, tile_size, seed, w0, sigma, low, high, channel_axis = _checked_settings(
            mask_kind, num_classes, tile_size, seed, w0, sigma, low, high, channel_axis)
        keep_objects = check_bool("keep_objects", keep_objects)
        pairs = chosen_pairs(images_dir, masks_dir, stems)                    # discovery and pairing
        self.images_dir, self.masks_dir, self.mask_kind = Path(images_dir), Path(masks_dir), mask_kind
        self.num_classes = 2 if mask_kind == "instances" else num_classes
        self.tile_size, self.seed, self.low, self.high, self.channel_axis = tile_size, seed, low, high, channel_axis
        # Augmented (fit's augmentation) recomputes the weight map of instances with these; a class map's
        # with class_balance_map (it reads mask_kind and num_classes)
        self.target_kwargs = dict(w0=w0, sigma=sigma, class_weights="balanced")
        self.stems, self.paths = list(pairs), pairs
        # reading and checking, once; with keep_objects the percentiles widened until they keep the objects
        read = read_pairs(pairs, mask_kind, self.num_classes, channel_axis, low, high, keep_objects)
        self._images, self._labels, self._dtypes = read.images, read.labels, read.dtypes
        self.low, self.high, self.clipping = read.clipping["low"], read.clipping["high"], read.clipping
        self.binary_masks, self.in_channels = read.binary_masks, read.in_channels
        self._targets, self._accesses = {}, defaultdict(int)   # stem -> (mask, weight_map); i -> accesses

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
        part = copy.copy(self)
        part.stems = _known_stems(stems, self.stems)
        part.paths = {s: self.paths[s] for s in part.stems}
        part.binary_masks = [s for s in self.binary_masks if s in part.paths]
        part.tile_size = None if tile_size is None else check_int(
            "tile_size", tile_size, min=1, hint="the side of a training tile in pixels, or None")
        part._accesses = defaultdict(int)
        return part

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
        if self.tile_size is not None:
            image, labels = _random_tile(image, labels, self.tile_size, self._next_rng(i))   # (C, t, t), (t, t)
        if not targets:
            return _untargeted(image, labels, self.mask_kind)
        if self.tile_size is not None:
            # the tile's own targets, as unet_lib.augment.Augmented computes them after a deformation (it
            # checks that they agree): Eq. 2 sees the cells in the tile, not those just outside it
            return _as_sample(image, labels, *_targets_of(labels, self.mask_kind, self.num_classes,
                                                          self.target_kwargs), self.mask_kind)
        if stem not in self._targets:                                 # a whole image's targets: computed once
            self._targets[stem] = _targets_of(labels, self.mask_kind, self.num_classes, self.target_kwargs)
        return _as_sample(image, labels, *self._targets[stem], self.mask_kind)

    def _next_rng(self, i: int) -> np.random.Generator:
        """The generator of sample i's next access k: [seed, i, k], and in DataLoader worker w (whose
        counts are its own copy) [seed, i, k, w + 1], so that two workers never draw the same tile."""
        k = self._accesses[i]
        self._accesses[i] += 1
        worker = torch.utils.data.get_worker_info()
        return np.random.default_rng([self.seed, i, k] if worker is None else [self.seed, i, k, worker.id + 1])

    def object_size(self) -> ObjectSize:
        """The median area and inscribed radius of the objects in this dataset's masks
        (``unet_lib.baselines.object_size``): the instances, or for class maps the cells of a
        three-class map with a border class (``instances_from_classes``; K = 3) or else the
        connected components of the classes > 0. Post-processing scales with it."""
        if self.mask_kind == "instances":
            label_images = (self._labels[s] for s in self.stems)
        elif self.num_classes == 3:
            label_images = (instances_from_classes(self._labels[s]) for s in self.stems)
        else:
            label_images = (ndimage.label(self._labels[s] > 0)[0] for s in self.stems)
        return object_size(label_images)

    def summary(self) -> dict:
        """What was found, for a command line to print: ``images``, ``sizes`` ({"HxW": count}),
        ``in_channels``, ``dtypes`` ({dtype: count}), ``mask_kind``, ``num_classes``, ``tile_size``;
        for instances ``objects`` (total), ``objects_per_image`` (min, max) and ``binary_masks``
        (stems labelled from 0/1 masks); for class maps ``class_fractions`` (each class's share of
        all mask pixels)."""
        info = summarize(self._labels, self._dtypes, self.stems, self.mask_kind, self.num_classes)
        info.update(in_channels=self.in_channels, tile_size=self.tile_size)
        if self.mask_kind == "instances":
            info["binary_masks"] = list(self.binary_masks)
        return info


def _targets_of(labels: np.ndarray, mask_kind: MaskKind, num_classes: int, target_kwargs: dict
                ) -> tuple[np.ndarray, np.ndarray]:
    """(mask int64, weight_map float32) of a sample's own labels: Eq. 2 of its instances (with
    ``target_kwargs``), or its class map balanced over K classes."""
    if mask_kind == "instances":
        return targets_from_instances(labels, **target_kwargs)
    return labels.astype(np.int64), class_balance_map(labels, num_classes)


def _known_stems(stems: Sequence[str], known: Sequence[str]) -> list[str]:
    """``stems`` sorted, without repeats, after refusing an empty list and stems not in ``known``."""
    if isinstance(stems, (str, bytes)) or not isinstance(stems, Sequence) or not stems:
        raise TypeError(f"stems must be a non-empty list of stems of this dataset, got {describe(stems)}")
    unknown = [s for s in stems if s not in known]
    if unknown:
        raise ValueError(f"stems names {len(unknown)} image{'s' if len(unknown) > 1 else ''} not in this "
                         f"dataset: {_names(unknown)}; its stems are {_names(known)}")
    return sorted(set(stems))


def _as_sample(image: np.ndarray, labels: np.ndarray, mask: np.ndarray, weight_map: np.ndarray, mask_kind: MaskKind
               ) -> dict[str, torch.Tensor]:
    """The sample dict of ``ToyCells``, copied: the cache stays as read, whatever the caller does to
    a sample."""
    return {
        "image": torch.tensor(image),                                                   # (C, H, W) float32
        "instances": (torch.tensor(labels, dtype=torch.int64) if mask_kind == "instances"
                      else torch.zeros(labels.shape, dtype=torch.int64)),               # (H, W)
        "mask": torch.tensor(mask, dtype=torch.int64),                                  # (H, W)
        "weight_map": torch.tensor(weight_map),                                         # (H, W) float32
    }


def _untargeted(image: np.ndarray, labels: np.ndarray, mask_kind: MaskKind) -> dict[str, torch.Tensor]:
    """image and instances (and a class map's mask, which is its labels) of a sample, copied.
    Copied by numpy: torch spreads a copy this small over its threads, which costs more than
    the copy where the CPU is shared."""
    labels = torch.from_numpy(labels.astype(np.int64))
    if mask_kind == "instances":
        return {"image": torch.from_numpy(image.copy()), "instances": labels}
    return {"image": torch.from_numpy(image.copy()), "instances": torch.zeros(labels.shape, dtype=torch.int64),
            "mask": labels}


def _checked_settings(mask_kind, num_classes, tile_size, seed, w0, sigma, low, high, channel_axis) -> tuple:
    """``ImageFolder``'s settings checked by name, as plain values (num_classes, tile_size, seed, w0,
    sigma, low, high, channel_axis)."""
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
    return num_classes, tile_size, seed, w0, sigma, low, high, channel_axis


def _random_tile(image: np.ndarray, labels: np.ndarray, tile: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A random tile x tile tile of image (C, H, W) and labels (H, W), views of them; an image
    smaller than a tile is mirrored up to the tile's size first (image and labels alike, so they
    stay a matching pair)."""
    h, w = labels.shape
    if h < tile or w < tile:
        top, left = max(tile - h, 0) // 2, max(tile - w, 0) // 2
        bottom, right = max(tile - h, 0) - top, max(tile - w, 0) - left
        image = mirror_pad(torch.from_numpy(image), top, bottom, left, right).numpy()
        labels = mirror_pad(torch.from_numpy(labels), top, bottom, left, right).numpy()
        h, w = labels.shape
    y, x = int(rng.integers(h - tile + 1)), int(rng.integers(w - tile + 1))
    return image[:, y : y + tile, x : x + tile], labels[y : y + tile, x : x + tile]


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



def split_by_region(data: ImageFolder, val_fraction: float = 0.2, side: str = "right") -> tuple[ImageFolder, ImageFolder]:
    """Hold out a region of every image for validation: (train, val), two ImageFolders with the
    same stems, ``train`` holding each image without its ``side`` ("right" or "bottom") strip of
    ``val_fraction`` of its width (height), ``val`` that strip. For one large image (or a few),
    where ``split_by_image`` has no second image to validate on. Objects that the cut crosses are
    a part object on each side; neither side sees the other's pixels (a training tile is drawn
    inside its region and mirrored at its edges). Both share the arrays already read (views)."""
    if not isinstance(data, ImageFolder):
        raise TypeError(f"data must be an ImageFolder, got {describe(data)}")
    val_fraction = check_number("val_fraction", val_fraction, min=0.0, max=1.0,
                                hint="the share of each image's width (or height) kept for validation, e.g. 0.2")
    check_choice("side", side, ("right", "bottom"))
    train, val = copy.copy(data), copy.copy(data)
    train._images, train._labels, val._images, val._labels = {}, {}, {}, {}
    axis = -1 if side == "right" else -2
    for stem in data.stems:
        image, labels = data._images[stem], data._labels[stem]           # (C, H, W), (H, W)
        n = labels.shape[axis]
        cut = n - round(val_fraction * n)
        if not 0 < cut < n:
            raise ValueError(f"val_fraction={val_fraction:g} of image {stem}'s {'width' if axis == -1 else 'height'} "
                             f"({n} px) leaves {'no pixel' if cut <= 0 else 'nothing'} for "
                             f"{'training' if cut <= 0 else 'validation'}; choose a fraction between {1 / n:.3g} "
                             f"and {1 - 1 / n:.3g}")
        first, second = (np.s_[..., :cut], np.s_[..., cut:]) if axis == -1 else (np.s_[..., :cut, :], np.s_[..., cut:, :])
        train._images[stem], val._images[stem] = image[first], image[second]
        train._labels[stem], val._labels[stem] = labels[first], labels[second]
    for part in (train, val):
        part._targets, part._accesses = {}, defaultdict(int)
    return train, val
