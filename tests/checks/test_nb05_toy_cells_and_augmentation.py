"""Tests for unet_lib.checks.nb05_toy_cells_and_augmentation: ``check_touching_pairs``,
``check_warp_image``, ``check_touching_share`` both ways.

Each check passes a correct answer written independently here and fails deliberately broken
versions, and the library's shortcuts, with the intended message."""

import numpy as np
import pytest
import scipy.interpolate
import torch
import torch.nn.functional as F
from checktools import assert_passes, assert_skeleton_is_friendly, reference
from scipy import ndimage

from unet_lib.augment import elastic_deform
from unet_lib.checks import CheckError, check_touching_pairs, check_touching_share, check_warp_image
from unet_lib.checks import nb05_toy_cells_and_augmentation as nb05
from unet_lib.data import separate_touching, touching_borders, touching_fraction

REFUSED = r"called {names}, which already does what this exercise asks you to write\nHint: write it yourself"


def refused(*names: str) -> str:
    return REFUSED.format(names=", ".join(rf"`{name}`" for name in names))


# -- touching_pairs --------------------------------------------------------------------------------

def touching_pairs_by_loop(instances, steps=None, ordered=True, keep_background=False, wrap=False):
    """Pixel by pixel over the given neighbour offsets (all 8 by default); mistakes switched on by the arguments."""
    steps = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)] if steps is None else steps
    H, W = instances.shape
    pairs = set()
    for r in range(H):
        for c in range(W):
            for dr, dc in steps:
                rr, cc = r + dr, c + dc
                if wrap:
                    rr, cc = rr % H, cc % W
                elif not (0 <= rr < H and 0 <= cc < W):
                    continue
                a, b = int(instances[r, c]), int(instances[rr, cc])
                if a != b and a > 0 and (b > 0 or keep_background):
                    pairs.add((min(a, b), max(a, b)) if ordered else (a, b))
    return pairs


def test_check_touching_pairs_passes_a_loop_over_pixels():
    assert_passes(check_touching_pairs, touching_pairs_by_loop)
    assert_passes(check_touching_pairs, lambda i: sorted(touching_pairs_by_loop(i)))   # a list of pairs is fine
    assert_skeleton_is_friendly(check_touching_pairs, "touching_pairs")


def test_touching_pairs_reference_by_hand():
    row = np.array([[4, 4, 9, 9, 2, 2]])
    assert reference(nb05._touching_pairs)(row) == {(4, 9), (2, 9)}
    assert reference(nb05._touching_pairs)(np.array([[1, 0], [0, 3]])) == {(1, 3)}
    assert reference(nb05._touching_pairs)(np.array([[0, 1], [3, 0]])) == {(1, 3)}
    assert reference(nb05._touching_pairs)(np.array([[5, 0, 7]])) == set()
    assert reference(nb05._touching_pairs)(np.array([[5, 0, 7]]), wrap=True) == {(5, 7)}          # around the edge


def by_touching_borders(instances):
    borders = touching_borders(instances)
    return touching_pairs_by_loop(np.where(borders, instances, 0))


def by_separating(instances):
    gone = (instances > 0) & (separate_touching(instances) == 0)
    return touching_pairs_by_loop(np.where(gone, instances, 0))


FORWARD_ONLY = [(0, 1), (1, 0), (1, 1)]

BROKEN_TOUCHING_PAIRS = {
    "touching_borders (refused)": (by_touching_borders, refused("touching_borders")),
    "separate_touching (refused)": (by_separating, refused("separate_touching")),
    "4-neighbourhood": (lambda i: touching_pairs_by_loop(i, steps=[(0, 1), (1, 0), (0, -1), (-1, 0)]),
                        r"corner\) misses the contact \(1, 3\)\nHint: look at all 8 neighbours"),
    "never looks down-left": (lambda i: touching_pairs_by_loop(i, steps=FORWARD_ONLY),
                              r"touching at the other corner\) misses the contact \(1, 3\)\nHint: a contact can lie "
                              r"in any of the 8 directions"),
    "np.roll wraps around": (lambda i: touching_pairs_by_loop(i, wrap=True),
                             r"opposite edges of the image \(ids 4, 6, 8\)\) pairs cells on opposite edges of the "
                             r"image: \[\(4, 6\), \(4, 8\), \(6, 8\)\]\nHint 1 of 2: the image does not wrap around"),
    "both orders": (lambda i: touching_pairs_by_loop(i, ordered=False),
                    r"= \[\(1, 2\), \(2, 1\)\]; expected \[\(1, 2\)\]\nHint: each pair once"),
    "background as a cell": (lambda i: touching_pairs_by_loop(i, keep_background=True),
                             r"contains a pair with 0\nHint: 0 is the background"),
    "one id per contact": (lambda i: {int(v) for v in np.unique(i[i > 0])}, r"expected a set of pairs"),
    "across a gap": (lambda i: touching_pairs_by_loop(i) | ({(5, 7)} if {5, 7} <= set(np.unique(i)) else set()),
                     r"one pixel apart \(ids 5 and 7\)\) has pairs that do not touch: \[\(5, 7\)\]"),
    "only the first contact": (lambda i: set(sorted(touching_pairs_by_loop(i))[:1]),
                               r"three cells in a row .* misses 1 contact\(s\), such as \(4, 9\)\n"
                               r"Hint 1 of 2: for every cell pixel"),
}


@pytest.mark.parametrize("answer, match", BROKEN_TOUCHING_PAIRS.values(), ids=BROKEN_TOUCHING_PAIRS.keys())
def test_check_touching_pairs_fails_broken_pairs(answer, match):
    with pytest.raises(CheckError, match=match):
        check_touching_pairs(answer)


def test_check_touching_pairs_names_the_wrap_without_blaming_the_background():
    with pytest.raises(CheckError) as info:
        check_touching_pairs(lambda i: touching_pairs_by_loop(i, wrap=True))
    assert "background pixel" not in str(info.value)


# -- warp_image ------------------------------------------------------------------------------------

def warp_by_hand(image, displacement):
    """Bilinear sampling at x + displacement(x), indices reflected with the edge pixel repeated:
    a right answer written out, independent of scipy."""
    H, W = image.shape
    out = np.empty_like(image, dtype=np.float64)
    for r in range(H):
        for c in range(W):
            y, x = r + displacement[0, r, c], c + displacement[1, r, c]
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            fy, fx = y - y0, x - x0

            def pixel(i, j):
                i, j = i % (2 * H), j % (2 * W)
                i, j = (2 * H - 1 - i if i >= H else i), (2 * W - 1 - j if j >= W else j)
                return image[i, j]

            out[r, c] = ((1 - fy) * (1 - fx) * pixel(y0, x0) + (1 - fy) * fx * pixel(y0, x0 + 1)
                         + fy * (1 - fx) * pixel(y0 + 1, x0) + fy * fx * pixel(y0 + 1, x0 + 1))
    return out


def test_the_reference_warp_is_elastic_deform():
    rng = np.random.default_rng(3)
    image, d = rng.random((9, 11)), rng.normal(0, 4, (2, 9, 11))
    expected = elastic_deform(image, np.zeros((9, 11), np.int64), d)[0]
    assert np.allclose(reference(nb05._warp)(image, d), expected) and np.allclose(warp_by_hand(image, d), expected)


def test_warp_moves_content_against_the_displacement():
    image = np.zeros((5, 5))
    image[2, 3] = 1.0
    shifted = reference(nb05._warp)(image, np.stack([np.zeros((5, 5)), np.ones((5, 5))]))   # every arrow points right by 1
    assert shifted[2, 2] == 1.0 and shifted.sum() == 1.0                       # the bright pixel moved left


def test_check_warp_image_passes_bilinear_sampling():
    assert_passes(check_warp_image, warp_by_hand)
    assert_passes(check_warp_image, lambda im, d: torch.from_numpy(reference(nb05._warp)(im, d)))
    assert_skeleton_is_friendly(check_warp_image, "warp_image")


def by_map_coordinates(image, d):
    rows, cols = np.meshgrid(np.arange(image.shape[0]), np.arange(image.shape[1]), indexing="ij")
    return ndimage.map_coordinates(image, np.stack([rows + d[0], cols + d[1]]), order=1, mode="reflect")


def by_grid_sample(image, d):
    H, W = image.shape
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    grid = np.stack([2 * (cols + d[1]) / (W - 1) - 1, 2 * (rows + d[0]) / (H - 1) - 1], axis=-1)
    return F.grid_sample(torch.from_numpy(image)[None, None], torch.from_numpy(grid)[None],
                         align_corners=True, padding_mode="reflection")[0, 0].numpy()


def by_interpolator(image, d):
    H, W = image.shape
    f = scipy.interpolate.RegularGridInterpolator((np.arange(H), np.arange(W)), image, bounds_error=False,
                                                  fill_value=None)
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    return f(np.stack([rows + d[0], cols + d[1]], axis=-1))


BROKEN_WARP_IMAGE = {
    "elastic_deform (refused)": (lambda im, d: elastic_deform(im, np.zeros(im.shape, np.int64), d)[0],
                                 refused("elastic_deform")),
    "map_coordinates (refused)": (by_map_coordinates, refused("scipy.ndimage.map_coordinates")),
    "grid_sample (refused)": (by_grid_sample, refused("torch.nn.functional.grid_sample")),
    "RegularGridInterpolator (refused)": (by_interpolator, refused("scipy.interpolate.RegularGridInterpolator")),
    "minus the displacement": (lambda im, d: reference(nb05._warp)(im, d, sign=-1.0), r"Hint: content moves \*against\*"),
    "rows and columns swapped": (lambda im, d: reference(nb05._warp)(im, d, swap=True), r"Hint: displacement\[0\] moves along"),
    "nearest pixel": (lambda im, d: reference(nb05._warp)(im, d, sampling="round"), r"Hint: you take the nearest pixel"),
    "floor, no interpolation": (lambda im, d: reference(nb05._warp)(im, d, sampling="floor"),
                                r"Hint: you take the pixel above and to the left"),
    "weights swapped": (lambda im, d: reference(nb05._warp)(im, d, sampling="swapped weights"),
                        r"Hint: the nearer pixel must weigh more"),
    "mirror, not reflect": (lambda im, d: reference(nb05._warp)(im, d, mode="mirror"),
                            r"Hint: you reflect about the edge pixel's centre"),
    "edge pixel repeated": (lambda im, d: reference(nb05._warp)(im, d, mode="nearest"), r"Hint: you repeat the edge pixel"),
    "zeros outside": (lambda im, d: reference(nb05._warp)(im, d, mode="constant"), r"Hint: a point outside the image is "
                                                                          r"reflected back in, not read as 0"),
    "wrapped around": (lambda im, d: reference(nb05._warp)(im, d, mode="wrap"), r"Hint: .* not wrapped around"),
    "the displacement itself": (lambda im, d: d[0], r"differs at pixel .*\nHint 1 of 2: output pixel \(r, c\)"),
    "a torch tensor of the wrong shape": (lambda im, d: torch.from_numpy(im)[None], r"returned shape \(1, 20, 24\)"),
}


@pytest.mark.parametrize("answer, match", BROKEN_WARP_IMAGE.values(), ids=BROKEN_WARP_IMAGE.keys())
def test_check_warp_image_fails_a_broken_warp(answer, match):
    with pytest.raises(CheckError, match=match):
        check_warp_image(answer)


def test_check_warp_image_never_prints_the_scipy_call():
    for _ in range(3):
        for answer, _match in BROKEN_WARP_IMAGE.values():
            with pytest.raises(CheckError) as info:
                check_warp_image(answer)
            assert "order=1" not in str(info.value) and "mode='reflect'" not in str(info.value)


# -- touching_share --------------------------------------------------------------------------------

def touching_share_by_hand(images, mistake=None):
    """Touching cells from a pixel loop, pooled; the mistakes switched on by ``mistake``."""
    cells = touching = 0
    fractions = []
    for instances in images[:1] if mistake == "first image" else images:
        pairs = touching_pairs_by_loop(instances)
        ids = np.unique(instances) if mistake == "background counted" else np.unique(instances[instances > 0])
        n = int(instances.max()) if mistake == "largest id" else ids.size
        t = 2 * len(pairs) if mistake == "contacts" else len({i for pair in pairs for i in pair})
        cells, touching = cells + n, touching + t
        fractions.append(t / n if n else 0.0)
    if mistake == "mean per image":
        return float(np.mean(fractions))
    share = touching / cells if cells else 0.0
    return {"percent": 100 * share, "count": touching, "list": [share]}.get(mistake, share)


def test_touching_share_reference_by_hand():
    cases = dict(reference(nb05._share_cases)())
    assert reference(nb05._share)(cases["[two touching cells and one apart, two cells apart]"]) == 2 / 5
    assert reference(nb05._share)(cases["[a chain of three cells with ids 4, 9, 40]"]) == 1.0
    assert reference(nb05._share)(cases["[an image without cells]"]) == 0.0
    toy = cases["six 64x64 toy images (seed 11, touching 0.4)"]
    pooled = sum(touching_fraction(i) * (np.unique(i).size - 1) for i in toy) / sum(np.unique(i).size - 1 for i in toy)
    assert reference(nb05._share)(toy) == pytest.approx(pooled)


def test_check_touching_share_passes_a_pooled_share():
    assert_passes(check_touching_share, touching_share_by_hand)
    assert_passes(check_touching_share, lambda images: np.float32(touching_share_by_hand(images)))
    assert_skeleton_is_friendly(check_touching_share, "touching_share")


def by_touching_fraction(images):
    counts = [np.unique(i[i > 0]).size for i in images]
    total = sum(counts)
    return sum(touching_fraction(i) * n for i, n in zip(images, counts)) / total if total else 0.0


@pytest.mark.parametrize("mistake, match", [
    ("touching_fraction (refused)", refused("touching_fraction")),
    ("percent", r"= 40; expected 0.4\nHint: return a fraction in \[0, 1\]"),
    ("count", r"= 2; expected 0.4\nHint: that is the number of touching cells"),
    ("mean per image", r"two cells apart\]\) = 0.3333; expected 0.4\nHint: that is the mean of the per-image "
                       r"fractions"),
    ("contacts", r"chain of three cells .* = 1.333; expected 1\nHint: that counts contacts, not cells"),
    ("background counted", r"= 0.2857; expected 0.4\nHint: the background \(id 0\) is not a cell"),
    ("largest id", r"= 0.1818; expected 0.4\nHint: the largest id is not the number of cells"),
    ("first image", r"two cells apart\]\) = 0.6667; expected 0.4\nHint: that is the first image only"),
    ("list", r"returned list; expected one number"),
])
def test_check_touching_share_names_the_mistake(mistake, match):
    answer = by_touching_fraction if mistake.endswith("(refused)") else \
        (lambda images: touching_share_by_hand(images, mistake))
    with pytest.raises(CheckError, match=match):
        check_touching_share(answer)
