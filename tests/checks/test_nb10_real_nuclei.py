"""Tests for unet_lib.checks.nb10_real_nuclei: ``check_otsu_threshold``, ``check_tune_peak_footprint`` both ways.

Each check passes the library's implementation (or a correct one worked out here) and fails
deliberately broken versions with the intended message."""

import numpy as np
import pytest
from checktools import assert_passes, assert_skeleton_is_friendly

from unet_lib.baselines import (
    classical_instances,
    otsu_threshold,
)
from unet_lib.checks import (
    CheckError,
    check_otsu_threshold,
    check_tune_peak_footprint,
)
from unet_lib.checks import nb10_real_nuclei as nb10
from unet_lib.metrics import instance_scores


def _otsu_split(image, score):
    """The best split between consecutive distinct values by ``score(n0, n1, mu0, mu1)``:
    returns (largest background value, smallest foreground value)."""
    values = np.unique(np.asarray(image, dtype=np.float64))
    x = np.asarray(image, dtype=np.float64).ravel()
    scores = [score((x <= t).sum(), (x > t).sum(), x[x <= t].mean(), x[x > t].mean()) for t in values[:-1]]
    k = int(np.argmax(scores))
    return values[k], values[k + 1]


def _otsu_by_hand(image):
    return _otsu_split(image, lambda n0, n1, mu0, mu1: n0 * n1 * (mu0 - mu1) ** 2)[0]


def test_check_otsu_threshold_passes_the_library_and_a_by_hand_version():
    assert_passes(check_otsu_threshold, otsu_threshold)
    assert_passes(check_otsu_threshold, _otsu_by_hand)
    assert_skeleton_is_friendly(check_otsu_threshold, "otsu")


@pytest.mark.parametrize("broken, match", [
    (lambda image: sum(_otsu_split(image, lambda n0, n1, mu0, mu1: n0 * n1 * (mu0 - mu1) ** 2)) / 2,
     r"otsu\(np.array\(\[7, 1, 6, 2\]\)\) = 4; Otsu's threshold is 2\nHint: a value between the two classes"),
    (lambda image: _otsu_split(image, lambda n0, n1, mu0, mu1: n0 * n1 * (mu0 - mu1) ** 2)[1],
     r"= 6; Otsu's threshold is 2\nHint: that is the smallest foreground value"),
    (lambda image: _otsu_split(image, lambda n0, n1, mu0, mu1: (mu0 - mu1) ** 2)[0],      # no class weights
     r"bimodal uint8 image.*\nHint: try every split.*omega_0 \* omega_1"),
    (lambda image: image > _otsu_by_hand(image),
     r"returned a ndarray; expected one number\nHint: return the threshold t itself"),
])
def test_check_otsu_threshold_names_the_mistake(broken, match):
    with pytest.raises(CheckError, match=match):
        check_otsu_threshold(broken)


def tune_peak_footprint(image, instances, footprints):
    """The exercise's solution: choose on the left half, report the F1 on the right half."""
    half = image.shape[1] // 2
    f1 = {}
    for f in footprints:
        labels = classical_instances(image, peak_footprint=f)
        f1[f] = (instance_scores(labels[:, :half], instances[:, :half]).f1,
                 instance_scores(labels[:, half:], instances[:, half:]).f1)
    chosen = max(footprints, key=lambda f: f1[f][0])
    return chosen, f1[chosen][1]


def test_check_tune_peak_footprint_passes_a_correct_answer():
    assert_passes(check_tune_peak_footprint, tune_peak_footprint)
    assert_skeleton_is_friendly(check_tune_peak_footprint, "tune_peak_footprint")


def _footprint_answer(choose_on: str, report: str = "right", key=lambda s: s.f1):
    """A (cheap) answer that chooses on one part and reports a score of another, from the table
    the check computed once."""
    def answer(image, instances, footprints):
        table = nb10._footprint_case()[3]
        chosen = max(footprints, key=lambda f: table[f][choose_on].f1)
        return chosen, key(table[chosen][report])
    return answer


def test_the_footprint_case_tells_the_halves_apart():
    """The check's case must make choosing on the right half or the whole image visible."""
    _, _, footprints, table = nb10._footprint_case()
    best = {part: max(footprints, key=lambda f: table[f][part].f1) for part in ("left", "right", "whole")}
    assert best["left"] != best["right"]
    assert len({table[best["left"]][part].f1 for part in ("left", "right", "whole")}) == 3


BROKEN_TUNE_PEAK_FOOTPRINT = {
    "chosen on the right half": (_footprint_answer("right"), r"Hint: you chose on the right half, the evaluation "
                                                             r"half"),
    "reports the left half": (_footprint_answer("left", "left"), r"Hint: that is its F1 on the left half, where "
                                                                 r"it was chosen"),
    "reports the whole image": (_footprint_answer("left", "whole"), r"Hint: that is its F1 on the whole image"),
    "reports precision": (_footprint_answer("left", "right", key=lambda s: s.tp / (s.tp + s.fp)),
                          r"reports F1 0.\d+ for footprint 7; on the right half it is 0.812\nHint: label the whole "
                          r"image"),
    "returns only the footprint": (lambda image, instances, footprints: 7, r"returned 7; expected a pair"),
    "returns a footprint not offered": (lambda image, instances, footprints: (11, 0.8),
                                        r"Hint: return the chosen footprint itself, one of \(3, 7, 15\)"),
}


@pytest.mark.parametrize("answer, match", BROKEN_TUNE_PEAK_FOOTPRINT.values(), ids=BROKEN_TUNE_PEAK_FOOTPRINT.keys())
def test_check_tune_peak_footprint_fails_a_broken_answer(answer, match):
    with pytest.raises(CheckError, match=match):
        check_tune_peak_footprint(answer)
