"""The checks of notebook 06, weighted loss: ``check_class_balance``, ``check_border_weight_share``, ``check_border_term``."""

from collections.abc import Callable

import numpy as np
import torch

from ._core import CheckPassed, as_array, call, fail, learner_check

__all__ = ['check_class_balance', 'check_border_weight_share', 'check_border_term']


@learner_check
def check_border_term(border_term: Callable) -> CheckPassed:
    """``border_term(instances, w0, sigma)`` must return the second term of Eq. 2,
    w0 * exp(-(d1 + d2)^2 / (2 sigma^2)), on background pixels (0 on cells, 0 everywhere with fewer
    than two cells), as an (H, W) array. Compared with ``unet_lib.weights.border_term_naive``."""
    from scipy import ndimage

    from ..weights import border_term_naive
    two = np.array([[1, 0, 0, 2]])
    rng = np.random.default_rng(0)
    three = np.zeros((14, 17), np.int64)
    three[2:6, 1:5], three[9:13, 3:8], three[3:8, 10:15] = 1, 4, 9
    from ..data import draw_cells, separate_touching
    toy = separate_touching(draw_cells(40, rng, n_cells=(6, 6), radius=(5.0, 8.0))[1])
    one = np.zeros((6, 7), np.int64)
    one[2:4, 2:5] = 3
    cases = [("[[1, 0, 0, 2]]", two, 10.0, 5.0), ("three cells, 14x17", three, 10.0, 5.0),
             ("three cells, 14x17, w0=4, sigma=2", three, 4.0, 2.0), ("a 40x40 toy-cells image", toy, 10.0, 5.0),
             ("a single cell", one, 10.0, 5.0), ("an empty image", np.zeros((5, 6), np.int64), 10.0, 5.0)]
    for name, instances, w0, sigma in cases:
        got = as_array(call(border_term, instances.copy(), w0, sigma), f"border_term({name})", instances.shape)
        expected = border_term_naive(instances, w0, sigma).astype(np.float64)
        if np.allclose(got, expected, atol=1e-3):
            continue
        if expected.max() == 0:
            fail(f"border_term({name}) is not 0 everywhere",
                  "with fewer than two cells there is no second-nearest cell (no d2): return zeros")
        if np.any(got[instances > 0] != 0):
            fail(f"border_term({name}) is non-zero on cell pixels",
                  "the border term applies to background pixels only (instances == 0)")
        distances = np.sort(np.stack([ndimage.distance_transform_edt(instances != i)
                                      for i in np.unique(instances[instances > 0])]), axis=0)
        d1, d2 = distances[0], distances[1]
        background = instances == 0
        variants = {
            "(d1 + d2)^2 / sigma^2": (np.exp(-(d1 + d2) ** 2 / sigma**2),
                                      "the denominator is 2 * sigma^2"),
            "(d1 + d2)^2 / (2 * sigma)": (np.exp(-(d1 + d2) ** 2 / (2 * sigma)),
                                          "square sigma: the denominator is 2 * sigma^2 (sigma**2 in Python), "
                                          "not 2 * sigma"),
            "(d1^2 + d2^2)": (np.exp(-(d1**2 + d2**2) / (2 * sigma**2)),
                              "square the sum: (d1 + d2)^2, not d1^2 + d2^2"),
            "2 * d1": (np.exp(-(2 * d1) ** 2 / (2 * sigma**2)),
                       "d2 is the distance to the *second*-nearest cell: sort the per-cell distances "
                       "and take the two smallest"),
            "no w0": (np.exp(-(d1 + d2) ** 2 / (2 * sigma**2)) / w0, "multiply by w0"),
        }
        for formula, (value, hint) in variants.items():
            if np.allclose(got, np.where(background, w0 * value, 0), atol=1e-3):
                fail(f"border_term({name}) computes the exponent with {formula}", hint)
        worst = np.unravel_index(np.abs(got - expected).argmax(), got.shape)
        fail(f"border_term({name}) differs at pixel {tuple(map(int, worst))}: {got[worst]:.4g}, expected "
              f"{expected[worst]:.4g} (d1 = {d1[worst]:.3g}, d2 = {d2[worst]:.3g})",
              "d_i is the Euclidean distance to the nearest pixel of cell i: "
              "scipy.ndimage.distance_transform_edt(instances != i), one per cell; w0 and sigma are arguments")
    return CheckPassed("✓ border_term matches Eq. 2's border term on hand-made and toy cells, "
                       "with one cell and with none")


@learner_check
def check_class_balance(class_balance: Callable) -> CheckPassed:
    """``class_balance(mask)`` must return w_c of Eq. 2 as an (H, W) map for a 0/1 mask:
    w_c = n_pixels / (2 * count_c), so that both classes carry the same total weight.
    Compared with ``unet_lib.weights.class_weight_map``."""
    from ..data import draw_cells, instances_to_mask
    from ..weights import class_weight_map
    rng = np.random.default_rng(0)
    cases = [("[[0, 0, 0, 1]]", np.array([[0, 0, 0, 1]])),
             ("a random 6x7 mask", (rng.random((6, 7)) < 0.3).astype(np.int64)),
             ("a 40x40 toy-cells mask", instances_to_mask(draw_cells(40, rng, n_cells=(6, 6), radius=(5.0, 8.0))[1])),
             ("a mask without cells, 3x4", np.zeros((3, 4), np.int64))]
    for name, mask in cases:
        got = as_array(call(class_balance, mask.copy()), f"class_balance({name})", mask.shape)
        expected = class_weight_map(mask).astype(np.float64)
        if np.allclose(got, expected, rtol=1e-5):
            continue
        if not np.all(np.isfinite(got)):
            fail(f"class_balance({name}) contains inf or nan",
                  "a class with no pixels has no weight to compute: divide only by the counts of the classes "
                  "present (or by np.maximum(count, 1))")
        counts = {c: (mask == c).sum() for c in (0, 1)}
        count = np.where(mask == 1, counts[1], counts[0]).astype(np.float64)
        variants = [
            (count / (2 * mask.size), "the rarer class gets the *larger* weight: w_c = n_pixels / (2 * count_c)"),
            (count / mask.size, "the rarer class gets the *larger* weight: w_c = n_pixels / (2 * count_c)"),
            (mask.size / count, "divide by the number of classes too: w_c = n_pixels / (2 * count_c), so that "
                                "the mean weight over the image is 1"),
            (1 / count, "multiply by the number of pixels: w_c = n_pixels / (2 * count_c)"),
        ]
        for value, hint in variants:
            if np.allclose(got, value, rtol=1e-5):
                fail(f"class_balance({name}) gives the classes the weights "
                      f"{', '.join(f'{v:.3g}' for v in np.unique(got))}; expected "
                      f"{', '.join(f'{v:.3g}' for v in np.unique(expected))}", hint)
        fail(f"class_balance({name}) differs from w_c: {', '.join(f'{v:.3g}' for v in np.unique(got)[:4])}; "
              f"expected {', '.join(f'{v:.3g}' for v in np.unique(expected))}",
              "every pixel of class c gets n_pixels / (2 * count_c), where count_c = (mask == c).sum()")
    return CheckPassed("✓ class_balance gives both classes the same total weight, as class_weight_map does")


@learner_check
def check_border_weight_share(border_weight_share: Callable) -> CheckPassed:
    """``border_weight_share(instances, sigma)`` must return the share of the total weight of the
    paper's weight map (``unet_weight_map`` of the separated cells, w0 = 10, the given sigma) that
    lies on the separating-border pixels (``touching_borders`` of the original instances)."""
    from ..data import draw_cells, separate_touching, touching_borders
    from ..weights import class_weight_map, unet_weight_map

    def share(weights: np.ndarray, borders: np.ndarray) -> float:
        return float(weights[borders].sum() / weights.sum())

    rng = np.random.default_rng(0)
    images = [draw_cells(64, rng, n_cells=(10, 10), radius=(6.0, 10.0))[1] for _ in range(2)]
    for k, instances in enumerate(images):
        borders = touching_borders(instances)
        separated = separate_touching(instances)
        for sigma in (2.0, 5.0, 10.0):
            what = f"border_weight_share(toy image {k}, sigma={sigma:g})"
            got = call(border_weight_share, instances.copy(), sigma)
            if isinstance(got, torch.Tensor) and got.numel() == 1 or isinstance(got, np.ndarray) and got.size == 1:
                got = got.item()
            if not isinstance(got, (int, float, np.integer, np.floating)):
                fail(f"{what} returned a {type(got).__name__}; expected one number",
                      "return weight_map[borders].sum() / weight_map.sum() as a float")
            got = float(got)
            expected = share(unet_weight_map(separated, sigma=sigma), borders)
            if abs(got - expected) <= 1e-4 * max(abs(expected), 1e-3):
                continue
            variants = [
                (share(unet_weight_map(separated), borders),
                 "pass sigma on: unet_weight_map(separated, sigma=sigma)"),
                (share(unet_weight_map(instances, sigma=sigma), borders),
                 "compute the weight map from separate_touching(instances): in the paper's mask the "
                 "border pixels are background, and the border term is added on background pixels only"),
                (float(borders.mean()), "that is the share of the *pixels*; the question is the share of the "
                                        "*weight*: weight_map[borders].sum() / weight_map.sum()"),
                (0.0, "find the borders on the original instances: touching_borders(separated) is empty, "
                      "since separated cells no longer touch"),
                (share(class_weight_map((separated > 0).astype(np.int64)), borders),
                 "use the whole weight map, w_c plus the border term: unet_weight_map"),
            ]
            for value, hint in variants:
                if abs(got - value) <= 1e-4 * max(abs(value), 1e-3):
                    fail(f"{what} = {got:.4f}; expected {expected:.4f}", hint)
            fail(f"{what} = {got:.4f}; expected {expected:.4f}",
                  "borders = touching_borders(instances); weight_map = unet_weight_map(separate_touching("
                  "instances), sigma=sigma); return weight_map[borders].sum() / weight_map.sum()")
    return CheckPassed("✓ border_weight_share agrees with unet_weight_map on two toy images for sigma 2, 5 and 10")
