"""unet_lib.losses: the weighted pixel-wise cross-entropy against torch's F.cross_entropy."""

import math

import numpy as np
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


# -- property tests (hypothesis) ---------------------------------------------------------------

from hypothesis import given, settings, strategies as st   # noqa: E402


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 3), K=st.integers(1, 4), H=st.integers(1, 6), W=st.integers(1, 6),
       scale=st.floats(0.1, 50.0), seed=st.integers(0, 2**31))
def test_property_unit_weights_equal_torch_cross_entropy(B, K, H, W, scale, seed):
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(B, K, H, W, generator=g, dtype=torch.float64)
    mask = torch.randint(0, K, (B, H, W), generator=g)
    ours = weighted_cross_entropy(logits, mask, torch.ones(B, H, W, dtype=torch.float64))
    torch.testing.assert_close(ours, F.cross_entropy(logits, mask), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("args, error, match", [
    ((torch.randn(0, 2, 5, 7), torch.zeros(0, 5, 7, dtype=torch.long)), ValueError, r"logits must not be empty.*empty batch"),
    ((torch.randn(1, 2, 5, 7), torch.zeros(1, 5, 7, dtype=torch.uint8)), TypeError, r"mask must hold integer class indices \(torch.int64\), got torch.uint8; use mask.long\(\)"),
    ((torch.zeros(1, 2, 5, 7, dtype=torch.long), torch.zeros(1, 5, 7, dtype=torch.long)), TypeError, r"logits must be a floating-point tensor, got torch.int64"),
    ((torch.randn(1, 2, 5, 7), torch.full((1, 5, 7), 5)), ValueError, r"num_classes=2.*labels 5 have no class"),
    ((torch.randn(1, 2, 5, 7), torch.full((1, 5, 7), -1)), ValueError, r"labels -1 have no class"),
    ((torch.randn(1, 2, 5, 7), torch.zeros(1, 5, 7, dtype=torch.long), np.ones((1, 5, 7), np.float32)), TypeError, r"weight_map must be a torch.Tensor \(B, H, W\), got ndarray of shape \(1, 5, 7\).*torch.from_numpy"),
    ((torch.randn(1, 2, 5, 7), torch.zeros(1, 5, 7, dtype=torch.long), torch.full((1, 5, 7), float("nan"))), ValueError, r"weight_map must be finite, got 35 NaN values among its 35 \(the first at \(0, 0, 0\)\)"),
    ((torch.randn(1, 2, 5, 7), torch.zeros(1, 5, 7, dtype=torch.long), torch.full((1, 5, 7), float("inf"))), ValueError, "35 infinite values"),
    ((torch.randn(1, 2, 5, 7), torch.zeros(1, 5, 7, dtype=torch.long), -torch.ones(1, 5, 7)), ValueError, r"weight_map must be >= 0, got 35 negative values \(min -1\)"),
])
def test_more_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        weighted_cross_entropy(*args)
