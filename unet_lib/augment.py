"""Joint image/label augmentation, with the paper's elastic deformation (Sec. 3.1).

H, W = height, width.

> As for our tasks there is very little training data available, we use excessive data
> augmentation by applying elastic deformations to the available training images. [...]
> We generate smooth deformations using random displacement vectors on a coarse 3 by 3 grid.
> The displacements are sampled from a Gaussian distribution with 10 pixels standard deviation.
> Per-pixel displacements are then computed using bicubic interpolation.

Every geometric transform is applied to the image and the instances together; labels are warped
with nearest-neighbour interpolation so that instance ids survive (no id is ever averaged into a
new one). Compute ``mask`` and ``weight_map`` *after* augmenting, from the augmented instances
(``unet_lib.data.targets_from_instances``): the borders between touching cells move with them.
All randomness comes from an explicit ``numpy.random.Generator``.

API
---
* ``AugmentConfig(flip=True, rotate90=True, elastic=1.0, elastic_sigma=10.0, elastic_grid=3,
  brightness=0.1, contrast=0.2, gamma=0.2)``
* ``augment(image, instances, rng, config=None) -> (image, instances)``: image (C, H, W) or
  (H, W) float, every channel transformed alike, instances (H, W) int; numpy or torch; returns
  the same shapes, dtypes and kinds
  (a torch image gives torch outputs). Import it as ``from unet_lib.augment import augment``:
  ``unet_lib`` does not re-export it, because the name would hide this module.
* ``elastic_displacement(shape, rng, grid=3, sigma=10.0) -> (coarse, displacement)``: coarse
  (2, grid, grid) and per-pixel (2, H, W) displacements (row, column), float64.
* ``upsample_displacement(coarse, shape) -> (2, H, W)``: the bicubic interpolation.
* ``elastic_deform(image, instances, displacement) -> (image, instances)``, numpy (H, W) or (C, H, W) and (H, W).
* ``Augmented(dataset, seed=0, config=None, w0=10.0, sigma=5.0, class_weights="balanced")``: a
  Dataset that augments ``dataset[i]["image"]`` (C, H, W) and ``["instances"]`` on every access and
  recomputes ``mask`` and ``weight_map`` from them, or, for a mask of the dataset's own (a class
  map), warps the mask with them (nearest neighbour) and recomputes its weight map (class balance);
  same dict keys, shapes and dtypes as ``ToyCells``.
  Access k of sample i draws from the generator seeded with (seed, i, k): a new deformation
  every epoch, reproducible from the seed (the counts live in the object, so with DataLoader
  workers each worker counts its own accesses; still reproducible with persistent workers).
"""

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch.utils.data import Dataset

from .data import instances_to_mask, targets_from_instances
from .validate import (check_bool, check_image, check_index, check_instance, check_int, check_number,
                       check_probability, check_rng, check_seed, describe)
from .weights import ClassWeights, _as_labels, _check_class_weights, _check_w0_sigma, class_balance_map

__all__ = [
    "AugmentConfig", "augment", "elastic_displacement", "upsample_displacement", "elastic_deform", "Augmented",
]


@dataclass
class AugmentConfig:
    """Which augmentations ``augment`` applies, and how strongly."""
    flip: bool = True              # random horizontal and vertical flips
    rotate90: bool = True          # a random multiple of 90 degrees (0 or 180 for non-square images)
    elastic: float = 1.0           # probability of the elastic deformation
    elastic_sigma: float = 10.0    # std of the coarse displacements in pixels (paper: 10)
    elastic_grid: int = 3          # coarse grid size (paper: 3x3)
    brightness: float = 0.1        # add U(-b, b)
    contrast: float = 0.2          # scale around the mean by U(1 - c, 1 + c)
    gamma: float = 0.2             # image ** exp(U(-g, g)); the paper asks for robustness to gray value
                                   # variations (Sec. 3.1), not how: brightness, contrast, gamma are ours


def _check_rng(rng) -> None:
    check_rng("rng", rng)


def _check_config(config) -> "AugmentConfig":
    """``config`` (None: the defaults) with every field checked by name."""
    if config is None:
        return AugmentConfig()
    check_instance("config", config, AugmentConfig, "an AugmentConfig or None",
                   "build one with AugmentConfig(**settings)" if isinstance(config, dict) else "")
    check_bool("config.flip", config.flip)
    check_bool("config.rotate90", config.rotate90)
    check_probability("config.elastic", config.elastic, "the probability of the elastic deformation")
    check_number("config.elastic_sigma", config.elastic_sigma, min=0.0, hint="the paper uses 10 pixels")
    check_int("config.elastic_grid", config.elastic_grid, min=2, hint="the paper uses a 3x3 grid")
    for name in ("brightness", "contrast", "gamma"):
        check_number(f"config.{name}", getattr(config, name), min=0.0)
    return config


def _check_shape(shape) -> tuple[int, int]:
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") or len(shape) != 2:
        raise TypeError(f"shape must be (H, W), two integers >= 1, got {describe(shape)}")
    return check_int("shape[0]", shape[0], min=1), check_int("shape[1]", shape[1], min=1)


def upsample_displacement(coarse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bicubic interpolation of coarse displacements (2, g, g) to per-pixel ones (2, H, W).

    The g x g grid points sit evenly from corner to corner (``align_corners=True``), so for
    g = 3 they are the four corners, the four edge midpoints and the centre.
    """
    coarse = np.asarray(coarse, dtype=np.float64)
    if coarse.ndim != 3 or coarse.shape[0] != 2:
        raise ValueError(f"coarse displacements must be (2, g, g) (rows, columns), got {coarse.shape}")
    check_image("coarse", coarse, 3, "(2, g, g)")
    shape = _check_shape(shape)
    field = F.interpolate(torch.from_numpy(coarse)[None], size=tuple(shape), mode="bicubic",
                          align_corners=True)                    # (1, 2, H, W)
    return field[0].numpy()


def elastic_displacement(shape: tuple[int, int], rng: np.random.Generator, grid: int = 3,
                         sigma: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """The paper's smooth random deformation for an image of ``shape`` (H, W).

    Returns (coarse, displacement): coarse (2, grid, grid) ~ N(0, sigma^2) pixels, and the
    per-pixel displacement (2, H, W) (row, column) interpolated bicubically from it.
    """
    _check_rng(rng)
    shape = _check_shape(shape)
    grid = check_int("grid", grid, min=2, hint="the paper uses 3")
    sigma = check_number("sigma", sigma, min=0.0, hint="in pixels; the paper uses 10")
    coarse = rng.normal(0.0, sigma, size=(2, grid, grid))
    return coarse, upsample_displacement(coarse, shape)


def _sampling_points(displacement: np.ndarray) -> np.ndarray:
    """(2, H, W) where output pixel x samples: x + displacement(x)."""
    _, H, W = displacement.shape
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    return np.stack([rows + displacement[0], cols + displacement[1]])    # (2, H, W)


def _warp_image(image: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Every channel of image (C, H, W) sampled linearly at the same points: channels move together."""
    return np.stack([ndimage.map_coordinates(channel, coords, order=1, mode="reflect") for channel in image])


def _warp_labels(labels: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """labels (H, W) sampled by nearest neighbour at coords: every output value is an input value."""
    # map_coordinates computes in float64, which holds integers exactly only up to 2**53: larger
    # ids are warped as their ranks 0..n-1 and mapped back, so that any id survives exactly (the
    # ranks cost a sort, which the usual small ids skip)
    if int(labels.max()) < 2**53:
        return ndimage.map_coordinates(labels, coords, order=0, mode="reflect").astype(labels.dtype)
    ids, ranks = np.unique(labels, return_inverse=True)
    ranks = ranks.reshape(labels.shape).astype(np.int64)
    warped_ranks = ndimage.map_coordinates(ranks, coords, order=0, mode="reflect")
    return ids[warped_ranks].astype(labels.dtype)


def elastic_deform(image: np.ndarray, instances: np.ndarray, displacement: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Warp image (H, W) or (C, H, W) and instances (H, W) with one displacement field (2, H, W):
    output pixel x takes the value at x + displacement(x). The image is interpolated linearly,
    every channel at the same points; the labels with nearest-neighbour (ids stay ids); both
    reflect at the border, so they stay aligned. A class map warps as ``instances`` does."""
    instances = _as_labels(instances)
    image = check_image("image", image, (2, 3), "(H, W) or (C, H, W)")
    displacement = check_image("displacement", displacement, 3, "(2, H, W)")
    H, W = instances.shape
    if image.shape[-2:] != (H, W) or displacement.shape != (2, H, W):
        raise ValueError(f"image {image.shape}, instances {instances.shape} and displacement "
                         f"{displacement.shape} must be (H, W) or (C, H, W), (H, W) and (2, H, W)")
    coords = _sampling_points(displacement)
    warped = _warp_image(image.reshape(-1, H, W), coords).reshape(image.shape)
    return warped.astype(image.dtype), _warp_labels(instances, coords)


def _augment_arrays(image: np.ndarray, labels: list[np.ndarray], rng: np.random.Generator,
                    config: AugmentConfig) -> tuple[np.ndarray, list[np.ndarray]]:
    """The transforms of ``augment`` on checked arrays: image (C, H, W) float64, each of
    ``labels`` (H, W) ints (instances, and a class map when the sample has one). The draws from
    ``rng`` do not depend on C or on how many label images there are."""
    # geometry: one transform for the image's channels and every label image
    if config.flip:
        if rng.random() < 0.5:
            image, labels = image[:, :, ::-1], [x[:, ::-1] for x in labels]
        if rng.random() < 0.5:
            image, labels = image[:, ::-1], [x[::-1] for x in labels]
    if config.rotate90:
        square = image.shape[1] == image.shape[2]
        k = int(rng.integers(4)) if square else 2 * int(rng.integers(2))   # keep the shape
        image, labels = np.rot90(image, k, axes=(1, 2)), [np.rot90(x, k) for x in labels]
    image, labels = np.ascontiguousarray(image), [np.ascontiguousarray(x) for x in labels]
    if rng.random() < config.elastic:
        _, displacement = elastic_displacement(image.shape[1:], rng, config.elastic_grid, config.elastic_sigma)
        coords = _sampling_points(displacement)
        image, labels = _warp_image(image, coords), [_warp_labels(x, coords) for x in labels]

    # intensity, image only: the paper asks for robustness to gray value variations (Sec. 3.1) but not
    # how; brightness, contrast and gamma changes are the course's choice. One draw for all channels,
    # each channel scaled around its own mean (channels are normalised separately)
    image = np.clip(image, 0, 1) ** math.exp(rng.uniform(-config.gamma, config.gamma))
    mean = np.array([channel.mean() for channel in image])[:, None, None]   # (C, 1, 1)
    image = (image - mean) * rng.uniform(1 - config.contrast, 1 + config.contrast) + mean
    image = np.clip(image + rng.uniform(-config.brightness, config.brightness), 0, 1)
    return image, labels


def augment(image, instances, rng: np.random.Generator, config: AugmentConfig | None = None):
    """Randomly flip, rotate by 90 degrees, elastically deform (all jointly) and change the
    intensity (image only) of one sample.

    image (C, H, W) or (H, W) float in [0, 1]; instances (H, W) int labels; numpy arrays or torch
    tensors. Every channel gets the same geometric transform and the same intensity change
    (contrast around each channel's own mean). Returns (image, instances) with the same shapes,
    dtypes and kinds; the image is clipped to [0, 1]. Then compute mask and weight_map from the
    returned instances.
    """
    _check_rng(rng)
    config = _check_config(config)
    as_torch = isinstance(image, torch.Tensor)
    labels = _as_labels(instances)
    # the intensity changes assume [0, 1]: a 0..255 image would come back all 1s
    img = check_image("image", image, (2, 3), "(C, H, W) or (H, W)", unit_range=True)
    if img.shape[-2:] != labels.shape:
        raise ValueError(f"image {img.shape} and instances {labels.shape} must have the same H, W")
    dtype, label_dtype = img.dtype, labels.dtype
    out, (labels,) = _augment_arrays(img.reshape(-1, *labels.shape).astype(np.float64), [labels], rng, config)
    img_out = out.reshape(img.shape).astype(dtype)
    labels = labels.astype(label_dtype)
    if as_torch:
        return torch.from_numpy(img_out), torch.from_numpy(labels)
    if isinstance(instances, torch.Tensor):
        return img_out, torch.from_numpy(labels)
    return img_out, labels


@dataclass(frozen=True)
class _Targets:
    """How ``Augmented`` gets one sample's mask and weight map after augmenting it."""
    mask: Literal["instances", "given"]              # recomputed from the instances, or the sample's own, warped
    weight: Literal["eq2", "balance", "constant"]    # Eq. 2 of the instances, class_balance_map, one value
    num_classes: int = 2                             # K of class_balance_map
    value: float = 1.0                               # the constant weight


class Augmented(Dataset):
    """Wraps a dataset of dicts with ``image`` (C, H, W) and ``instances`` (H, W) (``ToyCells``,
    ``unet_lib.files.ImageFolder``): each access augments the sample (every channel alike) and
    gives its targets for the augmented sample. Returns the same keys as ``ToyCells``: image
    float32 (C, H, W), instances int64 (H, W), mask int64 (H, W), weight_map float32 (H, W).

    Which targets (the paper's, recomputed from the augmented instances, or a mask of the
    dataset's own warped with the sample) is decided on the first access of each sample
    (``_target_rule``); a weight map augmentation cannot recompute is refused then. A later draw
    (a new random tile) whose mask has labels above 1, which its instances cannot give, keeps
    that mask, warped with it: classes are never replaced by the instances' foreground. Access k
    (k = 0, 1, ...) of sample i uses ``np.random.default_rng([seed, i, k])``: every epoch sees a
    new deformation, and a run with the same seed and order sees the same ones. A dataset that
    ``draws_on_access`` and has a ``sample(i, targets=False)`` method (ImageFolder with tiles) is
    asked for the image and labels only after the first access: the targets of the unaugmented
    tile would be thrown away.
    """

    def __init__(self, dataset: Dataset, seed: int = 0, config: AugmentConfig | None = None,
                 w0: float | None = None, sigma: float | None = None, class_weights: ClassWeights | None = None):
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"dataset must be a Dataset of dicts with 'image' and 'instances' (e.g. ToyCells), "
                            f"got {describe(dataset)}")
        seed, config = check_seed("seed", seed), _check_config(config)
        self.dataset, self.seed, self.config = dataset, seed, config or AugmentConfig()
        self.target_kwargs = _weight_map_settings(dataset, w0=w0, sigma=sigma, class_weights=class_weights)
        self._accesses, self._targets = defaultdict(int), {}   # per sample: accesses; its _Targets, from the first

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        i = check_index("index", i, len(self), "a dataset")         # one seed per sample, also for i < 0
        targets = self._targets.get(i)
        if targets is None:
            sample = self.dataset[i]
            targets = self._targets[i] = _target_rule(self.dataset, i, sample, self.target_kwargs)
        elif getattr(self.dataset, "draws_on_access", False) and callable(getattr(self.dataset, "sample", None)):
            sample = self.dataset.sample(i, targets=False)            # the same draw, without its targets
        else:
            sample = self.dataset[i]
        k = self._accesses[i]
        self._accesses[i] += 1
        rng = np.random.default_rng([self.seed, i, k])
        instances = _as_labels(sample["instances"], f"dataset[{i}]['instances']")
        # the intensity changes assume [0, 1]: a 0..255 image would come back all 1s
        image = check_image(f"dataset[{i}]['image']", sample["image"], (2, 3), "(C, H, W) or (H, W)", unit_range=True)
        if image.shape[-2:] != instances.shape:
            raise ValueError(f"dataset[{i}]: image {image.shape} and instances {instances.shape} must have the "
                             f"same H, W")
        if targets.mask == "instances" and "mask" in sample and _holds_classes(sample["mask"]):
            # this draw's mask has classes that its instances cannot give (a random tile whose first
            # draw had none, say): kept, warped with the image, instead of replaced by the instances'
            targets = _Targets("given", "eq2")
        labels = [instances]
        if targets.mask == "given":
            labels.append(_as_labels(sample["mask"], f"dataset[{i}]['mask']"))
        # a class map's instances are all 0: warping them would give 0 again (a third of the loading time)
        skip = len(labels) == 2 and not instances.any()
        out, warped = _augment_arrays(image.reshape(-1, *instances.shape).astype(np.float64), labels[skip:], rng,
                                      self.config)
        labels = [instances, *warped] if skip else warped
        mask, weight_map = _targets_after(targets, labels, self.target_kwargs)
        return {
            "image": torch.from_numpy(out.reshape(image.shape).astype(image.dtype)).float(),   # (C, H, W)
            "instances": torch.from_numpy(labels[0].astype(np.int64)),                        # (H, W)
            "mask": torch.from_numpy(mask),                                                   # (H, W)
            "weight_map": torch.from_numpy(weight_map),                                       # (H, W)
        }


def _holds_classes(mask) -> bool:
    """Whether a mask has labels above 1: classes that the instances' foreground cannot give."""
    mask = torch.as_tensor(mask)
    return mask.numel() > 0 and int(mask.max()) > 1


def _weight_map_settings(dataset: Dataset, **given) -> dict:
    """The weight map's settings (w0, sigma, class_weights), checked: given here, else the
    dataset's own (``ToyCells.target_kwargs``), else the paper's (w0 = 10, sigma = 5, balanced)."""
    own = getattr(dataset, "target_kwargs", None) or {}
    paper = dict(w0=10.0, sigma=5.0, class_weights="balanced")
    settings = {k: given[k] if given[k] is not None else own.get(k, paper[k]) for k in paper}
    _check_w0_sigma(settings["w0"], settings["sigma"])
    if not isinstance(settings["class_weights"], str):
        _check_class_weights(settings["class_weights"])
    return settings


def _targets_after(targets: _Targets, labels: list[np.ndarray], target_kwargs: dict) -> tuple[np.ndarray, np.ndarray]:
    """(mask, weight_map) of an augmented sample, by its rule: ``labels`` are its augmented
    instances and, for a mask of its own ("given"), that mask warped with them."""
    instances = labels[0]
    if targets.mask == "instances":
        return targets_from_instances(instances, **target_kwargs)
    mask = labels[1].astype(np.int64)
    if targets.weight == "eq2":
        _, weight_map = targets_from_instances(instances, **target_kwargs)
    elif targets.weight == "balance":
        weight_map = class_balance_map(mask, targets.num_classes)
    else:
        weight_map = np.full(mask.shape, targets.value, np.float32)
    return mask, weight_map


def _target_rule(dataset: Dataset, i: int, sample: dict, target_kwargs: dict) -> _Targets:
    """How sample i of ``dataset`` gets its targets after each augmentation, decided by comparing
    its own ``mask`` and ``weight_map`` with what they could be computed from:

    * the paper's (``mask`` of the instances, ``weight_map`` Eq. 2 with ``target_kwargs``): both
      recomputed from the augmented instances, so the borders between touching cells move with them;
    * a mask of its own (a class map; K > 2 classes derived from instances): it is warped with the
      sample, by nearest neighbour (labels never blend), and stays what the dataset gave; its weight
      map recomputed by the rule it follows: Eq. 2 of the augmented instances, the class balance of
      the augmented mask (``class_balance_map``, K from ``dataset.num_classes`` or from the weights),
      or a constant. A dataset with ``mask_kind == "classes"`` (ImageFolder) is taken at its word.

    Anything else (a weight map of other settings or of its own) is refused: augmentation cannot
    recompute it."""
    if not isinstance(sample, dict) or "image" not in sample or "instances" not in sample:
        found = sorted(sample) if isinstance(sample, dict) else describe(sample)
        raise TypeError(f"dataset[{i}] must be a dict with 'image' (C, H, W) and 'instances' (H, W), got {found}")
    instances = _as_labels(sample["instances"], f"dataset[{i}]['instances']")
    own_mask = (_as_labels(sample["mask"], f"dataset[{i}]['mask']") if "mask" in sample else None)
    own_weights = np.asarray(torch.as_tensor(sample["weight_map"]).cpu()) if "weight_map" in sample else None
    if own_mask is not None and own_mask.shape != instances.shape:
        raise ValueError(f"dataset[{i}]['mask'] is {own_mask.shape}, its instances {instances.shape}: a mask "
                         f"labels every pixel of its image")
    if own_weights is not None and own_weights.shape != instances.shape:
        raise ValueError(f"dataset[{i}]['weight_map'] is {own_weights.shape}, its instances {instances.shape}: "
                         f"a weight map weighs every pixel of its image")
    declared_k = getattr(dataset, "num_classes", None)
    if getattr(dataset, "mask_kind", None) == "classes" and own_mask is not None:
        # a class map by the dataset's word (its first tile may hold background only, which
        # would read as an instance mask)
        targets = _Targets("given", "balance", int(declared_k))
        if own_weights is not None and not _close(own_weights, class_balance_map(own_mask, targets.num_classes)):
            raise ValueError(f"dataset[{i}]['weight_map'] is not the class balance of its class map "
                             f"(class_balance_map(mask, {targets.num_classes})), which augmentation recomputes "
                             f"after each deformation; train without augmentation (TrainConfig(augment=False))")
        return targets
    derived = own_mask is None or np.array_equal(own_mask, instances_to_mask(instances))
    eq2 = own_weights is None or _close(own_weights, targets_from_instances(instances, **target_kwargs)[1])
    if derived and eq2:
        return _Targets("instances", "eq2")
    settings = ", ".join(f"{k}={v!r}" for k, v in target_kwargs.items())
    if derived and (own_mask is None or instances.any()):
        raise ValueError(f"dataset[{i}]['weight_map'] is not Eq. 2 of its instances with {settings}: "
                         f"augmentation recomputes the weight map from the augmented instances; pass the "
                         f"dataset's settings (Augmented(..., w0=, sigma=, class_weights=)), or train without "
                         f"augmentation (TrainConfig(augment=False)), or give weight maps computed from the "
                         f"instances (unet_lib.targets_from_instances)")
    # the dataset's own mask (a class map, K > 2 classes made from instances): it moves with the
    # image and stays as given; its weight map follows the rule it was made by
    if eq2:
        return _Targets("given", "eq2")
    for k in ([declared_k] if isinstance(declared_k, int) else []) + [_balanced_classes(own_mask, own_weights)]:
        if k is not None and k > own_mask.max() and _close(own_weights, class_balance_map(own_mask, k)):
            return _Targets("given", "balance", k)
    if np.all(own_weights == own_weights.flat[0]):
        return _Targets("given", "constant", value=float(own_weights.flat[0]))
    raise ValueError(f"dataset[{i}]['weight_map'] is neither Eq. 2 of its instances ({settings}), nor the class "
                     f"balance of its mask (class_balance_map), nor constant: augmentation recomputes the weight "
                     f"map after each deformation and cannot recompute this one; train without augmentation "
                     f"(TrainConfig(augment=False))")


def _close(weights: np.ndarray, expected: np.ndarray) -> bool:
    return weights.shape == expected.shape and bool(np.allclose(weights, expected, rtol=1e-5, atol=1e-4))


def _balanced_classes(mask: np.ndarray, weights: np.ndarray) -> int | None:
    """K if ``weights`` could be ``class_balance_map(mask, K)``: there a class of n_c pixels weighs
    n / (K n_c), so K = n / (w_c n_c) for any class present. None when it is no whole number."""
    c = int(mask.flat[0])
    count = int(np.count_nonzero(mask == c))
    w = float(weights.flat[0])
    if not w > 0:
        return None
    k = mask.size / (w * count)
    return round(k) if abs(k - round(k)) < 1e-3 and round(k) >= 2 else None
