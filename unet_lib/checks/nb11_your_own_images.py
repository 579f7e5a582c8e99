"""The checks of notebook 11, your own images: ``check_interior_border_classes``, ``check_postprocess``."""

from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage

from ..baselines import (classical_instances, otsu_instances, postprocess_instances, remove_small_objects,
                         split_by_size, watershed_split)
from ..data import interior_border_classes
from ._core import CheckPassed, T, as_array, call, fail, learner_check, message, passed
from .nb05_toy_cells_and_augmentation import _ground_truth_cases

__all__ = ['check_interior_border_classes', 'check_postprocess']


# -- exercise 1: the border class ------------------------------------------------------------------

def _classes(labels: np.ndarray, other: np.ndarray) -> np.ndarray:
    """0 on background, 2 on cell pixels where ``other`` is True, 1 on the other cell pixels."""
    return np.where(labels == 0, 0, np.where(other, 2, 1)).astype(np.int64)


def _window_classes(instances: np.ndarray, width: int, mode: str = "nearest", size: int | None = None,
                    cross: bool = False, larger_only: bool = False) -> np.ndarray:
    """The three classes with a window that a learner may get wrong: another ``mode`` at the
    image's edge, a square of another side, a cross of straight steps, or only larger labels."""
    labels = np.asarray(instances, np.int64)
    if cross:
        window = dict(footprint=ndimage.iterate_structure(ndimage.generate_binary_structure(2, 1), width))
    else:
        window = dict(size=size if size is not None else 2 * width + 1)
    other = ndimage.maximum_filter(labels, mode=mode, **window) != labels
    if not larger_only:
        other |= ndimage.minimum_filter(labels, mode=mode, **window) != labels
    return _classes(labels, other)


def _foreground_ring(instances: np.ndarray, width: int) -> np.ndarray:
    """A ring along the background only (erosion of the foreground): touching cells stay joined."""
    labels = np.asarray(instances, np.int64)
    inner = ndimage.binary_erosion(labels > 0, np.ones((2 * width + 1,) * 2, bool), border_value=1)
    return _classes(labels, ~inner)


def _border_cases() -> list[tuple[str, np.ndarray, int]]:
    """(name, instances, width): a lone cell, cells cut by the image's edges (one that spans the
    image, so that an image wrapped around differs from one padded with background), and notebook
    05's hand-made and toy cases, for widths 1 and 2 (and 3 for the lone cell)."""
    lone = np.zeros((16, 16), np.int64)
    lone[2:14, 3:13] = 4                                                  # one 12x10 cell (id 4)
    edge = np.zeros((10, 12), np.int64)
    edge[:6, :5] = 3                                                      # cut by the top and left edges
    edge[4:, 7:] = 9                                                      # cut by the bottom and right edges
    cases = [("one 12x10 cell (id 4) in a 16x16 image", lone, 2),
             ("one 12x10 cell (id 4) in a 16x16 image", lone, 3),
             ("two cells cut by the image's edges (ids 3 and 9)", edge, 1),
             ("two cells cut by the image's edges (ids 3 and 9)", edge, 2)]
    band = np.zeros((12, 12), np.int64)
    band[4:8] = 2                                                         # across the image, edge to edge
    band[:2, 2:6], band[10:, 2:6] = 5, 8                                  # at the top edge, and at the bottom
    cases += [("a band across the image (id 2) and two cells at the top and bottom edges (ids 5 and 8)", band, 1)]
    return cases + [(name, instances, width) for name, instances in _ground_truth_cases() for width in (1, 2)]


@learner_check
def check_interior_border_classes(interior_border: Callable) -> CheckPassed:
    """``interior_border(instances, width)`` must turn (H, W) instances into three classes: 0 =
    background, 1 = interior, 2 = every cell pixel with a pixel of another label (background or
    another cell) within ``width`` pixels, diagonal steps included (a square window); the image's
    edge is not another label. Compared with ``unet_lib.data.interior_border_classes``, which
    the learner's function may not call."""
    # over 60 lines: one check, read top to bottom: its cases, then which plausible wrong rule explains the failures
    wrong = []                                         # (name, instances, width, got, expected)
    for name, instances, width in _border_cases():
        what = f"interior_border({name}, width={width})"
        got = as_array(call(interior_border, instances.copy(), width,
                            refuse={"interior_border_classes": interior_border_classes}), what, instances.shape)
        expected = interior_border_classes(instances, width)
        if np.array_equal(got, expected):
            continue
        if not np.isin(got, (0, 1, 2)).all():
            fail("interior_border({name}, width={width}) contains values other than 0, 1 and 2: {values}",
                 "return the class of each pixel (0 background, 1 interior, 2 border), not instance ids",
                 name=name, width=width, values=", ".join(f"{v:g}" for v in np.unique(got)[:6]))
        changed = int(((got > 0) != (instances > 0)).sum())
        if changed:
            fail("interior_border({name}, width={width}) changes which pixels are cells: {n} pixel(s) differ from "
                 "instances > 0",
                 "the border ring lies inside each cell; background pixels stay 0, every cell pixel is 1 or 2",
                 name=name, width=width, n=changed)
        wrong.append((name, instances, width, got, expected))
    if not wrong:
        return passed("✓ interior_border matches unet_lib.data.interior_border_classes for widths 1 to 3, at "
                      "the image's edges and at diagonal contacts")
    name, instances, width, got, expected = wrong[0]

    def explains(variant: Callable[[np.ndarray, int], np.ndarray]) -> bool:
        """True when ``variant`` gives the learner's answer on every case it got wrong."""
        return all(np.array_equal(g, variant(i, w)) for _, i, w, g, _ in wrong)

    values = dict(what=f"interior_border({name}, width={width})", name=name, width=width,
                  n=int((got != expected).sum()))
    if explains(lambda i, w: _window_classes(i, w, mode="constant")):
        fail("{what} draws a ring along the image's edge, where a cell is cut by the edge",
             "the pixels beyond the edge are unknown, not background: the image's edge is not another label",
             **values)
    if explains(lambda i, w: _window_classes(i, w, mode="wrap")):
        fail("{what} sees the opposite side of the image across its edge",
             "the image does not wrap around: the pixels beyond the edge are unknown, not another label",
             **values)
    if explains(lambda i, w: _window_classes(i, w, cross=True)):
        fail("{what} misses border pixels at diagonal contacts",
             "a pixel within `width` steps counts diagonal steps too: a square neighbourhood, not a cross",
             **values)
    if explains(lambda i, w: _window_classes(i, w, larger_only=True)):
        fail("{what} misses border pixels next to a smaller label (the background is 0)",
             "another label may be larger or smaller than the pixel's own", **values)
    if explains(lambda i, w: _window_classes(i, w, size=w)):
        fail("{what} draws a ring that is too thin: a window of side `width` reaches only about width / 2 pixels "
             "to each side",
             "a pixel is border when another label lies up to `width` pixels away in any direction: count how "
             "many pixels that window spans",
             **values)
    if explains(lambda i, w: interior_border_classes(i, w + 1)) or (
            all(w > 1 for _, _, w, _, _ in wrong) and explains(lambda i, w: interior_border_classes(i, w - 1))):
        fail("{what} draws a ring of the wrong thickness",
             "a ring `width` pixels thick holds the cell pixels up to `width` steps from another label: "
             "count the steps from the cell's edge inwards",
             **values)
    if explains(_foreground_ring):
        fail("{what} misses the border where two cells touch",
             "a pixel next to another cell is border too: compare labels, not cell against background",
             **values)
    # only borders missing, never one too many, and some of them along the background
    extra = any(((g == 2) & (e == 1)).any() for _, _, _, g, e in wrong)
    along_background = sum(int(((g == 1) & (e == 2) & (ndimage.maximum_filter(
        (i == 0).astype(np.uint8), size=2 * w + 1, mode="nearest") > 0)).sum()) for _, i, w, g, e in wrong)
    if along_background and not extra:
        fail("{what} misses the border along the background ({k} pixel(s) in the cases it gets wrong)",
             "every cell gets a ring, not only where it touches another cell: background counts as another label",
             **values, k=along_background)
    y, x = (int(v[0]) for v in np.nonzero(got != expected))
    fail("{what} differs from the three classes in {n} pixel(s), e.g. at row {y}, column {x}: class {got} "
         "where {expected} was expected",
         "look at that pixel's square neighbourhood, `width` pixels to every side: does it hold another label?",
         "the largest and the smallest label in a pixel's neighbourhood tell whether all the labels there are "
         "its own (scipy.ndimage has filters for both)",
         **values, y=y, x=x, got=int(got[y, x]), expected=int(expected[y, x]))


# -- exercise 2: post-process a poor segmentation ----------------------------------------------------

# the library's steps, its pipeline, and what ``python -m unet_lib.predict`` runs by default
_POSTPROCESS_SHORTCUTS = {"classical_instances": classical_instances, "otsu_instances": otsu_instances,
                          "remove_small_objects": remove_small_objects, "watershed_split": watershed_split,
                          "postprocess_instances": postprocess_instances, "split_by_size": split_by_size}


def _as_labels(got, shape: tuple[int, int], case: str) -> np.ndarray:
    """The learner's labels as an integer numpy array, or a CheckError that says what came back."""
    if isinstance(got, torch.Tensor):
        got = got.detach().cpu().numpy()
    got = np.asarray(got)
    if got.shape != shape:
        fail("postprocess({case}) returned shape {got}; expected {shape}",
             "return one label per pixel of the labels it was given, (H, W)",
             case=case, got=got.shape, shape=shape)
    if got.dtype == bool or (got.size and got.max() <= 1):
        fail("postprocess({case}) returned a foreground mask (only 0 and 1): every nucleus is the same object"
             if got.size and got.max() == 1 else "postprocess({case}) returned no object: every pixel is background (0)",
             "return labels: a distinct id per nucleus, 0 = background",
             case=case)
    if not np.issubdtype(got.dtype, np.integer):
        fail("postprocess({case}) returned dtype {dtype}; expected integer labels", "return an integer label image",
             case=case, dtype=got.dtype)
    if got.min() < 0:
        fail("postprocess({case}) returned negative labels ({low})", "0 is background, nuclei are 1, 2, ...",
             case=case, low=int(got.min()))
    return got


# the second input: the left half's labels moved by one of these (drawn at each check, so that an
# answer keyed to the input's shape cannot follow), with small specks added far from every object
_MOVES = {"transposed": lambda a: a.T, "flipped upside down": np.flipud, "flipped left to right": np.fliplr,
          "turned by 90 degrees": np.rot90, "turned by 180 degrees": lambda a: np.rot90(a, 2),
          "turned by 270 degrees": lambda a: np.rot90(a, 3), "transposed across the other diagonal":
          lambda a: np.rot90(a, 2).T}


def _move_name(how: str) -> str:
    """The name of the move ``how`` in the learner's language (its message in the catalogue)."""
    return {"transposed": message(T("transposed")), "flipped upside down": message(T("flipped upside down")),
            "flipped left to right": message(T("flipped left to right")),
            "turned by 90 degrees": message(T("turned by 90 degrees")),
            "turned by 180 degrees": message(T("turned by 180 degrees")),
            "turned by 270 degrees": message(T("turned by 270 degrees")),
            "transposed across the other diagonal": message(T("transposed across the other diagonal"))}[how]


_SPECKS = [(1, 2), (2, 2), (2, 3), (3, 3), (3, 4), (1, 3), (2, 4), (4, 3), (3, 2), (2, 1)]   # (h, w): 2-12 px
_MAX_F1 = 0.85   # no size filter and watershed reaches this on the left half (best of 504 settings: 0.745);
                 # the annotation kept where the labels have foreground scores 0.89
_OUTSIDE_SHARE = 0.025   # a closing may add a few pixels along the outlines (1.9%); the classical pipeline 4.1%


def _with_specks(labels: np.ndarray, gap: int = 12, apart: int = 30) -> tuple[np.ndarray, list[int]]:
    """``labels`` with ``len(_SPECKS)`` specks of 2 to 12 px (new ids) at least ``gap`` px from every
    object and the image's edges and ``apart`` px from each other: (labels, the specks' ids)."""
    out = labels.copy()
    far = ndimage.distance_transform_edt(labels == 0)                      # (H, W) distance to any object
    far[:gap], far[-gap:], far[:, :gap], far[:, -gap:] = 0, 0, 0, 0
    rows, cols = np.indices(labels.shape)
    ids = []
    for h, w in _SPECKS:
        y, x = np.unravel_index(np.argmax(far), far.shape)
        if far[y, x] < gap:
            break
        ids.append(int(out.max()) + 1)
        out[y:y + h, x:x + w] = ids[-1]
        far[(rows - y) ** 2 + (cols - x) ** 2 < apart ** 2] = 0
    return out, ids


def _specks_and_fragments(got: np.ndarray, labels: np.ndarray, under: int = 20) -> tuple[int, int]:
    """The objects of ``got`` under ``under`` px: (specks, fragments). A speck is a whole object of
    ``labels`` that small, kept; a fragment was cut off a larger object of ``labels`` (more markers
    than nuclei), or holds parts of several."""
    sizes = np.bincount(got.ravel())
    in_sizes = np.bincount(labels.ravel())
    specks = fragments = 0
    for k in np.flatnonzero((sizes > 0) & (sizes < under)):
        if k == 0:
            continue
        ids = np.unique(labels[got == k])
        ids = ids[ids > 0]
        if len(ids) == 1 and in_sizes[ids[0]] < under:
            specks += 1
        else:
            fragments += 1
    return specks, fragments


def _drawn_where_background(got: np.ndarray, labels: np.ndarray, case: str) -> None:
    """Refuse labels drawn where ``labels`` (holes filled) have background: postprocess removes
    and splits the objects it is given, it does not find new ones (an annotation, a pipeline run
    on the image, a fixed answer)."""
    outside = int(((got > 0) & ~ndimage.binary_fill_holes(labels > 0)).sum())
    if outside > _OUTSIDE_SHARE * max(int((got > 0).sum()), 1):
        fail("postprocess({case}) labels {outside} of its {total} object pixels where the labels it was given have "
             "background: removing and splitting objects never adds pixels",
             "postprocess must work from the labels it is given, whatever image they come from: nothing else (not "
             "the image, not the annotation, not a fixed answer)",
             case=case, outside=outside, total=int((got > 0).sum()))


@learner_check
def check_postprocess(postprocess: Callable, min_f1: float = 0.70) -> CheckPassed:
    """``postprocess(labels)`` must turn the raw Otsu labels of notebook 10's image
    (``otsu_instances``: hundreds of specks, touching nuclei merged) into nuclei, from the labels
    alone and without the library's ready-made steps (``remove_small_objects``,
    ``watershed_split``, ``classical_instances``, ``otsu_instances``, and ``postprocess_instances``
    and ``split_by_size``, what ``predict`` runs; ``seeded_watershed`` and scipy are allowed).
    Scored on the left half (columns 0-255), where the learner chooses the settings: an instance
    F1 of at least ``min_f1``, with no object where the labels have background. Then run on a
    second input, the left half's labels transposed, flipped or turned (drawn at random) with ten
    specks of 2 to 12 px added far from every nucleus: the specks must go (a split alone keeps
    them), and the F1 must stay within 0.05 of the left half's. The right half, held out, is not scored."""
    from ..data import load_real_nuclei
    from ..metrics import instance_scores
    image, instances = load_real_nuclei()
    raw = otsu_instances(image)                                            # (512, 512) int64
    left = np.s_[:, :256]
    first = message(T("the Otsu labels"))
    got = _as_labels(call(postprocess, raw.copy(), refuse=_POSTPROCESS_SHORTCUTS), raw.shape, first)
    _drawn_where_background(got, raw, first)
    s = instance_scores(got[left], instances[left])
    specks, fragments = _specks_and_fragments(got[left], raw[left])
    removed = sum(raw[left][instances[left] == k].any() and not got[left][instances[left] == k].any()
                  for k in np.unique(instances[left]) if k)                # nuclei the labels had, yours not
    values = dict(f1=s.f1, merged=s.merged, split=s.split, specks=specks, fragments=fragments, small=specks + fragments,
                  fp=s.fp, fn=s.fn, removed=removed, min_f1=min_f1, max_f1=_MAX_F1)
    if s.f1 > _MAX_F1:
        fail("instance F1 on the left half is {f1:.2f}: above {max_f1:.2f}, more than removing and splitting these "
             "labels reaches. Labels this close to the annotation come from the annotation, not from the labels",
             "postprocess must work from the labels it is given, whatever image they come from: nothing else (not "
             "the image, not the annotation, not a fixed answer)", **values)
    if s.f1 < min_f1:
        problem = ("instance F1 on the left half is {f1:.2f} (merged {merged}, split {split}, false positives {fp}, "
                   "missed {fn}, objects under 20 px: {small}); the check asks for at least {min_f1:.2f}")
        if specks > 10 and specks > s.split:
            fail(problem,
                 "{specks} objects under 20 pixels remain: specks of a few bright background pixels. How large is "
                 "a nucleus (section 4 measured them), and how large is a speck?",
                 "np.bincount of the labels counts the pixels of every object", **values)
        if fragments > 10 and fragments > s.split:
            fail(problem,
                 "{fragments} pieces under 20 pixels were cut off larger objects: more markers than nuclei. The "
                 "distance to the background of a ragged outline has many small peaks; are yours one per nucleus?",
                 "smooth the distance map (scipy.ndimage.gaussian_filter) or ask peaks to be further apart (a "
                 "larger window for the local maxima), and score each choice on the left half", **values)
        if s.split > max(s.merged, 5):
            fail(problem,
                 "{split} nuclei are split into pieces: one marker per nucleus is the goal. The distance to the "
                 "background of a ragged outline has many small peaks; are yours one per nucleus?",
                 "smooth the distance map (scipy.ndimage.gaussian_filter) or ask peaks to be further apart (a "
                 "larger window for the local maxima), and score each choice on the left half", **values)
        if removed > 10:
            fail(problem,
                 "{removed} nuclei have no pixel in your labels, although the labels you were given have pixels of them. Which "
                 "step removed them? How small is the smallest nucleus (section 4 measured them), does your size "
                 "filter keep it, and does every object you keep get a marker?",
                 "score the left half after each step, one change at a time (a few minimum sizes, from a few pixels "
                 "to half a nucleus), and look at which nuclei are gone", **values)
        if s.merged > 5:
            fail(problem,
                 "{merged} nuclei share an object with a neighbour: touching nuclei form one blob. Where does a "
                 "blob of two round nuclei narrow, and what measures that?",
                 "scipy.ndimage.distance_transform_edt gives each pixel's distance to the background: it peaks "
                 "near each nucleus' centre and dips at the waist; markers at the peaks, and "
                 "unet_lib.baselines.seeded_watershed floods the foreground from them", **values)
        if specks > 10:
            fail(problem,
                 "{specks} objects under 20 pixels remain: specks of a few bright background pixels. How large is "
                 "a nucleus (section 4 measured them), and how large is a speck?",
                 "np.bincount of the labels counts the pixels of every object", **values)
        fail(problem,
             "score each step on the left half (columns 0-255) with instance_scores, one change at a time, and "
             "look at the labels next to the annotation: which error is left?",
             **values)
    how = list(_MOVES)[int(np.random.default_rng().integers(len(_MOVES)))]     # a fresh draw: not the learner's
    moved, truth = (np.ascontiguousarray(_MOVES[how](a[left])) for a in (raw, instances))
    second, added = _with_specks(moved)
    how = _move_name(how)
    case = message(T("the left half's Otsu labels, {how}, with {n} specks added"), how=how, n=len(added))
    got_b = _as_labels(call(postprocess, second.copy(), refuse=_POSTPROCESS_SHORTCUTS), second.shape, case)
    _drawn_where_background(got_b, second, case)
    kept = sum(bool((got_b[second == k] > 0).any()) for k in added)
    if kept > 2:
        fail("on a second input, the left half's Otsu labels {how} with {n} specks of 2 to 12 px added far from every "
             "nucleus, {kept} of the specks are still objects in your labels",
             "a split alone keeps a speck that lies apart from everything: it is its own peak. How large is a "
             "nucleus, and how large is a speck?",
             "np.bincount of the labels counts the pixels of every object", how=how, n=len(added), kept=kept)
    f1_b = instance_scores(got_b, truth).f1
    if f1_b < s.f1 - 0.05:
        fail("on a second input, the left half's Otsu labels {how} with {n} specks added, your labels score F1 "
             "{f1_b:.2f}, against {f1:.2f} on the same nuclei unmoved",
             "postprocess must work from the labels it is given, whatever image they come from: nothing else (not "
             "the image, not a fixed answer, not a fixed size or position)",
             how=how, n=len(added), f1_b=f1_b, f1=s.f1)
    raw_f1 = instance_scores(raw[left], instances[left]).f1
    return passed("✓ instance F1 on the left half, where you chose your settings: {f1:.2f}, against {raw:.2f} for "
                  "the raw Otsu labels; your labels there: merged {merged}, split {split}, objects under 20 px "
                  "{small}. The right half is scored once, after the answers", raw=raw_f1, **values)
