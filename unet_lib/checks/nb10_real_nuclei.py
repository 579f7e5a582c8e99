"""The checks of notebook 10, real nuclei: ``check_otsu_threshold``, ``check_tune_peak_footprint``."""

import functools
from collections.abc import Callable

import numpy as np

from ..baselines import classical_instances, otsu_instances, otsu_threshold
from ._core import CheckPassed, call, fail, learner_check, passed

__all__ = ['check_otsu_threshold', 'check_tune_peak_footprint']


def _library_otsus() -> dict[str, Callable]:
    """Every ready-made Otsu the learner's ``otsu`` could call: the course's, and scikit-image's
    and OpenCV's where they are installed (neither is a course requirement)."""
    shortcuts = {"otsu_threshold": otsu_threshold, "otsu_instances": otsu_instances,
                 "classical_instances": classical_instances}
    try:
        from skimage.filters import threshold_otsu
        shortcuts["skimage.filters.threshold_otsu"] = threshold_otsu
    except ImportError:
        pass
    try:
        import cv2
        shortcuts["cv2.threshold"] = cv2.threshold
    except ImportError:
        pass
    return shortcuts


def _otsu_of_distinct_values(image: np.ndarray) -> float:
    """A common wrong Otsu: every distinct value counted once, whatever the number of its pixels."""
    values = np.unique(np.asarray(image, np.float64))
    scores = [(k + 1) * (len(values) - k - 1) * (values[:k + 1].mean() - values[k + 1:].mean()) ** 2
              for k in range(len(values) - 1)]
    return float(values[int(np.argmax(scores))])


@functools.lru_cache(maxsize=1)
def _otsu_cases() -> list[tuple[str, np.ndarray]]:
    """Hand-worked cases, one with unequal counts that an Otsu over distinct values gets wrong,
    two bimodal images (uint8 and float) and notebook 10's image."""
    from ..data import load_real_nuclei
    rng = np.random.default_rng(0)
    bimodal = np.concatenate([rng.normal(60, 10, 700), rng.normal(170, 25, 300)]).clip(0, 255)
    return [
        ("np.array([7, 1, 6, 2])", np.array([7, 1, 6, 2])),
        ("np.array([0, 0, 0, 4, 4, 10])", np.array([0, 0, 0, 4, 4, 10])),
        ("np.array([0, 0, 2, 4, 8])", np.array([0, 0, 2, 4, 8])),
        ("a bimodal uint8 image, 40x25, 70% dark", bimodal.astype(np.uint8).reshape(40, 25)),
        ("a bimodal float image, 40x25", (bimodal / 255).astype(np.float32).reshape(40, 25)),
        ("notebook 10's image", load_real_nuclei()[0]),
    ]


@learner_check
def check_otsu_threshold(otsu: Callable) -> CheckPassed:
    """``otsu(image)`` must return Otsu's threshold t of a numpy image (foreground = image > t):
    the largest background value of the split with the largest between-class variance. The
    library's Otsu (and scikit-image's or OpenCV's, where installed) is refused."""
    refuse = _library_otsus()
    wrong = []                                       # (name, image, got, expected) of every failed case
    for name, image in _otsu_cases():
        got = call(otsu, image.copy(), refuse=refuse)
        if isinstance(got, np.ndarray) and got.size == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, (int, float, np.integer, np.floating)):
            fail("otsu({name}) returned a {kind}; expected one number",
                 "return the threshold t itself (foreground = image > t), not the foreground mask",
                 name=name, kind=type(got).__name__)
        got, expected = float(got), otsu_threshold(image)
        if not np.isclose(got, expected, rtol=1e-6, atol=1e-9):
            wrong.append((name, image, got, expected))
    if not wrong:
        return passed("✓ otsu gives Otsu's threshold on hand-worked cases, bimodal images and notebook 10's "
                      "image")
    name, image, got, expected = wrong[0]
    pixels = [np.asarray(im, np.float64) for _, im, _, _ in wrong]
    # which mistake explains every failed case
    same_split = all(np.array_equal(x > g, x > e) for x, (_, _, g, e) in zip(pixels, wrong))
    smallest_foreground = all(np.isclose(g, x[x > e].min()) for x, (_, _, g, e) in zip(pixels, wrong))
    distinct_only = all(np.isclose(g, _otsu_of_distinct_values(x)) for x, (_, _, g, _) in zip(pixels, wrong))
    if same_split:
        fail("otsu({name}) = {got:g}: the same split of the pixels as Otsu's threshold {expected:g}, but not "
             "its value",
             "return the largest background value of the best split, so that your answer can be compared exactly",
             name=name, got=got, expected=expected)
    if smallest_foreground:
        fail("otsu({name}) = {got:g}: the smallest foreground value of Otsu's split; the threshold is {expected:g}",
             "the foreground is image > t, so t is the largest value that stays background",
             name=name, got=got, expected=expected)
    if distinct_only:
        fail("otsu({name}) = {got:g}; Otsu's threshold is {expected:g}. Your threshold is the one you would get if "
             "every distinct value were held by one pixel",
             "omega_k is the fraction of pixels in class k and mu_k their mean: a value that 50 pixels hold weighs "
             "50 times as much as a value that one pixel holds",
             "np.unique(image, return_counts=True) gives the distinct values and how many pixels hold each",
             name=name, got=got, expected=expected)
    fail("otsu({name}) = {got:g}; Otsu's threshold is {expected:g}",
         "Otsu's t maximises omega_0 * omega_1 * (mu_0 - mu_1)^2 over every split of the pixels into values <= t "
         "and values > t: is that what your function maximises, and does it try every split?",
         "every split between two consecutive distinct values is a candidate; np.unique(image, return_counts=True) "
         "lists them with their pixel counts, and cumulative sums give omega and mu of every split at once",
         name=name, got=got, expected=expected)


# -- exercise 2: choose on the left half, report on the right ----------------------------------

_PARTS = ("left", "right", "whole")


@functools.lru_cache(maxsize=1)
def _footprint_data() -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """The data of ``check_tune_peak_footprint``: notebook 10's real image transposed, its two
    halves swapped (the left half is the original's bottom half, the right half its top half),
    its instances (the right half's ids offset, so that a nucleus cut by the seam is two objects),
    and three footprints. Chosen so that the left half prefers another footprint than the right
    half and the whole image do, by at least 0.011 in F1, however a half is labelled."""
    from ..data import load_real_nuclei
    image, instances = load_real_nuclei()
    image, instances = image.T, instances.T
    half = image.shape[1] // 2
    left, right = instances[:, half:], instances[:, :half]
    swapped = np.concatenate([image[:, half:], image[:, :half]], axis=1)
    labels = np.concatenate([left, np.where(right > 0, right + left.max(), 0)], axis=1)
    return np.ascontiguousarray(swapped), np.ascontiguousarray(labels), (3, 5, 21)


_TABLES: dict[str, dict[int, dict[str, float]]] = {}


def _footprint_tables() -> dict[str, dict[int, dict[str, float]]]:
    """{protocol: {footprint: {part: instance F1}}} on ``_footprint_data``, for the two honest
    ways to score a half: "cut" labels the whole image and cuts the labels at W // 2 (as notebook
    10's ``score`` does); "apart" labels each half on its own. Computed once per process (kept in
    ``_TABLES``, not by ``lru_cache``: a learner's call of this function must enter its code, so
    that the check can refuse it)."""
    if not _TABLES:
        _TABLES.update(_compute_footprint_tables())
    return _TABLES


def _compute_footprint_tables() -> dict[str, dict[int, dict[str, float]]]:
    from ..metrics import instance_scores
    image, instances, footprints = _footprint_data()
    half = image.shape[1] // 2
    left, right = np.s_[:, :half], np.s_[:, half:]
    tables: dict[str, dict[int, dict[str, float]]] = {"cut": {}, "apart": {}}
    for f in footprints:
        labels = classical_instances(image, peak_footprint=f)
        tables["cut"][f] = {"left": instance_scores(labels[left], instances[left]).f1,
                            "right": instance_scores(labels[right], instances[right]).f1,
                            "whole": instance_scores(labels, instances).f1}
        halves = {part: classical_instances(image[cols], peak_footprint=f) for part, cols in
                  (("left", left), ("right", right))}
        tables["apart"][f] = {"left": instance_scores(halves["left"], instances[left]).f1,
                              "right": instance_scores(halves["right"], instances[right]).f1,
                              "whole": instance_scores(np.concatenate([halves["left"], np.where(
                                  halves["right"] > 0, halves["right"] + halves["left"].max(), 0)], axis=1),
                                  instances).f1}
    return tables


def _best(table: dict[int, dict[str, float]], part: str, footprints: tuple[int, ...]) -> int:
    return max(footprints, key=lambda f: table[f][part])   # the first of equally good ones


@learner_check
def check_tune_peak_footprint(tune_peak_footprint: Callable) -> CheckPassed:
    """``tune_peak_footprint(image, instances, footprints)`` must choose the watershed's
    ``peak_footprint`` of ``classical_instances`` by instance F1 on the left half (columns <
    W // 2; the first of equally good ones) and return ``(footprint, its instance F1 on the right
    half)``. Run on notebook 10's image transposed with its halves swapped (``_footprint_data``),
    which the notebook does not print scores of. Either way of scoring a half is accepted:
    labelling the whole image and cutting the labels at W // 2, or labelling each half on its own.
    The failure messages never print the expected choice or score."""
    image, instances, footprints = _footprint_data()
    got = call(tune_peak_footprint, image.copy(), instances.copy(), footprints,
               refuse={"the check's own table": _footprint_tables,
                       "the check's own experiment": _compute_footprint_tables})
    tables = _footprint_tables()   # after the learner's call: a skeleton fails fast
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        fail("tune_peak_footprint returned {got!r}; expected a pair (footprint, instance F1 on the right half)",
             "return two things: the footprint chosen on the left half, and the score it earns on the right half",
             got=got)
    chosen, f1 = got
    if isinstance(f1, bool) or not isinstance(f1, (float, int, np.floating, np.integer)):
        fail("tune_peak_footprint returned {f1!r} as its F1; expected a number", "InstanceScores.f1 is a float",
             f1=f1)
    f1 = float(f1)
    if chosen not in footprints:
        fail("tune_peak_footprint chose {chosen!r}, which is not one of the footprints it was given, {footprints}",
             "return the chosen footprint itself, one of the values of `footprints`",
             chosen=chosen, footprints=footprints)
    by_left = {_best(t, "left", footprints) for t in tables.values()}
    if chosen not in by_left:
        by_right = {_best(t, "right", footprints) for t in tables.values()}
        by_whole = {_best(t, "whole", footprints) for t in tables.values()}
        if chosen in by_right:
            fail("tune_peak_footprint chose {chosen}, the footprint that scores best on the right half",
                 "the right half is the evaluation half: a setting chosen on the pixels it is then scored on "
                 "reports an optimistic score. Choose by the instance F1 on the left half only (columns < W // 2)",
                 chosen=chosen)
        if chosen in by_whole:
            fail("tune_peak_footprint chose {chosen}, the footprint that scores best on the whole image",
                 "the whole image includes the right half, whose annotation must play no part in the choice: "
                 "choose by the instance F1 on the left half only (columns < W // 2)",
                 chosen=chosen)
        fail("tune_peak_footprint chose {chosen}, which is not the footprint with the best instance F1 on the left "
             "half",
             "score every footprint on the left half (columns < W // 2) by instance F1 and keep the best, the "
             "first of equally good ones; print the scores to see why yours differs",
             chosen=chosen)
    right = {t[chosen]["right"] for t in tables.values()}
    if any(abs(f1 - r) <= 1e-6 for r in right):
        return passed("✓ tune_peak_footprint chooses {chosen} on the left half and reports its F1 on the right "
                      "half, {f1:.3f}", chosen=chosen, f1=f1)
    if any(abs(f1 - t[chosen]["left"]) <= 1e-6 for t in tables.values()):
        fail("tune_peak_footprint reports F1 {f1:.3f} for footprint {chosen}: its F1 on the left half, where it "
             "was chosen",
             "report the F1 on the right half, which played no part in the choice",
             f1=f1, chosen=chosen)
    if any(abs(f1 - t[chosen]["whole"]) <= 1e-6 for t in tables.values()):
        fail("tune_peak_footprint reports F1 {f1:.3f} for footprint {chosen}: its F1 on the whole image",
             "score the right half only: columns W // 2 and beyond",
             f1=f1, chosen=chosen)
    fail("tune_peak_footprint reports F1 {f1:.3f} for footprint {chosen}, which is not its instance F1 on the "
         "right half",
         "score the chosen footprint's labels on the right half (columns W // 2 and beyond) against the "
         "annotation of the same columns, with instance_scores(...).f1",
         "label the whole image and cut both label images at W // 2 (as notebook 10's score does), or label the "
         "right half on its own: both are accepted",
         f1=f1, chosen=chosen)
