"""Tests for unet_lib.checks.nb11_your_own_images: ``check_interior_border_classes``, ``check_postprocess`` both ways.

Each check passes a correct answer worked out here, refuses the library's functions of the same
job (however they are reached), and fails deliberately broken versions with the intended message."""

import functools

import numpy as np
import pytest
import torch
from checktools import assert_passes, assert_skeleton_is_friendly
from scipy import ndimage

from unet_lib.baselines import (
    classical_instances,
    object_size,
    otsu_instances,
    postprocess_instances,
    remove_small_objects,
    seeded_watershed,
    split_by_size,
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
    load_real_nuclei,
)


def interior_border_by_loop(instances, width):
    """Three classes pixel by pixel: a correct answer written independently."""
    h, w = instances.shape
    out = np.zeros((h, w), np.int64)
    for y in range(h):
        for x in range(w):
            if instances[y, x]:
                # the window is clipped to the image: the edge is not another label
                window = instances[max(y - width, 0):y + width + 1, max(x - width, 0):x + width + 1]
                out[y, x] = 2 if np.any(window != instances[y, x]) else 1
    return out


def interior_border_by_filters(instances, width, mode="nearest", size=None, cross=False, larger_only=False):
    """Three classes with scipy's filters (the notebook's solution with mode="nearest"), or with a
    wrong window for the broken versions."""
    labels = np.asarray(instances, np.int64)
    if cross:
        window = dict(footprint=ndimage.iterate_structure(ndimage.generate_binary_structure(2, 1), width))
    else:
        window = dict(size=size or 2 * width + 1)
    other = ndimage.maximum_filter(labels, mode=mode, **window) != labels
    if not larger_only:
        other |= ndimage.minimum_filter(labels, mode=mode, **window) != labels
    return np.where(labels == 0, 0, np.where(other, 2, 1))


def test_check_interior_border_classes_passes_correct_answers():
    assert_passes(check_interior_border_classes, interior_border_by_loop)
    assert_passes(check_interior_border_classes, interior_border_by_filters)
    assert_passes(check_interior_border_classes, functools.partial(interior_border_by_filters, mode="reflect"))
    assert_skeleton_is_friendly(check_interior_border_classes, "interior_border")


BORROWED = interior_border_classes   # imported under another name: still refused


@pytest.mark.parametrize("answer", [
    lambda instances, width: interior_border_classes(instances, width),
    lambda instances, width: BORROWED(instances, width=width),
], ids=["by its name", "under another name"])
def test_check_interior_border_classes_refuses_the_library(answer):
    with pytest.raises(CheckError, match=r"called `interior_border_classes`, which already does what this exercise"):
        check_interior_border_classes(answer)


def _ring_along_the_background(instances, width):
    """A ring where the cell meets the background only (an erosion of the foreground)."""
    inner = ndimage.binary_erosion(instances > 0, np.ones((2 * width + 1,) * 2, bool), border_value=1)
    return np.where(instances > 0, np.where(inner, 1, 2), 0)


BROKEN_INTERIOR_BORDER = {
    "instance ids": (lambda instances, width: np.where(instances > 0, instances, 0),
                     r"contains values other than 0, 1 and 2.*\nHint: return the class of each pixel"),
    "a ring outside the cells": (lambda instances, width: np.where(ndimage.binary_dilation(instances > 0), 1, 0),
                                 r"changes which pixels are cells.*\nHint: the border ring lies inside each cell"),
    "a ring one pixel too thick": (lambda instances, width: interior_border_by_filters(instances, width + 1),
                                   r"one 12x10 cell.*draws a ring of the wrong thickness\nHint: a ring "
                                   r"`width` pixels thick"),
    "the edge counts as background": (functools.partial(interior_border_by_filters, mode="constant"),
                                      r"two cells cut by the image's edges.*draws a ring along the image's edge"
                                      r".*\nHint: the pixels beyond the edge are unknown, not background"),
    "the image wraps around": (functools.partial(interior_border_by_filters, mode="wrap"),
                               r"sees the opposite side of the image across its edge\nHint: the image does not wrap"),
    "a window of side width": (lambda instances, width: interior_border_by_filters(instances, width, size=width),
                               r"one 12x10 cell.*draws a ring that is too thin: a window of side `width` reaches "
                               r"only about width / 2 pixels"),
    "a cross-shaped window": (functools.partial(interior_border_by_filters, cross=True),
                              r"misses border pixels at diagonal contacts\nHint: a pixel within `width` steps "
                              r"counts diagonal steps too"),
    "only larger labels": (functools.partial(interior_border_by_filters, larger_only=True),
                           r"misses border pixels next to a smaller label \(the background is 0\)"),
    "a ring along the background only": (_ring_along_the_background,
                                         r"misses the border where two cells touch\nHint: a pixel next to another "
                                         r"cell is border too"),
    "a ring between cells only": (lambda instances, width: np.where(instances > 0, np.where(
                                      instances_to_mask(instances) == 0, 2, 1), 0),
                                  r"misses the border along the background.*\nHint: every cell gets a ring"),
    "something else": (lambda instances, width: np.where(instances > 0, 1 + (instances % 2), 0),
                       r"differs from the three classes in \d+ pixel\(s\), e.g. at row \d+, column \d+: class \d "
                       r"where \d was expected\nHint 1 of 2: look at that pixel's square neighbourhood"),
}


@pytest.mark.parametrize("broken, match", BROKEN_INTERIOR_BORDER.values(), ids=BROKEN_INTERIOR_BORDER.keys())
def test_check_interior_border_classes_names_the_mistake(broken, match):
    with pytest.raises(CheckError, match=match):
        check_interior_border_classes(broken)


def test_check_interior_border_classes_names_a_tool_only_on_a_second_failure():
    broken = BROKEN_INTERIOR_BORDER["something else"][0]
    with pytest.raises(CheckError) as first:
        check_interior_border_classes(broken)
    assert "scipy" not in str(first.value)
    with pytest.raises(CheckError, match=r"Hint 2 of 2: the largest and the smallest label .*scipy.ndimage has "
                                         r"filters for both"):
        check_interior_border_classes(broken)


# -- post-processing ------------------------------------------------------------------------------

def postprocess_by_hand(labels, min_size=30, footprint=15, smooth=1.0):
    """A learner's post-processing without the library's steps: a size filter by pixel counts,
    markers at the peaks of the smoothed distance to the background, seeded_watershed from them."""
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    foreground = keep[labels]
    distance = ndimage.distance_transform_edt(foreground)
    if smooth:
        distance = ndimage.gaussian_filter(distance, smooth)
    peaks = foreground & (distance == ndimage.maximum_filter(distance, size=footprint))
    markers, _ = ndimage.label(peaks, structure=np.ones((3, 3)))
    return seeded_watershed(-distance, markers, foreground)


def test_check_postprocess_passes_a_size_filter_and_a_watershed_written_by_hand():
    assert_passes(check_postprocess, postprocess_by_hand)
    assert_skeleton_is_friendly(check_postprocess, "postprocess")


@functools.cache
def _raw_labels() -> np.ndarray:
    """Notebook 10's whole Otsu labels, computed once, before a check watches (it refuses otsu_instances)."""
    return otsu_instances(load_real_nuclei()[0])


@functools.cache
def _fixed_answer() -> np.ndarray:
    """The by-hand post-processing of notebook 10's whole Otsu labels, computed once: an answer
    that a function ignoring its input could return."""
    return postprocess_by_hand(_raw_labels())


@pytest.mark.parametrize("answer, shortcut", [
    (lambda labels: watershed_split(remove_small_objects(labels, 30) > 0), "`remove_small_objects`, `watershed_split`"),
    (lambda labels: classical_instances(load_real_nuclei()[0]), "`classical_instances`"),
    (lambda labels: remove_small_objects(otsu_instances(load_real_nuclei()[0]), 30), "`otsu_instances`"),
    (lambda labels: postprocess_instances(labels, object_size([labels])), "`postprocess_instances`"),
    (lambda labels: split_by_size(labels > 0, 9.6), "`split_by_size`"),
], ids=["the library's steps", "the library's pipeline on the image", "Otsu again", "predict's post-processing",
        "predict's split"])
def test_check_postprocess_refuses_the_librarys_steps(answer, shortcut):
    with pytest.raises(CheckError, match=rf"called {shortcut}.*, which already does what this exercise asks"):
        check_postprocess(answer)


def _size_filter_only(labels):
    sizes = np.bincount(labels.ravel())
    keep = sizes >= 30
    keep[0] = False
    return np.where(keep[labels], labels, 0)


@functools.cache
def _classical_whole() -> np.ndarray:
    """The library's pipeline on the image, computed before the check watches."""
    return classical_instances(load_real_nuclei()[0])


def _moved_like(answer: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``answer`` for the whole image, or its left half moved as the check moved ``labels``: the
    dihedral move that lines the left half's Otsu labels up with ``labels`` (a hard-coded answer
    that even follows the check's draw)."""
    if labels.shape == answer.shape:
        return answer
    raw = _raw_labels()[:, :256]
    for move in (lambda a: a.T, np.flipud, np.fliplr, np.rot90, lambda a: np.rot90(a, 2),
                 lambda a: np.rot90(a, 3), lambda a: np.rot90(a, 2).T):
        moved = move(raw)
        if moved.shape == labels.shape and np.mean((moved > 0) == (labels > 0)) > 0.99:   # specks added
            return np.ascontiguousarray(move(answer[:, :256]))
    return answer


def _annotation_as_answer(labels):
    """The annotation itself, moved to follow the second input: F1 1.00 if nothing refused it."""
    return _moved_like(load_real_nuclei()[1], labels)


def _watershed_with_fragments(labels):
    """A second review's attempt: a working size filter, markers at the raw distance's maxima over a
    21-px window, 4-connected: pieces under 20 px cut off nuclei, not specks (F1 0.62)."""
    sizes = np.bincount(labels.ravel())
    keep = sizes >= 30
    keep[0] = False
    foreground = keep[labels]
    distance = ndimage.distance_transform_edt(foreground)
    peaks = foreground & (distance == ndimage.maximum_filter(distance, size=21))
    return seeded_watershed(-distance, ndimage.label(peaks)[0], foreground)


def _annotation_where_labels_are(labels):
    """The annotation kept only where the labels have foreground, moved to follow the second input:
    nothing drawn on the background, F1 0.89 on the left half if nothing refused it."""
    return np.where(labels > 0, _moved_like(load_real_nuclei()[1], labels), 0)


def _classical_as_answer(labels):
    """``classical_instances`` of the image computed outside the function, returned as the answer."""
    return _moved_like(_classical_whole(), labels)


BROKEN_POSTPROCESS = {
    "nothing done": (lambda labels: labels, r"instance F1 on the left half is 0.07 .*objects under 20 px: \d+\); the "
                                            r"check asks for at least 0.70\nHint 1 of 2: \d+ objects under 20 pixels"),
    "a size filter only": (_size_filter_only, r"instance F1 on the left half is 0.4\d \(merged 41.*\nHint 1 of 2: 41 "
                                              r"nuclei share an object with a neighbour"),
    "a watershed on the raw distance": (functools.partial(postprocess_by_hand, footprint=11, smooth=0),
                                        r"instance F1 on the left half is 0.55 .*\nHint 1 of 2: \d+ nuclei are split "
                                        r"into pieces"),
    "a fixed answer": (lambda labels: _fixed_answer(),
                       r"postprocess\(the left half's Otsu labels, [a-z0-9 ]+, with 10 specks added\) returned shape "
                       r"\(512, 512\); expected \((256, 512|512, 256)\)"),
    "a fixed answer cut to size": (lambda labels: _fixed_answer()[:labels.shape[0], :labels.shape[1]],
                                   r"postprocess\(the left half's Otsu labels, [a-z0-9 ]+, with 10 specks added\) "
                                   r"labels \d+ of its \d+ object pixels where the labels it was given have "
                                   r"background.*\nHint: postprocess must work from the labels it is given"),
    "the annotation returned": (_annotation_as_answer,
                                r"postprocess\(the Otsu labels\) labels \d+ of its \d+ object pixels where the labels "
                                r"it was given have background: removing and splitting objects never adds pixels\n"
                                r"Hint: postprocess must work from the labels it is given"),
    "the annotation kept where the labels have foreground": (
        _annotation_where_labels_are,
        r"instance F1 on the left half is 0.89: above 0.85, more than removing and splitting these labels reaches. "
        r"Labels this close to the annotation come from the annotation, not from the labels\n"
        r"Hint: postprocess must work from the labels it is given"),
    "a watershed that cuts fragments off (a 21-px window on the raw distance)": (
        _watershed_with_fragments,
        r"instance F1 on the left half is 0.6\d .*objects under 20 px: \d+\); the check asks for at least 0.70\n"
        r"Hint 1 of 2: \d+ pieces under 20 pixels were cut off larger objects: more markers than nuclei"),
    "a size filter that removes small nuclei (300 px)": (
        functools.partial(postprocess_by_hand, min_size=300),
        r"instance F1 on the left half is 0.6\d .*\nHint 1 of 2: \d+ nuclei have no pixel in your labels, although "
        r"the labels you were given have pixels of them. Which step removed them\?"),
    "classical_instances computed beforehand": (_classical_as_answer,
                                                r"postprocess\(the Otsu labels\) labels \d+ of its \d+ object "
                                                r"pixels where the labels it was given have background"),
    "a split without a size filter": (functools.partial(postprocess_by_hand, min_size=0),
                                      r"on a second input, the left half's Otsu labels [a-z0-9 ]+ with 10 specks of "
                                      r"2 to 12 px added far from every nucleus, 10 of the specks are still objects "
                                      r"in your labels\nHint 1 of 2: a split alone keeps a speck"),
    "a foreground mask": (lambda labels: labels > 0, r"returned a foreground mask \(only 0 and 1\)"),
    "nothing but background": (lambda labels: np.zeros_like(labels), r"returned no object: every pixel is background"),
    "another shape": (lambda labels: labels[:256], r"returned shape \(256, 512\); expected \(512, 512\)"),
    "float labels": (lambda labels: labels.astype(np.float32), r"returned dtype float32; expected integer labels"),
}


@pytest.mark.parametrize("broken, match", BROKEN_POSTPROCESS.values(), ids=BROKEN_POSTPROCESS.keys())
def test_check_postprocess_names_the_mistake(broken, match):
    _fixed_answer(), _classical_whole()   # computed before the check watches: they run otsu_instances
    with pytest.raises(CheckError, match=match):
        check_postprocess(broken)


def test_check_postprocess_never_scores_the_right_half():
    """The right half is held out: the check's message, passed or failed, has no score of it."""
    image, instances = load_real_nuclei()
    from unet_lib.metrics import instance_scores
    right = f"{instance_scores(_fixed_answer()[:, 256:], instances[:, 256:]).f1:.2f}"
    left = f"{instance_scores(_fixed_answer()[:, :256], instances[:, :256]).f1:.2f}"
    assert right != left
    message = str(check_postprocess(lambda labels: postprocess_by_hand(labels)))
    assert left in message and right not in message and "right half is scored once, after the answers" in message


def test_checks_of_notebook_11_leave_the_global_rng_alone():
    state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    check_interior_border_classes(interior_border_by_filters)
    with pytest.raises(CheckError):
        check_postprocess(_size_filter_only)
    assert torch.equal(state, torch.random.get_rng_state())
    assert np.array_equal(np_state, np.random.get_state()[1])
