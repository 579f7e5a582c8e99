"""Tests for unet_lib.metrics: hand-made cases, scipy/torch oracles, every error path."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from unet_lib.metrics import (InstanceScores, dice, instance_scores, iou, label_instances, pixel_error,
                              rand_error)


def _two_touching_cells():
    """Two 3x3 cells side by side (labels 1, 2) and a 2x2 cell (label 3) in an 8x10 image."""
    instances = np.zeros((8, 10), np.int64)
    instances[1:4, 1:4] = 1
    instances[1:4, 4:7] = 2
    instances[5:7, 1:3] = 3
    return instances


def test_pixel_metrics_by_hand():
    mask = np.zeros((4, 4), int)
    mask[:2, :2] = 1                      # 4 foreground pixels
    pred = np.zeros((4, 4), int)
    pred[:2, 1:3] = 1                     # 4 predicted, 2 of them right
    assert iou(pred, mask) == pytest.approx(2 / 6)
    assert dice(pred, mask) == pytest.approx(2 * 2 / 8)
    assert pixel_error(pred, mask) == pytest.approx(4 / 16)


def test_pixel_metrics_accept_torch_stacks_and_bool():
    rng = np.random.default_rng(0)
    mask, pred = rng.integers(0, 2, (3, 7, 9)), rng.integers(0, 2, (3, 7, 9))
    inter, union = (mask & pred).sum(), (mask | pred).sum()
    assert iou(torch.from_numpy(pred), torch.from_numpy(mask)) == pytest.approx(inter / union)
    assert iou(pred.astype(bool), mask) == pytest.approx(inter / union)
    # Dice = 2 IoU / (1 + IoU)
    j = iou(pred, mask)
    assert dice(pred, mask) == pytest.approx(2 * j / (1 + j))
    assert pixel_error(pred, mask) == pytest.approx(1 - (pred == mask).mean())


def test_pixel_metrics_empty_and_perfect():
    empty = np.zeros((5, 5), int)
    assert iou(empty, empty) == 1.0 and dice(empty, empty) == 1.0 and pixel_error(empty, empty) == 0.0
    full = np.ones((5, 5), int)
    assert iou(full, empty) == 0.0 and dice(full, empty) == 0.0 and pixel_error(full, empty) == 1.0


def test_pixel_metrics_errors():
    with pytest.raises(ValueError, match="same shape"):
        iou(np.zeros((4, 4), int), np.zeros((4, 5), int))
    with pytest.raises(ValueError, match=r"0/1 foreground map.*labels > 0"):
        dice(np.full((4, 4), 2), np.zeros((4, 4), int))
    with pytest.raises(TypeError, match="threshold probabilities first"):
        pixel_error(np.zeros((4, 4)), np.zeros((4, 4), int))
    with pytest.raises(ValueError, match=r"\(H, W\) or \(N, H, W\)"):
        iou(np.zeros(4, int), np.zeros(4, int))


def test_label_instances_matches_scipy_and_uses_4_connectivity():
    rng = np.random.default_rng(1)
    pred = rng.random((2, 20, 23)) < 0.4
    labels = label_instances(pred)
    assert labels.shape == (2, 20, 23) and labels.dtype == np.int64
    for p, got in zip(pred, labels):
        expected, _ = ndimage.label(p)
        np.testing.assert_array_equal(got, expected)
    diagonal = np.array([[1, 0], [0, 1]])
    assert label_instances(diagonal).max() == 2   # touching at a corner only: two cells


def test_instance_scores_perfect_prediction():
    instances = _two_touching_cells()
    scores = instance_scores(instances, instances)
    assert scores == InstanceScores(tp=3, fp=0, fn=0, merged=0, split=0)
    assert (scores.precision, scores.recall, scores.f1) == (1.0, 1.0, 1.0)


def test_instance_scores_relabelled_prediction_is_still_perfect():
    instances = _two_touching_cells()
    relabelled = np.choose(instances, [0, 7, 3, 12])
    assert instance_scores(relabelled, instances).f1 == 1.0
    assert rand_error(relabelled, instances) == pytest.approx(0.0)


def test_instance_scores_merged_pair_by_hand():
    # the touching pair predicted as one 3x7 blob (with the pixels between them): IoU 9/21 < 0.5
    instances = _two_touching_cells()
    pred = np.zeros_like(instances)
    pred[1:4, 0:7] = 1
    pred[5:7, 1:3] = 2
    scores = instance_scores(pred, instances)
    assert (scores.tp, scores.fp, scores.fn, scores.merged, scores.split) == (1, 1, 2, 2, 0)
    assert scores.precision == pytest.approx(1 / 2)
    assert scores.recall == pytest.approx(1 / 3)
    assert scores.f1 == pytest.approx(2 * 1 / (2 * 1 + 1 + 2))


def test_instance_scores_split_cell_by_hand():
    instances = np.zeros((6, 9), np.int64)
    instances[1:5, 1:8] = 1               # one 4x7 cell ...
    pred = np.zeros_like(instances)
    pred[1:5, 1:4] = 1                    # ... predicted as two pieces, 12 and 16 pixels
    pred[1:5, 5:8] = 2
    scores = instance_scores(pred, instances)
    assert (scores.tp, scores.fp, scores.fn, scores.merged, scores.split) == (0, 2, 1, 0, 1)
    assert scores.f1 == 0.0


def test_instance_scores_match_strictly_above_the_threshold():
    instances = np.zeros((1, 4), np.int64)
    instances[0, :2] = 1
    pred = np.zeros_like(instances)
    pred[0, :4] = 1                        # IoU exactly 2/4 = 0.5: not a match
    assert instance_scores(pred, instances).tp == 0
    pred[0, 3] = 0                         # IoU 2/3 > 0.5: a match
    assert instance_scores(pred, instances).tp == 1
    assert instance_scores(pred, instances, threshold=0.7).tp == 0
    shifted = np.zeros_like(instances)
    shifted[0, 1:3] = 1                    # IoU 1/3: matched only at a lower threshold, and at 0 (any overlap)
    assert [instance_scores(shifted, instances, threshold=t).tp for t in (0.5, 0.3, 0.0)] == [0, 1, 1]


def test_instance_scores_a_tie_at_one_half_matches_nothing():
    # one 2-pixel predicted cell over two 1-pixel true cells: IoU exactly 0.5 with each. With ">="
    # it could claim either (and a loop over true cells would count both); with ">" neither
    instances = np.array([[1, 2, 0, 0]])
    pred = np.array([[1, 1, 0, 0]])
    scores = instance_scores(pred, instances)
    assert (scores.tp, scores.fp, scores.fn, scores.merged) == (0, 1, 2, 2)
    # and two halves of one true cell: neither matches
    scores = instance_scores(np.array([[1, 2, 0, 0]]), np.array([[1, 1, 0, 0]]))
    assert (scores.tp, scores.fp, scores.fn, scores.split) == (0, 2, 1, 1)


def test_instance_scores_empty_images_and_stacks_add_up():
    empty = np.zeros((5, 5), np.int64)
    assert instance_scores(empty, empty) == InstanceScores()
    assert InstanceScores().f1 == 1.0 and InstanceScores().precision == 1.0
    instances = _two_touching_cells()
    missed = instance_scores(np.zeros_like(instances), instances)
    assert (missed.tp, missed.fn, missed.merged, missed.recall) == (0, 3, 0, 0.0)
    stack = instance_scores(np.stack([instances, np.zeros_like(instances)]), np.stack([instances, instances]))
    assert stack == instance_scores(instances, instances) + missed


def test_instance_scores_errors():
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=rf"threshold must be a finite number in \[0, 1\], got {bad}"):
            instance_scores(np.zeros((3, 3), int), np.zeros((3, 3), int), threshold=bad)
    with pytest.raises(ValueError, match=r"threshold must be below 1 \(a match needs IoU > threshold.*got 1.0"):
        instance_scores(np.zeros((3, 3), int), np.zeros((3, 3), int), threshold=1.0)
    with pytest.raises(ValueError, match="same shape"):
        instance_scores(np.zeros((3, 3), int), np.zeros((3, 4), int))


def test_rand_error_by_hand():
    # merged pair: foreground pixels of the truth 9 + 9 + 4 = 22; predicted segments 18 and 4
    instances = _two_touching_cells()
    pred = label_instances(instances > 0)
    sum_p2 = (9**2 + 9**2 + 4**2) / 22**2
    sum_s2 = (18**2 + 4**2) / 22**2
    sum_t2 = (9**2 + 9**2 + 4**2) / 22**2
    assert rand_error(pred, instances) == pytest.approx(1 - 2 * sum_p2 / (sum_s2 + sum_t2))
    assert rand_error(pred, instances) == pytest.approx(1 - 356 / 518)


def test_rand_error_ignores_true_background_and_splits_missed_pixels():
    instances = _two_touching_cells()
    noisy = instances.copy()
    noisy[7, 9] = 5                        # a false detection in the true background: ignored
    assert rand_error(noisy, instances) == pytest.approx(0.0)
    missed = instances.copy()
    missed[instances == 3] = 0             # a missed 4-pixel cell: 4 one-pixel segments
    sum_p2 = sum_s2 = (81 + 81 + 4) / 22**2
    sum_t2 = (81 + 81 + 16) / 22**2
    assert rand_error(missed, instances) == pytest.approx(1 - 2 * sum_p2 / (sum_s2 + sum_t2))
    assert rand_error(np.zeros_like(instances), instances) == pytest.approx(1 - 2 * 22 / (22 + 178))


def test_rand_error_errors():
    with pytest.raises(ValueError, match="no foreground pixels"):
        rand_error(np.ones((3, 3), int), np.zeros((3, 3), int))


@pytest.mark.parametrize("call, error, match", [
    (lambda: instance_scores(np.array([[1, 1, -1, 2]]), np.array([[1, 1, -1, 2]])), ValueError, r"pred_instances must hold labels >= 0 \(0 = background\), got 1 negative value \(min -1\)"),
    (lambda: iou(np.ones((2, 2), complex), np.ones((2, 2), int)), TypeError, r"pred must have a real \(bool, integer or float\) dtype, got complex128"),
    (lambda: pixel_error(np.zeros((0, 0), int), np.zeros((0, 0), int)), ValueError, r"pred must not be empty, got shape \(0, 0\)"),
    (lambda: dice("mask.png", np.zeros((2, 2), int)), TypeError, r"pred must be a numpy array or torch tensor \(H, W\) or \(N, H, W\), got 'mask.png' \(str\)"),
    (lambda: instance_scores(np.zeros((2, 2), int), np.zeros((2, 2), int), threshold="0.5"), TypeError, r"threshold must be a finite number in \[0, 1\], got '0.5' \(str\)"),
])
def test_more_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_confusion_matrix_and_class_scores_by_hand():
    from unet_lib.metrics import class_scores, confusion_matrix
    mask = np.array([[0, 1, 1], [2, 2, 0]])
    pred = np.array([[0, 1, 2], [2, 0, 0]])
    confusion = confusion_matrix(pred, mask, 4)
    # rows: true 0 (2 px, both right), true 1 (one right, one as 2), true 2 (one right, one as 0); class 3 absent
    assert confusion.tolist() == [[2, 0, 0, 0], [0, 1, 1, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    ious, dices = class_scores(confusion)
    assert ious[:3] == [2 / 3, 1 / 2, 1 / 3] and np.isnan(ious[3])
    assert dices[:3] == [4 / 5, 2 / 3, 1 / 2] and np.isnan(dices[3])
    with pytest.raises(ValueError, match=r"classes 0..2 \(num_classes=3\), found 3"):
        confusion_matrix(pred + 1, mask, 3)
    with pytest.raises(ValueError, match="square"):
        class_scores(np.zeros((2, 3), int))


# -- instances_from_classes (notebook 11) --------------------------------------------------------

from unet_lib.data import draw_cells, interior_border_classes  # noqa: E402
from unet_lib.metrics import instances_from_classes  # noqa: E402


def test_instances_from_classes_by_hand():
    # two interiors whose border rings touch: two cells, each with its half of the border
    pred = np.array([[2, 2, 2, 2, 2, 2],
                     [2, 1, 2, 2, 1, 2],
                     [2, 2, 2, 2, 2, 2],
                     [0, 0, 0, 0, 0, 2]])                # a border pixel beyond reach of... the flood reaches it
    labels = instances_from_classes(pred)
    assert labels.dtype == np.int64
    assert set(np.unique(labels)) == {0, 1, 2}
    assert labels[1, 1] != labels[1, 4]
    np.testing.assert_array_equal(labels[:, :3][:3], np.full((3, 3), labels[1, 1]))
    np.testing.assert_array_equal(labels[:, 3:][:3], np.full((3, 3), labels[1, 4]))
    assert (labels[3, :5] == 0).all() and labels[3, 5] == labels[1, 4]
    # a border ring with no interior stays background
    assert not instances_from_classes(np.array([[2, 2], [2, 2]])).any()


def test_instances_from_classes_round_trip_of_toy_cells():
    _, instances = draw_cells(96, np.random.default_rng(5), n_cells=(10, 10))
    back = instances_from_classes(interior_border_classes(instances, 1))
    scores = instance_scores(back, instances)
    assert scores.merged == 0 and scores.f1 > 0.9


def test_instances_from_classes_refuses_other_maps():
    with pytest.raises(ValueError, match="classes 0 \\(background\\), 1 \\(interior\\) and 2"):
        instances_from_classes(np.array([[0, 3]]))
