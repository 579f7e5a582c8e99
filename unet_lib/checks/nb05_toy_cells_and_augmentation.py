"""The checks of notebook 05, toy cells and augmentation: ``check_touching_pairs``, ``check_warp_image``, ``check_touching_share``, ``check_instances_to_mask``."""

import functools
from collections.abc import Callable

import numpy as np

from ._core import CheckPassed, as_array, call, fail, learner_check

__all__ = ['check_touching_pairs', 'check_warp_image', 'check_touching_share', 'check_instances_to_mask']


def _ground_truth_cases() -> list[tuple[str, np.ndarray]]:
    side_by_side = np.array([[1, 1, 2, 2, 0],
                             [1, 1, 2, 2, 0],
                             [0, 0, 0, 0, 0]])
    diagonal = np.array([[1, 1, 0, 0],
                         [1, 1, 0, 0],
                         [0, 0, 3, 3],
                         [0, 0, 3, 3]])
    apart = np.array([[5, 5, 0, 7, 7],
                      [5, 5, 0, 7, 7]])
    from ..data import draw_cells
    _, toy = draw_cells(40, np.random.default_rng(1), n_cells=(8, 8), radius=(5.0, 8.0))
    return [("two cells side by side", side_by_side), ("two cells touching at a corner", diagonal),
            ("two cells one pixel apart (ids 5 and 7)", apart), ("a 40x40 toy-cells image", toy)]


@learner_check
def check_instances_to_mask(instances_to_mask: Callable) -> CheckPassed:
    """``instances_to_mask(instances)`` must turn an (H, W) label image into the paper's mask:
    1 on cells, 0 on background and on every cell pixel that has a pixel of *another* cell
    among its 8 neighbours. Compared with ``unet_lib.data.instances_to_mask``."""
    from ..data import instances_to_mask as reference
    for name, instances in _ground_truth_cases():
        got = as_array(call(instances_to_mask, instances.copy()), f"instances_to_mask({name})", instances.shape)
        expected = reference(instances)
        if np.array_equal(got, expected):
            continue
        if not np.isin(got, (0, 1)).all():
            fail(f"instances_to_mask({name}) contains values other than 0 and 1: "
                  f"{', '.join(f'{v:g}' for v in np.unique(got)[:6])}",
                  "return the semantic mask (1 = cell, 0 = background), not the instance ids")
        if name == "two cells touching at a corner" and np.array_equal(got, instances > 0):
            fail(f"instances_to_mask({name}) keeps the two cells connected diagonally",
                  "look at all 8 neighbours, the diagonal ones too (e.g. a 3x3 window)")
        if np.array_equal(got, instances > 0):
            fail(f"instances_to_mask({name}) is just instances > 0: the touching cells are merged",
                  "set every cell pixel to 0 that has a neighbour belonging to a different cell")
        cut, should_cut = (instances > 0) & (got == 0), (instances > 0) & (expected == 0)
        if (cut & ~should_cut).any():
            fail(f"instances_to_mask({name}) removes cell pixels that touch no other cell",
                  "only a neighbour from a *different cell* counts; background neighbours do not "
                  "(a pixel at the edge of a lone cell stays 1)")
        missed = should_cut & ~cut
        if missed.any():
            fail(f"instances_to_mask({name}) keeps {int(missed.sum())} border pixel(s) between touching cells",
                  "cut both sides of a contact: a pixel of cell a next to cell b, and the pixel of b next to a")
        fail(f"instances_to_mask({name}) differs from the library's mask", "compare your output with "
              "unet_lib.data.instances_to_mask on the same input")
    return CheckPassed("✓ instances_to_mask cuts the borders between touching cells, diagonals included, "
                       "and nothing else")


def _touching_pairs(instances: np.ndarray) -> set[tuple[int, int]]:
    """The pairs (a, b), a < b, of cells with a pixel of b among the 8 neighbours of a pixel of a."""
    H, W = instances.shape
    padded = np.pad(instances, 1)
    pairs = set()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            neighbour = padded[1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W]      # (H, W)
            contact = (instances > 0) & (neighbour > 0) & (instances != neighbour)
            pairs.update((int(min(a, b)), int(max(a, b))) for a, b in zip(instances[contact], neighbour[contact]))
    return pairs


@learner_check
def check_touching_pairs(touching_pairs: Callable) -> CheckPassed:
    """``touching_pairs(instances)`` must return the set of pairs (a, b), a < b, of cells that
    touch: a pixel of cell a has a pixel of cell b among its 8 neighbours."""
    cases = _ground_truth_cases()
    three = np.zeros((5, 9), np.int64)
    three[1:4, 0:3], three[1:4, 3:6], three[1:4, 6:9] = 4, 9, 2          # 4 | 9 | 2: two contacts
    cases.insert(3, ("three cells in a row (ids 4, 9, 2)", three))
    cases.append(("an image without cells", np.zeros((4, 5), np.int64)))
    for name, instances in cases:
        got = call(touching_pairs, instances.copy())
        expected = _touching_pairs(instances)
        try:
            pairs = [tuple(int(v) for v in pair) for pair in got]
        except TypeError:
            fail(f"touching_pairs({name}) returned {got!r}; expected a set of pairs of cell ids",
                  "return a set of tuples (a, b), e.g. {(1, 2), (2, 5)}")
        if any(len(pair) != 2 for pair in pairs):
            fail(f"touching_pairs({name}) returned {got!r}: every element must be one pair (a, b)",
                  "add (a, b) for each contact, not single ids or longer tuples")
        if set(pairs) == expected and all(a < b for a, b in pairs):
            continue
        if any(0 in pair for pair in pairs):
            fail(f"touching_pairs({name}) contains a pair with 0", "0 is the background, not a cell: "
                  "only a neighbour that belongs to *another cell* is a contact")
        if any(a == b for a, b in pairs):
            fail(f"touching_pairs({name}) contains a cell paired with itself",
                  "only neighbours with a *different* id count")
        if {(min(p), max(p)) for p in pairs} == expected:
            fail(f"touching_pairs({name}) = {sorted(pairs)}; expected {sorted(expected)}",
                  "each pair once, smaller id first: add (min(a, b), max(a, b))")
        missing, extra = sorted(expected - set(pairs)), sorted(set(pairs) - expected)
        if name == "two cells touching at a corner" and missing:
            fail(f"touching_pairs({name}) misses the contact {missing[0]}",
                  "look at all 8 neighbours, the diagonal ones too")
        if extra:
            fail(f"touching_pairs({name}) has pairs that do not touch: {extra[:5]}",
                  "a contact is a pixel of a and a pixel of b that are *neighbours* (at most one step apart, "
                  "diagonals included); a background pixel between them means no contact")
        fail(f"touching_pairs({name}) misses {len(missing)} contact(s), e.g. {missing[:5]}",
              "for every cell pixel, look at its 8 neighbours (np.roll or slicing of a padded copy), "
              "and keep the pairs of different non-zero ids")
    return CheckPassed("✓ touching_pairs finds every contact, diagonals included, each pair once")


def _warp(image: np.ndarray, displacement: np.ndarray, sign: float = 1.0, order: int = 1,
          swap: bool = False, mode: str = "reflect") -> np.ndarray:
    """``image`` sampled at x + sign * displacement(x): the reference (the defaults) and the
    learner's likely mistakes, for ``check_warp_image``."""
    from scipy import ndimage
    H, W = image.shape
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    d = displacement[::-1] if swap else displacement
    coords = np.stack([rows + sign * d[0], cols + sign * d[1]])                    # (2, H, W)
    return ndimage.map_coordinates(image, coords, order=order, mode=mode)


@learner_check
def check_warp_image(warp_image: Callable) -> CheckPassed:
    """``warp_image(image, displacement)`` must return the (H, W) image whose pixel x takes the
    value of ``image`` at x + displacement(x) (rows ``displacement[0]``, columns
    ``displacement[1]``), interpolated linearly, reflected at the border: the image half of
    ``unet_lib.augment.elastic_deform``."""
    from scipy import ndimage

    from ..augment import elastic_deform, elastic_displacement
    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.random((20, 24)), 1.0)            # (H, W), smooth like a micrograph
    shift = np.stack([np.full((20, 24), 2.0), np.full((20, 24), -3.0)])
    half = np.stack([np.full((20, 24), 0.5), np.full((20, 24), 0.25)])
    _, field = elastic_displacement((20, 24), rng, grid=3, sigma=4.0)
    cases = [("a shift by (2, -3) px", shift), ("a shift by (0.5, 0.25) px", half),
             ("an elastic field (grid 3, sigma 4)", field)]
    for name, displacement in cases:
        got = as_array(call(warp_image, image.copy(), displacement.copy()), f"warp_image(image, {name})",
                        image.shape)
        expected = elastic_deform(image, np.zeros(image.shape, np.int64), displacement)[0]
        if np.allclose(got, expected, atol=1e-6):
            continue
        mistakes = [
            (dict(sign=-1.0), "content moves *against* the arrows: output pixel x takes its value from "
                              "x + displacement(x), not x - displacement(x)"),
            (dict(swap=True), "displacement[0] moves along the rows (down), displacement[1] along the columns"),
            (dict(order=0), "interpolate the image linearly (order=1); nearest neighbour is for labels"),
            (dict(order=3), "map_coordinates interpolates with cubic splines by default (order=3): pass order=1"),
        ]
        for kwargs, hint in mistakes:
            if np.allclose(got, _warp(image, displacement, **kwargs), atol=1e-6):
                fail(f"warp_image(image, {name}) differs from the paper's warp", hint)
        H, W = image.shape
        rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
        inside = ((rows + displacement[0] >= 0) & (rows + displacement[0] <= H - 1)
                  & (cols + displacement[1] >= 0) & (cols + displacement[1] <= W - 1))
        if np.allclose(got[inside], expected[inside], atol=1e-6):
            fail(f"warp_image(image, {name}) is right where it samples inside the image, wrong where it "
                  "samples outside", "reflect at the border: map_coordinates(..., mode='reflect')")
        worst = np.unravel_index(np.abs(got - expected).argmax(), got.shape)
        fail(f"warp_image(image, {name}) differs at pixel {tuple(map(int, worst))}: {got[worst]:.4g}, "
              f"expected {expected[worst]:.4g}",
              "sample the image at (row + displacement[0], column + displacement[1]) for every pixel: "
              "scipy.ndimage.map_coordinates(image, coords, order=1, mode='reflect')")
    return CheckPassed("✓ warp_image samples at x + displacement(x), linearly, reflected at the border: "
                       "as elastic_deform does")


@functools.lru_cache(maxsize=32)
def _touching_cells(touching: float, n_samples: int, seed: int) -> tuple[tuple[int, float], ...]:
    """(cells, touching_fraction) of each image of ``ToyCells(n_samples, seed=seed, touching=touching)``."""
    from ..data import ToyCells, touching_fraction
    cells = ToyCells(n_samples, seed=seed, touching=touching)
    out = []
    for i in range(n_samples):
        instances = cells[i]["instances"]
        out.append((len(np.unique(instances.numpy())) - 1, touching_fraction(instances)))
    return tuple(out)


def _touching_share(touching: float, n_samples: int, seed: int) -> float:
    per_image = _touching_cells(touching, n_samples, seed)
    return sum(n * f for n, f in per_image) / sum(n for n, _ in per_image)


@learner_check
def check_touching_share(touching_share: Callable) -> CheckPassed:
    """``touching_share(touching, n_samples, seed)`` must return the fraction of all the cells of
    ``ToyCells(n_samples, seed=seed, touching=touching)`` that touch another cell (touching cells
    over all images / cells over all images), measured with ``touching_fraction``. Run for
    settings and seeds the notebook does not use, against the same experiment here, within 0.001."""
    tolerance = 1e-3
    cases = [(0.0, 6, 11), (0.4, 6, 11), (1.0, 6, 11), (0.4, 3, 5)]
    measured = []
    for touching, n_samples, seed in cases:
        what = f"touching_share({touching}, n_samples={n_samples}, seed={seed})"
        got = call(touching_share, touching, n_samples, seed)
        try:
            value = float(got)
        except (TypeError, ValueError):
            fail(f"{what} returned {type(got).__name__}; expected one float, a fraction of cells",
                  "pool all images: return touching cells / all cells as a float")
        expected = _touching_share(touching, n_samples, seed)
        if abs(value - expected) <= tolerance:
            measured.append(value)
            continue
        problem = f"{what} = {value:.4g}; the experiment gives {expected:.4f}"
        per_image = _touching_cells(touching, n_samples, seed)
        cells = sum(n for n, _ in per_image)
        mistakes = [
            (100 * expected, "return a fraction in [0, 1], not a percentage"),
            (round(expected * cells), f"that is the number of touching cells; divide by all cells ({cells})"),
            (float(np.mean([f for _, f in per_image])), "that is the mean of the per-image fractions, which "
             "gives an image with 3 cells the weight of one with 12: add up touching cells and all cells over "
             "the images first, then divide"),
            (_touching_share(touching, 1, seed), "that is the first image only: measure all n_samples images"),
            (_touching_share(0.7, n_samples, seed), "that is ToyCells' default touching=0.7: pass "
             "touching=touching to ToyCells"),
            (_touching_share(touching, n_samples, 0), "that is seed 0: pass seed=seed to ToyCells"),
        ]
        if n_samples != 16:
            mistakes.append((_touching_share(touching, 16, seed), "that is 16 images: use n_samples"))
        for wrong, hint in mistakes:
            if abs(value - wrong) <= tolerance and abs(wrong - expected) > tolerance:
                fail(problem, hint)
        fail(problem, "cells = ToyCells(n_samples, seed=seed, touching=touching); for each image, "
                       "n = number of cell ids (np.unique without 0) and f = touching_fraction(instances); "
                       "return sum(n * f) / sum(n)")
    return CheckPassed(f"✓ touching_share: {measured[0]:.2f}, {measured[1]:.2f} and {measured[2]:.2f} of the "
                       f"cells touch at touching = 0, 0.4 and 1 (6 images, seed 11), as the same experiment here")
