"""The checks of notebook 10, real nuclei: ``check_otsu_threshold``, ``check_tune_peak_footprint``."""

import functools
from collections.abc import Callable

import numpy as np

from ..baselines import otsu_threshold
from ._core import CheckPassed, call, fail, learner_check

__all__ = ['check_otsu_threshold', 'check_tune_peak_footprint']


@learner_check
def check_otsu_threshold(otsu: Callable) -> CheckPassed:
    """``otsu(image)`` must return Otsu's threshold t of a numpy image (foreground = image > t):
    the largest background value of the split with the largest between-class variance."""
    rng = np.random.default_rng(0)
    bimodal = np.concatenate([rng.normal(60, 10, 700), rng.normal(170, 25, 300)]).clip(0, 255)
    cases = [
        ("np.array([7, 1, 6, 2])", np.array([7, 1, 6, 2])),
        ("np.array([0, 0, 0, 4, 4, 10])", np.array([0, 0, 0, 4, 4, 10])),
        ("a bimodal uint8 image, 40x25, 70% dark", bimodal.astype(np.uint8).reshape(40, 25)),
        ("a bimodal float image, 40x25", (bimodal / 255).astype(np.float32).reshape(40, 25)),
    ]
    for name, image in cases:
        got = call(otsu, image.copy())
        expected = otsu_threshold(image)
        if isinstance(got, np.ndarray) and got.size == 1:
            got = got.item()
        if not isinstance(got, (int, float, np.integer, np.floating)):
            fail(f"otsu({name}) returned a {type(got).__name__}; expected one number",
                  "return the threshold t itself, e.g. float(values[k]), not the foreground mask")
        got = float(got)
        if np.isclose(got, expected, rtol=1e-6, atol=1e-9):
            continue
        values = np.unique(image.astype(np.float64))
        above = values[values > expected].min()
        if np.isclose(got, above, rtol=1e-6):
            hint = ("that is the smallest foreground value; return the largest *background* value, so "
                    "that the foreground is image > t")
        elif expected < got < above:
            hint = ("a value between the two classes splits the pixels the same way, but return the "
                    "largest background value itself so that your answer can be compared exactly")
        else:
            hint = ("try every split between consecutive distinct values (np.unique(image, return_counts=True)) "
                    "and keep the one with the largest omega_0 * omega_1 * (mu_0 - mu_1)^2, where omega_k is "
                    "the fraction of pixels in class k and mu_k their mean value")
        fail(f"otsu({name}) = {got:g}; Otsu's threshold is {expected:g}", hint)
    return CheckPassed("✓ otsu matches unet_lib.baselines.otsu_threshold on hand-worked and bimodal images")


def _split_scores(labels: np.ndarray, instances: np.ndarray) -> dict[str, "object"]:
    """Instance scores of a label image on the left half, the right half and the whole image;
    the halves are cut at column W // 2 after labelling the whole image."""
    from ..metrics import instance_scores
    half = instances.shape[1] // 2
    return {"left": instance_scores(labels[:, :half], instances[:, :half]),
            "right": instance_scores(labels[:, half:], instances[:, half:]),
            "whole": instance_scores(labels, instances)}


@functools.lru_cache(maxsize=1)
def _footprint_data() -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Notebook 10's real image transposed (its top half becomes the left half), its instances,
    and three footprints: the data of ``check_tune_peak_footprint``."""
    from ..data import load_real_nuclei
    image, instances = load_real_nuclei()
    return np.ascontiguousarray(image.T), np.ascontiguousarray(instances.T), (3, 7, 15)


@functools.lru_cache(maxsize=1)
def _footprint_case() -> tuple[np.ndarray, np.ndarray, tuple[int, ...], dict[int, dict]]:
    """``_footprint_data`` and {footprint: _split_scores of classical_instances with it}; once per process."""
    from ..baselines import classical_instances
    image, instances, footprints = _footprint_data()
    table = {f: _split_scores(classical_instances(image, peak_footprint=f), instances) for f in footprints}
    return image, instances, footprints, table


@learner_check
def check_tune_peak_footprint(tune_peak_footprint: Callable) -> CheckPassed:
    """``tune_peak_footprint(image, instances, footprints)`` must choose the watershed's
    ``peak_footprint`` of ``classical_instances`` by instance F1 on the left half (columns <
    W // 2) and return ``(footprint, F1 on the right half)``. Run on notebook 10's image
    transposed, against the same experiment done here."""
    image, instances, footprints = _footprint_data()
    got = call(tune_peak_footprint, image.copy(), instances.copy(), footprints)
    table = _footprint_case()[3]   # after the learner's call: a skeleton fails fast
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        fail(f"tune_peak_footprint returned {got!r}; expected a pair (footprint, F1 on the right half)",
              "return chosen, f1_right: the footprint chosen on the left half and its instance F1 on the right")
    chosen, f1 = got
    if not isinstance(f1, (float, int, np.floating, np.integer)):
        fail(f"tune_peak_footprint returned {f1!r} as its F1; expected a number", "InstanceScores.f1 is a float")
    f1 = float(f1)

    def best(part: str) -> int:
        return max(footprints, key=lambda f: table[f][part].f1)   # the first of equally good ones

    right, left = best("right"), best("left")
    what = (f"tune_peak_footprint(image, instances, {footprints}) = ({chosen!r}, {f1:.3f}); "
            f"the left half chooses {left}, whose F1 on the right half is {table[left]['right'].f1:.3f}")
    if chosen not in footprints:
        fail(what, f"return the chosen footprint itself, one of {footprints}")
    if chosen != left:
        if chosen == right != left:
            fail(what, "you chose on the right half, the evaluation half: a setting chosen on the pixels it is "
                        "scored on gives an optimistic score. Choose by the F1 on the left half (columns < W // 2)")
        fail(what, "compute instance_scores(labels[:, :W // 2], instances[:, :W // 2]).f1 for every footprint "
                    "and keep the footprint with the largest (the first of equally good ones)")
    expected = table[left]["right"].f1
    if abs(f1 - expected) <= 1e-6:
        return CheckPassed(f"✓ tune_peak_footprint chooses {left} on the left half and reports its F1 on the "
                           f"right half, {expected:.3f}, as the same experiment here")
    if abs(f1 - table[left]["left"].f1) <= 1e-6:
        hint = ("that is its F1 on the left half, where it was chosen; report the F1 on the right half, "
                "which played no part in the choice")
    elif abs(f1 - table[left]["whole"].f1) <= 1e-6:
        hint = "that is its F1 on the whole image; score the right half only: columns W // 2 and beyond"
    else:
        hint = ("label the whole image with classical_instances(image, peak_footprint=f), then cut both label "
                "images at W // 2, as notebook 10's score() does: instance_scores(labels[:, W // 2:], "
                "instances[:, W // 2:]).f1")
    fail(f"tune_peak_footprint reports F1 {f1:.3f} for footprint {left}; on the right half it is "
          f"{expected:.3f}", hint)
