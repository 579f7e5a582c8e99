"""Tests for unet_lib.model: the paper's network, shapes over depths and paddings, size
arithmetic, initialisation, and every error path."""

import math

import pytest
import torch
from torch import nn

from unet_lib.model import UNet, block_shapes, cut_skips, named_blocks, receptive_field


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_paper_network_parameter_count():
    assert n_params(UNet()) == 31_030_658


def test_paper_network_572_to_388():
    model = UNet()
    assert model.output_size(572) == 388
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 572, 572)).shape == (1, 2, 388, 388)


def test_paper_valid_sizes_are_16k_plus_12_from_188():
    sizes = UNet(base_channels=1).valid_input_sizes(1, 1000)
    assert sizes[0] == 188
    assert sizes == list(range(188, 1001, 16))
    assert all(n % 16 == 12 for n in sizes)


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
def test_forward_shape_matches_output_size(depth, padding, upsampling):
    model = UNet(in_channels=2, num_classes=3, depth=depth, base_channels=4, padding=padding,
                 upsampling=upsampling, batch_norm=True)
    h, w = model.valid_input_sizes(1, 200)[1:3]   # two different valid sizes: non-square
    out = model(torch.randn(2, 2, h, w))
    assert out.shape == (2, 3, *model.output_size((h, w)))


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_same_padding_keeps_size_for_multiples_of_2_to_depth(depth):
    model = UNet(depth=depth, base_channels=4, padding="same")
    assert model.valid_input_sizes(1, 40) == list(range(2**depth, 41, 2**depth))
    x = torch.randn(1, 1, 3 * 2**depth, 5 * 2**depth)
    assert model(x).shape[-2:] == x.shape[-2:]


@pytest.mark.parametrize("depth", [0, 1, 2, 3, 4])
def test_output_size_by_hand(depth):
    """Input minus output is the same for every valid size: 12 * 2**depth - 8 (184 for the
    paper's net), worked out level by level: 4 + sum of 4 * 2**k down and up."""
    model = UNet(depth=depth, base_channels=1)
    margin = 4 + sum(4 * 2**k for k in range(1, depth + 1)) + sum(4 * 2**k for k in range(depth))
    assert margin == 12 * 2**depth - 8
    for n in model.valid_input_sizes(1, 400):
        assert n - model.output_size(n) == margin


def test_output_size_accepts_pairs():
    assert UNet().output_size((572, 188)) == (388, 4)


@pytest.mark.parametrize("n,match", [
    (570, r"input size 570 is not valid for depth=4, padding='valid'; nearest valid sizes: 556, 572"),
    (100, r"input size 100 is not valid .*nearest valid sizes: 188 \(the smallest valid size is 188\)"),
    (573, r"nearest valid sizes: 572, 588"),
])
def test_invalid_size_names_nearest_valid_sizes(n, match):
    with pytest.raises(ValueError, match=match):
        UNet(base_channels=1).output_size(n)


def test_invalid_width_is_named():
    with pytest.raises(ValueError, match=r"input width 100 is not valid"):
        UNet(base_channels=1).output_size((572, 100))


def test_same_padding_invalid_size_message():
    with pytest.raises(ValueError, match=r"input size 30 is not valid for depth=3, padding='same'; nearest valid sizes: 24, 32"):
        UNet(depth=3, padding="same", base_channels=1).output_size(30)


def test_output_size_rejects_non_int():
    with pytest.raises(TypeError, match="input size must be an int, got float"):
        UNet(base_channels=1).output_size(572.0)


def test_forward_rejects_invalid_size_before_running():
    model = UNet(depth=3, base_channels=4)
    with pytest.raises(ValueError, match=r"input height 256 is not valid for depth=3, padding='valid'; nearest valid sizes: 252, 260"):
        model(torch.zeros(1, 1, 256, 252))


def test_forward_rejects_wrong_ndim():
    with pytest.raises(ValueError, match=r"expects a 4-D tensor \(B, C, H, W\), got shape \(1, 188, 188\); add a batch dimension"):
        UNet(base_channels=1)(torch.zeros(1, 188, 188))


def test_forward_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match=r"built with in_channels=1, but the input has 3 channels"):
        UNet(base_channels=1)(torch.zeros(1, 3, 188, 188))


def test_forward_rejects_integer_images():
    with pytest.raises(TypeError, match=r"expects a torch.float32 input like its weights, got torch.uint8.*x.float\(\) / 255"):
        UNet(base_channels=1)(torch.zeros(1, 1, 188, 188, dtype=torch.uint8))


def test_forward_rejects_non_tensor():
    with pytest.raises(TypeError, match=r"expects a torch.Tensor of shape \(B, C, H, W\), got ndarray"):
        import numpy as np
        UNet(base_channels=1)(np.zeros((1, 1, 188, 188), dtype=np.float32))


@pytest.mark.parametrize("kwargs,match", [
    (dict(depth=-1), r"depth must be an integer >= 0, got -1"),
    (dict(base_channels=0), r"base_channels must be an integer >= 1, got 0"),
    (dict(num_classes=2.0), r"num_classes must be an integer >= 1, got 2.0"),
    (dict(padding="full"), r"padding='full' is not supported"),
    (dict(upsampling="nearest"), r"upsampling='nearest' is not supported"),
])
def test_constructor_rejects_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        UNet(**kwargs)


def test_he_initialisation():
    """Weights ~ N(0, sqrt(2/N)), N = incoming nodes; biases zero (paper, Sec. 3)."""
    torch.manual_seed(0)
    model = UNet(base_channels=16, depth=2)
    conv = model.downs[1][1][0]            # 3x3 conv, 32 -> 64 channels: N = 9 * 32
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (9 * 32)), rel=0.05)
    up = model.ups[0].up                    # 2x2 up-convolution from 64 channels: N = 64
    assert up.weight.std().item() == pytest.approx(math.sqrt(2 / 64), rel=0.05)
    assert all((m.bias == 0).all() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))


def test_config_rebuilds_the_same_architecture():
    model = UNet(depth=2, base_channels=4, padding="same", batch_norm=True)
    clone = UNet(**model.config)
    clone.load_state_dict(model.state_dict())   # raises if any shape differs


def test_receptive_field_of_one_double_conv_by_hand():
    width, grad = receptive_field(UNet(depth=0, base_channels=1), 9)
    assert width == 5                       # two 3x3 convolutions: 1 + 2 + 2
    assert grad.shape == (9, 9)
    assert (grad > 0).sum() == 25


def test_receptive_field_of_depth_one_by_hand():
    # one level down: a 5-pixel window up top needs 3 bottom pixels (2x2 up-convolution), the
    # bottom DoubleConv widens that to 7, pooling doubles it to 14, the first DoubleConv adds 4
    model = UNet(depth=1, base_channels=1)
    assert receptive_field(model, 26)[0] == 18


def test_output_size_rejects_wrong_length():
    with pytest.raises(ValueError, match=r"input size must be an int or \(height, width\), got \(572, 572, 1\)"):
        UNet(base_channels=1).output_size((572, 572, 1))


def test_block_shapes_follow_the_u():
    model = UNet(depth=2, base_channels=4)
    shapes = block_shapes(model, torch.zeros(1, 1, 92, 92))
    assert [name for name, _ in shapes] == ["inc", "downs[0]", "downs[1]", "ups[0]", "ups[1]", "outc"]
    assert [s[1:] for _, s in shapes] == [(4, 88, 88), (8, 40, 40), (16, 16, 16), (8, 28, 28), (4, 52, 52), (2, 52, 52)]
    assert [name for name, _ in named_blocks(model)] == [name for name, _ in shapes]


def test_block_shapes_on_meta_device_and_removes_hooks():
    with torch.device("meta"):
        model = UNet()
        shapes = block_shapes(model, torch.empty(1, 1, 572, 572))
    assert shapes[-1] == ("outc", (1, 2, 388, 388))
    assert shapes[4] == ("downs[3]", (1, 1024, 28, 28))
    assert not any(m._forward_hooks for _, m in named_blocks(model))


def test_cut_skips_feeds_zeros_to_every_up_and_can_be_undone():
    torch.manual_seed(0)
    model = UNet(depth=2, base_channels=4).eval()
    x = torch.randn(1, 1, 92, 92)
    with torch.no_grad():
        intact = model(x)
        handles = cut_skips(model)
        cut = model(x)
        # the same by hand: run the U with zero skips
        h = model.inc(x)
        skips = []
        for down in model.downs:
            skips.append(h)
            h = down(h)
        for up, skip in zip(model.ups, reversed(skips)):
            h = up(h, torch.zeros_like(skip))
        by_hand = model.outc(h)
    assert len(handles) == 2
    assert not torch.allclose(cut, intact)
    assert torch.equal(cut, by_hand)
    for handle in handles:
        handle.remove()
    with torch.no_grad():
        assert torch.equal(model(x), intact)


def test_cut_skips_of_a_net_without_levels_does_nothing():
    assert cut_skips(UNet(depth=0, base_channels=1)) == []


# -- size arithmetic in closed form, argument checks, the size bound, dropout ---------------------

from unet_lib.model import MAX_PARAMETERS, _output_side  # noqa: E402  (the brute-force oracle)


@pytest.mark.parametrize("depth", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_valid_input_sizes_closed_form_matches_brute_force(depth, padding):
    model = UNet(depth=depth, base_channels=1, padding=padding)
    brute = [n for n in range(1, 2500) if _output_side(n, depth, padding) is not None]
    assert model.valid_input_sizes(1, 2499) == brute
    assert model.min_input_size() == brute[0]
    lo, hi = brute[3] - 1, brute[6] + 1   # between valid sizes, for a step > 1
    assert model.valid_input_sizes(lo, hi) == [n for n in brute if lo <= n <= hi]
    assert model.valid_input_sizes(brute[2], brute[2]) == [brute[2]]
    for n in range(1, 400):   # the nearest-valid-size hint agrees with the oracle
        if _output_side(n, depth, padding) is None:
            with pytest.raises(ValueError, match=r"nearest valid sizes: (\d+)") as info:
                model.output_size(n)
            larger = min(m for m in brute if m > n)
            smaller = [m for m in brute if m < n]
            expected = f"{smaller[-1]}, {larger}" if smaller else f"{larger} (the smallest"
            assert f"nearest valid sizes: {expected}" in str(info.value)


def test_valid_input_sizes_of_a_huge_range_is_an_error_not_minutes():
    model = UNet(base_channels=1)
    assert len(model.valid_input_sizes(1, 10**7)) == (10**7 - 188) // 16 + 1
    with pytest.raises(ValueError, match=r"lo=1, hi=1000000000 holds 62,499,989 valid sizes.*188 \+ k \* 16"):
        model.valid_input_sizes(1, 10**9)


@pytest.mark.parametrize("args,error,match", [
    (("a",), TypeError, r"lo must be an integer >= 1, got 'a' \(str\); an input side length in pixels"),
    ((1, 100.0), TypeError, r"hi must be an integer >= 1, got 100.0; an input side length"),
    ((True, 100), TypeError, r"lo must be an integer >= 1, got True; an input side length"),
    ((0, 100), ValueError, r"lo must be an integer >= 1, got 0"),
    ((-5, 100), ValueError, r"lo must be an integer >= 1, got -5"),
    ((300, 200), ValueError, r"hi must be >= lo, got lo=300, hi=200"),
])
def test_valid_input_sizes_rejects_bad_bounds(args, error, match):
    with pytest.raises(error, match=match):
        UNet(base_channels=1).valid_input_sizes(*args)


@pytest.mark.parametrize("kwargs", [
    dict(), dict(batch_norm=True), dict(depth=0, base_channels=3), dict(depth=1, in_channels=3, num_classes=5),
    dict(depth=2, base_channels=5, upsampling="bilinear"), dict(depth=3, base_channels=7, batch_norm=True,
                                                                 upsampling="bilinear", padding="same"),
    dict(depth=5, base_channels=2, in_channels=4), dict(depth=2, base_channels=1, num_classes=1, dropout=0.3),
])
def test_count_parameters_matches_the_built_model(kwargs):
    model = UNet(**kwargs)
    assert UNet.count_parameters(**model.config) == n_params(model)


def test_count_parameters_of_the_paper_network_without_building_it():
    assert UNet.count_parameters() == 31_030_658


@pytest.mark.parametrize("kwargs,match", [
    (dict(depth=12, base_channels=8), r"would have 31,854,568,882 parameters, 127.4 GB of float32 weights"),
    (dict(depth=4, base_channels=4096), r"UNet\(depth=4, base_channels=4096.*GB.*the limit is 1,000,000,000"),
    (dict(depth=40, base_channels=1), r"lower depth or base_channels"),
])
def test_absurd_sizes_are_refused_before_allocating(kwargs, match):
    assert UNet.count_parameters(**kwargs) > MAX_PARAMETERS
    with pytest.raises(ValueError, match=match):
        UNet(**kwargs)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(batch_norm="no"), TypeError, r"batch_norm must be True or False, got 'no' \(str\)"),
    (dict(batch_norm=1), TypeError, r"batch_norm must be True or False, got 1"),
    (dict(depth=True), TypeError, r"depth must be an integer >= 0, got True"),
    (dict(base_channels=False), TypeError, r"base_channels must be an integer >= 1, got False"),
    (dict(base_channels=8.0), TypeError, r"base_channels must be an integer >= 1, got 8.0"),
    (dict(depth=2.5), TypeError, r"depth must be an integer >= 0, got 2.5"),
    (dict(in_channels="3"), TypeError, r"in_channels must be an integer >= 1, got '3' \(str\)"),
    (dict(dropout=1.0), ValueError, r"dropout must be in \[0, 1\) .*got 1.0"),
    (dict(dropout=-0.1), ValueError, r"dropout must be a number >= 0, got -0.1; the probability of zeroing"),
    (dict(dropout=float("nan")), ValueError, r"dropout must be a number >= 0, got nan"),
    (dict(dropout="0.5"), TypeError, r"dropout must be a number >= 0, got '0.5' \(str\)"),
    (dict(dropout=True), TypeError, r"dropout must be a number >= 0, got True"),
])
def test_constructor_rejects_wrong_types(kwargs, error, match):
    with pytest.raises(error, match=match):
        UNet(**{"depth": 1, "base_channels": 2, **kwargs})


def test_numpy_integers_are_accepted_as_plain_ints():
    import numpy as np
    model = UNet(depth=np.int64(1), base_channels=np.int32(2))
    assert model.config["depth"] == 1 and type(model.config["depth"]) is int


def test_dropout_at_the_end_of_the_contracting_path():
    torch.manual_seed(0)
    plain = UNet(depth=2, base_channels=4)
    dropped = UNet(depth=2, base_channels=4, dropout=0.5)
    assert n_params(dropped) == n_params(plain) and dropped.state_dict().keys() == plain.state_dict().keys()
    assert dropped.config["dropout"] == 0.5 and "dropout" not in plain.config   # config unchanged without it
    assert UNet(**dropped.config).dropout.p == 0.5                               # a checkpoint rebuilds it
    dropped.load_state_dict(plain.state_dict())
    x = torch.randn(1, 1, 92, 92)
    with torch.no_grad():
        dropped.train()
        assert not torch.equal(dropped(x), dropped(x))          # a new mask on every call
        dropped.eval()
        assert torch.equal(dropped(x), dropped(x))
        assert torch.equal(dropped(x), plain.eval()(x))          # eval mode: dropout is the identity
    assert n_params(UNet(dropout=0.5)) == 31_030_658


def test_dropout_on_the_bottleneck_only():
    """The contracting path's output is what the dropout sees: a hook on it sees zeros."""
    torch.manual_seed(0)
    model = UNet(depth=2, base_channels=4, dropout=0.5).train()
    seen = []
    model.dropout.register_forward_hook(lambda m, args, out: seen.append((args[0], out)))
    model(torch.randn(1, 1, 92, 92))
    features, out = seen[0]
    assert features.shape == (1, 16, 16, 16)                     # the output of downs[1], the bottleneck
    alive = features != 0                                        # ReLU zeros some already
    assert (out[alive] == 0).float().mean() == pytest.approx(0.5, abs=0.1)
    torch.testing.assert_close(out[alive & (out != 0)], 2 * features[alive & (out != 0)])   # 1 / (1 - p)


def test_receptive_field_refuses_a_meta_model():
    with torch.device("meta"):
        model = UNet(depth=1, base_channels=1)
    with pytest.raises(ValueError, match=r"receptive_field needs a model with real weights .*'meta' device.*block_shapes"):
        receptive_field(model, 26)
    with pytest.raises(TypeError, match=r"receptive_field measures a unet_lib.UNet, got Conv2d"):
        receptive_field(nn.Conv2d(1, 1, 3), 26)


# -- property test (hypothesis): the size arithmetic agrees with running the network ---------

from hypothesis import given, settings, strategies as st   # noqa: E402


@settings(max_examples=25, deadline=None)
@given(depth=st.integers(0, 3), padding=st.sampled_from(["valid", "same"]), n=st.integers(1, 80))
def test_property_output_size_agrees_with_a_forward_pass(depth, padding, n):
    model = UNet(depth=depth, base_channels=1, padding=padding)
    try:
        expected = model.output_size(n)
    except ValueError:
        expected = None                       # the arithmetic says invalid: the network must not run
    if expected is None:
        with pytest.raises((ValueError, RuntimeError)):
            with torch.no_grad():
                model(torch.zeros(1, 1, n, n))
    else:
        with torch.no_grad():
            assert model(torch.zeros(1, 1, n, n)).shape == (1, 2, expected, expected)
