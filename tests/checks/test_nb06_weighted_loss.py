"""Tests for unet_lib.checks.nb06_weighted_loss: ``check_class_balance``, ``check_border_term``,
``check_best_border_sigma`` both ways.

Each check passes a correct answer worked out here and fails deliberately broken versions, and
the library's shortcuts, with the intended message."""

import numpy as np
import pytest
from checktools import assert_passes, assert_skeleton_is_friendly, reference
from scipy import ndimage

from unet_lib.checks import CheckError, check_best_border_sigma, check_border_term, check_class_balance
from unet_lib.checks import nb06_weighted_loss as nb06
from unet_lib.data import separate_touching, touching_borders
from unet_lib.weights import border_term, border_term_naive, class_weight_map, two_nearest_distances, unet_weight_map

REFUSED = r"called {names}, which already does what this exercise asks you to write\nHint: write it yourself"


def refused(*names: str) -> str:
    return REFUSED.format(names=", ".join(rf"`{name}`" for name in names))


# -- class_balance ---------------------------------------------------------------------------------

def class_balance_by_counts(mask, mistake=None):
    counts = np.bincount(mask.ravel(), minlength=2).astype(np.float64)
    if mistake != "zero count":
        counts = np.maximum(counts, 1)
    with np.errstate(divide="ignore"):
        weights = {None: mask.size / (2 * counts), "zero count": mask.size / (2 * counts),
                   "inverted": counts / (2 * mask.size), "no 2": mask.size / counts, "scale": 1 / counts,
                   "swapped": (mask.size / (2 * counts))[::-1]}[mistake]
    return weights[mask]


def test_class_weights_by_hand():
    """[[0, 0, 0, 1]]: 4 pixels, 3 background -> 4 / (2 * 3); 1 cell -> 4 / (2 * 1)."""
    w = class_balance_by_counts(np.array([[0, 0, 0, 1]]))
    assert w[0, 0] == pytest.approx(2 / 3) and w[0, 3] == 2.0
    assert 3 * w[0, 0] == pytest.approx(w[0, 3]) and w.mean() == pytest.approx(1.0)   # the two conditions


def mean_one_where_a_class_is_absent(mask):
    """The prompt's choice: where one class is absent, weights of 1 (the mean-1 condition kept)."""
    return np.ones(mask.shape) if mask.min() == mask.max() else class_balance_by_counts(mask)


def median_frequency(mask):
    """Median-frequency balancing over the classes present: median(freq) / freq_c."""
    counts = np.bincount(mask.ravel(), minlength=2)
    present = counts[counts > 0] / mask.size
    weights = np.median(present) / np.maximum(counts / mask.size, 1e-12)
    return weights[mask]


def test_check_class_balance_passes_the_counts():
    assert_passes(check_class_balance, class_balance_by_counts)            # class_weight_map's 0.5 on one class
    assert_passes(check_class_balance, mean_one_where_a_class_is_absent)   # the prompt's mean of 1
    assert_passes(check_class_balance, median_frequency)                   # the same rule, found another way
    assert_skeleton_is_friendly(check_class_balance, "class_balance")


BROKEN_CLASS_BALANCE = {
    "class_weight_map (refused)": (class_weight_map, refused("class_weight_map")),
    "unet_weight_map of the mask (refused)": (lambda m: unet_weight_map(m), refused("unet_weight_map")),
    "swapped counts": (lambda m: class_balance_by_counts(m, "swapped"),
                       r"gives background 2 and cells 0.667; expected background 0.667 and cells 2\n"
                       r"Hint 1 of 2: each class got the weight that belongs to the other"),
    "inverted": (lambda m: class_balance_by_counts(m, "inverted"),
                 r"background 0.375 and cells 0.125; .*\nHint 1 of 2: the rarer class gets the \*larger\*"),
    "no factor 2": (lambda m: class_balance_by_counts(m, "no 2"),
                    r"\nHint 1 of 2: both totals are equal, but the mean weight over the image is 2; it must be 1"),
    "not scaled": (lambda m: class_balance_by_counts(m, "scale"), r"\nHint 1 of 2: the proportions are right"),
    "absent class": (lambda m: class_balance_by_counts(m, "zero count") * np.where(m.sum() == 0, np.inf, 1.0),
                     r"without cells, 3x4\) contains inf or nan\nHint: a class without pixels"),
    "equal totals kept on one class (weight 0)": (
        lambda m: np.zeros(m.shape) if m.min() == m.max() else class_balance_by_counts(m),
        r"class_balance\(a mask without cells, 3x4\) gives every pixel the weight 0, on a mask with one class only\n"
        r"Hint: with one class absent the two conditions cannot both hold"),
    "another weight on one class": (
        lambda m: np.full(m.shape, 2.0) if m.min() == m.max() else class_balance_by_counts(m),
        r"gives every pixel the weight 2, on a mask with one class only"),
    "mixed weights on one class": (
        lambda m: np.arange(m.size, dtype=float).reshape(m.shape) if m.min() == m.max() else class_balance_by_counts(m),
        r"gives the pixels different weights, on a mask with one class only"),
    "all ones": (lambda m: np.ones(m.shape), r"gives background 1 and cells 1; expected background 0.667 and cells 2"
                                             r"\nHint 1 of 2: two conditions fix w_c"),
    "per pixel noise": (lambda m: class_balance_by_counts(m) + np.arange(m.size).reshape(m.shape) * 0.01,
                        r"gives the pixels of one class different weights"),
    "per class, not per pixel": (lambda m: class_balance_by_counts(m)[0], r"returned shape \(4,\); expected \(1, 4\)"),
}


@pytest.mark.parametrize("answer, match", BROKEN_CLASS_BALANCE.values(), ids=BROKEN_CLASS_BALANCE.keys())
def test_check_class_balance_fails_broken_weights(answer, match):
    with pytest.raises(CheckError, match=match):
        check_class_balance(answer)


def test_check_class_balance_never_prints_the_formula():
    for _ in range(3):
        for answer, _match in BROKEN_CLASS_BALANCE.values():
            with pytest.raises(CheckError) as info:
                check_class_balance(answer)
            assert "count_c" not in str(info.value) and "n_pixels /" not in str(info.value)


# -- border_term -----------------------------------------------------------------------------------

def border_term_by_formula(instances, w0, sigma, variant="paper"):
    """Eq. 2's border term from per-cell distance transforms, with deliberate mistakes."""
    ids = np.unique(instances[instances > 0])
    if len(ids) < 2:
        return np.zeros(instances.shape) if variant != "no d2 check" else np.full(instances.shape, w0)
    d = np.sort(np.stack([ndimage.distance_transform_edt(instances != i) for i in ids]), axis=0)
    d1, d2 = d[0], d[1]
    exponent = {"paper": (d1 + d2) ** 2 / (2 * sigma**2), "no d2 check": (d1 + d2) ** 2 / (2 * sigma**2),
                "no 2": (d1 + d2) ** 2 / sigma**2, "sigma": (d1 + d2) ** 2 / (2 * sigma),
                "squares": (d1**2 + d2**2) / (2 * sigma**2), "d1 twice": (2 * d1) ** 2 / (2 * sigma**2),
                "hard-coded": (d1 + d2) ** 2 / 50, "everywhere": (d1 + d2) ** 2 / (2 * sigma**2)}[variant]
    term = w0 * np.exp(-exponent)
    return term if variant == "everywhere" else np.where(instances == 0, term, 0)


def test_check_border_term_passes_distance_transforms():
    assert_passes(check_border_term, border_term_by_formula)
    assert_skeleton_is_friendly(check_border_term, "border_term")


def test_check_border_term_names_the_learners_function():
    def border_weight(instances, w0, sigma):
        return border_term_by_formula(instances, w0, sigma)

    assert check_border_term(border_weight).startswith("✓ border_weight matches Eq. 2's border term")

    def border_weight_on_cells(instances, w0, sigma):   # noqa: E306
        return border_term_by_formula(instances, w0, sigma, "everywhere")

    border_weight_on_cells.__name__ = "border_weight"
    with pytest.raises(CheckError, match=r"^border_weight\(\[\[1, 0, 0, 2\]\]\) is non-zero on cell pixels"):
        check_border_term(border_weight_on_cells)


def by_two_nearest(instances, w0, sigma):
    d1, d2 = two_nearest_distances(instances)
    return np.where(instances == 0, w0 * np.exp(-(d1 + d2) ** 2 / (2 * sigma**2)), 0)


BROKEN_BORDER_TERM = {
    "border_term (refused)": (border_term, refused("border_term")),
    "border_term_naive (refused)": (border_term_naive, refused("border_term_naive")),
    "two_nearest_distances (refused)": (by_two_nearest, refused("two_nearest_distances")),
    "on cells too": (lambda i, w0, s: border_term_by_formula(i, w0, s, "everywhere"),
                     r"non-zero on cell pixels\nHint: .*background pixels only"),
    "sigma^2": (lambda i, w0, s: border_term_by_formula(i, w0, s, "no 2"),
                r"differs from Eq. 2's border term\nHint: your exponent is \(d1 \+ d2\)\^2 / sigma\^2"),
    "sigma, not squared": (lambda i, w0, s: border_term_by_formula(i, w0, s, "sigma"),
                           r"\nHint: your exponent divides by 2 sigma: square sigma"),
    "squares": (lambda i, w0, s: border_term_by_formula(i, w0, s, "squares"), r"\nHint: your exponent adds the squares"),
    "d1 twice": (lambda i, w0, s: border_term_by_formula(i, w0, s, "d1 twice"),
                 r"\nHint: you use the nearest cell's distance twice"),
    "no w0": (lambda i, w0, s: border_term_by_formula(i, w0, s) / w0, r"\nHint: the exponential is right"),
    "single cell": (lambda i, w0, s: border_term_by_formula(i, w0, s, "no d2 check"),
                    r"a single cell\) is not 0 everywhere\nHint: .*no d2"),
    "hard-coded sigma": (lambda i, w0, s: border_term_by_formula(i, w0, s, "hard-coded"),
                         r"w0=4, sigma=2\) differs at pixel .*\nHint 1 of 2: d1\(x\) and d2\(x\) are the distances"),
    "a list": (lambda i, w0, s: border_term_by_formula(i, w0, s).tolist(), r"returned a list; expected a numpy array"),
}


@pytest.mark.parametrize("answer, match", BROKEN_BORDER_TERM.values(), ids=BROKEN_BORDER_TERM.keys())
def test_check_border_term_fails_a_broken_answer(answer, match):
    with pytest.raises(CheckError, match=match):
        check_border_term(answer)


def test_check_border_term_names_the_tool_only_in_the_second_hint():
    wrong = BROKEN_BORDER_TERM["hard-coded sigma"][0]
    with pytest.raises(CheckError) as first:
        check_border_term(wrong)
    with pytest.raises(CheckError) as second:
        check_border_term(wrong)
    assert "distance_transform_edt" not in str(first.value)
    assert "Hint 2 of 2: scipy.ndimage.distance_transform_edt" in str(second.value)
    assert "instances != i" not in str(second.value)


# -- best_border_sigma -----------------------------------------------------------------------------

def best_border_sigma_by_hand(instances, sigmas, variant="paper", pick=max):
    """The weight map assembled from its two terms for every sigma; the mistakes switched on by the arguments."""
    shares = {s: reference(nb06._border_share)(instances, s, variant) for s in sigmas}
    sigma = pick(shares, key=shares.get)
    return sigma, shares[sigma]


def by_own_terms(instances, sigmas):
    """With the learner's own pieces: the counts for w_c, distance transforms for the border term."""
    borders = touching_borders(instances)
    separated = separate_touching(instances)
    mask = (separated > 0).astype(np.int64)
    w_c = np.bincount(mask.ravel(), minlength=2)
    w_c = (mask.size / (2 * np.maximum(w_c, 1)))[mask]
    best = None
    for s in sigmas:
        w = w_c + border_term_by_formula(separated, 10.0, s)
        share = w[borders].sum() / w.sum()
        if best is None or share > best[1]:
            best = (s, share)
    return best


def test_border_share_matches_the_library_weight_map():
    instances = reference(nb06._sigma_cases)()[0][1]
    w = unet_weight_map(separate_touching(instances), sigma=5.0)
    borders = touching_borders(instances)
    assert reference(nb06._border_share)(instances, 5.0) == pytest.approx(w[borders].sum() / w.sum(), rel=1e-6)


def test_the_cases_need_a_search():
    """The best sigma is not the same in every case, and never 5 (which no list holds)."""
    best = [best_border_sigma_by_hand(instances, sigmas)[0] for _, instances, sigmas in reference(nb06._sigma_cases)()]
    assert len(set(best)) >= 2 and 5.0 not in best


def test_check_best_border_sigma_passes_a_search():
    assert_passes(check_best_border_sigma, best_border_sigma_by_hand)
    assert_passes(check_best_border_sigma, by_own_terms)
    assert_skeleton_is_friendly(check_best_border_sigma, "best_border_sigma")


def by_unet_weight_map(instances, sigmas):
    borders = touching_borders(instances)
    shares = {s: (lambda w: w[borders].sum() / w.sum())(unet_weight_map(separate_touching(instances), sigma=s))
              for s in sigmas}
    sigma = max(shares, key=shares.get)
    return sigma, shares[sigma]


BROKEN_BEST_BORDER_SIGMA = {
    "unet_weight_map (refused)": (by_unet_weight_map, refused("unet_weight_map")),
    "the smallest share": (lambda i, s: best_border_sigma_by_hand(i, s, pick=min),
                           r"chose sigma = 1; another sigma .*\nHint: you chose the sigma with the \*smallest\*"),
    "the paper's sigma": (lambda i, s: (5.0, reference(nb06._border_share)(i, 5.0)), r"chose sigma = 5, which is not in the list"),
    "the first sigma": (lambda i, s: (s[0], reference(nb06._border_share)(i, s[0])),
                        r"chose sigma = 8; another sigma in the list .*\nHint: compute the share for every sigma"),
    "pixel share": (lambda i, s: best_border_sigma_by_hand(i, s, "pixel share"),
                    r"gives a share of .* for sigma = 8, but .*\nHint: that is the share of the border \*pixels\*"),
    "not separated": (lambda i, s: best_border_sigma_by_hand(i, s, "not separated"),
                      r"\nHint: compute the weight map on the separated cells"),
    "borders of the separated cells": (lambda i, s: best_border_sigma_by_hand(i, s, "borders of the separated cells"),
                                       r"\nHint: find the borders on the cells as given"),
    "w_c only": (lambda i, s: best_border_sigma_by_hand(i, s, "w_c only"), r"\nHint: that is w_c alone"),
    "border term only": (lambda i, s: best_border_sigma_by_hand(i, s, "border term only"),
                         r"\nHint: that is the border term alone"),
    "a percentage": (lambda i, s: (lambda r: (r[0], 100 * r[1]))(best_border_sigma_by_hand(i, s)),
                     r"gives a share of \d+\.\d+ for sigma = 4, .*\nHint: the share is the weight"),
    "the sigma only": (lambda i, s: best_border_sigma_by_hand(i, s)[0], r"returned 4.0; expected a pair"),
}


@pytest.mark.parametrize("answer, match", BROKEN_BEST_BORDER_SIGMA.values(), ids=BROKEN_BEST_BORDER_SIGMA.keys())
def test_check_best_border_sigma_fails_a_broken_search(answer, match):
    with pytest.raises(CheckError, match=match):
        check_best_border_sigma(answer)


def test_check_best_border_sigma_never_prints_the_expected_values():
    for answer, _match in BROKEN_BEST_BORDER_SIGMA.values():
        with pytest.raises(CheckError) as info:
            check_best_border_sigma(answer)
        text = str(info.value)
        for _, instances, sigmas in reference(nb06._sigma_cases)():
            sigma, share = best_border_sigma_by_hand(instances, sigmas)
            assert f"{share:.4f}" not in text and f"{share:.3f}" not in text
