"""Tests for unet_lib.checks.nb11_your_own_images: ``check_interior_border_classes``, ``check_postprocess`` both ways.

Each check passes the library's implementation (or a correct one worked out here) and fails
deliberately broken versions with the intended message."""

import numpy as np
import pytest
import torch
from checktools import assert_passes, assert_skeleton_is_friendly
from scipy import ndimage

from unet_lib.baselines import (
    remove_small_objects,
    watershed_split,
)
from unet_lib.checks import (
    CheckError,
    check_interior_border_classes,
    check_postprocess,
)
from unet_lib.data import (
    instances_to_mask,
    interior_border_classes,
)


def interior_border_by_loop(instances, width):
    """Three classes pixel by pixel: a correct answer written independently."""
    h, w = instances.shape
    out = np.zeros((h, w), np.int64)
    for y in range(h):
        for x in range(w):
            if instances[y, x]:
                # mode='nearest': the window is clipped to the image, the edge is not another label
                window = instances[max(y - width, 0):y + width + 1, max(x - width, 0):x + width + 1]
                out[y, x] = 2 if np.any(window != instances[y, x]) else 1
    return out


def test_check_interior_border_classes_passes_correct_answers():
    assert_passes(check_interior_border_classes, interior_border_classes)
    assert_passes(check_interior_border_classes, interior_border_by_loop)
    assert_skeleton_is_friendly(check_interior_border_classes, "interior_border")


def _cross_window(instances, width):
    """Only the 4 straight neighbours (a cross), repeated width times: misses diagonal contacts."""
    labels = np.asarray(instances, np.int64)
    cross = ndimage.generate_binary_structure(2, 1)
    footprint = ndimage.iterate_structure(cross, width)
    other = ((ndimage.maximum_filter(labels, footprint=footprint, mode="nearest") != labels)
             | (ndimage.minimum_filter(labels, footprint=footprint, mode="nearest") != labels))
    return np.where(labels == 0, 0, np.where(other, 2, 1))


@pytest.mark.parametrize("broken, match", [
    (lambda instances, width: np.where(instances > 0, instances, 0),
     r"contains values other than 0, 1 and 2.*\nHint: return the class of each pixel"),
    (lambda instances, width: interior_border_classes(instances, width + 1),
     r"one 10x10 cell.*draws a ring of the wrong thickness\nHint: .*2 \* width \+ 1"),
    (lambda instances, width: np.where(instances > 0, np.where(instances_to_mask(instances) == 0, 2, 1), 0),
     r"misses the border along the background.*\nHint: every cell gets a ring"),
    (_cross_window, r"misses \d+ border pixel\(s\), e.g. at diagonal contacts\nHint: use the whole square window"),
    (lambda instances, width: np.where(ndimage.binary_dilation(instances > 0), 1, 0),
     r"changes which pixels are cells.*\nHint: the border ring lies inside each cell"),
])
def test_check_interior_border_classes_names_the_mistake(broken, match):
    with pytest.raises(CheckError, match=match):
        check_interior_border_classes(broken)


def _fill_filter_split(labels, min_size=30):
    foreground = ndimage.binary_fill_holes(remove_small_objects(labels, min_size) > 0)
    return watershed_split(foreground)


def test_check_postprocess_passes_a_size_filter_and_a_watershed():
    assert_passes(check_postprocess, _fill_filter_split)
    assert_skeleton_is_friendly(check_postprocess, "postprocess")


@pytest.mark.parametrize("broken, match", [
    (lambda labels: labels, r"instance F1 on the held-out right half is 0.11.*\nHint: \d+ objects under 20 pixels"),
    (lambda labels: remove_small_objects(labels, 30),
     r"is 0.62 \(merged 17.*\nHint: 17 nuclei are merged with a neighbour: split"),
    (lambda labels: labels > 0, r"returned a foreground mask \(only 0 and 1\)"),
    (lambda labels: labels[:256], r"returned shape \(256, 512\); expected \(512, 512\)"),
    (lambda labels: labels.astype(np.float32), r"returned dtype float32; expected integer labels"),
])
def test_check_postprocess_names_the_mistake(broken, match):
    with pytest.raises(CheckError, match=match):
        check_postprocess(broken)


def test_checks_of_notebook_11_leave_the_global_rng_alone():
    state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    check_interior_border_classes(interior_border_classes)
    check_postprocess(_fill_filter_split)
    assert torch.equal(state, torch.random.get_rng_state())
    assert np.array_equal(np_state, np.random.get_state()[1])
