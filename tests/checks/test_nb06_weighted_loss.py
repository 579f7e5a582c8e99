"""Tests for unet_lib.checks.nb06_weighted_loss: ``check_class_balance``, ``check_border_weight_share``, ``check_border_term`` both ways.

Each check passes the library's implementation (or a correct one worked out here) and fails
deliberately broken versions with the intended message."""

import numpy as np
import pytest
from checktools import assert_passes, assert_skeleton_is_friendly
from scipy import ndimage

from unet_lib.checks import (
    CheckError,
    check_border_term,
    check_border_weight_share,
    check_class_balance,
)
from unet_lib.data import separate_touching, touching_borders
from unet_lib.weights import (
    border_term,
    border_term_naive,
    class_weight_map,
    unet_weight_map,
)


def border_term_by_formula(instances, w0, sigma, variant="paper"):
    """Eq. 2's border term from per-cell distance transforms, with deliberate mistakes."""
    ids = np.unique(instances[instances > 0])
    if len(ids) < 2:
        return np.zeros(instances.shape) if variant != "no d2 check" else np.full(instances.shape, w0)
    d = np.sort(np.stack([ndimage.distance_transform_edt(instances != i) for i in ids]), axis=0)
    d1, d2 = d[0], d[1]
    exponent = {"paper": (d1 + d2) ** 2 / (2 * sigma**2), "no d2 check": (d1 + d2) ** 2 / (2 * sigma**2),
                "no 2": (d1 + d2) ** 2 / sigma**2, "sigma": (d1 + d2) ** 2 / (2 * sigma), "squares": (d1**2 + d2**2) / (2 * sigma**2),
                "d1 twice": (2 * d1) ** 2 / (2 * sigma**2), "hard-coded": (d1 + d2) ** 2 / 50}[variant]
    term = w0 * np.exp(-exponent)
    return term if variant == "everywhere" else np.where(instances == 0, term, 0)


def test_check_border_term_passes_correct_answers():
    assert_passes(check_border_term, border_term_naive)
    assert_passes(check_border_term, border_term)
    assert_passes(check_border_term, border_term_by_formula)
    assert_skeleton_is_friendly(check_border_term, "border_term")


def everywhere(instances, w0, sigma):
    ids = np.unique(instances[instances > 0])
    if len(ids) < 2:
        return np.zeros(instances.shape)
    d = np.sort(np.stack([ndimage.distance_transform_edt(instances != i) for i in ids]), axis=0)
    return w0 * np.exp(-(d[0] + d[1]) ** 2 / (2 * sigma**2))


BROKEN_BORDER_TERM = {
    "on cells too": (everywhere, r"non-zero on cell pixels\nHint: .*background pixels only"),
    "sigma^2": (lambda i, w0, s: border_term_by_formula(i, w0, s, "no 2"), r"with \(d1 \+ d2\)\^2 / sigma\^2\nHint: .*2 \* sigma\^2"),
    "sigma, not squared": (lambda i, w0, s: border_term_by_formula(i, w0, s, "sigma"),
                           r"with \(d1 \+ d2\)\^2 / \(2 \* sigma\)\nHint: square sigma"),
    "squares": (lambda i, w0, s: border_term_by_formula(i, w0, s, "squares"), r"d1\^2 \+ d2\^2\)\nHint: square the sum"),
    "d1 twice": (lambda i, w0, s: border_term_by_formula(i, w0, s, "d1 twice"), r"2 \* d1\nHint: d2 is the distance to the \*second\*"),
    "no w0": (lambda i, w0, s: border_term_by_formula(i, w0, s) / w0, r"no w0\nHint: multiply by w0"),
    "single cell": (lambda i, w0, s: border_term_by_formula(i, w0, s, "no d2 check"), r"a single cell\) is not 0 everywhere\nHint: .*no d2"),
    "hard-coded sigma": (lambda i, w0, s: border_term_by_formula(i, w0, s, "hard-coded"), r"w0=4, sigma=2\) differs at pixel .*\nHint: .*arguments"),
    "a list": (lambda i, w0, s: border_term_naive(i, w0, s).tolist(), r"returned a list; expected a numpy array"),
}


@pytest.mark.parametrize("answer, match", BROKEN_BORDER_TERM.values(), ids=BROKEN_BORDER_TERM.keys())
def test_check_border_term_fails_a_broken_answer(answer, match):
    with pytest.raises(CheckError, match=match):
        check_border_term(answer)


def class_balance_by_counts(mask, mistake=None):
    counts = np.bincount(mask.ravel(), minlength=2).astype(np.float64)
    if mistake != "zero count":
        counts = np.maximum(counts, 1)
    with np.errstate(divide="ignore"):
        weights = {None: mask.size / (2 * counts), "zero count": mask.size / (2 * counts),
                   "inverted": counts / (2 * mask.size), "no 2": mask.size / counts}[mistake]
    return weights[mask]


def test_check_class_balance_passes_the_library_and_counts():
    assert_passes(check_class_balance, class_weight_map)
    assert_passes(check_class_balance, class_balance_by_counts)
    assert mask_weights_by_hand() == (2 / 3, 2.0)
    assert_skeleton_is_friendly(check_class_balance, "class_balance")


def mask_weights_by_hand():
    """[[0, 0, 0, 1]]: 4 pixels, 3 background -> 4 / (2 * 3); 1 cell -> 4 / (2 * 1)."""
    w = class_weight_map(np.array([[0, 0, 0, 1]]))
    return (pytest.approx(float(w[0, 0])), float(w[0, 3]))


BROKEN_CLASS_BALANCE = {
    "inverted": (lambda m: class_balance_by_counts(m, "inverted"), r"\nHint: the rarer class gets the \*larger\*"),
    "no factor 2": (lambda m: class_balance_by_counts(m, "no 2"), r"\nHint: divide by the number of classes too"),
    "absent class": (lambda m: class_balance_by_counts(m, "zero count") * np.where(m.sum() == 0, np.inf, 1.0),
                     r"without cells, 3x4\) contains inf or nan\nHint: a class with no pixels"),
    "all ones": (lambda m: np.ones(m.shape), r"differs from w_c: 1; expected 0.667, 2\nHint: every pixel of class c"),
    "per class, not per pixel": (lambda m: class_weight_map(m)[0], r"returned shape \(4,\); expected \(1, 4\)"),
}


@pytest.mark.parametrize("answer, match", BROKEN_CLASS_BALANCE.values(), ids=BROKEN_CLASS_BALANCE.keys())
def test_check_class_balance_fails_broken_weights(answer, match):
    with pytest.raises(CheckError, match=match):
        check_class_balance(answer)


def border_weight_share_by_hand(instances, sigma, mistake=None):
    separated = separate_touching(instances)
    borders = touching_borders(separated if mistake == "borders of the separated cells" else instances)
    source = instances if mistake == "not separated" else separated
    weights = unet_weight_map(source, sigma=5.0 if mistake == "sigma ignored" else sigma)
    if mistake == "pixel share":
        return float(borders.mean())
    return float(weights[borders].sum() / weights.sum())


def test_check_border_weight_share_passes_the_weight_map():
    assert_passes(check_border_weight_share, border_weight_share_by_hand)
    assert_passes(check_border_weight_share, lambda i, s: np.float32(border_weight_share_by_hand(i, s)))
    assert_skeleton_is_friendly(check_border_weight_share, "border_weight_share")


BROKEN_BORDER_WEIGHT_SHARE = {
    "sigma ignored": (lambda i, s: border_weight_share_by_hand(i, s, "sigma ignored"),
                      r"sigma=2\) = .*\nHint: pass sigma on"),
    "not separated": (lambda i, s: border_weight_share_by_hand(i, s, "not separated"),
                      r"\nHint: compute the weight map from separate_touching"),
    "pixel share": (lambda i, s: border_weight_share_by_hand(i, s, "pixel share"), r"\nHint: that is the share of the \*pixels\*"),
    "borders of the separated cells": (lambda i, s: border_weight_share_by_hand(i, s, "borders of the separated cells"),
                                       r"\nHint: find the borders on the original instances"),
    "a percentage": (lambda i, s: 100 * border_weight_share_by_hand(i, s), r"= \d+\.\d+; expected 0\.\d+\nHint: borders ="),
    "the weight map": (lambda i, s: unet_weight_map(separate_touching(i), sigma=s), r"returned a ndarray; expected one number"),
}


@pytest.mark.parametrize("answer, match", BROKEN_BORDER_WEIGHT_SHARE.values(), ids=BROKEN_BORDER_WEIGHT_SHARE.keys())
def test_check_border_weight_share_fails_a_broken_share(answer, match):
    with pytest.raises(CheckError, match=match):
        check_border_weight_share(answer)
