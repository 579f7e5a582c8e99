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
* ``augment(image, instances, rng, config=None) -> (image, instances)``: image (1, H, W) or
  (H, W) float, instances (H, W) int; numpy or torch; returns the same shapes, dtypes and kinds
  (a torch image gives torch outputs). Import it as ``from unet_lib.augment import augment``:
  ``unet_lib`` does not re-export it, because the name would hide this module.
* ``elastic_displacement(shape, rng, grid=3, sigma=10.0) -> (coarse, displacement)``: coarse
  (2, grid, grid) and per-pixel (2, H, W) displacements (row, column), float64.
* ``upsample_displacement(coarse, shape) -> (2, H, W)``: the bicubic interpolation.
* ``elastic_deform(image, instances, displacement) -> (image, instances)``, numpy (H, W) each.
* ``Augmented(dataset, seed=0, config=None, w0=10.0, sigma=5.0, class_weights="balanced")``: a
  Dataset that augments ``dataset[i]["image"]`` and ``["instances"]`` on every access and
  recomputes ``mask`` and ``weight_map``; same dict keys, shapes and dtypes as ``ToyCells``.
  Access k of sample i draws from the generator seeded with (seed, i, k): a new deformation
  every epoch, reproducible from the seed (the counts live in the object, so with DataLoader
  workers each worker counts its own accesses; still reproducible with persistent workers).
"""

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch.utils.data import Dataset

from .data import instances_to_mask, targets_from_instances
from .validate import (check_bool, check_image, check_index, check_instance, check_int, check_number,
                       check_probability, check_rng, check_seed, describe)
from .weights import ClassWeights, _as_labels, _check_class_weights, _check_w0_sigma

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


def elastic_deform(image: np.ndarray, instances: np.ndarray, displacement: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Warp image (H, W) and instances (H, W) with one displacement field (2, H, W): output pixel
    x takes the value at x + displacement(x). The image is interpolated linearly, the labels with
    nearest-neighbour (ids stay ids); both reflect at the border, so they stay aligned."""
    instances = _as_labels(instances)
    image = check_image("image", image, 2, "(H, W)")
    displacement = check_image("displacement", displacement, 3, "(2, H, W)")
    H, W = instances.shape
    if image.shape != (H, W) or displacement.shape != (2, H, W):
        raise ValueError(f"image {image.shape}, instances {instances.shape} and displacement "
                         f"{displacement.shape} must be (H, W), (H, W) and (2, H, W)")
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    coords = np.stack([rows + displacement[0], cols + displacement[1]])   # (2, H, W) where to sample
    warped = ndimage.map_coordinates(image, coords, order=1, mode="reflect")
    # map_coordinates computes in float64, which holds integers exactly only up to 2**53: warp
    # the ids' ranks 0..n-1 instead and map them back, so that any id survives exactly
    ids, ranks = np.unique(instances, return_inverse=True)
    ranks = ranks.reshape(H, W).astype(np.int64)
    warped_ranks = ndimage.map_coordinates(ranks, coords, order=0, mode="reflect")
    return warped.astype(image.dtype), ids[warped_ranks].astype(instances.dtype)


def augment(image, instances, rng: np.random.Generator, config: AugmentConfig | None = None):
    """Randomly flip, rotate by 90 degrees, elastically deform (all jointly) and change the
    intensity (image only) of one sample.

    image (1, H, W) or (H, W) float in [0, 1]; instances (H, W) int labels; numpy arrays or torch
    tensors. Returns (image, instances) with the same shapes, dtypes and kinds; the image is
    clipped to [0, 1]. Then compute mask and weight_map from the returned instances.
    """
    _check_rng(rng)
    config = _check_config(config)
    as_torch = isinstance(image, torch.Tensor)
    labels = _as_labels(instances)
    # the intensity changes assume [0, 1]: a 0..255 image would come back all 1s
    img = check_image("image", image, (2, 3), "(1, H, W) or (H, W)", unit_range=True)
    channel = img.ndim == 3
    if channel and img.shape[0] != 1:
        raise ValueError(f"image must be (1, H, W) or (H, W), got {img.shape}")
    img2d = img[0] if channel else img
    if img2d.shape != labels.shape:
        raise ValueError(f"image {img.shape} and instances {labels.shape} must have the same H, W")
    dtype, label_dtype = img.dtype, labels.dtype
    img2d = img2d.astype(np.float64)

    # geometry: the same transform for both
    if config.flip:
        if rng.random() < 0.5:
            img2d, labels = img2d[:, ::-1], labels[:, ::-1]
        if rng.random() < 0.5:
            img2d, labels = img2d[::-1], labels[::-1]
    if config.rotate90:
        square = labels.shape[0] == labels.shape[1]
        k = int(rng.integers(4)) if square else 2 * int(rng.integers(2))   # keep the shape
        img2d, labels = np.rot90(img2d, k), np.rot90(labels, k)
    img2d, labels = np.ascontiguousarray(img2d), np.ascontiguousarray(labels)
    if rng.random() < config.elastic:
        _, displacement = elastic_displacement(labels.shape, rng, config.elastic_grid, config.elastic_sigma)
        img2d, labels = elastic_deform(img2d, labels, displacement)

    # intensity, image only: the paper asks for robustness to gray value variations (Sec. 3.1) but not
    # how; brightness, contrast and gamma changes are the course's choice
    img2d = np.clip(img2d, 0, 1) ** math.exp(rng.uniform(-config.gamma, config.gamma))
    mean = img2d.mean()
    img2d = (img2d - mean) * rng.uniform(1 - config.contrast, 1 + config.contrast) + mean
    img2d = np.clip(img2d + rng.uniform(-config.brightness, config.brightness), 0, 1)

    img_out = (img2d[None] if channel else img2d).astype(dtype)
    labels = labels.astype(label_dtype)
    if as_torch:
        return torch.from_numpy(img_out), torch.from_numpy(labels)
    if isinstance(instances, torch.Tensor):
        return img_out, torch.from_numpy(labels)
    return img_out, labels


class Augmented(Dataset):
    """Wraps a dataset of dicts with ``image`` (1, H, W) and ``instances`` (H, W) (``ToyCells``):
    each access augments the sample and recomputes ``mask`` and ``weight_map`` from the augmented
    instances, with the dataset's ``w0``, ``sigma`` and ``class_weights`` (its ``target_kwargs``)
    unless they are given here. Returns the same keys as ``ToyCells``: image float32 (1, H, W), instances int64
    (H, W), mask int64 (H, W), weight_map float32 (H, W).

    Access k (k = 0, 1, ...) of sample i uses ``np.random.default_rng([seed, i, k])``: every
    epoch sees a new deformation, and a run with the same seed and order sees the same ones.
    """

    def __init__(self, dataset: Dataset, seed: int = 0, config: AugmentConfig | None = None,
                 w0: float | None = None, sigma: float | None = None, class_weights: ClassWeights | None = None):
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"dataset must be a Dataset of dicts with 'image' and 'instances' (e.g. ToyCells), "
                            f"got {describe(dataset)}")
        seed, config = check_seed("seed", seed), _check_config(config)
        self.dataset, self.seed, self.config = dataset, seed, config or AugmentConfig()
        # the weight map's settings: given here, else the dataset's own (``ToyCells.target_kwargs``),
        # else the paper's (w0 = 10, sigma = 5, balanced classes)
        given = dict(w0=w0, sigma=sigma, class_weights=class_weights)
        own = getattr(dataset, "target_kwargs", None) or {}
        paper = dict(w0=10.0, sigma=5.0, class_weights="balanced")
        self.target_kwargs = {k: given[k] if given[k] is not None else own.get(k, paper[k]) for k in paper}
        _check_w0_sigma(self.target_kwargs["w0"], self.target_kwargs["sigma"])
        if not isinstance(self.target_kwargs["class_weights"], str):
            _check_class_weights(self.target_kwargs["class_weights"])
        self._accesses: dict[int, int] = defaultdict(int)
        self._checked: set[int] = set()   # samples whose own mask and weight map were compared once

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        i = check_index("index", i, len(self), "a dataset")         # one seed per sample, also for i < 0
        sample = self.dataset[i]
        if i not in self._checked:
            self._check_targets(i, sample)
            self._checked.add(i)
        k = self._accesses[i]
        self._accesses[i] += 1
        rng = np.random.default_rng([self.seed, i, k])
        image, instances = augment(torch.as_tensor(sample["image"]), torch.as_tensor(sample["instances"]),
                                   rng, self.config)
        mask, weight_map = targets_from_instances(instances.numpy(), **self.target_kwargs)
        return {
            "image": image.float(),                               # (1, H, W)
            "instances": instances.long(),                        # (H, W)
            "mask": torch.from_numpy(mask),                       # (H, W)
            "weight_map": torch.from_numpy(weight_map),           # (H, W)
        }

    def _check_targets(self, i: int, sample: dict) -> None:
        """Refuse a sample whose own ``mask`` or ``weight_map`` is not what augmentation would
        recompute from its instances: training would silently replace them (a 6-class mask by
        0/1 targets, a custom weight map by Eq. 2's)."""
        if not isinstance(sample, dict) or "image" not in sample or "instances" not in sample:
            found = sorted(sample) if isinstance(sample, dict) else describe(sample)
            raise TypeError(f"dataset[{i}] must be a dict with 'image' (1, H, W) and 'instances' (H, W), got {found}")
        if "mask" not in sample and "weight_map" not in sample:
            return
        instances = _as_labels(sample["instances"], f"dataset[{i}]['instances']")
        fix = ("train without augmentation (TrainConfig(augment=False)), or give masks and weight maps computed "
               "from the instances (unet_lib.targets_from_instances)")
        if "mask" in sample:
            mask, own = instances_to_mask(instances), np.asarray(torch.as_tensor(sample["mask"]).cpu())
            if own.shape != mask.shape or not np.array_equal(own, mask):
                differ = int((own != mask).sum()) if own.shape == mask.shape else own.size
                raise ValueError(f"dataset[{i}]['mask'] is not the mask of its instances: augmentation recomputes "
                                 f"a 0/1 mask from the augmented instances (targets_from_instances), but the "
                                 f"dataset's mask has labels {np.unique(own).tolist()[:10]} and differs in "
                                 f"{differ} pixels; {fix}")
        if "weight_map" in sample:
            _, weight_map = targets_from_instances(instances, **self.target_kwargs)
            own = np.asarray(torch.as_tensor(sample["weight_map"]).cpu())
            if own.shape != weight_map.shape or not np.allclose(own, weight_map, rtol=1e-5, atol=1e-4):
                settings = ", ".join(f"{k}={v!r}" for k, v in self.target_kwargs.items())
                raise ValueError(f"dataset[{i}]['weight_map'] is not Eq. 2 of its instances with {settings}: "
                                 f"augmentation recomputes the weight map from the augmented instances; "
                                 f"pass the dataset's settings (Augmented(..., w0=, sigma=, class_weights=)) or {fix}")
