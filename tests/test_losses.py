"""unet_lib.losses: the weighted pixel-wise cross-entropy against torch's F.cross_entropy."""

import math

import pytest
import torch
import torch.nn.functional as F

from unet_lib.losses import weighted_cross_entropy


def make_batch(B=2, K=3, H=5, W=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, K, H, W, generator=g), torch.randint(0, K, (B, H, W), generator=g)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("K", [2, 3])
def test_unit_weights_equal_torch_cross_entropy(reduction, K):
    logits, mask = make_batch(K=K)
    expected = F.cross_entropy(logits, mask, reduction=reduction)
    torch.testing.assert_close(weighted_cross_entropy(logits, mask, reduction=reduction), expected)
    ones = torch.ones(mask.shape)
    torch.testing.assert_close(weighted_cross_entropy(logits, mask, ones, reduction=reduction), expected)


def test_weights_multiply_each_pixel():
    logits, mask = make_batch(H=9, W=4)
    weight_map = torch.rand(mask.shape, generator=torch.Generator().manual_seed(1)) * 10
    per_pixel = F.cross_entropy(logits, mask, reduction="none")
    torch.testing.assert_close(weighted_cross_entropy(logits, mask, weight_map, "none"), per_pixel * weight_map)
    torch.testing.assert_close(weighted_cross_entropy(logits, mask, weight_map), (per_pixel * weight_map).mean())
    torch.testing.assert_close(weighted_cross_entropy(logits, mask, weight_map, "sum"), (per_pixel * weight_map).sum())


def test_worked_by_hand():
    # one pixel, two classes, scores (0, ln 3): softmax = (1/4, 3/4); true class 1, weight 2
    logits = torch.tensor([0.0, math.log(3)]).reshape(1, 2, 1, 1)
    mask = torch.tensor([[[1]]])
    loss = weighted_cross_entropy(logits, mask, torch.tensor([[[2.0]]]))
    assert loss.item() == pytest.approx(-2 * math.log(3 / 4))
    # true class 0: -log(1/4) = log 4
    assert weighted_cross_entropy(logits, torch.tensor([[[0]]])).item() == pytest.approx(math.log(4))


def test_large_scores_do_not_overflow_and_gradients_flow():
    logits = torch.tensor([1000.0, -1000.0]).reshape(1, 2, 1, 1).repeat(1, 1, 3, 3).requires_grad_()
    mask = torch.ones(1, 3, 3, dtype=torch.long)
    loss = weighted_cross_entropy(logits, mask, torch.full((1, 3, 3), 5.0))
    assert loss.item() == pytest.approx(5 * 2000.0)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_zero_weight_pixels_do_not_count():
    logits, mask = make_batch(B=1, H=4, W=4)
    weight_map = torch.zeros(1, 4, 4)
    weight_map[0, 1, 2] = 1.0
    expected = F.cross_entropy(logits, mask, reduction="none")[0, 1, 2] / 16
    torch.testing.assert_close(weighted_cross_entropy(logits, mask, weight_map), expected)


@pytest.mark.parametrize("args, error, match", [
    ((torch.randn(3, 5, 7), torch.zeros(1, 5, 7, dtype=torch.long)), ValueError, r"logits must be a \(B, K, H, W\)"),
    ((torch.randn(1, 2, 5, 7), torch.zeros(5, 7, dtype=torch.long)), ValueError, r"mask\[None\]"),
    ((torch.randn(1, 2, 5, 7), torch.zeros(1, 9, 11, dtype=torch.long)), ValueError, "center_crop"),
    ((torch.randn(2, 2, 5, 7), torch.zeros(1, 5, 7, dtype=torch.long)), ValueError, r"need \(B, H, W\) = \(2, 5, 7\)"),
    ((torch.randn(1, 2, 5, 7), torch.zeros(1, 5, 7)), TypeError, r"mask.long\(\)"),
    ((torch.randn(1, 2, 5, 7), torch.full((1, 5, 7), 2)), ValueError, r"class indices in \[0, 1\]"),
    ((torch.randn(1, 2, 5, 7), torch.zeros(1, 5, 7, dtype=torch.long), torch.ones(1, 9, 11)), ValueError,
     "weight_map has shape"),
])
def test_bad_shapes_and_types(args, error, match):
    with pytest.raises(error, match=match):
        weighted_cross_entropy(*args)


def test_bad_reduction():
    logits, mask = make_batch()
    with pytest.raises(ValueError, match="reduction='max' is not supported"):
        weighted_cross_entropy(logits, mask, reduction="max")
