"""The checks of notebook 11, your own images: ``check_interior_border_classes``, ``check_postprocess``."""

from collections.abc import Callable

import numpy as np
import torch

from ._core import CheckPassed, as_array, call, fail, learner_check
from .nb05_toy_cells_and_augmentation import _ground_truth_cases

__all__ = ['check_interior_border_classes', 'check_postprocess']


@learner_check
def check_interior_border_classes(interior_border: Callable) -> CheckPassed:
    """``interior_border(instances, width)`` must turn (H, W) instances into three classes: 0 =
    background, 1 = interior, 2 = every cell pixel with a pixel of another label (background or
    another cell) within ``width`` pixels, a (2 width + 1) x (2 width + 1) square; the image's
    edge does not count as another label. Compared with ``unet_lib.data.interior_border_classes``."""
    from ..data import interior_border_classes as reference
    big = np.zeros((14, 14), np.int64)
    big[2:12, 2:12] = 4                                                   # one 10x10 cell
    cases = [(name, instances, width) for name, instances in _ground_truth_cases() for width in (1, 2)]
    cases.insert(0, ("one 10x10 cell (id 4) in a 14x14 image", big, 2))
    for name, instances, width in cases:
        what = f"interior_border({name}, width={width})"
        got = as_array(call(interior_border, instances.copy(), width), what, instances.shape)
        expected = reference(instances, width)
        if np.array_equal(got, expected):
            continue
        if not np.isin(got, (0, 1, 2)).all():
            fail(f"{what} contains values other than 0, 1 and 2: {', '.join(f'{v:g}' for v in np.unique(got)[:6])}",
                  "return the class of each pixel (0 background, 1 interior, 2 border), not instance ids")
        if ((got > 0) != (instances > 0)).any():
            fail(f"{what} changes which pixels are cells: {int(((got > 0) != (instances > 0)).sum())} pixel(s) "
                  f"differ from instances > 0",
                  "the border ring lies inside each cell; background pixels stay 0, every cell pixel is 1 or 2")
        if np.array_equal(got, reference(instances, 1)) and width != 1 or \
                np.array_equal(got, reference(instances, width + 1)):
            fail(f"{what} draws a ring of the wrong thickness",
                  "a pixel is border when another label lies within `width` pixels: a window of side 2 * width + 1")
        missing = (got == 1) & (expected == 2)
        if np.array_equal(got, _cross_window_classes(instances, width)):
            fail(f"{what} misses {int(missing.sum())} border pixel(s), e.g. at diagonal contacts",
                  "use the whole square window (all 8 neighbours for width=1), not only the 4 straight ones")
        near_background = _near(instances == 0, width) & missing
        if near_background.any() and not ((got == 2) & (expected == 1)).any():
            fail(f"{what} misses the border along the background ({int(near_background.sum())} pixel(s))",
                  "every cell gets a ring, not only where it touches another cell: background counts as "
                  "another label")
        fail(f"{what} differs from the library in {int((got != expected).sum())} pixel(s)",
              "class 2 where scipy.ndimage.maximum_filter or minimum_filter of the labels over a (2 width + 1) "
              "square (mode='nearest') differs from the label; class 1 on the other cell pixels")
    return CheckPassed("✓ interior_border matches unet_lib.data.interior_border_classes for widths 1 and 2")


def _cross_window_classes(instances: np.ndarray, width: int) -> np.ndarray:
    """The three classes with a cross-shaped window (4 straight neighbours, repeated): a common slip."""
    from scipy import ndimage
    labels = np.asarray(instances, np.int64)
    footprint = ndimage.iterate_structure(ndimage.generate_binary_structure(2, 1), width)
    other = ((ndimage.maximum_filter(labels, footprint=footprint, mode="nearest") != labels)
             | (ndimage.minimum_filter(labels, footprint=footprint, mode="nearest") != labels))
    return np.where(labels == 0, 0, np.where(other, 2, 1))


def _near(background: np.ndarray, width: int) -> np.ndarray:
    """Pixels within ``width`` (square window) of a True pixel of ``background``."""
    from scipy import ndimage
    return ndimage.maximum_filter(background.astype(np.uint8), size=2 * width + 1, mode="nearest") > 0


@learner_check
def check_postprocess(postprocess: Callable, min_f1: float = 0.70) -> CheckPassed:
    """``postprocess(labels)`` must turn the raw Otsu labels of the real nuclei image
    (``otsu_instances``: hundreds of specks, touching nuclei merged) into nuclei: an (H, W) label
    image scored on the held-out right half (columns 256-511) with an instance F1 of at least
    ``min_f1``. Raw, the labels score 0.11 there."""
    from ..baselines import otsu_instances
    from ..data import load_real_nuclei
    from ..metrics import instance_scores
    image, instances = load_real_nuclei()
    raw = otsu_instances(image)                                            # (512, 512) int64
    got = call(postprocess, raw.copy())
    if isinstance(got, torch.Tensor):
        got = got.detach().cpu().numpy()
    got = np.asarray(got)
    if got.shape != raw.shape:
        fail(f"postprocess returned shape {got.shape}; expected {raw.shape}", "return one label per pixel, (H, W)")
    if got.dtype == bool or (got.size and got.max() <= 1):
        fail("postprocess returned a foreground mask (only 0 and 1): every nucleus is the same object",
              "return labels: a distinct id per nucleus, 0 = background (e.g. scipy.ndimage.label of a mask)")
    if not np.issubdtype(got.dtype, np.integer):
        fail(f"postprocess returned dtype {got.dtype}; expected integer labels", "return an integer label image")
    right = np.s_[:, 256:]
    s = instance_scores(got[right], instances[right])
    sizes = np.bincount(got[right].ravel())[1:]
    specks = int(((sizes > 0) & (sizes < 20)).sum())
    if s.f1 >= min_f1:
        return CheckPassed(f"✓ instance F1 on the held-out right half: {s.f1:.2f} (raw Otsu: 0.11; merged "
                           f"{s.merged}, split {s.split}, objects under 20 px: {specks})")
    if specks > 10:
        hint = (f"{specks} objects under 20 pixels remain: remove them (unet_lib.baselines.remove_small_objects); "
                f"choose the size on the left half, where the median nucleus has ~440 px")
    elif s.merged > 5:
        hint = (f"{s.merged} nuclei are merged with a neighbour: split the foreground at the waists with "
                f"unet_lib.baselines.watershed_split (and fill holes first, scipy.ndimage.binary_fill_holes)")
    else:
        hint = ("score your steps on the left half (columns 0-255) one at a time with "
                "unet_lib.metrics.instance_scores, as in section 6")
    fail(f"instance F1 on the held-out right half is {s.f1:.2f} (merged {s.merged}, split {s.split}, "
          f"objects under 20 px: {specks}); the check asks for at least {min_f1:.2f}", hint)
