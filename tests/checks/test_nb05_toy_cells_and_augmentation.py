"""Tests for unet_lib.checks.nb05_toy_cells_and_augmentation: ``check_touching_pairs``, ``check_warp_image``, ``check_touching_share``, ``check_instances_to_mask`` both ways.

Each check passes the library's implementation (or a correct one worked out here) and fails
deliberately broken versions with the intended message."""

import numpy as np
import pytest
import torch
from checktools import assert_passes, assert_skeleton_is_friendly
from scipy import ndimage

from unet_lib import (
    ToyCells,
    touching_fraction,
)
from unet_lib.augment import elastic_deform
from unet_lib.checks import (
    CheckError,
    check_instances_to_mask,
    check_touching_pairs,
    check_touching_share,
    check_warp_image,
)
from unet_lib.checks import nb05_toy_cells_and_augmentation as nb05
from unet_lib.data import (
    instances_to_mask,
)


def mask_by_pixel_loop(instances):
    """The separating borders pixel by pixel: a correct answer written independently."""
    mask = (instances > 0).astype(np.int64)
    H, W = instances.shape
    for y in range(H):
        for x in range(W):
            window = instances[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]
            if instances[y, x] and np.any((window > 0) & (window != instances[y, x])):
                mask[y, x] = 0
    return mask


def test_check_instances_to_mask_passes_correct_answers():
    assert_passes(check_instances_to_mask, instances_to_mask)
    assert_passes(check_instances_to_mask, mask_by_pixel_loop)
    assert_passes(check_instances_to_mask, lambda instances: torch.from_numpy(instances_to_mask(instances)))
    assert_skeleton_is_friendly(check_instances_to_mask, "instances_to_mask")


def cut_four_neighbours(instances):
    footprint = ndimage.generate_binary_structure(2, 1)
    other = np.where(instances == 0, instances.max() + 1, instances)
    larger = ndimage.maximum_filter(instances, footprint=footprint) > instances
    smaller = ndimage.minimum_filter(other, footprint=footprint) < instances
    return ((instances > 0) & ~(larger | smaller)).astype(np.int64)


def cut_one_side(instances):
    # only the cell with the smaller id gives up its border pixels
    larger = ndimage.maximum_filter(instances, size=3) > instances
    return ((instances > 0) & ~larger).astype(np.int64)


BROKEN_INSTANCES_TO_MASK = {
    "no borders": (lambda instances: (instances > 0).astype(int), r"just instances > 0.*\nHint: set every cell pixel"),
    "ids": (lambda instances: instances * instances_to_mask(instances), r"values other than 0 and 1: 0, 1, 2\nHint: return the semantic"),
    "eroded": (lambda instances: ndimage.binary_erosion(instances > 0).astype(int), r"touch no other cell\nHint: only a"),
    "4 neighbours": (cut_four_neighbours, r"touching at a corner\) keeps the two cells connected diagonally\nHint: .*8"),
    "one side": (cut_one_side, r"keeps \d+ border pixel\(s\).*\nHint: cut both sides"),
    "wrong shape": (lambda instances: instances_to_mask(instances)[1:], r"returned shape .*; expected"),
}


@pytest.mark.parametrize("answer, match", BROKEN_INSTANCES_TO_MASK.values(), ids=BROKEN_INSTANCES_TO_MASK.keys())
def test_check_instances_to_mask_fails_a_broken_answer(answer, match):
    with pytest.raises(CheckError, match=match):
        check_instances_to_mask(answer)


def touching_pairs_by_loop(instances, neighbours=8, ordered=True, keep_background=False):
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)] + ([(-1, -1), (-1, 1), (1, -1), (1, 1)] if neighbours == 8 else [])
    H, W = instances.shape
    pairs = set()
    for r in range(H):
        for c in range(W):
            for dr, dc in steps:
                if 0 <= r + dr < H and 0 <= c + dc < W:
                    a, b = int(instances[r, c]), int(instances[r + dr, c + dc])
                    if a != b and a > 0 and (b > 0 or keep_background):
                        pairs.add((min(a, b), max(a, b)) if ordered else (a, b))
    return pairs


def test_check_touching_pairs_passes_a_loop_over_pixels():
    assert_passes(check_touching_pairs, touching_pairs_by_loop)
    assert_passes(check_touching_pairs, lambda i: sorted(touching_pairs_by_loop(i)))   # a list of pairs is fine
    assert_skeleton_is_friendly(check_touching_pairs, "touching_pairs")


def test_touching_pairs_reference_by_hand():
    row = np.array([[4, 4, 9, 9, 2, 2]])
    assert nb05._touching_pairs(row) == {(4, 9), (2, 9)}
    assert nb05._touching_pairs(np.array([[1, 0], [0, 3]])) == {(1, 3)}
    assert nb05._touching_pairs(np.array([[5, 0, 7]])) == set()


BROKEN_TOUCHING_PAIRS = {
    "4-neighbourhood": (lambda i: touching_pairs_by_loop(i, neighbours=4), r"corner\) misses the contact \(1, 3\)\n"
                        r"Hint: look at all 8 neighbours"),
    "both orders": (lambda i: touching_pairs_by_loop(i, ordered=False), r"expected \[\(1, 2\)\]\nHint: each pair once"),
    "background as a cell": (lambda i: touching_pairs_by_loop(i, keep_background=True),
                             r"contains a pair with 0\nHint: 0 is the background"),
    "one id per contact": (lambda i: {int(v) for v in np.unique(i[i > 0])}, r"expected a set of pairs"),
    "across a gap": (lambda i: touching_pairs_by_loop(i) | ({(5, 7)} if {5, 7} <= set(np.unique(i)) else set()),
                     r"one pixel apart \(ids 5 and 7\)\) has pairs that do not touch: \[\(5, 7\)\]"),
}


@pytest.mark.parametrize("answer, match", BROKEN_TOUCHING_PAIRS.values(), ids=BROKEN_TOUCHING_PAIRS.keys())
def test_check_touching_pairs_fails_broken_pairs(answer, match):
    with pytest.raises(CheckError, match=match):
        check_touching_pairs(answer)


def test_check_warp_image_passes_elastic_deform_and_map_coordinates():
    assert_passes(check_warp_image, lambda im, d: elastic_deform(im, np.zeros(im.shape, np.int64), d)[0])
    assert_passes(check_warp_image, nb05._warp)
    assert_skeleton_is_friendly(check_warp_image, "warp_image")


def test_warp_moves_content_against_the_displacement():
    image = np.zeros((5, 5))
    image[2, 3] = 1.0
    shifted = nb05._warp(image, np.stack([np.zeros((5, 5)), np.ones((5, 5))]))   # every arrow points right by 1
    assert shifted[2, 2] == 1.0 and shifted.sum() == 1.0                       # the bright pixel moved left


BROKEN_WARP_IMAGE = {
    "minus the displacement": (lambda im, d: nb05._warp(im, d, sign=-1.0), r"Hint: content moves \*against\* the arrows"),
    "rows and columns swapped": (lambda im, d: nb05._warp(im, d, swap=True), r"Hint: displacement\[0\] moves along the rows"),
    "nearest neighbour": (lambda im, d: nb05._warp(im, d, order=0), r"Hint: interpolate the image linearly"),
    "scipy's default order": (lambda im, d: nb05._warp(im, d, order=3), r"Hint: map_coordinates interpolates with cubic"),
    "zeros outside": (lambda im, d: nb05._warp(im, d, mode="constant"), r"wrong where it samples outside\nHint: reflect"),
    "the displacement itself": (lambda im, d: d[0], r"differs at pixel .*\nHint: sample the image at"),
    "a torch tensor of the wrong shape": (lambda im, d: torch.from_numpy(im)[None], r"returned shape \(1, 20, 24\)"),
}


@pytest.mark.parametrize("answer, match", BROKEN_WARP_IMAGE.values(), ids=BROKEN_WARP_IMAGE.keys())
def test_check_warp_image_fails_a_broken_warp(answer, match):
    with pytest.raises(CheckError, match=match):
        check_warp_image(answer)


def touching_share_by_hand(touching, n_samples=8, seed=0, mistake=None):
    cells = ToyCells(16 if mistake == "16 images" else n_samples, seed=0 if mistake == "seed 0" else seed,
                     touching=0.7 if mistake == "default touching" else touching)
    counts, fractions = [], []
    for i in range(1 if mistake == "first image" else len(cells)):
        instances = cells[i]["instances"]
        counts.append(len(np.unique(instances.numpy())) - 1)
        fractions.append(touching_fraction(instances))
    if mistake == "mean per image":
        return float(np.mean(fractions))
    touching_cells = sum(n * f for n, f in zip(counts, fractions))
    if mistake == "count":
        return round(touching_cells)
    share = touching_cells / sum(counts)
    return 100 * share if mistake == "percent" else [share] if mistake == "list" else share


def test_check_touching_share_passes_a_pooled_share():
    result = check_touching_share(touching_share_by_hand)
    assert result.startswith("✓ touching_share: 0.") and "at touching = 0, 0.4 and 1" in result
    assert_skeleton_is_friendly(check_touching_share, "touching_share")


@pytest.mark.parametrize("mistake, match", [
    ("percent", r"\nHint: return a fraction in \[0, 1\]"),
    ("count", r"\nHint: that is the number of touching cells; divide by all cells"),
    ("mean per image", r"\nHint: that is the mean of the per-image fractions"),
    ("first image", r"\nHint: that is the first image only"),
    ("default touching", r"touching_share\(0.0, .*\nHint: that is ToyCells' default touching=0.7"),
    ("seed 0", r"\nHint: that is seed 0: pass seed=seed"),
    ("16 images", r"\nHint: that is 16 images: use n_samples"),
    ("list", r"returned list; expected one float"),
])
def test_check_touching_share_names_the_mistake(mistake, match):
    with pytest.raises(CheckError, match=match):
        check_touching_share(lambda touching, n_samples, seed: touching_share_by_hand(touching, n_samples, seed, mistake))
