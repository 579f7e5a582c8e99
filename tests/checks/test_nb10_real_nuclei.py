"""Tests for unet_lib.checks.nb10_real_nuclei: ``check_otsu_threshold``, ``check_tune_peak_footprint`` both ways.

Each check passes a correct answer worked out here, refuses the library's function of the same
job (however it is reached), and fails deliberately broken versions with the intended message.
Both checks draw part of their cases on every run; the tests of a message fix the draw."""

import numpy as np
import pytest
from checktools import assert_passes, assert_skeleton_is_friendly, reference

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


def _otsu_split(image, score, counts=True, last=False):
    """The best split between consecutive distinct values by ``score(n0, n1, mu0, mu1)``:
    returns (largest background value, smallest foreground value). ``counts=False`` counts
    every distinct value once, the mistake the check must catch; ``last`` keeps the last of
    equally good splits."""
    x = np.asarray(image, dtype=np.float64).ravel()
    values = np.unique(x)
    if not counts:
        x = values
    scores = np.array([score((x <= t).sum(), (x > t).sum(), x[x <= t].mean(), x[x > t].mean()) for t in values[:-1]])
    k = len(scores) - 1 - int(np.argmax(scores[::-1])) if last else int(np.argmax(scores))
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


def _otsu_within(image):
    """Otsu as the smallest within-class variance, with fractions instead of counts: another order
    of the arithmetic, which must pass too (the hand-worked tie is exact in any order)."""
    x = np.asarray(image, np.float64).ravel()
    values = np.unique(x)
    within = [(x <= t).mean() * x[x <= t].var() + (x > t).mean() * x[x > t].var() for t in values[:-1]]
    return float(values[int(np.argmin(within))])


def test_check_otsu_threshold_passes_by_hand_versions():
    assert_passes(check_otsu_threshold, _otsu_by_hand)
    assert_passes(check_otsu_threshold, _otsu_by_counts)
    assert_passes(check_otsu_threshold, _otsu_within)
    assert_skeleton_is_friendly(check_otsu_threshold, "otsu")


THRESHOLD = otsu_threshold   # imported under another name: still refused


@pytest.mark.parametrize("answer, shortcut", [
    (lambda image: otsu_threshold(image), "`otsu_threshold`"),
    (lambda image: float(THRESHOLD(np.asarray(image))), "`otsu_threshold`"),
    (lambda image: float(np.asarray(image)[otsu_instances(np.atleast_2d(image)) == 0].max()),
     "`otsu_instances`"),   # the outermost shortcut is named, not what it calls
], ids=["by its name", "under another name", "inside otsu_instances"])
def test_check_otsu_threshold_refuses_the_librarys_otsu(answer, shortcut):
    with pytest.raises(CheckError, match=rf"^`<lambda>` called {shortcut}, which already does what this exercise"):
        check_otsu_threshold(answer)


def test_the_otsu_cases_tell_counted_pixels_from_distinct_values_and_have_a_tie():
    """The check's cases must catch an Otsu over distinct values (on notebook 10's image it gives
    0.5 where Otsu gives 0.197) and the last of equally good splits."""
    image = load_real_nuclei()[0]
    assert reference(nb10._otsu_of_distinct_values)(image) == pytest.approx(0.5)
    assert otsu_threshold(image) == pytest.approx(0.197, abs=5e-4)
    assert reference(nb10._otsu_of_distinct_values)(np.array([0, 0, 2, 4, 8])) == 4 != otsu_threshold(np.array([0, 0, 2, 4, 8]))
    tie = dict(nb10._HAND_CASES)["np.repeat([0, 3, 6], [4, 8, 4])"]
    assert _otsu_split(tie, _between) == (0, 3) and _otsu_split(tie, _between, last=True) == (3, 6)


def test_the_drawn_otsu_cases_change_from_run_to_run():
    first, second = (reference(nb10._drawn_otsu_cases)(np.random.default_rng(seed)) for seed in (1, 2))
    assert [name for name, _ in first] == [name for name, _ in second]
    assert all(not np.array_equal(a, b) for (_, a), (_, b) in zip(first, second))
    assert len({otsu_threshold(image) for _, image in first} | {otsu_threshold(image) for _, image in second}) == 6


def _hand_lookup(image):
    """A table of the hand-worked cases' answers, which the check prints, and notebook 10's
    threshold for everything else: what copying earlier messages gives."""
    table = {4: 2.0, 6: 4.0, 5: 2.0, 16: 0.0}
    return table.get(np.asarray(image).size, 0.197)


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
    "the last of equally good splits": (lambda image: _otsu_split(image, _between, last=True)[0],
                                        r"otsu\(np.repeat\(\[0, 3, 6\], \[4, 8, 4\]\)\) = 3: its split is exactly as "
                                        r"good as the split at 0, which comes first\nHint: when several splits are "
                                        r"equally good, return the first"),
    "a table of earlier messages": (_hand_lookup, r"^otsu\(a bimodal uint8 image, 40x25, drawn for this run\) = 0.197 "
                                                  r"is too low for Otsu's threshold of this image\nHint 1 of 2"),
    "a mask": (lambda image: image > _otsu_by_hand(image),
               r"returned a ndarray; expected one number\nHint: return the threshold t itself"),
}


@pytest.mark.parametrize("broken, match", BROKEN_OTSU.values(), ids=BROKEN_OTSU.keys())
def test_check_otsu_threshold_names_the_mistake(broken, match):
    with pytest.raises(CheckError, match=match):
        check_otsu_threshold(broken)


@pytest.mark.parametrize("broken, match", [
    (lambda image: _otsu_by_hand(image) if np.asarray(image).size < 100 else _otsu_split(image, _between)[1],
     r"^otsu\(a bimodal uint8 image, 40x25, drawn for this run\) = [\d.]+: the smallest foreground value of Otsu's "
     r"split, one value too high\nHint"),
    (lambda image: _otsu_by_hand(image) if np.asarray(image).size < 100 else _otsu_by_hand(image) + 1e-3,
     r"^otsu\(a bimodal uint8 image, 40x25, drawn for this run\) = [\d.]+: the same split of the pixels as Otsu's "
     r"threshold, but not its value\nHint"),
    (lambda image: _otsu_by_hand(image) if np.asarray(image).size < 100 else 255.0,
     r"^otsu\(a bimodal uint8 image, 40x25, drawn for this run\) = 255 is too high for Otsu's threshold of this "
     r"image"),
], ids=["the smallest foreground value", "a value between the classes", "too high"])
def test_check_otsu_threshold_never_prints_the_threshold_of_a_drawn_image(broken, match, monkeypatch):
    drawn = []
    draw = nb10._drawn_otsu_cases

    def recorded(rng):
        drawn.extend(draw(rng))
        return drawn
    monkeypatch.setattr(nb10, "_drawn_otsu_cases", recorded)
    with pytest.raises(CheckError, match=match) as info:
        check_otsu_threshold(broken)
    image = drawn[0][1]
    shown = str(info.value).replace(f"{float(broken(image)):g}", "the answer")   # the learner's own number
    assert f"{otsu_threshold(image):g}" not in shown, shown


def test_check_otsu_threshold_names_a_tool_only_on_a_second_failure():
    broken = BROKEN_OTSU["distinct values only"][0]
    with pytest.raises(CheckError) as first:
        check_otsu_threshold(broken)
    assert "np.unique" not in str(first.value)
    with pytest.raises(CheckError, match=r"Hint 2 of 2: np.unique\(image, return_counts=True\)"):
        check_otsu_threshold(broken)


# -- tune_peak_footprint --------------------------------------------------------------------------

def tune_peak_footprint(image, instances, footprints, apart=False, seam=0):
    """The exercise's solution: choose on the left half, report the F1 on the right half; label
    the whole image and cut (the notebook's way), or with ``apart`` label each half on its own.
    ``seam`` moves the dividing line (a broken version)."""
    half = image.shape[1] // 2 + seam
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


CASES = (nb10._TRANSPOSED, nb10._ORIGINAL, nb10._DISCS)
FIXED = [(nb10._TRANSPOSED, (3, 5, 21)), (nb10._ORIGINAL, (5, 9, 21)), (nb10._DISCS, (9, 5, 13))]


@pytest.fixture
def fixed_cases(monkeypatch):
    """The check's cases with the footprints of ``FIXED`` instead of a draw, for tests of a message."""
    monkeypatch.setattr(nb10, "_drawn_footprint_cases", lambda rng: FIXED)


def _scores(case, footprint):
    return reference(nb10._footprint_scores)(case, footprint)   # outside the learner's call that the check watches


def _case_of(image):
    return next(c for c in CASES if np.array_equal(image, reference(nb10._footprint_case)(c)[0]))


def test_the_footprint_cases_tell_the_halves_apart():
    """In every set of footprints a real case may be given, the left half chooses the same one
    whichever way a half is scored, strictly better on the left than the others, strictly worse on
    the right half (either way) and on the whole image than the best there, and the whole image's
    choice is also a right half's choice (so the check's message about it is true)."""
    for case, options in nb10._FOOTPRINT_CASES.items():
        for footprints in options:
            table = {f: _scores(case, f) for f in footprints}
            lefts = {p: sorted(footprints, key=lambda f: -table[f][p]["left"]) for p in ("cut", "apart")}
            assert lefts["cut"][0] == lefts["apart"][0], (case, footprints)
            chosen = lefts["cut"][0]
            for p in ("cut", "apart"):
                assert table[chosen][p]["left"] > table[lefts[p][1]][p]["left"], (case, footprints, p)
                assert table[chosen][p]["right"] < max(t[p]["right"] for t in table.values()), (case, footprints, p)
            assert table[chosen]["cut"]["whole"] < max(t["cut"]["whole"] for t in table.values())
            whole = max(footprints, key=lambda f: table[f]["cut"]["whole"])
            assert whole in {max(footprints, key=lambda f: table[f][p]["right"]) for p in ("cut", "apart")}


def test_on_the_discs_every_footprint_scores_the_same_and_the_seam_matters():
    image, instances = reference(nb10._footprint_case)(nb10._DISCS)
    tables = [_scores(nb10._DISCS, f) for f in nb10._DISC_FOOTPRINTS]
    assert all(t == tables[0] for t in tables)
    left, whole = tables[0]["cut"]["left"], tables[0]["cut"]["whole"]
    assert tables[0]["apart"]["left"] == left == pytest.approx(6 / 7)   # the dim disc is missed
    assert whole == pytest.approx(10 / 11) and tables[0]["apart"]["right"] > tables[0]["cut"]["right"]
    labels = classical_instances(image, peak_footprint=9)
    off = instance_scores(labels[:, 65:], instances[:, 65:]).f1           # one column off: another F1
    assert off == 1.0 and off not in {left, whole, tables[0]["cut"]["right"], tables[0]["apart"]["right"]}


def test_the_drawn_footprints_change_from_run_to_run():
    draws = {tuple(reference(nb10._drawn_footprint_cases)(np.random.default_rng(seed))) for seed in range(6)}
    assert len(draws) > 1
    for draw in draws:
        assert [case for case, _ in draw] == list(CASES)
        for case, footprints in draw[:2]:
            assert tuple(sorted(footprints)) in nb10._FOOTPRINT_CASES[case]
        assert len(set(draw[2][1])) == 3 and set(draw[2][1]) <= set(nb10._DISC_FOOTPRINTS)


def test_no_table_of_answers_is_left_in_the_modules_namespace():
    """After a run (the fixture's broken answers fill the check's memory), nothing in the module's
    namespace holds an F1: the values live in closures that only a refused call reaches."""
    _scores(nb10._TRANSPOSED, 21)
    for name, value in vars(nb10).items():
        if isinstance(value, dict) and name != "_FOOTPRINT_CASES" and not name.startswith("__"):
            pytest.fail(f"nb10.{name} is a dict")


@pytest.mark.parametrize("answer", [
    lambda image, instances, footprints: nb10._footprint_scores(nb10._TRANSPOSED, 21) and (21, 0.6),
    lambda image, instances, footprints: nb10._footprint_scores.__wrapped__(nb10._TRANSPOSED, 21) and (21, 0.6),
    lambda image, instances, footprints: (nb10._best(nb10._TRANSPOSED, footprints, "cut", "left"), 0.6),
], ids=["its experiment, remembered", "its experiment, computed", "its choice"])
def test_check_tune_peak_footprint_refuses_the_checks_own_experiment(answer, fixed_cases):
    _scores(nb10._TRANSPOSED, 21)   # remembered from an earlier run
    with pytest.raises(CheckError, match=r"called `the check's own (experiment|choice)`"):
        check_tune_peak_footprint(answer)


def _footprint_answer(choose_on: str, report: str = "right", protocol: str = "cut", last: bool = False):
    """A (cheap) answer that chooses on one part and reports the F1 of another, from the tables
    the check computes once; ``last`` keeps the last of equally good footprints."""
    def answer(image, instances, footprints):
        case = _case_of(image)
        order = footprints[::-1] if last else footprints
        chosen = max(order, key=lambda f: _scores(case, f)[protocol][choose_on])
        return chosen, _scores(case, chosen)[protocol][report]
    return answer


def _hard_coded(image, instances, footprints):
    """The answer of the first case, found once, returned for every case: 21 chosen, its right F1."""
    return 21, _scores(nb10._TRANSPOSED, 21)["cut"]["right"]


def _ignores_footprints(image, instances, footprints):
    return _footprint_answer("left")(image, instances, (3, 5, 21))


def _scored_against_the_notebooks_annotation(image, instances, footprints):
    """Chooses right, but scores the right half against notebook 10's own annotation, as a helper
    that reads the notebook's global `instances` does."""
    chosen, _ = _footprint_answer("left")(image, instances, footprints)
    theirs = load_real_nuclei()[1]
    labels = classical_instances(image, peak_footprint=chosen)
    return chosen, instance_scores(labels[:, 256:], theirs[:, 256:]).f1


BROKEN_TUNE_PEAK_FOOTPRINT = {
    "chosen on the right half": (_footprint_answer("right"), r"chose 5, the footprint that scores best on the right "
                                                             r"half\nHint: the right half is the evaluation half"),
    "chosen on the right half, halves apart": (_footprint_answer("right", protocol="apart"),
                                               r"chose 5, the footprint that scores best on the right half"),
    "chosen on the whole image": (_footprint_answer("whole"),
                                  r"chose 5, the footprint that scores best on the right half\nHint: the right half "
                                  r"is the evaluation half \(and the whole image includes it\)"),
    "reports the left half": (_footprint_answer("left", "left"), r"reports F1 0.793 for footprint 21: its F1 on the "
                                                                 r"left half, where it was chosen"),
    "reports the whole image": (_footprint_answer("left", "whole"), r"its F1 on the whole image\nHint: score the right "
                                                                    r"half only"),
    "reports another number": (lambda image, instances, footprints: (21, 0.5),
                               r"reports F1 0.500 for footprint 21, which is not its instance F1 on the right half\n"
                               r"Hint 1 of 2: score the chosen footprint's labels on the right half"),
    "scores against the notebook's annotation": (_scored_against_the_notebooks_annotation,
                                                 r"which is not its instance F1 on the right half\nHint 1 of 2: .*"
                                                 r"the annotation your function was given, its `instances` argument"),
    "returns only the footprint": (lambda image, instances, footprints: 21, r"returned 21; expected a pair"),
    "returns a footprint not offered": (lambda image, instances, footprints: (11, 0.8),
                                        r"chose 11, which is not one of the footprints it was given, \(3, 5, 21\)"),
    "chooses the first footprint": (lambda image, instances, footprints: (footprints[0], 0.6),
                                    r"chose 3, which is not the footprint with the best instance F1 on the left half"),
    "hard-codes the first case's answer": (_hard_coded, r"^on notebook 10's image, with footprints \(5, 9, 21\), "
                                                        r"tune_peak_footprint chose 21, which is not the footprint "
                                                        r"with the best"),
    "ignores the footprints it is given": (_ignores_footprints, r"^on six separate discs, one cut by the dividing "
                                                                r"line, tune_peak_footprint chose 3, which is not one "
                                                                r"of the footprints it was given, \(9, 5, 13\)"),
    "keeps the last of equally good ones": (_footprint_answer("left", last=True),
                                            r"^on six separate discs, .* with footprints \(9, 5, 13\), "
                                            r"tune_peak_footprint chose 13: it scores as well on the left half as a "
                                            r"footprint that comes earlier"),
}


@pytest.mark.parametrize("answer, match", BROKEN_TUNE_PEAK_FOOTPRINT.values(), ids=BROKEN_TUNE_PEAK_FOOTPRINT.keys())
def test_check_tune_peak_footprint_fails_a_broken_answer(answer, match, fixed_cases):
    with pytest.raises(CheckError, match=match):
        check_tune_peak_footprint(answer)


def test_check_tune_peak_footprint_fails_a_seam_one_column_off(fixed_cases, monkeypatch):
    """Cutting at W // 2 + 1 scores other columns: on the discs it misses the nucleus that reaches
    one pixel into the right half (the real cases are skipped here to keep the test cheap)."""
    monkeypatch.setattr(nb10, "_drawn_footprint_cases", lambda rng: FIXED[2:])
    with pytest.raises(CheckError, match=r"reports F1 1.000 for footprint 9, which is not its instance F1 on the "
                                         r"right half\nHint 1 of 2: .*no more and no less"):
        check_tune_peak_footprint(lambda image, instances, footprints: tune_peak_footprint(
            image, instances, footprints, seam=1))


def test_check_tune_peak_footprint_never_prints_the_expected_choice_or_score(fixed_cases):
    right = {f"{t[p]['right']:.3f}" for case, footprints in FIXED for t in (_scores(case, f) for f in footprints)
             for p in ("cut", "apart")}
    for answer, _ in BROKEN_TUNE_PEAK_FOOTPRINT.values():
        with pytest.raises(CheckError) as info:
            check_tune_peak_footprint(answer)
        text = str(info.value)
        assert not any(r in text for r in right), text
