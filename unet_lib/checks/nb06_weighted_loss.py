"""The checks of notebook 06, weighted loss: ``check_class_balance``, ``check_border_term``,
``check_best_border_sigma``.

Each refuses the library's twin of what it asks, by what runs during the learner's call (see
``_core.call``): ``class_weight_map`` (and what is built on it) for the class balance, the
border-term functions for the border term, the assembled weight map (``unet_weight_map``) for the
experiment on sigma, which may use the two terms but must put them together itself.
"""

from collections.abc import Callable

import numpy as np
import torch

from ._core import CheckPassed, T, as_array, call, fail, learner_check, passed

__all__ = ['check_class_balance', 'check_border_term', 'check_best_border_sigma']


# -- class_balance ---------------------------------------------------------------------------------

def _class_weights(values: np.ndarray, mask: np.ndarray) -> tuple[str, str]:
    """(background's, cells') weight as text: the class's value where it is the same on every pixel
    of the class, 'none' for an absent class, 'mixed' where the pixels of a class differ."""
    out = []
    for c in (0, 1):
        v = values[mask == c]
        out.append("none" if v.size == 0 else f"{v[0]:.3g}" if np.allclose(v, v[0]) else "mixed")
    return out[0], out[1]


@learner_check
def check_class_balance(class_balance: Callable) -> CheckPassed:
    """``class_balance(mask)`` must return w_c of Eq. 2 as an (H, W) map for a 0/1 mask: both
    classes carry the same total weight and the mean weight over the image is 1, which gives
    n_pixels / (2 count_c) on the pixels of class c. Compared with
    ``unet_lib.weights.class_weight_map``, which (with the weight maps built on it) is refused.
    On a mask with one class only the two conditions cannot both hold (the absent class's total is
    0 whatever its weight): there the weights must be finite, and either average to 1 (the prompt's
    choice) or be ``class_weight_map``'s 0.5 (its formula applied as it stands)."""
    from ..data import draw_cells, instances_to_mask, targets_from_instances
    from ..weights import class_balance_map, class_weight_map, unet_weight_map
    refuse = {"class_weight_map": class_weight_map, "class_balance_map": class_balance_map,
              "unet_weight_map": unet_weight_map, "targets_from_instances": targets_from_instances}
    rng = np.random.default_rng(0)
    cases = [("[[0, 0, 0, 1]]", np.array([[0, 0, 0, 1]])),
             ("a random 6x7 mask", (rng.random((6, 7)) < 0.3).astype(np.int64)),
             ("a 40x40 toy-cells mask", instances_to_mask(draw_cells(40, rng, n_cells=(6, 6), radius=(5.0, 8.0))[1])),
             ("a half-and-half 4x4 mask", np.repeat([[0, 0, 1, 1]], 4, axis=0)),
             ("a mask without cells, 3x4", np.zeros((3, 4), np.int64)),
             ("a mask of cells only, 2x3", np.ones((2, 3), np.int64))]
    for name, mask in cases:
        got = as_array(call(class_balance, mask.copy(), refuse=refuse), "class_balance(" + name + ")", mask.shape)
        expected = class_weight_map(mask).astype(np.float64)
        one_class = mask.min() == mask.max()
        if np.allclose(got, expected, rtol=1e-5) or one_class and np.allclose(got, 1.0, rtol=1e-5):
            continue
        values = dict(name=name)
        if not np.all(np.isfinite(got)):
            fail("class_balance({name}) contains inf or nan",
                 "a class without pixels has no weight to compute: leave it out rather than divide by its count "
                 "of 0", **values)
        if one_class:
            weight = _class_weights(got, mask)[int(mask.flat[0])]
            fail("class_balance({name}) gives every pixel the weight {weight}, on a mask with one class only"
                 if weight != "mixed" else
                 T("class_balance({name}) gives the pixels different weights, on a mask with one class only"),
                 "with one class absent the two conditions cannot both hold: the absent class's total is 0 whatever "
                 "its weight, so equal totals would need a weight of 0 for the other class, which would drop the "
                 "image from the loss. Keep the other condition: weights that average to 1",
                 weight=weight, **values)
        (got_bg, got_cell), (exp_bg, exp_cell) = _class_weights(got, mask), _class_weights(expected, mask)
        values.update(got_bg=got_bg, got_cell=got_cell, exp_bg=exp_bg, exp_cell=exp_cell, mean=float(got.mean()))
        if "mixed" in (got_bg, got_cell):
            fail("class_balance({name}) gives the pixels of one class different weights",
                 "w_c depends only on the class: every pixel of a class gets the same weight", **values)
        counts = {c: (mask == c).sum() for c in (0, 1)}
        count = np.where(mask == 1, counts[1], counts[0]).astype(np.float64)
        other = np.where(mask == 1, counts[0], counts[1]).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            variants = [("swapped", mask.size / (2 * other)), ("inverted", count / (2 * mask.size)),
                        ("inverted", count / mask.size), ("no 2", mask.size / count), ("scale", 1 / count)]
        key = next((key for key, value in variants if np.allclose(got, value, rtol=1e-5)), None)
        if key == "swapped":
            hint = T("each class got the weight that belongs to the other: the rarer class must get the larger "
                     "weight, computed from its own count")
        elif key == "inverted":
            hint = T("the rarer class gets the *larger* weight: a class's weight falls as its pixel count grows")
        elif key == "no 2":
            hint = T("both totals are equal, but the mean weight over the image is {mean:.3g}; it must be 1")
        elif key == "scale":
            hint = T("the proportions are right; scale the weights so that they average to 1 over the image")
        else:
            hint = T("two conditions fix w_c: both classes carry the same total weight (count times weight), and "
                     "the weights average to 1 over the image")
        fail("class_balance({name}) gives background {got_bg} and cells {got_cell}; expected background {exp_bg} "
             "and cells {exp_cell}", hint,
             "on [[0, 0, 0, 1]], with a for the background and b for the cell, the conditions read 3a = b and "
             "(3a + b) / 4 = 1: solve them, then write the same for any counts",
             **values)
    return passed("✓ class_balance gives both classes the same total weight and a mean weight of 1 where both are "
                  "present, as class_weight_map does, and finite weights where one class is absent")


# -- border_term -----------------------------------------------------------------------------------

@learner_check
def check_border_term(border_term: Callable) -> CheckPassed:
    """``border_term(instances, w0, sigma)`` must return the second term of Eq. 2,
    w0 exp(-(d1 + d2)^2 / (2 sigma^2)), on background pixels (0 on cells, 0 everywhere with fewer
    than two cells), as an (H, W) array, d1 and d2 the distances to the nearest and second-nearest
    cell. Compared with ``unet_lib.weights.border_term_naive``; the library's border-term functions
    (and the weight map built on them) are refused, distance transforms are the tool."""
    from scipy import ndimage

    from ..data import draw_cells, separate_touching, targets_from_instances
    from ..weights import border_term as library_border_term
    from ..weights import border_term_naive, two_nearest_distances, unet_weight_map
    refuse = {"border_term": library_border_term, "border_term_naive": border_term_naive,
              "two_nearest_distances": two_nearest_distances, "unet_weight_map": unet_weight_map,
              "targets_from_instances": targets_from_instances}
    two = np.array([[1, 0, 0, 2]])
    rng = np.random.default_rng(0)
    three = np.zeros((14, 17), np.int64)
    three[2:6, 1:5], three[9:13, 3:8], three[3:8, 10:15] = 1, 4, 9
    toy = separate_touching(draw_cells(40, rng, n_cells=(6, 6), radius=(5.0, 8.0))[1])
    one = np.zeros((6, 7), np.int64)
    one[2:4, 2:5] = 3
    cases = [("[[1, 0, 0, 2]]", two, 10.0, 5.0), ("three cells, 14x17", three, 10.0, 5.0),
             ("three cells, 14x17, w0=4, sigma=2", three, 4.0, 2.0), ("a 40x40 toy-cells image", toy, 10.0, 5.0),
             ("a single cell", one, 10.0, 5.0), ("an empty image", np.zeros((5, 6), np.int64), 10.0, 5.0)]
    fn = getattr(border_term, "__name__", "border_term")     # the learner's name for it (border_weight)
    for name, instances, w0, sigma in cases:
        got = as_array(call(border_term, instances.copy(), w0, sigma, refuse=refuse), fn + "(" + name + ")",
                       instances.shape)
        expected = border_term_naive(instances, w0, sigma).astype(np.float64)
        if np.allclose(got, expected, atol=1e-3):
            continue
        if expected.max() == 0:
            fail("{fn}({name}) is not 0 everywhere",
                 "with fewer than two cells there is no second-nearest cell (no d2), and no term", fn=fn, name=name)
        if np.any(got[instances > 0] != 0):
            fail("{fn}({name}) is non-zero on cell pixels",
                 "the border term applies to background pixels only (instances == 0)", fn=fn, name=name)
        distances = np.sort(np.stack([ndimage.distance_transform_edt(instances != i)
                                      for i in np.unique(instances[instances > 0])]), axis=0)
        d1, d2 = distances[0], distances[1]
        background = instances == 0
        variants = [("no 2", np.exp(-(d1 + d2) ** 2 / sigma**2)),
                    ("sigma", np.exp(-(d1 + d2) ** 2 / (2 * sigma))),
                    ("squares", np.exp(-(d1**2 + d2**2) / (2 * sigma**2))),
                    ("d1 twice", np.exp(-(2 * d1) ** 2 / (2 * sigma**2))),
                    ("no w0", np.exp(-(d1 + d2) ** 2 / (2 * sigma**2)) / w0)]
        key = next((key for key, value in variants if np.allclose(got, np.where(background, w0 * value, 0),
                                                                   atol=1e-3)), None)
        if key == "no 2":
            hint = T("your exponent is (d1 + d2)^2 / sigma^2: the denominator is 2 sigma^2")
        elif key == "sigma":
            hint = T("your exponent divides by 2 sigma: square sigma, the denominator is 2 sigma^2")
        elif key == "squares":
            hint = T("your exponent adds the squares, d1^2 + d2^2: square the sum, (d1 + d2)^2")
        elif key == "d1 twice":
            hint = T("you use the nearest cell's distance twice: d2 is the distance to the *second*-nearest cell, "
                     "a different cell from the nearest one")
        elif key == "no w0":
            hint = T("the exponential is right; the term is w0 times it")
        if key is not None:
            fail("{fn}({name}) differs from Eq. 2's border term", hint, fn=fn, name=name)
        worst = np.unravel_index(np.abs(got - expected).argmax(), got.shape)
        fail("{fn}({name}) differs at pixel {pixel}: {got:.4g}, expected {expected:.4g} (there d1 = {d1:.3g} "
             "and d2 = {d2:.3g})",
             "d1(x) and d2(x) are the distances from x to the nearest and the second-nearest cell: measure, for "
             "every cell, the distance from each pixel to that cell's nearest pixel, then take the two smallest at "
             "each pixel; w0 and sigma are the arguments",
             "scipy.ndimage.distance_transform_edt gives, for every non-zero pixel of its input, the Euclidean "
             "distance to the nearest zero: which input makes the zeros the pixels of one cell?",
             fn=fn, name=name, pixel=tuple(int(v) for v in worst), got=float(got[worst]),
             expected=float(expected[worst]), d1=float(d1[worst]), d2=float(d2[worst]))
    return passed("✓ {fn} matches Eq. 2's border term on hand-made and toy cells, with one cell and with none", fn=fn)


# -- best_border_sigma -----------------------------------------------------------------------------

def _border_share(instances: np.ndarray, sigma: float, variant: str = "paper") -> float:
    """The share of the weight map's total weight (Eq. 2, w0 = 10) on the separating-border pixels
    of ``instances``; ``variant`` reproduces a learner's likely mistake."""
    from ..data import separate_touching, touching_borders
    from ..weights import border_term, class_weight_map
    separated = separate_touching(instances)
    source = instances if variant == "not separated" else separated
    borders = touching_borders(separated if variant == "borders of the separated cells" else instances)
    w_c = class_weight_map((source > 0).astype(np.int64)).astype(np.float64)
    term = border_term(source, 10.0, sigma).astype(np.float64)
    weights = {"w_c only": w_c, "border term only": term}.get(variant, w_c + term)
    if variant == "pixel share":
        return float(borders.mean())
    return float(weights[borders].sum() / weights.sum()) if weights.sum() > 0 else 0.0


def _sigma_cases() -> list[tuple[str, np.ndarray, tuple[float, ...]]]:
    from ..data import draw_cells
    small = draw_cells(64, np.random.default_rng(2), n_cells=(6, 9), radius=(5.0, 9.0), touching=0.8)[1]
    large = draw_cells(96, np.random.default_rng(1), n_cells=(4, 6), radius=(10.0, 16.0), touching=0.8)[1]
    return [("a 64x64 toy image", small, (8.0, 2.0, 16.0, 1.0, 4.0)),           # not sorted
            ("a 96x96 toy image with larger cells", large, (2.0, 3.0, 6.0, 9.0, 12.0)),
            ("a 64x64 toy image", small, (8.0, 12.0, 20.0))]


@learner_check
def check_best_border_sigma(best_border_sigma: Callable) -> CheckPassed:
    """``best_border_sigma(instances, sigmas)`` must return ``(sigma, share)``: the sigma of
    ``sigmas`` at which the separating-border pixels of ``instances`` (``touching_borders`` of the
    cells as given) carry the largest share of the total weight of Eq. 2's weight map (w0 = 10,
    computed on the separated cells), and that share. Run on toy images and sigma lists the notebook
    does not use; the assembled weight map (``unet_weight_map``) is refused, its two terms are not.
    An experiment: the messages never print the expected values."""
    from ..data import targets_from_instances
    from ..weights import unet_weight_map
    refuse = {"unet_weight_map": unet_weight_map, "targets_from_instances": targets_from_instances}
    tolerance = 1e-3
    for name, instances, sigmas in _sigma_cases():
        values = dict(name=name, sigmas=", ".join(f"{s:g}" for s in sigmas))
        got = call(best_border_sigma, instances.copy(), list(sigmas), refuse=refuse)
        try:
            sigma, share = (float(v.item() if isinstance(v, (torch.Tensor, np.ndarray)) else v) for v in got)
        except (TypeError, ValueError):
            fail("best_border_sigma({name}, sigmas=[{sigmas}]) returned {got!r}; expected a pair (sigma, share)",
                 "return the chosen sigma and the share of the weight it puts on the borders, as a tuple",
                 got=got, **values)
        values.update(sigma=sigma, share=share)
        shares = {s: _border_share(instances, s) for s in sigmas}
        best = max(shares.values())
        if not any(abs(sigma - s) < 1e-9 for s in sigmas):
            fail("best_border_sigma({name}, sigmas=[{sigmas}]) chose sigma = {sigma:g}, which is not in the list",
                 "choose among the sigmas you are given", **values)
        right_share = shares[min(sigmas, key=lambda s: abs(s - sigma))]
        if abs(share - right_share) > tolerance * right_share:
            key = next((key for key in ("pixel share", "not separated", "borders of the separated cells",
                                        "w_c only", "border term only")
                        if abs(share - _border_share(instances, sigma, key)) <= tolerance * max(right_share, 1e-3)),
                       None)
            if key == "pixel share":
                hint = T("that is the share of the border *pixels*; the question is the share of the *weight*: the "
                         "weight on the border pixels over the weight of the whole map")
            elif key == "not separated":
                hint = T("compute the weight map on the separated cells (separate_touching): in the paper's ground "
                         "truth the borders are background, and the border term is added on background pixels only")
            elif key == "borders of the separated cells":
                hint = T("find the borders on the cells as given: once separated they no longer touch, and have no "
                         "borders")
            elif key == "w_c only":
                hint = T("that is w_c alone; Eq. 2's weight map adds the border term")
            elif key == "border term only":
                hint = T("that is the border term alone; Eq. 2's weight map adds w_c")
            else:
                hint = T("the share is the weight of Eq. 2's map on the separating-border pixels over the weight of "
                         "the whole map, both terms, on the separated cells, w0 = 10 and the sigma you chose")
            fail("best_border_sigma({name}, sigmas=[{sigmas}]) gives a share of {share:.4f} for sigma = {sigma:g}, "
                 "but that sigma puts another share of the weight on the borders", hint, **values)
        if right_share < best - tolerance * best:
            fail("best_border_sigma({name}, sigmas=[{sigmas}]) chose sigma = {sigma:g}; another sigma in the list "
                 "puts a larger share of the weight on the borders",
                 T("you chose the sigma with the *smallest* share; the question asks for the largest")
                 if abs(right_share - min(shares.values())) <= tolerance * right_share else
                 T("compute the share for every sigma of the list, on this image, and keep the largest"),
                 **values)
    return passed("✓ best_border_sigma finds the sigma that puts the most weight on the separating borders, on toy "
                  "images with small and large cells")
