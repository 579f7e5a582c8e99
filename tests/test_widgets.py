"""Tests for unet_lib.widgets: the feature maps behind the explorer, and the explorer's widgets.

The pictures are checked pixel by pixel against matplotlib's colormaps; the feature maps
against running the blocks by hand and against ``tiling.padded_forward``.
"""

import io

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image
from traitlets import TraitError

from unet_lib import ToyCells, UNet
from unet_lib.model import block_shapes, named_blocks
from unet_lib.tiling import context_margin, padded_forward
from unet_lib.widgets import (FeatureMapExplorer, FeatureMaps, average_skips, draw_box, feature_maps, feature_maps_batch,
                              image_box, unet_layers)


def make_model(depth=2, padding="valid", num_classes=2, batch_norm=True, seed=0):
    torch.manual_seed(seed)
    model = UNet(depth=depth, base_channels=4, padding=padding, num_classes=num_classes, batch_norm=batch_norm)
    if batch_norm:   # non-trivial running statistics, as after training
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def make_images(n=3, h=37, w=50, seed=0):
    return torch.rand(n, 1, h, w, generator=torch.Generator().manual_seed(seed))


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def expected_colours(array: np.ndarray, cmap: str, vmin=None, vmax=None) -> np.ndarray:
    """The oracle: matplotlib's own colormap on the array scaled to vmin..vmax (default min..max)."""
    lo = array.min() if vmin is None else vmin
    hi = array.max() if vmax is None else vmax
    norm = (array - lo) / (hi - lo) if hi > lo else np.zeros_like(array)
    return (matplotlib.colormaps[cmap](norm)[..., :3] * 255).round().astype(int)


def shrink(picture: np.ndarray, h: int, w: int) -> np.ndarray:
    """Undo a whole-number nearest-neighbour enlargement: one pixel from each block."""
    k = picture.shape[0] // h
    assert picture.shape[:2] == (h * k, w * k)
    return picture[::k, ::k]


# -- unet_layers, feature_maps ------------------------------------------------------------------

@pytest.mark.parametrize("depth", [0, 1, 3])
def test_unet_layers_follow_named_blocks_with_levels(depth):
    model = UNet(depth=depth, base_channels=4)
    layers = unet_layers(model)
    assert [layer.name for layer in layers] == [name for name, _ in named_blocks(model)]
    assert layers[0].label == "contracting path, level 0 (inc)" and layers[-1].label == "output: logits (outc)"
    if depth:
        assert layers[depth].label == f"bottleneck, level {depth} (downs[{depth - 1}])"
        assert [layer.level for layer in layers] == [*range(depth + 1), *reversed(range(depth)), 0]
        assert layers[depth + 1].label == f"expansive path, level {depth - 1} (ups[0])"


def test_unet_layers_by_hand_depth_2():
    assert [(l.name, l.level) for l in unet_layers(UNet(depth=2, base_channels=1))] == [
        ("inc", 0), ("downs[0]", 1), ("downs[1]", 2), ("ups[0]", 1), ("ups[1]", 0), ("outc", 0)]


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("depth", [0, 2])
def test_feature_maps_are_the_blocks_outputs(depth, padding):
    model = make_model(depth, padding)
    image = make_images(1)[0]                                   # (1, 37, 50): odd sizes
    fm = feature_maps(model, image)
    assert isinstance(fm, FeatureMaps)
    # the logits cover every pixel of the image, exactly as the course's padded forward pass
    torch.testing.assert_close(fm.logits, padded_forward(model, image[None])[0])
    # the shapes are those of block_shapes on what the network saw
    x = fm.input[None]
    assert [(name, (1, *fmap.shape)) for name, fmap in fm.maps.items()] == block_shapes(model, x)
    # and the first block's map is the first block run by hand on that input
    with torch.no_grad():
        torch.testing.assert_close(fm.maps["inc"], model.inc(x)[0])
    # the input is the image mirrored by the context margin: the image sits m pixels in
    h, w, m = *image.shape[-2:], context_margin(model)
    assert torch.equal(fm.input[:, m : m + h, m : m + w], image)
    torch.testing.assert_close(fm.input[:, m - 1, m : m + w], image[:, 1])   # mirrored, edge not repeated


def test_feature_maps_leave_the_model_as_it_was():
    model = make_model(2).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    feature_maps(model, make_images(1)[0])
    assert model.training                                       # mode restored
    for k, v in model.state_dict().items():                     # BatchNorm running stats untouched
        assert torch.equal(v, before[k]), k
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_feature_maps_keep_their_values_when_later_blocks_run_in_place():
    model = make_model(1)
    fm = feature_maps(model, make_images(1)[0])
    assert (fm.maps["inc"] >= 0).all()                          # a ReLU output
    assert fm.maps["inc"].data_ptr() != fm.maps["downs[0]"].data_ptr()


# -- the explorer -------------------------------------------------------------------------------

@pytest.fixture
def explorer():
    return FeatureMapExplorer(make_model(2), make_images(3))


def count_forward_passes(model):
    calls = []
    model.register_forward_pre_hook(lambda module, inputs: calls.append(1))
    return calls


def test_explorer_offers_every_layer_and_clamps_channel_to_the_layer(explorer):
    assert explorer.layer_dropdown.options == tuple((l.label, l.name) for l in unet_layers(explorer.model))
    assert explorer.layer_dropdown.value == "inc" and explorer.channel_slider.value == 0
    assert explorer.channel_slider.max == 3                     # base_channels=4
    explorer.layer_dropdown.value = "downs[1]"                  # the bottleneck: 16 channels
    assert explorer.channel_slider.max == 15
    explorer.channel_slider.value = 12
    explorer.layer_dropdown.value = "outc"                      # 2 channels: the value is clamped
    assert (explorer.channel_slider.max, explorer.channel_slider.value) == (1, 1)
    explorer.layer_dropdown.value = "downs[0]"                  # the channel is kept where it exists
    assert explorer.channel_slider.value == 1


def test_out_of_range_choices_are_impossible(explorer):
    explorer.channel_slider.value = 1000
    assert explorer.channel_slider.value == 3
    explorer.channel_slider.value = -5
    assert explorer.channel_slider.value == 0
    explorer.image_slider.value = 99
    assert explorer.image_slider.value == 2
    with pytest.raises(TraitError, match="Invalid selection"):
        explorer.layer_dropdown.value = "downs[7]"
    with pytest.raises(IndexError, match="image index 3 is out of range; there are 3 images"):
        explorer.maps(3)


def test_channel_view_shows_the_channel_in_its_colormap(explorer):
    explorer.layer_dropdown.value = "downs[0]"
    for c in (0, 5):
        explorer.channel_slider.value = c
        channel = explorer.maps().maps["downs[0]"][c].numpy()
        assert np.array_equal(explorer.current().numpy(), channel)
        picture = decode(explorer.fmap_view.value)
        shown = shrink(picture, *channel.shape)
        frame = shrink((picture == 255).all(-1), *channel.shape)    # the white frame around the image
        assert np.abs(shown - expected_colours(channel, "viridis"))[~frame].max() <= 4
        assert explorer.fmap_title.value == f"<b>downs[0]</b>, channel {c}"


def test_slider_changes_picture_and_statistics_without_rerunning_the_network(explorer):
    calls = count_forward_passes(explorer.model)
    explorer.layer_dropdown.value = "ups[0]"
    picture, stats, grid = explorer.fmap_view.value, explorer.stats.value, explorer.grid_view.value
    explorer.channel_slider.value = 2
    assert explorer.fmap_view.value != picture and explorer.stats.value != stats
    assert explorer.grid_view.value != grid                      # the red frame moved
    channel = explorer.maps().maps["ups[0]"][2].numpy()
    mean = f"{channel.mean():.3g}"
    assert f"{channel.min():.3g} / {mean} / {channel.max():.3g}" in explorer.stats.value
    assert f"({8}, {channel.shape[0]}, {channel.shape[1]})" in explorer.stats.value
    assert f"{(channel > 0).mean():.0%}" in explorer.stats.value
    assert calls == []                                           # cached: no forward pass


def test_precompute_runs_every_image_when_built_in_batches_of_one_size():
    model = make_model(1)
    calls = count_forward_passes(model)
    explorer = FeatureMapExplorer(model, make_images(3))
    assert len(calls) == 1                                       # one batch of 3
    explorer.image_slider.value = 2
    assert len(calls) == 1
    images = [*make_images(2, 20, 24), make_images(1, 16, 16)[0]]
    mixed = FeatureMapExplorer(model, images)
    assert len(calls) == 3                                       # one batch per size
    assert [fm.logits.shape[-2:] for fm in map(mixed.maps, range(3))] == [(20, 24), (20, 24), (16, 16)]
    FeatureMapExplorer(model, make_images(3), precompute=False)
    assert len(calls) == 4                                       # only the image on show


def test_feature_maps_batch_equals_one_image_at_a_time():
    model = make_model(2)
    images = make_images(3)
    for image, fm in zip(images, feature_maps_batch(model, images)):
        one = feature_maps(model, image)
        torch.testing.assert_close(fm.logits, one.logits)
        torch.testing.assert_close(fm.input, one.input)
        for name in one.maps:
            torch.testing.assert_close(fm.maps[name], one.maps[name], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"images must be a \(B, C, H, W\) tensor, got \(1, 37, 50\)"):
        feature_maps_batch(model, images[0])


def test_each_image_runs_the_network_once():
    explorer = FeatureMapExplorer(make_model(2), make_images(3), precompute=False)
    calls = count_forward_passes(explorer.model)
    pictures = explorer.input_view.value, explorer.pred_view.value
    explorer.image_slider.value = 1
    assert len(calls) == 1
    assert (explorer.input_view.value, explorer.pred_view.value) != pictures
    explorer.image_slider.value = 0
    explorer.image_slider.value = 1
    assert len(calls) == 1                                       # both cached now


def test_input_and_prediction_views_by_oracle(explorer):
    explorer.image_slider.value = 2
    image = explorer.images[2][0].numpy()                        # (37, 50)
    assert np.abs(shrink(decode(explorer.input_view.value), *image.shape) - expected_colours(image, "gray")).max() <= 1
    probs = explorer.maps().logits.softmax(0)[1].numpy()         # P(class 1), on a fixed 0..1 scale
    shown = shrink(decode(explorer.pred_view.value), *image.shape)
    assert np.abs(shown - expected_colours(probs, "gray", 0.0, 1.0)).max() <= 1
    assert explorer.input_title.value == "<b>input</b> 37×50"


def test_grid_shows_every_channel_and_frames_the_chosen_one():
    explorer = FeatureMapExplorer(make_model(2), make_images(1), layer="ups[1]", channel=2)
    grid = decode(explorer.grid_view.value)
    fmap = explorer.maps().maps["ups[1]"].numpy()                # (4, h, w)
    tile = min(96, FeatureMapExplorer.GRID_WIDTH // 4 - 2)
    assert grid.shape == (tile + 2, 4 * (tile + 2), 3)
    for c in range(4):
        left = c * (tile + 2)
        frame = grid[0, left + 1]
        assert tuple(frame) == ((220, 30, 30) if c == 2 else (255, 255, 255))
        inner = grid[1 : tile + 1, left + 1 : left + tile + 1]
        rows = np.arange(tile) * fmap.shape[1] // tile
        cols = np.arange(tile) * fmap.shape[2] // tile
        oracle = expected_colours(fmap[c], "viridis")[rows[:, None], cols[None, :]]
        if c == 2:                                               # the frame covers the tile's edge
            inner, oracle = inner[1:-1, 1:-1], oracle[1:-1, 1:-1]
        assert np.abs(inner - oracle).max() <= 4
    assert explorer.grid_title.value == "<b>ups[1]</b>: all 4 channels, each on its own colour scale"


def test_grid_is_capped():
    explorer = FeatureMapExplorer(make_model(2), make_images(1), layer="downs[1]", max_grid_channels=5)
    assert explorer.grid_title.value == "<b>downs[1]</b>: the first 5 of 16 channels, each on its own colour scale"
    explorer.channel_slider.value = 9                            # beyond the grid: nothing to frame, no error
    assert explorer.channel_slider.value == 9


@pytest.mark.parametrize("num_classes, title", [(1, "P(foreground)"), (3, "predicted class")])
def test_prediction_for_one_or_many_classes(num_classes, title):
    explorer = FeatureMapExplorer(make_model(1, "same", num_classes=num_classes), make_images(1, 16, 24))
    assert explorer.pred_title.value == f"<b>prediction</b> {title}"
    assert decode(explorer.pred_view.value).shape[:2] == (16 * 11, 24 * 11)   # scaled so the long side ~256


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("depth", [0, 1, 3])
def test_works_for_any_unet(depth, padding):
    explorer = FeatureMapExplorer(make_model(depth, padding, batch_norm=False), make_images(2, 33, 29))
    for layer in unet_layers(explorer.model):
        explorer.layer_dropdown.value = layer.name
        explorer.channel_slider.value = explorer.channel_slider.max
        assert explorer.current().shape == explorer.maps().maps[layer.name].shape[1:]
    assert explorer.maps().logits.shape == (2, 33, 29)


def test_accepts_dataset_items_numpy_and_single_images():
    model = make_model(1)
    images = make_images(2)
    items = [{"image": images[0], "mask": None}, {"image": images[1], "mask": None}]
    assert len(FeatureMapExplorer(model, items).images) == 2
    assert len(FeatureMapExplorer(model, images.numpy()).images) == 2
    dataset = ToyCells(2, size=48, seed=5)                       # a Dataset of such items
    explorer = FeatureMapExplorer(model, dataset)
    assert all(torch.equal(a, dataset[i]["image"]) for i, a in enumerate(explorer.images))
    one = FeatureMapExplorer(model, images[0, 0])               # a single (H, W) image
    assert len(one.images) == 1 and one.image_slider.disabled


def test_css_classes_and_repr(explorer):
    assert "unet-explorer" in explorer._dom_classes
    parts = {"image": explorer.image_slider, "layer": explorer.layer_dropdown, "channel": explorer.channel_slider,
             "input": explorer.input_view, "fmap": explorer.fmap_view, "pred": explorer.pred_view,
             "grid": explorer.grid_view, "stats": explorer.stats}
    for css, part in parts.items():
        assert f"unet-explorer-{css}" in part._dom_classes
    assert repr(explorer) == "FeatureMapExplorer(3 images, 6 layers, depth=2, padding='valid')"


# -- errors --------------------------------------------------------------------------------------

class FakeCheckpoint:
    model = None


@pytest.mark.parametrize("model, images, kwargs, error, match", [
    (torch.nn.Conv2d(1, 1, 1), None, {}, TypeError, "expected a unet_lib.UNet, got Conv2d"),
    (FakeCheckpoint(), None, {}, TypeError, r"got FakeCheckpoint \(a Checkpoint\? pass checkpoint.model\)"),
    (None, [], {}, ValueError, "images is empty"),
    (None, 3.0, {}, TypeError, "images must be a tensor .* got float"),
    (None, torch.rand(2, 3, 16, 16), {}, ValueError, r"images\[0\] must have shape \(1, H, W\) .* got \(3, 16, 16\)"),
    (None, torch.zeros(2, 1, 16, 16, dtype=torch.uint8), {}, TypeError, r"must be a float tensor, got torch.uint8"),
    (None, [torch.rand(1, 16, 16), "cat.png"], {}, TypeError, r"images\[1\] must be a torch.Tensor or numpy array"),
    (None, None, {"layer": "bottleneck"}, ValueError, r"layer='bottleneck' is not a layer .* choose one of inc, "),
    (None, None, {"cmap": "rainbowz"}, ValueError, "cmap='rainbowz' is not a matplotlib colormap"),
    (None, None, {"max_grid_channels": 0}, ValueError, "max_grid_channels must be an integer >= 1, got 0"),
])
def test_explorer_errors(model, images, kwargs, error, match):
    model = make_model(1) if model is None else model
    images = make_images(2, 16, 16) if images is None else images
    with pytest.raises(error, match=match):
        FeatureMapExplorer(model, images, **kwargs)


def test_feature_maps_errors():
    with pytest.raises(ValueError, match=r"image must have shape \(1, H, W\) .* got \(1, 1, 16, 16\)"):
        feature_maps(make_model(1), torch.rand(1, 1, 16, 16))
    with pytest.raises(TypeError, match="expected a unet_lib.UNet"):
        unet_layers("unet")


# -- where the image lies on a feature map --------------------------------------------------------

def test_image_box_by_hand_depth_2():
    # depth 2, valid: a 37x50 image is mirror-padded by the context margin, 20 px, to an 80x92 input
    fm = feature_maps(make_model(2), make_images(1)[0])
    assert tuple(fm.input.shape[-2:]) == (80, 92) and context_margin(make_model(2)) == 20
    # inc: 76x88 at level 0, 2 px cropped per side -> image rows 20 - 2 .. 57 - 2
    assert image_box((76, 88), (80, 92), (37, 50), 20, 0) == (18, 18, 55, 68)
    # downs[0]: 34x40 at level 1 covers input 6 .. 74 and 6 .. 86 -> (20 - 6) / 2 .. (57 - 6) / 2
    assert image_box((34, 40), (80, 92), (37, 50), 20, 1) == (7, 7, 25.5, 32)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_image_box_of_the_output_is_what_padded_forward_keeps(padding):
    model = make_model(2, padding)
    fm = feature_maps(model, make_images(1)[0])
    outc = fm.maps["outc"]
    top, left, bottom, right = image_box(outc.shape[-2:], fm.input.shape[-2:], fm.logits.shape[-2:],
                                         context_margin(model), 0)
    torch.testing.assert_close(outc[:, int(top) : int(bottom), int(left) : int(right)], fm.logits)


def test_draw_box_by_hand():
    rgb = np.zeros((6, 8, 3), np.uint8)
    boxed = draw_box(rgb, (1, 1, 4, 3), scale=2, width=1)          # map pixels 1..4 x 1..3 -> 2..8 x 2..6
    expected = np.zeros((6, 8), bool)
    expected[2, 2:6] = expected[2:6, 2] = expected[2:6, 5] = True    # top, left, right; the bottom (row 8) is outside
    np.testing.assert_array_equal((boxed == 255).all(-1), expected)
    assert rgb.max() == 0                                             # a copy: the input is unchanged
    np.testing.assert_array_equal(draw_box(rgb, (-5, -5, -1, -1), scale=2), rgb)   # wholly outside: nothing


def test_channel_view_frames_the_image(explorer):
    explorer.layer_dropdown.value = "inc"
    fm = explorer.maps()
    channel = fm.maps["inc"][0]
    picture = decode(explorer.fmap_view.value)
    k = picture.shape[0] // channel.shape[0]
    top, left, bottom, right = (round(v * k) for v in image_box(
        channel.shape, fm.input.shape[-2:], fm.logits.shape[-2:], context_margin(explorer.model), 0))
    white = (picture == 255).all(-1)
    assert white[top, left:right].all() and white[bottom - 1, left:right].all()
    assert white[top:bottom, left].all() and white[top:bottom, right - 1].all()
    assert "white frame" in explorer.stats.value


def test_explorer_names_the_layers_and_refuses_empty_or_nan_images():
    model = UNet(depth=1, base_channels=1)
    explorer = FeatureMapExplorer(model, torch.rand(1, 1, 20, 20))
    with pytest.raises(TraitError, match=r"Invalid selection: layer 'bottleneck' is not a layer of this U-Net; "
                                         r"choose one of inc, downs\[0\], ups\[0\], outc"):
        explorer.layer_dropdown.value = "bottleneck"
    with pytest.raises(ValueError, match=r"images\[0\] must have H, W >= 1 .* got shape \(1, 0, 0\)"):
        FeatureMapExplorer(model, torch.zeros(1, 1, 0, 0))
    with pytest.raises(ValueError, match=r"image must be finite, got 1 NaN value among its 400"):
        feature_maps(model, torch.rand(1, 20, 20).index_put_((torch.tensor(0), torch.tensor(3), torch.tensor(4)),
                                                            torch.tensor(float("nan"))))


# -- average_skips --------------------------------------------------------------------------------

def _skips_seen(model, x, blocks=None):
    """What each Up block receives as its skip: (before, after) ``average_skips(model, blocks)``."""
    before, after = {}, {}
    spies = [up.register_forward_pre_hook(lambda m, args, j=j: before.__setitem__(j, args[1].clone()))
             for j, up in enumerate(model.ups)]
    handles = average_skips(model, blocks)
    spies += [up.register_forward_pre_hook(lambda m, args, j=j: after.__setitem__(j, args[1].clone()))
              for j, up in enumerate(model.ups)]   # pre-hooks run in order: these see the replaced skip
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for handle in handles + spies:
            handle.remove()
    return before, after, out


def test_average_skips_replaces_each_skip_by_its_block_means():
    model = make_model(depth=2)
    x = make_images(1, 60, 68)
    before, after, _ = _skips_seen(model, x)
    for j, factor in ((0, 2), (1, 4)):   # ups[j]: 2**(j + 1) x 2**(j + 1) blocks
        skip, averaged = before[j][0, 0].numpy(), after[j][0, 0].numpy()
        assert averaged.shape == skip.shape
        h, w = skip.shape
        for top in range(0, h, factor):
            for left in range(0, w, factor):   # the last blocks are partial (ceil): their own mean
                block = skip[top : top + factor, left : left + factor]
                np.testing.assert_allclose(averaged[top : top + factor, left : left + factor], block.mean(),
                                           rtol=1e-5, atol=1e-6)


def test_average_skips_by_hand_on_a_small_map():
    model = make_model(depth=1)
    skip = torch.tensor([[1.0, 3.0, 5.0], [5.0, 7.0, 9.0], [0.0, 2.0, 4.0]])[None, None]   # (1, 1, 3, 3)
    (handle,) = average_skips(model)
    try:
        # call the hook directly: ups[0]'s factor is 2; 2x2 blocks, the last row and column partial
        _, averaged = model.ups[0]._forward_pre_hooks[handle.id](model.ups[0], (torch.zeros(1), skip))
    finally:
        handle.remove()
    assert averaged.tolist() == [[[[4.0, 4.0, 7.0], [4.0, 4.0, 7.0], [1.0, 1.0, 4.0]]]]


def test_average_skips_hooks_only_the_chosen_blocks_and_removes_cleanly():
    model = make_model(depth=2)
    x = make_images(1, 60, 68)
    with torch.no_grad():
        plain = model(x)
    before, after, out = _skips_seen(model, x, ["ups[1]"])
    assert torch.equal(before[0], after[0]) and not torch.equal(before[1], after[1])
    assert not torch.equal(out, plain)
    assert all(not up._forward_pre_hooks for up in model.ups)
    with torch.no_grad():
        assert torch.equal(model(x), plain)   # removing the handles restores the skips
    assert len(average_skips(model, "ups[0]")) == 1   # one name as a string
    for up in model.ups:
        up._forward_pre_hooks.clear()


@pytest.mark.parametrize("blocks, match", [
    (["ups[2]"], r"blocks='ups\[2\]' is not an Up block of this U-Net; choose from ups\[0\], ups\[1\]"),
    (["downs[0]"], r"blocks='downs\[0\]' is not an Up block"),
])
def test_average_skips_names_the_blocks_it_accepts(blocks, match):
    with pytest.raises(ValueError, match=match):
        average_skips(make_model(depth=2), blocks)


def test_average_skips_needs_a_unet():
    with pytest.raises(TypeError, match="expected a unet_lib.UNet"):
        average_skips(torch.nn.Conv2d(1, 1, 3))
