"""Tests for unet_lib.tiling: overlap-tile inference equals whole-image inference."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unet_lib import COURSE_CHECKPOINT, UNet, load_checkpoint
from unet_lib.tiling import (context_margin, fastest_tile_size, mirror_pad, padded_forward, predict_labels,
                             predict_naive_tiles, predict_tiled)


def _model(depth=2, padding="valid", batch_norm=True, in_channels=1, seed=0):
    torch.manual_seed(seed)
    model = UNet(in_channels=in_channels, depth=depth, base_channels=4, padding=padding, batch_norm=batch_norm)
    if batch_norm:   # non-trivial running statistics, so eval mode differs from training mode
        with torch.no_grad():
            model(torch.rand(2, in_channels, *(2 * [model.valid_input_sizes(60)[0]])))
    return model.eval()


def test_mirror_pad_matches_torch_reflect_and_goes_beyond_it():
    x = torch.arange(2 * 5 * 6, dtype=torch.float32).reshape(2, 5, 6)
    np.testing.assert_array_equal(mirror_pad(x, 3, 4, 2, 5), F.pad(x[None], (2, 5, 3, 4), mode="reflect")[0])
    row = torch.arange(3.0)[None]                         # wider than the image: keeps reflecting
    assert mirror_pad(row, 0, 0, 5, 6)[0].tolist() == [1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0]
    assert mirror_pad(torch.ones(1, 1), 2, 2, 2, 2).shape == (5, 5)
    with pytest.raises(ValueError, match="pad widths must be >= 0"):
        mirror_pad(x, -1, 0, 0, 0)


@pytest.mark.parametrize("depth, expected", [(1, 8), (2, 20), (3, 44), (4, 92)])
def test_context_margin_valid(depth, expected):
    model = UNet(depth=depth, base_channels=1)
    n = model.min_input_size()
    assert context_margin(model) == expected == (n - model.output_size(n)) // 2


def test_context_margin_errors():
    with pytest.raises(TypeError, match="expected a unet_lib.UNet"):
        context_margin(torch.nn.Conv2d(1, 1, 3))


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_padded_forward_covers_every_pixel_and_keeps_gradients(padding):
    model = _model(padding=padding).train()
    x = torch.rand(2, 1, 37, 50, requires_grad=True)
    logits = padded_forward(model, x)
    assert logits.shape == (2, 2, 37, 50)
    logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        padded_forward(model, torch.rand(1, 37, 50))


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("size", [(97, 83), (40, 131), (17, 19)])
def test_predict_tiled_equals_whole_image_for_valid_padding(depth, size):
    model = _model(depth=depth)
    image = torch.rand(1, *size)
    whole = padded_forward(model, image[None]).softmax(1)[0]          # (K, H, W)
    usable = [n for n in model.valid_input_sizes(1, 400) if model.output_size(n) >= 16]   # tens of tiles, not hundreds
    for tile_size in [None, usable[0], usable[2]]:
        probs = predict_tiled(model, image, tile_size)
        assert probs.shape == (2, *size)
        torch.testing.assert_close(probs, whole, atol=1e-5, rtol=0)


def test_predict_tiled_same_padding_is_seamless_too():
    model = _model(depth=2, padding="same")
    image = torch.rand(1, 90, 70)
    whole = padded_forward(model, image[None]).softmax(1)[0]
    torch.testing.assert_close(predict_tiled(model, image, 64), whole, atol=1e-5, rtol=0)


def test_predict_tiled_takes_hw_numpy_and_multichannel_and_restores_mode():
    model = _model(in_channels=3).train()
    image = np.random.default_rng(0).random((3, 45, 52)).astype(np.float32)
    probs = predict_tiled(model, image)
    assert model.training                                  # mode restored
    torch.testing.assert_close(probs.sum(0), torch.ones(45, 52))
    gray = _model()
    hw = torch.rand(33, 29)
    torch.testing.assert_close(predict_tiled(gray, hw), predict_tiled(gray, hw[None]))


def test_naive_tiles_have_seams_overlap_tile_does_not():
    model = _model(depth=2)
    image = torch.rand(1, 64, 64)
    whole = padded_forward(model, image[None]).softmax(1)[0]
    naive = predict_naive_tiles(model, image, 32)
    assert naive.shape == (2, 64, 64)
    assert (naive - whole).abs().max() > 1e-3            # tiles' borders saw mirrored context
    # a tile's pixels more than the 20-pixel context margin from its border saw only real
    # context, and tiles start at multiples of 2**depth: there naive tiling is exact
    tall = torch.rand(1, 128, 64)
    naive = predict_naive_tiles(model, tall, 64)
    whole = padded_forward(model, tall[None]).softmax(1)[0]
    for top in (0, 64):
        torch.testing.assert_close(naive[:, top + 20 : top + 44, 20:44], whole[:, top + 20 : top + 44, 20:44],
                                   atol=1e-5, rtol=0)


def test_predict_tiled_errors():
    model = _model(depth=2)
    with pytest.raises(ValueError, match=r"tile_size 50: input size 50 is not valid.*nearest valid sizes: 48, 52"):
        predict_tiled(model, torch.rand(1, 40, 40), 50)
    with pytest.raises(ValueError, match=r"leaves 4 output pixels per tile, fewer than the 8 needed.*>= 100"):
        predict_tiled(_model(depth=3), torch.rand(1, 40, 40), 92)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(C, H, W\)"):
        predict_tiled(model, torch.rand(1, 1, 40, 40))
    with pytest.raises(ValueError, match="channels first"):
        predict_tiled(model, torch.rand(40, 40, 3))
    with pytest.raises(TypeError, match=r"float\(\) / 255"):
        predict_tiled(model, torch.zeros(40, 40, dtype=torch.uint8))
    with pytest.raises(TypeError, match="tile_size must be an int"):
        predict_tiled(model, torch.rand(40, 40), 60.0)
    with pytest.raises(ValueError, match="must be a multiple of 4"):
        predict_tiled(_model(depth=2, padding="same"), torch.rand(40, 40), 62)
    with pytest.raises(ValueError, match="tile_size must be a positive int"):
        predict_naive_tiles(model, torch.rand(40, 40), 0)


class _Landed(Exception):
    """Raised by a forward pre-hook once it has recorded where the model's input is."""


def _record_input_device(model, seen):
    def hook(module, args):
        seen.append(args[0].device)
        raise _Landed
    return model.register_forward_pre_hook(hook)


@pytest.mark.parametrize("predict", [
    lambda model, image: padded_forward(model, image[None]),
    lambda model, image: predict_tiled(model, image),
    lambda model, image: predict_labels(model, image),
    lambda model, image: predict_naive_tiles(model, image, 32),
])
def test_the_input_is_moved_to_the_models_device(predict):
    # a model on the meta device stands in for one on a GPU: a CPU input must follow it there
    model, seen = _model(depth=1).to("meta"), []
    _record_input_device(model, seen)
    with pytest.raises(_Landed):
        predict(model, torch.rand(1, 40, 40))
    assert seen == [torch.device("meta")]


def test_padded_forward_on_the_meta_device_keeps_the_shape():
    logits = padded_forward(_model(depth=2).to("meta"), torch.rand(2, 1, 37, 45))   # a CPU input
    assert logits.device.type == "meta" and logits.shape == (2, 2, 37, 45)


def test_predict_labels_is_the_argmax_of_overlap_tile_probabilities():
    model, image = _model(depth=2), torch.rand(1, 70, 90)
    labels = predict_labels(model, image)
    assert labels.shape == (70, 90) and labels.dtype == torch.int64 and labels.device.type == "cpu"
    assert torch.equal(labels, predict_tiled(model, image).argmax(0))
    assert torch.equal(predict_labels(model, image.numpy()[0]), labels)       # (H, W) numpy works too


# -- property tests (hypothesis) ---------------------------------------------------------------

from hypothesis import given, settings, strategies as st   # noqa: E402

_TINY = {}


def _tiny(depth: int, padding: str) -> UNet:
    """One tiny model per (depth, padding), built once: hypothesis draws the sizes."""
    if (depth, padding) not in _TINY:
        torch.manual_seed(depth)
        _TINY[depth, padding] = UNet(depth=depth, base_channels=1, padding=padding, batch_norm=False).eval()
    return _TINY[depth, padding]


@settings(max_examples=15, deadline=None)
@given(depth=st.integers(1, 2), padding=st.sampled_from(["valid", "same"]), H=st.integers(1, 40),
       W=st.integers(1, 40), data=st.data(), seed=st.integers(0, 2**31))
def test_property_overlap_tile_equals_whole_image(depth, padding, H, W, data, seed):
    model = _tiny(depth, padding)
    step = 2**depth
    if padding == "valid":
        tile = data.draw(st.sampled_from([n for n in model.valid_input_sizes(1, 80) if model.output_size(n) >= step]))
    else:
        tile = data.draw(st.sampled_from([n for n in range(step, 81, step) if n - 2 * context_margin(model) >= step]))
    image = torch.rand(1, H, W, generator=torch.Generator().manual_seed(seed))
    probs = predict_tiled(model, image, tile_size=tile)
    with torch.no_grad():
        whole = padded_forward(model, image[None]).softmax(1)[0]
    assert probs.shape == (model.num_classes, H, W) and torch.isfinite(probs).all()
    torch.testing.assert_close(probs, whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("call, error, match", [
    (lambda m: mirror_pad(torch.zeros(1, 0, 0), 1, 1, 1, 1), ValueError, r"x must have H, W >= 1 .* got shape \(1, 0, 0\)"),
    (lambda m: mirror_pad(torch.zeros(3, 3), 1.5, 1, 1, 1), TypeError, "top must be an integer, got 1.5"),
    (lambda m: padded_forward(m, torch.zeros(1, 1, 0, 0)), ValueError, r"x must have H, W >= 1"),
    (lambda m: padded_forward(m, torch.full((1, 1, 8, 8), float("nan"))), ValueError, r"x must be finite, got 64 NaN values among its 64"),
    (lambda m: predict_tiled(m, np.zeros((0, 0), np.float32)), ValueError, r"image must have H, W >= 1"),
    (lambda m: predict_tiled(m, "cells.png"), TypeError, r"image must be a numpy array or torch tensor .* got 'cells.png' \(str\)"),
    (lambda m: predict_tiled(m, np.where(np.eye(8) > 0, np.nan, 0.5).astype(np.float32)), ValueError, r"image must be finite, got 8 NaN values among its 64 \(the first at \(0, 0\)\)"),
    (lambda m: predict_tiled(m.apply(lambda l: l.weight.data.fill_(float("nan")) if isinstance(l, torch.nn.Conv2d) else None), torch.rand(1, 20, 20)), ValueError, r"model has non-finite weights .*inc.0.weight.*diverged"),
    (lambda m: predict_naive_tiles(m, torch.rand(1, 20, 20), True), ValueError, "tile_size must be a positive int"),
])
def test_more_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call(UNet(depth=1, base_channels=1, batch_norm=False).eval())


def test_the_fast_inference_path_gives_the_probabilities_of_plain_inference_and_restores_layouts():
    """inference_mode and channels_last (on the CPU) change float rounding only: the course model's
    tiled probabilities stay within 1e-5 of a plain contiguous forward of the whole image."""
    model = load_checkpoint(COURSE_CHECKPOINT).model
    image = torch.rand(1, 150, 171, generator=torch.Generator().manual_seed(0))   # not a valid input size
    with torch.no_grad():
        reference = padded_forward(model, image[None]).softmax(1)[0]                # (K, H, W)
    for tile_size in [None, fastest_tile_size(model, 150, 171), 132]:
        torch.testing.assert_close(predict_tiled(model, image, tile_size), reference, atol=1e-5, rtol=0)
    assert all(p.is_contiguous() for p in model.parameters())                       # layouts given back
    model.to(memory_format=torch.channels_last)                                     # as fit leaves it on the CPU
    predict_tiled(model, image)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.ndim == 4)
    probs = predict_tiled(model, image)
    probs[0, 0, 0] = 0.5                           # an ordinary tensor: no inference-mode tensor leaks out
    assert probs.requires_grad is False


def test_fastest_tile_size_by_hand():
    model = UNet(depth=3, base_channels=4)          # the course model's size arithmetic: 92 + 8k -> 4 + 8k
    # 512 x 512: a 604 tile (516 out, steps of 512) covers it once: 604**2 = 364,816 pixels; the next
    # candidates need four tiles (348 -> 260 out, steps of 256: 4 * 348**2 = 484,416) or more
    assert fastest_tile_size(model, 512, 512) == 604
    # 40 x 30: the smallest tile that covers it (132 -> 44 out) beats the smallest tile overall
    # (100 -> 12 out, steps of 8: 5 x 4 tiles of 100**2)
    assert fastest_tile_size(model, 40, 30) == 132
    for h, w in [(1000, 700), (2048, 2048), (7, 3000)]:
        tile = fastest_tile_size(model, h, w)
        assert tile <= 700 and tile in model.valid_input_sizes(1, 700)
    assert fastest_tile_size(model, 2048, 2048, max_tile=300) <= 300
    with pytest.raises(ValueError, match=r"max_tile must be an integer >= 100, got 50.*smallest that can step is 100"):
        fastest_tile_size(model, 64, 64, max_tile=50)
    with pytest.raises(ValueError, match=r"h must be an integer >= 1, got 0"):
        fastest_tile_size(model, 0, 64)


def _state(model: UNet) -> list:
    """What a prediction must leave as it found: each parameter's tensor (storage, strides, dtype),
    its requires_grad and whether it is an inference tensor, the buffers, and the mode."""
    return ([(name, p.data_ptr(), p.stride(), p.dtype, p.requires_grad, p.is_inference())
             for name, p in model.named_parameters()]
            + [(name, b.data_ptr(), b.stride(), b.is_inference(), b.clone()) for name, b in model.named_buffers()]
            + [model.training])


def _same_state(a: list, b: list) -> bool:
    return all(x[:-1] == y[:-1] and (torch.equal(x[-1], y[-1]) if isinstance(x[-1], torch.Tensor) else x == y)
               for x, y in zip(a[:-1], b[:-1])) and a[-1] == b[-1] and len(a) == len(b)


@pytest.mark.parametrize("predict", [predict_tiled, predict_labels])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_a_prediction_leaves_the_model_as_it_found_it_and_training_goes_on(predict, layout):
    """#21: predict_tiled left the weights as inference tensors, and the next training step raised
    "Inference tensors cannot be saved for backward". A frozen block stays frozen, a model in
    training mode stays in it, and the step after a prediction is the step without one."""
    from unet_lib.train import train_step
    model = _model(depth=2).train()
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)       # as fit leaves it on the CPU
    for p in model.inc.parameters():
        p.requires_grad_(False)                                    # a frozen first block (fine-tuning)
    twin = copy.deepcopy(model)                                    # never predicts
    before = _state(model)
    image = torch.rand(1, 45, 38, generator=torch.Generator().manual_seed(0))
    predict(model, image)
    assert _same_state(_state(model), before)
    with torch.inference_mode():                                   # a caller's inference mode, too
        predict(model, image)
    assert _same_state(_state(model), before)
    n = model.valid_input_sizes(30)[0] - 2 * context_margin(model)
    generator = torch.Generator().manual_seed(1)
    batch = {"image": torch.rand(2, 1, n, n, generator=generator),
             "mask": torch.randint(0, 2, (2, n, n), generator=generator), "weight_map": torch.ones(2, n, n)}
    losses = []
    for m in (model, twin):
        torch.manual_seed(0)
        optimizer = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)
        losses.append(train_step(m, optimizer, batch, channels_last=layout == "channels_last"))
    assert losses[0] == losses[1]
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        assert torch.equal(p, q), name
    assert not any(p.is_inference() for p in model.parameters())
