"""unet_lib.validate: the shared argument checks, and the contract they give every public function:
on bad input (NaN, inf, negative, wrong dtype, wrong ndim, empty, strings, None) it raises
ValueError or TypeError naming the argument, or returns a finite, correctly shaped result."""

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import unet_lib as u
from unet_lib.augment import augment
from unet_lib.validate import (check_array, check_bool, check_choice, check_finite, check_index, check_int,
                               check_labels, check_number, check_pair, check_seed, concrete_size, count_nonfinite,
                               describe)


# -- the helpers, one case each way ----------------------------------------------------------

def test_helpers_return_plain_values():
    assert check_int("n", np.int64(3), min=1) == 3 and type(check_int("n", np.int64(3))) is int
    assert check_number("w0", 10) == 10.0 and check_number("d", math.inf, finite=False) == math.inf
    assert check_bool("flip", np.bool_(True)) is True
    assert check_choice("padding", "same", ("valid", "same")) == "same"
    assert check_seed("seed", 2**64 - 1) == 2**64 - 1
    assert check_pair("radius", [2, 3.5]) == (2.0, 3.5)
    assert check_index("index", torch.tensor(-1), 3, "ToyCells") == 2
    assert count_nonfinite(np.array([1.0, np.nan, np.inf, -np.inf])) == (1, 2, (1,))
    assert count_nonfinite(torch.tensor([[0.0, 1.0], [np.nan, 2.0]])) == (1, 0, (1, 0))
    assert describe("10") == "'10' (str)" and describe(np.zeros((0, 2))) == "ndarray of shape (0, 2), dtype float64"


@pytest.mark.parametrize("call, error, match", [
    (lambda: check_int("epochs", True, min=1), TypeError, "epochs must be an integer >= 1, got True"),
    (lambda: check_int("epochs", 0, min=1), ValueError, "epochs must be an integer >= 1, got 0"),
    (lambda: check_number("w0", "10", min=0.0), TypeError, r"w0 must be a finite number >= 0, got '10' \(str\)"),
    (lambda: check_number("lr", math.nan, positive=True), ValueError, "lr must be a finite number > 0, got nan"),
    (lambda: check_number("p", 2, min=0, max=1), ValueError, r"p must be a finite number in \[0, 1\], got 2.0"),
    (lambda: check_number("d", math.nan, finite=False), ValueError, "d must be a number, got nan"),
    (lambda: check_bool("flip", 1), TypeError, "flip must be True or False, got 1"),
    (lambda: check_choice("padding", "full", ("valid", "same")), ValueError, "padding='full' is not supported; use one of 'valid', 'same'"),
    (lambda: check_choice("padding", ["valid"], ("valid", "same")), ValueError, r"padding=\['valid'\] is not supported"),
    (lambda: check_seed("seed", -1), ValueError, r"seed must be an integer in \[0, 18446744073709551615\], got -1; numpy and torch"),
    (lambda: check_pair("n_cells", 5, "integer"), TypeError, r"n_cells must be a pair \(min, max\) of two integers, got 5"),
    (lambda: check_index("index", 1.5, 3, "ToyCells"), TypeError, "index must be an integer, got 1.5"),
    (lambda: check_index("index", 3, 3, "ToyCells"), IndexError, "index 3 is out of range for ToyCells of length 3"),
    (lambda: check_finite("image", np.array([0.0, np.nan, np.inf])), ValueError, r"image must be finite, got 1 NaN and 1 infinite values among its 3 \(the first at \(1,\)\)"),
    (lambda: check_array("x", None), TypeError, "x must be a numpy array or torch tensor, got None"),
    (lambda: check_array("x", [[1, 2], [3]]), TypeError, "x must be a numpy array or torch tensor"),
    (lambda: check_array("x", np.zeros(3), ndim=2, dims="an (H, W) image"), ValueError, r"x must be an \(H, W\) image, got shape \(3,\)"),
    (lambda: check_array("x", np.zeros((2, 2)), low=1, high=2), ValueError, r"x must hold values in \[1, 2\], got 4 values outside"),
    (lambda: check_labels("instances", np.zeros((2, 2), bool)), TypeError, "scipy.ndimage.label"),
    (lambda: check_labels("instances", np.zeros((0, 2), int)), ValueError, r"instances must not be empty, got shape \(0, 2\)"),
])
def test_helper_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# -- every public function, on random bad input ------------------------------------------------

_MODEL = u.UNet(depth=1, base_channels=1).eval()

BAD = {
    "nan image": np.where(np.eye(12) > 0, np.nan, 0.5).astype(np.float32),
    "inf image": np.full((12, 12), np.inf, np.float32),
    "negative labels": -np.ones((12, 12), np.int64),
    "uint8 0..255 image": np.full((12, 12), 200, np.uint8),
    "float labels": np.full((12, 12), 1.5),
    "1-D": np.zeros(12),
    "4-D": np.zeros((1, 1, 12, 12, 1), np.float32)[..., 0],
    "empty": np.zeros((0, 0), np.float32),
    "empty labels": np.zeros((0, 0), np.int64),
    "complex": np.ones((12, 12), complex),
    "string": "cells.png",
    "None": None,
    "nan scalar": math.nan,
    "inf scalar": math.inf,
    "negative scalar": -3,
    "string scalar": "10",
}
GOOD_IMAGE = np.random.default_rng(0).random((12, 12)).astype(np.float32)
GOOD_LABELS = np.kron(np.array([[1, 0], [0, 2]]), np.ones((6, 6), np.int64))

# (function, the name of the argument that gets the bad value, a call with good values that takes it)
CALLS = {
    "unet_weight_map": ("instances", lambda v: u.unet_weight_map(v)),
    "unet_weight_map w0": ("w0", lambda v: u.unet_weight_map(GOOD_LABELS, w0=v)),
    "unet_weight_map sigma": ("sigma", lambda v: u.unet_weight_map(GOOD_LABELS, sigma=v)),
    "unet_weight_map class_weights": ("class_weights", lambda v: u.unet_weight_map(GOOD_LABELS, class_weights=v)),
    "border_term_naive": ("instances", lambda v: u.border_term_naive(v)),
    "class_weight_map": ("mask", lambda v: u.class_weight_map(v)),
    "targets_from_instances": ("instances", lambda v: u.targets_from_instances(v)),
    "instances_to_mask": ("instances", lambda v: u.instances_to_mask(v)),
    "percentile_normalize": ("image", lambda v: u.percentile_normalize(v)),
    "percentile_normalize low": ("low", lambda v: u.percentile_normalize(GOOD_IMAGE, low=v)),
    "augment image": ("image", lambda v: augment(v, GOOD_LABELS, np.random.default_rng(0))),
    "augment instances": ("instances", lambda v: augment(GOOD_IMAGE, v, np.random.default_rng(0))),
    "augment rng": ("rng", lambda v: augment(GOOD_IMAGE, GOOD_LABELS, v)),
    "iou": ("pred", lambda v: u.iou(v, GOOD_LABELS > 0)),
    "pixel_error": ("pred", lambda v: u.pixel_error(v, GOOD_LABELS > 0)),
    "instance_scores": ("pred_instances", lambda v: u.instance_scores(v, GOOD_LABELS)),
    "rand_error": ("pred_instances", lambda v: u.rand_error(v, GOOD_LABELS)),
    "label_instances": ("pred", lambda v: u.label_instances(v)),
    "predict_tiled": ("image", lambda v: u.predict_tiled(_MODEL, v)),
    "predict_tiled tile_size": ("tile_size", lambda v: u.predict_tiled(_MODEL, GOOD_IMAGE, v)),
    "padded_forward": ("x", lambda v: u.padded_forward(_MODEL, torch.as_tensor(v)[None, None] if isinstance(v, np.ndarray) and v.ndim == 2 else v)),
    "mirror_pad": ("x", lambda v: u.mirror_pad(v if not isinstance(v, np.ndarray) else torch.as_tensor(v), 1, 1, 1, 1)),
    "center_crop size": ("size", lambda v: u.center_crop(torch.zeros(4, 4), v)),
    "feature_maps": ("image", lambda v: u.feature_maps(_MODEL, v)),
    "weighted_cross_entropy weight_map": ("weight_map", lambda v: u.weighted_cross_entropy(
        torch.zeros(1, 2, 12, 12), torch.zeros(1, 12, 12, dtype=torch.long),
        torch.as_tensor(v)[None] if isinstance(v, np.ndarray) and v.ndim == 2 else v)),
    "ToyCells seed": ("seed", lambda v: u.ToyCells(1, size=32, radius=(4.0, 8.0), seed=v)),
    "ToyCells noise": ("noise", lambda v: u.ToyCells(1, size=32, radius=(4.0, 8.0), noise=v)),
    "TrainConfig lr": ("lr", lambda v: u.fit(_MODEL, [], None, u.TrainConfig(lr=v, progress=False))),
    "evaluate batch_size": ("batch_size", lambda v: u.evaluate(_MODEL, [], batch_size=v)),
}


def _finite(result) -> bool:
    """Every number in a result (arrays, tensors, tuples, dataclasses, datasets) is finite."""
    if isinstance(result, (tuple, list)):
        return all(_finite(r) for r in result)
    if isinstance(result, torch.Tensor):
        return bool(torch.isfinite(result).all()) if result.is_floating_point() else True
    if isinstance(result, np.ndarray):
        return bool(np.all(np.isfinite(result))) if result.dtype.kind in "fc" else True
    if isinstance(result, float):
        return math.isfinite(result)
    return True


# functions that only move values (never compute with them): NaN in, the same NaN out, by rule
MOVES_VALUES = {"mirror_pad"}


def _try(call, name, value, moves_values=False) -> bool:
    """True: a clear error (TypeError/ValueError naming ``name``) or a finite result."""
    try:
        result = call(value)
    except (TypeError, ValueError) as error:
        assert name in str(error), f"{type(error).__name__} does not name {name!r}: {error}"
        return True
    assert _finite(result) or moves_values, f"a non-finite result for {name}={describe(value)}"
    return True


COUNTS = {"tried": 0, "clear": 0}


@settings(max_examples=30, deadline=None)
@given(call=st.sampled_from(sorted(CALLS)), bad=st.sampled_from(sorted(BAD)))
def test_property_bad_input_gives_a_clear_error_or_a_finite_result(call, bad):
    name, fn = CALLS[call]
    COUNTS["tried"] += 1
    COUNTS["clear"] += _try(fn, name, BAD[bad], call in MOVES_VALUES)


def test_every_combination_of_function_and_bad_input():
    """All len(CALLS) x len(BAD) combinations once (no sampling): the count in the report."""
    tried = clear = 0
    for call, (name, fn) in CALLS.items():
        for value in BAD.values():
            tried += 1
            clear += _try(fn, name, value, call in MOVES_VALUES)
    assert tried == clear == len(CALLS) * len(BAD)


def test_concrete_size_reads_a_traced_size_at_the_example_without_a_tracer_warning():
    seen = []

    def f(x):
        h = x.shape[-1]                                   # a 0-d tensor while tracing
        seen.append((type(h), concrete_size(h), concrete_size(7), concrete_size("7")))
        return x[..., : h - 1]                            # computed with the traced size: it follows the input

    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)   # torch.jit.trace: what the ONNX exporter runs
        traced = torch.jit.trace(f, torch.zeros(1, 5), check_trace=False)
    assert seen == [(torch.Tensor, 5, 7, "7")]            # an int at the example; anything else as it was
    assert traced(torch.zeros(1, 9)).shape == (1, 8)
    assert isinstance(concrete_size(torch.tensor(4)), torch.Tensor)   # outside a trace a tensor stays one
