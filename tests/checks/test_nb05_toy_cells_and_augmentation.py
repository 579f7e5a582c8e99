"""Tests for unet_lib.checks.nb05_toy_cells_and_augmentation: ``check_touching_pairs``,
``check_warp_image``, ``check_touching_share`` both ways.

Each check passes a correct answer written independently here and fails deliberately broken
versions, and the library's shortcuts, with the intended message."""

import inspect
import textwrap

import numpy as np
import pytest
import scipy.interpolate
import torch
import torch.nn.functional as F
from checktools import assert_passes, assert_skeleton_is_friendly, reference
from scipy import ndimage
from scipy.ndimage import _nd_image

import unet_lib.data
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


def by_extreme_neighbours(instances):
    """Each cell pixel paired with the largest and the smallest other id around it (a maximum and a
    minimum filter, as in the touching_borders source the notebook shows)."""
    labels = instances.astype(np.int64)
    top = labels.max(initial=0) + 1
    largest = ndimage.maximum_filter(labels, size=3, mode="constant", cval=0)
    smallest = ndimage.minimum_filter(np.where(labels == 0, top, labels), size=3, mode="constant", cval=top)
    pairs = set()
    for other in (largest, smallest):
        for a, b in zip(labels.ravel(), other.ravel()):
            if a > 0 and 0 < b < top and a != b:
                pairs.add((int(min(a, b)), int(max(a, b))))
    return pairs


def by_exec_of_touching_borders(instances):
    """The library's touching_borders read with inspect.getsource and run as the learner's code."""
    namespace = dict(vars(unet_lib.data))
    exec(inspect.getsource(unet_lib.data.touching_borders), namespace)
    return touching_pairs_by_loop(np.where(namespace["touching_borders"](instances), instances, 0))


FORWARD_ONLY = [(0, 1), (1, 0), (1, 1)]

BROKEN_TOUCHING_PAIRS = {
    "touching_borders (refused)": (by_touching_borders, refused("touching_borders")),
    "separate_touching (refused)": (by_separating, refused("separate_touching")),
    "exec of inspect.getsource (refused)": (by_exec_of_touching_borders, refused("inspect.getsource")),
    "largest and smallest neighbour only": (by_extreme_neighbours,
                                            r"four cells meeting at one corner \(ids 1 to 4\)\) misses the contact "
                                            r"\(2, 3\)\nHint: a pixel can have neighbours from several other cells"),
    "a bug that raises": (lambda i: {(int(i[0, 0]), int(i[0, i.shape[1]]))},
                          r"touching_pairs\(.*\) raised IndexError: .*\nHint: run your function yourself on this case"),
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


def by_grid_sampler(image, d, op=torch.grid_sampler):
    """torch's kernel under grid_sample, called directly (interpolation 0 = bilinear, padding 2 = reflection)."""
    H, W = image.shape
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    grid = np.stack([2 * (cols + d[1]) / (W - 1) - 1, 2 * (rows + d[0]) / (H - 1) - 1], axis=-1)
    return op(torch.from_numpy(image)[None, None], torch.from_numpy(grid)[None], 0, 2, True)[0, 0].numpy()


def by_nd_bspline(image, d):
    H, W = image.shape
    spline = scipy.interpolate.NdBSpline((np.r_[0, np.arange(H), H - 1], np.r_[0, np.arange(W), W - 1]), image, 1)
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    return spline(np.stack([rows + d[0], cols + d[1]], axis=-1))


def by_private_geometric_transform(image, d):
    """scipy.ndimage's C routine, which map_coordinates calls, called directly."""
    rows, cols = np.meshgrid(np.arange(image.shape[0]), np.arange(image.shape[1]), indexing="ij")
    coordinates = np.ascontiguousarray(np.stack([rows + d[0], cols + d[1]]), dtype=np.float64)
    out = np.zeros(image.shape)
    _nd_image.geometric_transform(np.ascontiguousarray(image, dtype=np.float64), None, coordinates, None, None, out,
                                  1, 1, 0.0, None, None)
    return out


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
    "NdBSpline (refused)": (by_nd_bspline, refused("scipy.interpolate.NdBSpline")),
    "torch.grid_sampler (refused)": (by_grid_sampler, refused("torch.grid_sampler")),
    "torch.grid_sampler_2d (refused)": (lambda im, d: by_grid_sampler(im, d, torch.grid_sampler_2d),
                                        refused("torch.grid_sampler_2d")),
    "torch.ops.aten.grid_sampler_2d (refused)": (lambda im, d: by_grid_sampler(im, d, torch.ops.aten.grid_sampler_2d),
                                                 refused("torch.ops.aten.grid_sampler_2d")),
    "torch.ops.aten.grid_sampler_2d.default (refused)": (
        lambda im, d: by_grid_sampler(im, d, torch.ops.aten.grid_sampler_2d.default),
        refused("torch.ops.aten.grid_sampler_2d.default")),
    "scipy's private C routine (refused)": (by_private_geometric_transform,
                                            refused("scipy.ndimage._nd_image.geometric_transform")),
    "astype(int) instead of the floor": (lambda im, d: reference(nb05._warp)(im, d, sampling="trunc"),
                                         r"\(-0.5, -1.75\) px\) differs from elastic_deform's warp\nHint: right inside "
                                         r"the image, wrong above and left of it"),
    "a bug that raises": (lambda im, d: im[d], r"warp_image\(image, a shift by \(2, -3\) px\) raised IndexError"),
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

FOUR = [(0, 1), (1, 0), (0, -1), (-1, 0)]


def touching_share_by_hand(images, k=1, mistake=None):
    """Cells with at least k different partners, from a pixel loop, pooled; the mistakes switched on
    by ``mistake``."""
    cells = counted = 0
    fractions = []
    for instances in images[:1] if mistake == "first image" else images:
        pairs = touching_pairs_by_loop(instances, steps=FOUR if mistake == "4-neighbourhood" else None)
        ids = np.unique(instances) if mistake == "background counted" else np.unique(instances[instances > 0])
        n = int(instances.max(initial=0)) if mistake == "largest id" else ids.size
        partners = {int(i): set() for i in np.unique(instances[instances > 0])}
        for a, b in pairs:
            partners[a].add(b)
            partners[b].add(a)
        need = 1 if mistake == "k ignored" else k + 1 if mistake == "more than k" else k
        t = 2 * len(pairs) if mistake == "contacts" else sum(len(p) >= need for p in partners.values())
        cells, counted = cells + n, counted + t
        fractions.append(t / n if n else 0.0)
    if mistake == "mean per image":
        return float(np.mean(fractions))
    if mistake == "no guard":
        return counted / cells
    share = counted / cells if cells else 0.0
    return {"percent": 100 * share, "count": counted, "list": [share]}.get(mistake, share)


def test_touching_share_reference_by_hand():
    cases = {name: images for name, images, _k in reference(nb05._share_cases)()}
    share = reference(nb05._share)
    assert share(cases["[two touching cells and one apart, two cells apart], k=1"]) == 2 / 5
    chain = cases["[a chain of three cells with ids 4, 9, 40], k=1"]
    assert share(chain) == 1.0 and share(chain, 2) == 1 / 3 and share(chain, 3) == 0.0   # only 9 touches two
    corner = cases["[two cells that meet only at a corner], k=1"]
    assert share(corner) == 1.0 and share(corner, steps=FOUR) == 0.0
    cluster = cases["[five cells in a cluster, and an image without cells], k=3"]
    assert share(cluster, 2) == 4 / 5 and share(cluster, 3) == 2 / 5                    # 5 and 3 touch three
    assert share(cases["[an image without cells], k=1"]) == 0.0 and share([]) == 0.0
    toy = cases["six 64x64 toy images (seed 11, touching 0.4), k=1"]
    pooled = sum(touching_fraction(i) * (np.unique(i).size - 1) for i in toy) / sum(np.unique(i).size - 1 for i in toy)
    assert share(toy) == pytest.approx(pooled)


def test_check_touching_share_passes_a_pooled_share():
    assert_passes(check_touching_share, touching_share_by_hand)
    assert_passes(check_touching_share, lambda images, k: np.float32(touching_share_by_hand(images, k)))
    assert_skeleton_is_friendly(check_touching_share, "touching_share")


def by_touching_fraction(images, k):
    counts = [np.unique(i[i > 0]).size for i in images]
    total = sum(counts)
    return sum(touching_fraction(i) * n for i, n in zip(images, counts)) / total if total else 0.0


@pytest.mark.parametrize("mistake, match", [
    ("touching_fraction (refused)", refused("touching_fraction")),
    ("percent", r"= 40; expected 0.4\nHint: return a fraction in \[0, 1\]"),
    ("count", r"= 2; expected 0.4\nHint: that is the number of such cells"),
    ("mean per image", r"two cells apart\], k=1\) = 0.3333; expected 0.4\nHint: that is the mean of the per-image "
                       r"fractions"),
    ("contacts", r"chain of three cells .* = 1.333; expected 1\nHint: that counts contacts, not cells"),
    ("background counted", r"= 0.2857; expected 0.4\nHint: the background \(id 0\) is not a cell"),
    ("largest id", r"= 0.1818; expected 0.4\nHint: the largest id is not the number of cells"),
    ("first image", r"two cells apart\], k=1\) = 0.6667; expected 0.4\nHint: that is the first image only"),
    ("4-neighbourhood", r"meet only at a corner\], k=1\) = 0; expected 1\nHint: cells that meet only at a corner "
                        r"touch too"),
    ("more than k", r"k=1\) = 0; expected 0.4\nHint: a cell counts when it touches \*at least\* k others"),
    ("k ignored", r"ids 4, 9, 40\], k=2\) = 1; expected 0.3333\nHint: that is the share of cells that touch at least "
                  r"one other, whatever k"),
    ("no guard", r"\[an image without cells\], k=1\) raised ZeroDivisionError: .*\nHint: a case without cells has "
                 r"nothing to divide by"),
    ("list", r"returned list; expected one number"),
])
def test_check_touching_share_names_the_mistake(mistake, match):
    answer = by_touching_fraction if mistake.endswith("(refused)") else \
        (lambda images, k: touching_share_by_hand(images, k, mistake))
    with pytest.raises(CheckError, match=match):
        check_touching_share(answer)


def test_check_touching_share_hints_in_stages():
    wrong = lambda images, k: touching_share_by_hand(images, k, "k ignored") + 0.01   # noqa: E731
    with pytest.raises(CheckError) as first:
        check_touching_share(wrong)
    with pytest.raises(CheckError) as second:
        check_touching_share(wrong)
    assert "Hint 1 of 2: a cell counts when it touches at least k *different* cells" in str(first.value)
    assert "Hint 2 of 2" not in str(first.value) and "Hint 2 of 2: your touching_pairs" in str(second.value)
