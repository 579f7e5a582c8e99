"""The checks of notebook 10, real nuclei: ``check_otsu_threshold``, ``check_tune_peak_footprint``.

Both checks draw part of their cases anew on every run (bimodal images and a crop of the real
image for Otsu; which footprints, in which order, for the tuning experiment), and no failure
message prints the answer of a case the learner cannot work out by hand: a table of answers
copied from earlier messages does not pass."""

from collections.abc import Callable

import numpy as np

from ..baselines import classical_instances, otsu_instances, otsu_threshold
from ._core import CheckPassed, cached, call, fail, learner_check, passed

__all__ = ['check_otsu_threshold', 'check_tune_peak_footprint']


# -- exercise 1: Otsu's threshold --------------------------------------------------------------

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


def _between(pixels: np.ndarray, t: float) -> float:
    """Otsu's between-class variance omega_0 * omega_1 * (mu_0 - mu_1)^2 of the split at ``t``
    (background = pixels <= t); 0 where a class is empty."""
    background = pixels <= t
    n0 = int(background.sum())
    if n0 in (0, pixels.size):
        return 0.0
    omega0 = n0 / pixels.size
    return omega0 * (1 - omega0) * (pixels[background].mean() - pixels[~background].mean()) ** 2


# Worked out by hand: the check may print their thresholds. The last one has two equally good
# splits (between-class variance 3 at t = 0 and at t = 3, in exact arithmetic): Otsu's is the first.
_HAND_CASES = (
    ("np.array([7, 1, 6, 2])", np.array([7, 1, 6, 2])),
    ("np.array([0, 0, 0, 4, 4, 10])", np.array([0, 0, 0, 4, 4, 10])),
    ("np.array([0, 0, 2, 4, 8])", np.array([0, 0, 2, 4, 8])),   # distinct values alone give 4
    ("np.repeat([0, 3, 6], [4, 8, 4])", np.repeat([0, 3, 6], [4, 8, 4])),
)


@cached()
def _real_image() -> np.ndarray:
    from ..data import load_real_nuclei
    return load_real_nuclei()[0]


def _drawn_otsu_cases(rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """Cases drawn anew on every run, whose thresholds the check never prints: a bimodal image
    (as uint8 and as float32) with 60 to 80% dark pixels, and a 256x256 crop of notebook 10's
    image at a random place."""
    dark = int(1000 * rng.uniform(0.6, 0.8))
    bimodal = np.concatenate([rng.normal(60, 10, dark), rng.normal(170, 25, 1000 - dark)]).clip(0, 255)
    rng.shuffle(bimodal)
    y, x = (int(v) for v in rng.integers(0, 512 - 256 + 1, 2))
    return [
        ("a bimodal uint8 image, 40x25, drawn for this run", bimodal.astype(np.uint8).reshape(40, 25)),
        ("a bimodal float image, 40x25, drawn for this run", (bimodal / 255).astype(np.float32).reshape(40, 25)),
        ("a 256x256 crop of notebook 10's image, at a place drawn for this run", _real_image()[y:y + 256, x:x + 256]),
    ]


def _is_otsus(pixels: np.ndarray, got: float, expected: float, exact: bool) -> bool:
    """Whether ``got`` is Otsu's threshold ``expected`` of ``pixels``. On a drawn image (not
    ``exact``), another largest-background value whose split is as good to 1e-9 is accepted too:
    another order of the same sums may round a near-tie the other way."""
    if np.isclose(got, expected, rtol=1e-6, atol=1e-9):
        return True
    if exact or not np.isclose(pixels, got, rtol=1e-6, atol=1e-9).any():
        return False
    t = pixels[np.isclose(pixels, got, rtol=1e-6, atol=1e-9)].max()
    return t < pixels.max() and _between(pixels, t) >= _between(pixels, expected) * (1 - 1e-9)


@learner_check
def check_otsu_threshold(otsu: Callable) -> CheckPassed:
    """``otsu(image)`` must return Otsu's threshold t of a numpy image (foreground = image > t):
    the largest background value of the split with the largest between-class variance, the first
    (lowest) of equally good splits. The library's Otsu (and scikit-image's or OpenCV's, where
    installed) is refused. Failures on the drawn images say what is wrong, not the threshold."""
    refuse = _library_otsus()
    hand = {name for name, _ in _HAND_CASES}
    wrong = []                                       # (name, pixels, got, expected) of every failed case
    for name, image in [*_HAND_CASES, *_drawn_otsu_cases(np.random.default_rng())]:
        got = call(otsu, image.copy(), refuse=refuse)
        if isinstance(got, np.ndarray) and got.size == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, (int, float, np.integer, np.floating)):
            fail("otsu({name}) returned a {kind}; expected one number",
                 "return the threshold t itself (foreground = image > t), not the foreground mask",
                 name=name, kind=type(got).__name__)
        pixels = np.asarray(image, np.float64).ravel()
        got, expected = float(got), otsu_threshold(image)
        if not _is_otsus(pixels, got, expected, exact=name in hand):
            wrong.append((name, pixels, got, expected))
    if not wrong:
        return passed("✓ otsu gives Otsu's threshold on hand-worked cases, bimodal images and a crop of notebook "
                      "10's image, drawn anew for every run")
    name, pixels, got, expected = wrong[0]
    shown = name in hand                             # the threshold of a hand-worked case may be shown
    # which mistake explains every failed case
    same_split = all(np.array_equal(x > g, x > e) for _, x, g, e in wrong)
    later_tie = all(n in hand and g > e and np.isclose(_between(x, g), _between(x, e), rtol=1e-12)
                    for n, x, g, e in wrong)
    smallest_foreground = all(np.any(x > e) and np.isclose(g, x[x > e].min()) for _, x, g, e in wrong)
    distinct_only = all(np.isclose(g, _otsu_of_distinct_values(x)) for _, x, g, _ in wrong)
    if same_split:
        if shown:
            fail("otsu({name}) = {got:g}: the same split of the pixels as Otsu's threshold {expected:g}, but not "
                 "its value",
                 "return the largest background value of the best split, so that your answer can be compared exactly",
                 name=name, got=got, expected=expected)
        fail("otsu({name}) = {got:g}: the same split of the pixels as Otsu's threshold, but not its value",
             "return the largest background value of the best split, so that your answer can be compared exactly",
             name=name, got=got)
    if later_tie:
        fail("otsu({name}) = {got:g}: its split is exactly as good as the split at {expected:g}, which comes first",
             "when several splits are equally good, return the first (the lowest threshold): keep a split only "
             "when it is strictly better than the best so far",
             name=name, got=got, expected=expected)
    if smallest_foreground:
        if shown:
            fail("otsu({name}) = {got:g}: the smallest foreground value of Otsu's split; the threshold is "
                 "{expected:g}",
                 "the foreground is image > t, so t is the largest value that stays background",
                 name=name, got=got, expected=expected)
        fail("otsu({name}) = {got:g}: the smallest foreground value of Otsu's split, one value too high",
             "the foreground is image > t, so t is the largest value that stays background",
             name=name, got=got)
    if distinct_only:
        if shown:
            fail("otsu({name}) = {got:g}; Otsu's threshold is {expected:g}. Your threshold is the one you would get "
                 "if every distinct value were held by one pixel",
                 "omega_k is the fraction of pixels in class k and mu_k their mean: a value that 50 pixels hold "
                 "weighs 50 times as much as a value that one pixel holds",
                 "np.unique(image, return_counts=True) gives the distinct values and how many pixels hold each",
                 name=name, got=got, expected=expected)
        fail("otsu({name}) = {got:g} is not Otsu's threshold: it is the one you would get if every distinct value "
             "were held by one pixel",
             "omega_k is the fraction of pixels in class k and mu_k their mean: a value that 50 pixels hold "
             "weighs 50 times as much as a value that one pixel holds",
             "np.unique(image, return_counts=True) gives the distinct values and how many pixels hold each",
             name=name, got=got)
    hints = ("Otsu's t maximises omega_0 * omega_1 * (mu_0 - mu_1)^2 over every split of the pixels into values <= t "
             "and values > t: is that what your function maximises, and does it try every split?",
             "every split between two consecutive distinct values is a candidate; np.unique(image, "
             "return_counts=True) lists them with their pixel counts, and cumulative sums give omega and mu of "
             "every split at once")
    if shown:
        fail("otsu({name}) = {got:g}; Otsu's threshold is {expected:g}", *hints,
             name=name, got=got, expected=expected)
    if got > expected:
        fail("otsu({name}) = {got:g} is too high for Otsu's threshold of this image", *hints, name=name, got=got)
    fail("otsu({name}) = {got:g} is too low for Otsu's threshold of this image", *hints, name=name, got=got)


# -- exercise 2: choose on the left half, report on the right ----------------------------------

_TRANSPOSED = "notebook 10's image transposed, its halves swapped"
_ORIGINAL = "notebook 10's image"
_DISCS = "six separate discs, one cut by the dividing line"

# case -> the footprints it may be given (one of these, in an order drawn for each run): in each,
# the left half's choice is the same whichever way a half is scored (label the whole image and cut
# the labels at W // 2, or label each half on its own), is strictly better on the left half than the
# others, and strictly worse than another one on the right half and on the whole image, so that
# choosing on the wrong part shows (tests/checks/test_nb10_real_nuclei.py verifies it)
_FOOTPRINT_CASES = {
    _TRANSPOSED: ((3, 5, 21), (3, 5, 25)),
    _ORIGINAL: ((3, 5, 9), (5, 9, 21)),
}
# on the discs every footprint scores the same on either half: the first one given must be chosen
_DISC_FOOTPRINTS = (5, 7, 9, 11, 13, 15)
_PROTOCOLS = ("cut", "apart")


@cached()
def _footprint_case(case: str) -> tuple[np.ndarray, np.ndarray]:
    """(image, instances) of a case of ``check_tune_peak_footprint``. ``_TRANSPOSED``: notebook
    10's real image transposed, its two halves swapped (the left half is the original's bottom
    half), the right half's ids offset so that a nucleus cut by the seam is two objects.
    ``_DISCS``: 96x128, six blurred discs of radius 8, one of which reaches one pixel into the
    right half (scoring from column W // 2 + 1 on misses it) and one in the left half too dim to be
    found (so that the F1 of the left half, of the right half and of the whole image all differ)."""
    from ..data import load_real_nuclei
    image, instances = load_real_nuclei()
    if case == _ORIGINAL:
        return image, instances
    if case == _TRANSPOSED:
        image, instances = image.T, instances.T
        half = image.shape[1] // 2
        left, right = instances[:, half:], instances[:, :half]
        swapped = np.concatenate([image[:, half:], image[:, :half]], axis=1)
        labels = np.concatenate([left, np.where(right > 0, right + left.max(), 0)], axis=1)
        return np.ascontiguousarray(swapped), np.ascontiguousarray(labels)
    from scipy import ndimage
    yy, xx = np.mgrid[:96, :128]
    discs, brightness = np.zeros((96, 128), np.int64), np.full((96, 128), 0.1)
    for k, (cy, cx, b) in enumerate([(20, 18, 0.8), (20, 90, 0.8), (70, 30, 0.8), (72, 100, 0.8), (45, 56, 0.8),
                                     (78, 52, 0.13)], start=1):
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= 8 ** 2
        discs[disc], brightness[disc] = k, b
    return ndimage.gaussian_filter(brightness, 1.5).astype(np.float32), discs


@cached()
def _footprint_scores(case: str, footprint: int) -> dict[str, dict[str, float]]:
    """{protocol: {part: instance F1}} of ``classical_instances(image, peak_footprint=footprint)``
    on a case, for the two honest ways to score a half: "cut" labels the whole image and cuts the
    labels at W // 2 (as notebook 10's ``score`` does), "apart" labels each half on its own; and
    "whole", the whole image labelled once (under "cut")."""
    from ..metrics import instance_scores
    image, instances = _footprint_case(case)
    half = image.shape[1] // 2
    left, right = np.s_[:, :half], np.s_[:, half:]
    labels = classical_instances(image, peak_footprint=footprint)
    apart = {part: classical_instances(np.ascontiguousarray(image[cols]), peak_footprint=footprint)
             for part, cols in (("left", left), ("right", right))}
    return {"cut": {"left": instance_scores(labels[left], instances[left]).f1,
                    "right": instance_scores(labels[right], instances[right]).f1,
                    "whole": instance_scores(labels, instances).f1},
            "apart": {"left": instance_scores(apart["left"], instances[left]).f1,
                      "right": instance_scores(apart["right"], instances[right]).f1}}


def _best(case: str, footprints: tuple[int, ...], protocol: str, part: str) -> int:
    """The footprint with the best F1 on ``part``, the first of equally good ones."""
    return max(footprints, key=lambda f: _footprint_scores(case, f)[protocol][part])


def _drawn_footprint_cases(rng: np.random.Generator) -> list[tuple[str, tuple[int, ...]]]:
    """(case, footprints) for this run: one set of footprints per real case, in a drawn order, and
    three of the discs' footprints."""
    cases = []
    for case, options in _FOOTPRINT_CASES.items():
        footprints = [int(f) for f in options[int(rng.integers(len(options)))]]
        rng.shuffle(footprints)
        cases.append((case, tuple(footprints)))
    cases.append((_DISCS, tuple(int(f) for f in rng.permutation(_DISC_FOOTPRINTS)[:3])))
    return cases


@learner_check
def check_tune_peak_footprint(tune_peak_footprint: Callable) -> CheckPassed:
    """``tune_peak_footprint(image, instances, footprints)`` must choose the watershed's
    ``peak_footprint`` of ``classical_instances`` by instance F1 on the left half (columns <
    W // 2; the first of equally good ones) and return ``(footprint, its instance F1 on the right
    half)``. Run on three cases, each with footprints drawn for the run in a drawn order: notebook
    10's image transposed with its halves swapped, notebook 10's image, and six discs on which
    every footprint scores the same. Either way of scoring a half is accepted: labelling the whole
    image and cutting the labels at W // 2, or labelling each half on its own. The failure
    messages never print the expected choice or score."""
    refuse = {"the check's own experiment": _footprint_scores, "the check's own cases": _footprint_case,
              "the check's own choice": _best}
    for case, footprints in _drawn_footprint_cases(np.random.default_rng()):
        image, instances = _footprint_case(case)
        got = call(tune_peak_footprint, image.copy(), instances.copy(), footprints, refuse=refuse)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            fail("tune_peak_footprint returned {got!r}; expected a pair (footprint, instance F1 on the right half)",
                 "return two things: the footprint chosen on the left half, and the score it earns on the right half",
                 got=got)
        chosen, f1 = got
        if isinstance(f1, bool) or not isinstance(f1, (float, int, np.floating, np.integer)):
            fail("tune_peak_footprint returned {f1!r} as its F1; expected a number", "InstanceScores.f1 is a float",
                 f1=f1)
        f1 = float(f1)
        if isinstance(chosen, bool) or chosen not in footprints:
            fail("on {case}, tune_peak_footprint chose {chosen!r}, which is not one of the footprints it was given, "
                 "{footprints}",
                 "return the chosen footprint itself, one of the values of `footprints` (the check gives other "
                 "footprints than the notebook, in another order on every run)",
                 case=case, chosen=chosen, footprints=footprints)
        chosen = int(chosen)
        scores = {f: _footprint_scores(case, f) for f in footprints}
        by_left = {_best(case, footprints, p, "left") for p in _PROTOCOLS}
        if chosen not in by_left:
            first = footprints.index(next(iter(by_left)))
            if any(abs(scores[chosen][p]["left"] - scores[footprints[first]][p]["left"]) <= 1e-12
                   for p in _PROTOCOLS) and footprints.index(chosen) > first:
                fail("on {case}, with footprints {footprints}, tune_peak_footprint chose {chosen}: it scores as well "
                     "on the left half as a footprint that comes earlier in `footprints`",
                     "of equally good footprints keep the first one given: keep a footprint only when it is strictly "
                     "better than the best so far",
                     case=case, footprints=footprints, chosen=chosen)
            # (in every case drawn here the whole image prefers a footprint that the right half prefers too)
            if chosen in {_best(case, footprints, p, "right") for p in _PROTOCOLS} | {
                    _best(case, footprints, "cut", "whole")}:
                fail("on {case}, with footprints {footprints}, tune_peak_footprint chose {chosen}, the footprint "
                     "that scores best on the right half",
                     "the right half is the evaluation half (and the whole image includes it): a setting chosen on "
                     "the pixels it is then scored on reports an optimistic score. Choose by the instance F1 on the "
                     "left half only (columns < W // 2)",
                     case=case, footprints=footprints, chosen=chosen)
            fail("on {case}, with footprints {footprints}, tune_peak_footprint chose {chosen}, which is not the "
                 "footprint with the best instance F1 on the left half",
                 "score every footprint it is given on the left half (columns < W // 2) by instance F1 and keep the "
                 "best, the first of equally good ones; print the scores to see why yours differs",
                 case=case, footprints=footprints, chosen=chosen)
        if any(abs(f1 - scores[chosen][p]["right"]) <= 1e-6 for p in _PROTOCOLS):
            continue
        if any(abs(f1 - scores[chosen][p]["left"]) <= 1e-6 for p in _PROTOCOLS) \
                and not any(abs(scores[chosen][p]["left"] - scores[chosen][p]["right"]) <= 1e-6 for p in _PROTOCOLS):
            fail("on {case}, tune_peak_footprint reports F1 {f1:.3f} for footprint {chosen}: its F1 on the left half, "
                 "where it was chosen",
                 "report the F1 on the right half, which played no part in the choice",
                 case=case, f1=f1, chosen=chosen)
        if abs(f1 - scores[chosen]["cut"]["whole"]) <= 1e-6:
            fail("on {case}, tune_peak_footprint reports F1 {f1:.3f} for footprint {chosen}: its F1 on the whole image",
                 "score the right half only: columns W // 2 and beyond",
                 case=case, f1=f1, chosen=chosen)
        fail("on {case}, tune_peak_footprint reports F1 {f1:.3f} for footprint {chosen}, which is not its instance F1 "
             "on the right half",
             "score the chosen footprint's labels on the right half (columns W // 2 and beyond, no more and no less) "
             "against the annotation your function was given, its `instances` argument: a helper that reads the "
             "notebook's own `instances` (as `score` does) scores another annotation",
             "label the whole image and cut both label images at W // 2 (as notebook 10's score does), or label the "
             "right half on its own: both are accepted",
             case=case, f1=f1, chosen=chosen)
    return passed("✓ tune_peak_footprint chooses on the left half and reports the right half's F1, on three cases "
                  "with footprints drawn for this run")
