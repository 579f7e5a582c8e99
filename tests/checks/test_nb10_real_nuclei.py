"""Tests for unet_lib.checks.nb10_real_nuclei: ``check_otsu_threshold``, ``check_tune_peak_footprint`` both ways.

Each check passes a correct answer worked out here, refuses the library's function of the same
job (however it is reached), and fails deliberately broken versions with the intended message."""

import numpy as np
import pytest
from checktools import assert_passes, assert_skeleton_is_friendly

from unet_lib.baselines import (
    classical_instances,
    otsu_instances,
    otsu_threshold,
)
from unet_lib.checks import (
    CheckError,
    check_otsu_threshold,
    check_tune_peak_footprint,
)
from unet_lib.checks import nb10_real_nuclei as nb10
from unet_lib.data import load_real_nuclei
from unet_lib.metrics import instance_scores


def _otsu_split(image, score, counts=True):
    """The best split between consecutive distinct values by ``score(n0, n1, mu0, mu1)``:
    returns (largest background value, smallest foreground value). ``counts=False`` counts
    every distinct value once, the mistake the check must catch."""
    x = np.asarray(image, dtype=np.float64).ravel()
    values = np.unique(x)
    if not counts:
        x = values
    scores = [score((x <= t).sum(), (x > t).sum(), x[x <= t].mean(), x[x > t].mean()) for t in values[:-1]]
    k = int(np.argmax(scores))
    return values[k], values[k + 1]


def _between(n0, n1, mu0, mu1):
    return n0 * n1 * (mu0 - mu1) ** 2


def _otsu_by_hand(image):
    return _otsu_split(image, _between)[0]


def _otsu_by_counts(image):
    """The notebook's solution: cumulative sums over the distinct values and their counts."""
    values, counts = np.unique(np.asarray(image, np.float64), return_counts=True)
    n0, s0 = np.cumsum(counts)[:-1], np.cumsum(counts * values)[:-1]
    n, total = counts.sum(), (counts * values).sum()
    return float(values[np.argmax(n0 * (n - n0) * (s0 / n0 - (total - s0) / (n - n0)) ** 2)])


def test_check_otsu_threshold_passes_by_hand_versions():
    assert_passes(check_otsu_threshold, _otsu_by_hand)
    assert_passes(check_otsu_threshold, _otsu_by_counts)
    assert_skeleton_is_friendly(check_otsu_threshold, "otsu")


THRESHOLD = otsu_threshold   # imported under another name: still refused


@pytest.mark.parametrize("answer, shortcut", [
    (lambda image: otsu_threshold(image), "`otsu_threshold`"),
    (lambda image: float(THRESHOLD(np.asarray(image))), "`otsu_threshold`"),
    (lambda image: float(np.asarray(image)[otsu_instances(np.atleast_2d(image)) == 0].max()),
     "`otsu_instances`, `otsu_threshold`"),
], ids=["by its name", "under another name", "inside otsu_instances"])
def test_check_otsu_threshold_refuses_the_librarys_otsu(answer, shortcut):
    with pytest.raises(CheckError, match=rf"^`<lambda>` called {shortcut}, which already does what this exercise"):
        check_otsu_threshold(answer)


def test_the_otsu_cases_tell_counted_pixels_from_distinct_values():
    """The check's cases must catch an Otsu over distinct values: on notebook 10's image it gives
    0.5 where Otsu gives 0.197."""
    image = load_real_nuclei()[0]
    assert nb10._otsu_of_distinct_values(image) == pytest.approx(0.5)
    assert otsu_threshold(image) == pytest.approx(0.197, abs=5e-4)
    assert nb10._otsu_of_distinct_values(np.array([0, 0, 2, 4, 8])) == 4 != otsu_threshold(np.array([0, 0, 2, 4, 8]))


BROKEN_OTSU = {
    "a value between the classes": (lambda image: sum(_otsu_split(image, _between)) / 2,
                                    r"otsu\(np.array\(\[7, 1, 6, 2\]\)\) = 4: the same split of the pixels as Otsu's "
                                    r"threshold 2, but not its value\nHint: return the largest background value"),
    "the smallest foreground value": (lambda image: _otsu_split(image, _between)[1],
                                      r"= 6: the smallest foreground value of Otsu's split; the threshold is 2\n"
                                      r"Hint: the foreground is image > t"),
    "distinct values only": (lambda image: _otsu_split(image, _between, counts=False)[0],
                             r"otsu\(np.array\(\[0, 0, 2, 4, 8\]\)\) = 4; Otsu's threshold is 2. Your threshold is "
                             r"the one you would get if every distinct value were held by one pixel\nHint 1 of 2: "
                             r"omega_k is the fraction of pixels"),
    "no class weights": (lambda image: _otsu_split(image, lambda n0, n1, mu0, mu1: (mu0 - mu1) ** 2)[0],
                         r"otsu\(np.array\(\[0, 0, 2, 4, 8\]\)\) = 4; Otsu's threshold is 2\nHint 1 of 2: Otsu's t "
                         r"maximises omega_0 \* omega_1 \* \(mu_0 - mu_1\)\^2"),
    "the mean": (lambda image: float(np.mean(image)), r"otsu\(np.array\(\[7, 1, 6, 2\]\)\) = 4; Otsu's threshold is 2"
                                                      r"\nHint 1 of 2: Otsu's t maximises"),
    "a mask": (lambda image: image > _otsu_by_hand(image),
               r"returned a ndarray; expected one number\nHint: return the threshold t itself"),
}


@pytest.mark.parametrize("broken, match", BROKEN_OTSU.values(), ids=BROKEN_OTSU.keys())
def test_check_otsu_threshold_names_the_mistake(broken, match):
    with pytest.raises(CheckError, match=match):
        check_otsu_threshold(broken)


def test_check_otsu_threshold_names_a_tool_only_on_a_second_failure():
    broken = BROKEN_OTSU["distinct values only"][0]
    with pytest.raises(CheckError) as first:
        check_otsu_threshold(broken)
    assert "np.unique" not in str(first.value)
    with pytest.raises(CheckError, match=r"Hint 2 of 2: np.unique\(image, return_counts=True\)"):
        check_otsu_threshold(broken)


# -- tune_peak_footprint --------------------------------------------------------------------------

def tune_peak_footprint(image, instances, footprints, apart=False):
    """The exercise's solution: choose on the left half, report the F1 on the right half; label
    the whole image and cut (the notebook's way), or with ``apart`` label each half on its own."""
    half = image.shape[1] // 2
    f1 = {}
    for f in footprints:
        if apart:
            left, right = (classical_instances(np.ascontiguousarray(image[:, cols]), peak_footprint=f)
                           for cols in (np.s_[:half], np.s_[half:]))
        else:
            labels = classical_instances(image, peak_footprint=f)
            left, right = labels[:, :half], labels[:, half:]
        f1[f] = (instance_scores(left, instances[:, :half]).f1, instance_scores(right, instances[:, half:]).f1)
    chosen = max(footprints, key=lambda f: f1[f][0])
    return chosen, f1[chosen][1]


def test_check_tune_peak_footprint_passes_either_way_of_scoring_a_half():
    assert_passes(check_tune_peak_footprint, tune_peak_footprint)
    assert_passes(check_tune_peak_footprint, lambda image, instances, footprints: tune_peak_footprint(
        image, instances, footprints, apart=True))
    assert_skeleton_is_friendly(check_tune_peak_footprint, "tune_peak_footprint")


def _tables():
    return nb10._footprint_tables()   # computed here, outside the learner's call that the check watches


def _footprint_answer(choose_on: str, report: str = "right", protocol: str = "cut"):
    """A (cheap) answer that chooses on one part and reports the F1 of another, from the table the
    check computes once."""
    def answer(image, instances, footprints):
        table = nb10._TABLES[protocol]
        chosen = max(footprints, key=lambda f: table[f][choose_on])
        return chosen, table[chosen][report]
    return answer


def test_the_footprint_case_tells_the_halves_apart():
    """The check's case must make choosing on the right half or the whole image visible, however a
    half is labelled, and the left half's choice must be the same either way."""
    footprints = nb10._footprint_data()[2]
    best = {(p, part): nb10._best(t, part, footprints) for p, t in _tables().items() for part in ("left", "right")}
    assert best["cut", "left"] == best["apart", "left"]
    assert best["cut", "left"] not in {best["cut", "right"], best["apart", "right"],
                                       nb10._best(_tables()["cut"], "whole", footprints)}


@pytest.mark.parametrize("answer", [
    lambda image, instances, footprints: nb10._footprint_tables() and (21, 0.6),
    lambda image, instances, footprints: nb10._compute_footprint_tables() and (21, 0.6),
], ids=["its table", "its experiment"])
def test_check_tune_peak_footprint_refuses_the_checks_own_experiment(answer):
    _tables()
    with pytest.raises(CheckError, match=r"called `the check's own"):
        check_tune_peak_footprint(answer)


BROKEN_TUNE_PEAK_FOOTPRINT = {
    "chosen on the right half": (_footprint_answer("right"), r"chose 5, the footprint that scores best on the right "
                                                             r"half\nHint: the right half is the evaluation half"),
    "chosen on the whole image": (_footprint_answer("whole"), r"chose 5, the footprint that scores best on the right "
                                                              r"half"),
    "reports the left half": (_footprint_answer("left", "left"), r"reports F1 0.793 for footprint 21: its F1 on the "
                                                                 r"left half, where it was chosen"),
    "reports the whole image": (_footprint_answer("left", "whole"), r"its F1 on the whole image\nHint: score the right "
                                                                    r"half only"),
    "reports another number": (lambda image, instances, footprints: (21, 0.5),
                               r"reports F1 0.500 for footprint 21, which is not its instance F1 on the right half\n"
                               r"Hint 1 of 2: score the chosen footprint's labels on the right half"),
    "returns only the footprint": (lambda image, instances, footprints: 21, r"returned 21; expected a pair"),
    "returns a footprint not offered": (lambda image, instances, footprints: (11, 0.8),
                                        r"chose 11, which is not one of the footprints it was given, \(3, 5, 21\)"),
    "chooses the first footprint": (lambda image, instances, footprints: (3, 0.6),
                                    r"chose 3, which is not the footprint with the best instance F1 on the left half"),
}


@pytest.mark.parametrize("answer, match", BROKEN_TUNE_PEAK_FOOTPRINT.values(), ids=BROKEN_TUNE_PEAK_FOOTPRINT.keys())
def test_check_tune_peak_footprint_fails_a_broken_answer(answer, match):
    _tables()
    with pytest.raises(CheckError, match=match):
        check_tune_peak_footprint(answer)


def test_check_tune_peak_footprint_never_prints_the_expected_choice_or_score():
    tables = _tables()
    right = [f"{t[21]['right']:.3f}" for t in tables.values()]
    for answer, _ in BROKEN_TUNE_PEAK_FOOTPRINT.values():
        with pytest.raises(CheckError) as info:
            check_tune_peak_footprint(answer)
        text = str(info.value)
        assert not any(r in text for r in right), text
