"""Tests for unet_lib.viz: the source listing notebooks show, and the figure helpers."""

import copy
import inspect
import re
import time
from collections import Counter

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.patches import Rectangle
from torch import nn

from unet_lib.blocks import DoubleConv, center_crop
from unet_lib.model import UNet, block_shapes
from unet_lib.viz import (COURSE_DPI, draw_unet, label_colours, plot_history, show_feature_maps, show_images,
                          show_source, use_course_style)


def test_show_source_is_the_library_code():
    src = show_source(center_crop)
    assert repr(src) == inspect.getsource(center_crop)
    assert repr(src).startswith("def center_crop(")


def test_show_source_renders_highlighted_html():
    html = show_source(DoubleConv)._repr_html_()
    assert "<pre" in html and "DoubleConv" in html
    assert "<span" in html    # highlighted, not plain text


def test_show_images_accepts_torch_and_numpy():
    fig = show_images([torch.rand(1, 8, 8), np.zeros((8, 8)), torch.rand(3, 8, 8)], titles=["a", "b", "c"], colorbar=True)
    assert [ax.get_title() for ax in fig.axes[:3]] == ["a", "b", "c"]
    assert len(fig.axes) == 6    # three images, three colour bars


def test_label_colours_black_background_and_distinct_colours():
    labels = np.arange(64).reshape(8, 8)          # background and 63 objects
    rgb = label_colours(labels)
    assert rgb.shape == (8, 8, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert (rgb[0, 0] == 0).all()                 # background black
    colours = {tuple(np.round(c, 6)) for c in rgb.reshape(-1, 3)[1:]}
    assert len(colours) == 63                     # every object its own colour (tab20 repeats after 20)
    assert rgb.reshape(-1, 3)[1:].max(axis=1).min() >= 0.85   # bright on black
    np.testing.assert_array_equal(label_colours(torch.tensor([[0, 5]]))[0, 1], rgb[0, 5])   # same id, same colour


@pytest.mark.parametrize("bad, match", [(np.zeros((2, 3, 4)), "label image"), (np.full((3, 3), 0.5), "integer"),
                                        (-np.ones((3, 3)), "integer")])
def test_label_colours_refuses_what_is_not_a_label_image(bad, match):
    with pytest.raises(ValueError, match=match):
        label_colours(bad)


def test_show_images_labels_panel_and_colour_bars_per_panel():
    fig = show_images([np.random.rand(6, 6), np.array([[0, 1], [2, 3]])], ["image", "labels"],
                      cmap=["gray", "labels"], colorbar=[True, False])
    assert len(fig.axes) == 3                     # two panels and one colour bar
    assert (fig.axes[1].images[0].get_array()[0, 0] == 0).all()
    plt.close(fig)
    with pytest.raises(ValueError, match="2 images but 1 cmaps"):
        show_images([np.zeros((2, 2))] * 2, cmap=["gray"])


def test_use_course_style_sets_a_readable_resolution():
    with plt.rc_context():
        use_course_style()
        assert plt.rcParams["figure.dpi"] == COURSE_DPI and plt.rcParams["xtick.labelsize"] >= 8


def test_show_feature_maps_shows_at_most_max_channels():
    fig = show_feature_maps(torch.rand(1, 20, 6, 6), max_channels=10, cols=4)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 10
    assert shown[-1].get_title() == "ch 9"


def test_plot_history_draws_one_panel_per_metric():
    history = {"epoch": [1, 2], "train_loss": [0.6, 0.3], "seconds": [1.0, 2.0], "val_loss": [0.5, 0.4],
               "val_iou": [0.7, 0.8], "val_f1": [0.6, 0.9], "val_merged": [3, 1], "val_split": [0, 0]}
    fig = plot_history(history)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "validation foreground IoU", "validation instance F1"]
    assert len(fig.axes[0].lines) == 2
    assert list(fig.axes[2].lines[0].get_ydata()) == [0.6, 0.9]


def test_plot_history_without_validation_shows_the_loss_only():
    fig = plot_history({"epoch": [1], "train_loss": [0.5], "seconds": [1.0]})
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 1


@pytest.mark.parametrize("epochs", [2, 3, 7])
def test_plot_history_ticks_whole_epochs_only(epochs):
    history = {"epoch": list(range(1, epochs + 1)), "train_loss": [1.0 / e for e in range(1, epochs + 1)],
               "val_loss": [0.5] * epochs, "val_iou": [0.5] * epochs}
    fig = plot_history(history)
    fig.canvas.draw()
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), (ax.get_title(), ticks)
    plt.close(fig)


def test_plot_history_rejects_an_empty_history():
    with pytest.raises(ValueError, match="the history has no epochs; pass the dict that fit returns"):
        plot_history({"epoch": []})


# -- draw_unet ----------------------------------------------------------------------------------
# Oracles: block_shapes (each block's output) and forward hooks on every convolution, up-conv and
# pooling layer of a meta copy of the model, which see every feature map that Fig. 1 draws.

@pytest.fixture(scope="module")
def paper_net():
    return UNet()


def _labels(fig):
    """(size labels, channel labels) that draw_unet wrote: the sizes upright, the channels level."""
    texts = fig.axes[0].texts
    return ([t.get_text() for t in texts if t.get_rotation() == 90],
            [t.get_text() for t in texts if t.get_rotation() == 0])


def _oracle(model, size):
    """The sizes ("H x W", one per feature map of Fig. 1) and the set of channel counts, from hooks on
    the layers of a meta copy: the input, each conv / up-conv / pooling output (the 1x1 conv of
    bilinear upsampling is the up-conv, the concatenation has the up-conv's size)."""
    meta = copy.deepcopy(model).to("meta")
    shapes = []
    for module in meta.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d)):
            module.register_forward_hook(lambda m, args, out: shapes.append(tuple(out.shape[1:])))
    meta(torch.empty(1, model.in_channels, *size, device="meta"))
    shapes.insert(0, (model.in_channels, *size))
    return Counter(f"{h} x {w}" for _, h, w in shapes), {str(c) for c, _, _ in shapes}


def _block_outputs(model, size):
    meta = copy.deepcopy(model).to("meta")
    return dict(block_shapes(meta, torch.empty(1, model.in_channels, *size, device="meta")))


def _assert_nothing_overlaps(fig):
    """No label overlaps another label, a box or the legend; the legend overlaps no box."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    texts = [t.get_window_extent(renderer).expanded(0.98, 0.98) for t in ax.texts]
    boxes = [p.get_window_extent(renderer) for p in ax.patches if isinstance(p, Rectangle)]
    legend = ax.get_legend().get_window_extent(renderer)
    for i, a in enumerate(texts):
        assert not any(a.overlaps(b) for b in texts[i + 1:]), f"label {ax.texts[i].get_text()!r} overlaps a label"
        assert not any(a.overlaps(b) for b in boxes), f"label {ax.texts[i].get_text()!r} overlaps a box"
        assert not a.overlaps(legend), f"label {ax.texts[i].get_text()!r} overlaps the legend"
    assert not any(legend.overlaps(b) for b in boxes), "the legend overlaps a box"
    inside = fig.bbox
    for t, extent in zip(ax.texts, texts):
        assert inside.contains(extent.x0, extent.y0) and inside.contains(extent.x1, extent.y1), \
            f"label {t.get_text()!r} is cut off"


def test_draw_unet_paper_network_labels_are_what_the_model_reports(paper_net):
    fig = draw_unet(paper_net, 572)
    sizes, channels = _labels(fig)
    numbers = {int(n) for t in fig.findobj(plt.Text) for n in re.findall(r"\d+", t.get_text())}
    assert {572, 388, 64, 1024, 28} <= numbers                 # the paper's tile, output, widths, bottom
    outputs = _block_outputs(paper_net, (572, 572))
    assert outputs["downs[3]"] == (1, 1024, 28, 28)            # the bottleneck, as Fig. 1 has it
    for name, (_, c, h, w) in outputs.items():
        assert f"{h} x {w}" in sizes and str(c) in channels, name
    expected_sizes, expected_channels = _oracle(paper_net, (572, 572))
    assert Counter(sizes) == expected_sizes
    assert set(channels) == expected_channels == {"1", "64", "128", "256", "512", "1024", "2"}
    # Fig. 1, read off the paper: the first level and the output
    assert {"572 x 572", "570 x 570", "568 x 568", "392 x 392", "390 x 390", "388 x 388"} <= set(sizes)
    assert fig.axes[0].get_title().startswith("U-Net (depth 4, 64 base channels, valid padding): input 572 x 572, "
                                              "output 388 x 388")
    assert 10 <= fig.get_figwidth() <= 13 and 6 <= fig.get_figheight() <= 8   # about (12, 7)
    _assert_nothing_overlaps(fig)
    fig.savefig("/tmp/unet_paper.png", dpi=100)
    plt.close(fig)


@pytest.mark.parametrize("input_size", [220, 348])
def test_draw_unet_course_model_labels_are_what_the_model_reports(input_size):
    model = UNet(depth=3, base_channels=16, batch_norm=True)
    fig = draw_unet(model, input_size)
    sizes, channels = _labels(fig)
    expected_sizes, expected_channels = _oracle(model, (input_size, input_size))
    assert Counter(sizes) == expected_sizes
    assert set(channels) == expected_channels
    out = model.output_size(input_size)
    assert f"{out} x {out}" in sizes and f"{input_size} x {input_size}" in sizes
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "conv 3x3, BatchNorm, ReLU" in legend and "copy and crop" in legend
    _assert_nothing_overlaps(fig)
    if input_size == 220:
        fig.savefig("/tmp/unet_course.png", dpi=100)
    plt.close(fig)


@pytest.mark.parametrize("depth", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
def test_draw_unet_any_depth_padding_and_upsampling(depth, padding, upsampling):
    model = UNet(in_channels=3, num_classes=5, depth=depth, base_channels=4, padding=padding, upsampling=upsampling)
    size = model.min_input_size() + 2**depth   # the second valid size
    fig = draw_unet(model, size)
    sizes, channels = _labels(fig)
    # a box per map: input, 2 convs per level and per up, a pooling and a concatenation per level, output
    assert len(sizes) == 4 + 6 * depth and len(channels) == 4 + 5 * depth
    expected_sizes, expected_channels = _oracle(model, (size, size))
    assert Counter(sizes) == expected_sizes and set(channels) == expected_channels
    if padding == "same":
        assert set(sizes) == {f"{size // 2**k} x {size // 2**k}" for k in range(depth + 1)}
    _assert_nothing_overlaps(fig)
    plt.close(fig)


def test_draw_unet_rectangular_input_writes_height_by_width():
    model = UNet(depth=2, base_channels=4)
    fig = draw_unet(model, (60, 92))
    sizes, _ = _labels(fig)
    assert Counter(sizes) == _oracle(model, (60, 92))[0]
    assert "60 x 92" in sizes and "20 x 52" in sizes
    plt.close(fig)


def _emphasised(fig):
    """The boxes draw_unet drew at full strength, as (x, y) of their lower left corners."""
    return {(p.get_x(), p.get_y()) for p in fig.axes[0].patches if isinstance(p, Rectangle) and p.get_alpha() == 1}


def test_draw_unet_highlight_emphasises_the_named_blocks_and_fades_the_rest():
    model = UNet(depth=3, base_channels=4)
    plain = draw_unet(model, 92)
    boxes = [p for p in plain.axes[0].patches if isinstance(p, Rectangle)]
    assert len(boxes) == 4 + 7 * 3 and len(_emphasised(plain)) == len(boxes)   # nothing faded without highlight
    counts = {"inc": 3,                         # the input and the two convs
              "downs[0]": 3,                    # a pooling and two convs
              "bottleneck": 3,
              "contracting": 3 + 3 * 2,
              "ups[0]": 4,                      # the up-conv, the copy, two convs
              "outc": 1,
              "expansive": 4 * 3 + 1,
              "skips": 3 + 3,                   # the copied maps and where they come from
              ("inc", "ups[2]"): 3 + 4}
    for highlight, count in counts.items():
        fig = draw_unet(model, 92, highlight=list(highlight) if isinstance(highlight, tuple) else highlight)
        assert len(_emphasised(fig)) == count, highlight
        assert "highlighted: " in fig.axes[0].get_title()
        plt.close(fig)
    # "bottleneck" is the last Down block
    assert _emphasised(draw_unet(model, 92, highlight="bottleneck")) == _emphasised(
        draw_unet(model, 92, highlight="downs[2]"))
    plt.close("all")


def test_draw_unet_highlight_of_an_unknown_name_lists_the_names():
    with pytest.raises(ValueError, match=r"highlight='down\[0\]' is not a block or a part of this U-Net; use one of "
                                         r"the blocks inc, downs\[0\], downs\[1\], ups\[0\], ups\[1\], outc or the "
                                         r"parts contracting, bottleneck, expansive, skips"):
        draw_unet(UNet(depth=2, base_channels=4), 44, highlight="down[0]")
    with pytest.raises(ValueError, match="'ups\\[3\\]' is not a block"):
        draw_unet(UNet(depth=2, base_channels=4), 44, highlight=["inc", "ups[3]"])
    with pytest.raises(TypeError, match="highlight must be a block name, a part or a list of them, got 3"):
        draw_unet(UNet(depth=2, base_channels=4), 44, highlight=3)
    with pytest.raises(ValueError, match="highlight is an empty list; name a block or a part, or pass None"):
        draw_unet(UNet(depth=2, base_channels=4), 44, highlight=[])


def test_draw_unet_refuses_a_model_that_is_not_a_unet():
    with pytest.raises(TypeError, match="model must be a unet_lib.UNet, got .*Conv2d"):
        draw_unet(nn.Conv2d(1, 2, 3), 572)


def test_draw_unet_refuses_an_invalid_input_size(paper_net):
    with pytest.raises(ValueError, match="input height 570 is not valid for depth=4, padding='valid'; nearest "
                                         "valid sizes: 556, 572"):
        draw_unet(paper_net, 570)
    with pytest.raises(ValueError, match=r"input_size must be an int or \(height, width\), got \(572, 572, 1\)"):
        draw_unet(paper_net, (572, 572, 1))


def test_draw_unet_computes_nothing_and_leaves_the_model_alone(paper_net):
    calls = []
    handle = paper_net.register_forward_hook(lambda *args: calls.append(1))
    before = {k: v.clone() for k, v in list(paper_net.state_dict().items())[:2]}
    try:
        plt.close(draw_unet(paper_net, 572))                       # warm up torch's meta kernels
        start = time.perf_counter()
        fig = draw_unet(paper_net, 4092)                           # a real forward pass would take minutes
        seconds = time.perf_counter() - start
    finally:
        handle.remove()
    assert seconds < 2.0
    assert "4092 x 4092" in _labels(fig)[0]
    assert calls == [] and next(paper_net.parameters()).device.type == "cpu"
    assert all(torch.equal(paper_net.state_dict()[k], v) for k, v in before.items())
    plt.close(fig)


def test_draw_unet_draws_into_given_axes_with_a_title():
    fig, ax = plt.subplots(figsize=(12, 7))
    assert draw_unet(UNet(depth=2, base_channels=4), 44, ax=ax, title="where we are") is fig
    assert ax.get_title() == "where we are" and len(ax.texts) > 0
    plt.close(fig)


# -- notebook 04: the crop that aligns a skip with the upsampled map ------------------------------

def _skip_and_up(odd: bool = False):
    """A skip and the up-convolved map of the top level of a small U-Net, from hooks."""
    torch.manual_seed(0)
    net = UNet(depth=1, base_channels=2).eval()
    captured = {}
    handle = net.ups[0].register_forward_pre_hook(lambda module, args: captured.update(x=args[0], skip=args[1]))
    with torch.no_grad():
        net(torch.rand(1, 1, 20, 22))
        up = net.ups[0].up(captured["x"])
    handle.remove()
    skip = captured["skip"]
    if odd:
        skip = torch.cat([skip, skip[..., -1:, :]], dim=-2)     # one row more: an odd difference
    return skip, up


@pytest.mark.parametrize("odd", [False, True])
def test_draw_skip_crop_draws_the_window_that_center_crop_keeps(odd):
    from unet_lib.viz import draw_skip_crop
    skip, up = _skip_and_up(odd)
    (H, _), (h, w) = skip.shape[-2:], up.shape[-2:]
    fig = draw_skip_crop(skip, up, skip_channel=1, x_channel=0)
    window = [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]
    assert len(window) == 1
    (x0, y0), width, height = window[0].get_xy(), window[0].get_width(), window[0].get_height()
    top, left = round(y0 + 0.5), round(x0 + 0.5)
    # the window's pixels are exactly what center_crop keeps
    assert (width, height) == (w, h)
    assert torch.equal(skip[..., top:top + h, left:left + w], center_crop(skip, (h, w)))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert f"{top} rows off" in texts and f"{H - top - h} rows off" in texts and f"{left} columns off" in texts
    assert (H - top - h) - top == (1 if odd else 0)                  # the extra row goes at the bottom
    # the cropped panel shows channel 1 of the crop, on the skip's colour scale; the overlay the two parts
    shown = fig.axes[1].images[0]
    assert np.array_equal(shown.get_array(), center_crop(skip, (h, w))[0, 1].numpy())
    assert shown.get_clim() == fig.axes[0].images[0].get_clim()
    assert fig.axes[3].images[0].get_array().shape == (h, w, 3)
    assert f"{skip.shape[1]} + {up.shape[1]} = {skip.shape[1] + up.shape[1]} channels" in fig.axes[3].get_title()
    assert all(ax.get_title() for ax in fig.axes)
    plt.close(fig)


def test_draw_skip_crop_picks_the_most_varied_channel():
    from unet_lib.viz import draw_skip_crop
    skip, up = _skip_and_up()
    skip = skip.clone()
    skip[:, 0] = 0.0                                                 # a flat channel
    skip[:, 1] = torch.arange(skip[0, 1].numel()).reshape(skip.shape[-2:]).float()
    fig = draw_skip_crop(skip, up)
    assert "magenta: ch 1" in fig.axes[3].get_title()
    plt.close(fig)


@pytest.mark.parametrize("args, match", [
    (lambda s, u: (s[0], u), r"skip must be a \(B, C, H, W\) tensor, got \(2, 16, 18\)"),
    (lambda s, u: (u, s), r"x \(16x18\) must not be larger than skip \(8x10\)"),
    (lambda s, u: (s, u, 5), r"skip_channel must be in 0..1, got 5"),
])
def test_draw_skip_crop_refuses_bad_input(args, match):
    from unet_lib.viz import draw_skip_crop
    skip, up = _skip_and_up()
    with pytest.raises(ValueError, match=match):
        draw_skip_crop(*args(skip, up))

# -- your own images: outlines (#21) --

def _outlines_by_brute_force(labels: np.ndarray) -> np.ndarray:
    """Pixel by pixel: an object pixel with a 4-neighbour inside the image of another label."""
    h, w = labels.shape
    out = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            if labels[y, x] == 0:
                continue
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and labels[ny, nx] != labels[y, x]:
                    out[y, x] = True
    return out


def test_outlines_are_the_label_boundaries():
    from unet_lib.data import draw_cells
    from unet_lib.viz import outlines
    _, instances = draw_cells(40, np.random.default_rng(1), n_cells=(6, 6), radius=(5.0, 8.0))   # touching cells
    instances = np.where(instances > 0, instances * 7 + 100, 0)            # ids with gaps
    np.testing.assert_array_equal(outlines(instances), _outlines_by_brute_force(instances))
    by_hand = np.zeros((5, 7), np.int64)
    by_hand[1:4, 0:3], by_hand[1:4, 3:6] = 1, 2                            # two touching 3x3 squares, one at the edge
    assert outlines(by_hand).astype(int).tolist() == [[0, 0, 0, 0, 0, 0, 0],
                                                     [1, 1, 1, 1, 1, 1, 0],
                                                     [0, 0, 1, 1, 0, 1, 0],   # open at the edge x = 0
                                                     [1, 1, 1, 1, 1, 1, 0],
                                                     [0, 0, 0, 0, 0, 0, 0]]


def test_the_overlay_draws_exactly_the_outlines_in_their_colours(tmp_path):
    import imageio.v3 as iio
    from unet_lib.data import draw_cells
    from unet_lib.viz import OUTLINE_COLOURS, draw_outlines, outlines, write_overlay
    image, truth = draw_cells(48, np.random.default_rng(2), n_cells=(5, 5), radius=(5.0, 8.0))
    pred = np.roll(truth, 1, axis=1)                                       # a prediction one pixel off
    raw = (image * 40000 + 100).astype(np.uint16)                          # as a microscope writes it
    rgb = draw_outlines(raw, pred, truth)
    ours, theirs = outlines(pred), outlines(truth)
    for key, where in (("prediction", ours & ~theirs), ("truth", theirs & ~ours), ("both", ours & theirs)):
        assert where.any()
        np.testing.assert_array_equal((rgb == OUTLINE_COLOURS[key]).all(-1), where)
    rest = ~(ours | theirs)
    grey = np.round(np.clip((image - np.percentile(image, 1)) / (np.percentile(image, 99.8) - np.percentile(image, 1)),
                            0, 1) * 255)
    assert (rgb[rest] == rgb[rest][:, :1]).all()                           # grey: R = G = B
    assert np.abs(rgb[rest][:, 0].astype(int) - grey[rest]).max() <= 1    # the image, stretched as the U-Net sees it
    alone = draw_outlines(raw[None], pred)                                 # (C, H, W), no truth: magenta only
    np.testing.assert_array_equal((alone == OUTLINE_COLOURS["prediction"]).all(-1), ours)
    path = write_overlay(tmp_path / "cell_overlay.png", raw, pred, truth)
    np.testing.assert_array_equal(iio.imread(path), rgb)
    with pytest.raises(FileExistsError, match="exists; no command overwrites work it did not create"):
        write_overlay(path, raw, pred)
    write_overlay(path, raw, pred, overwrite=True)
    np.testing.assert_array_equal(iio.imread(path), alone)
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(IsADirectoryError, match=r"folder\.png is a folder; give a file name inside it"):
        write_overlay(tmp_path / "folder.png", raw, pred, overwrite=True)
    with pytest.raises(TypeError, match=r"path must be a file name \(str or pathlib.Path\), got 3"):
        write_overlay(3, raw, pred)
    colour = np.stack([raw, raw // 2, raw // 3])                           # 3 channels: shown as RGB
    assert not (draw_outlines(colour, pred)[rest] == draw_outlines(colour, pred)[rest][:, :1]).all()


@pytest.mark.parametrize("call, error, match", [
    (lambda f: f.draw_outlines(np.zeros((8, 8)), np.zeros((8, 9), int)), ValueError, r"pred is 8x9 but the image is 8x8"),
    (lambda f: f.draw_outlines(np.zeros((8, 8)), np.zeros((8, 8), int), np.zeros((7, 8), int)), ValueError,
     r"instances is 7x8 but the image is 8x8"),
    (lambda f: f.draw_outlines(np.zeros((8, 8)), np.zeros((8, 8))), TypeError, r"labels must .*integer"),
    (lambda f: f.draw_outlines(np.zeros((2, 2, 8, 8)), np.zeros((8, 8), int)), ValueError, r"image must be a real \(H, W\) or \(C, H, W\)"),
    (lambda f: f.write_overlay("x.tif", np.zeros((8, 8)), np.zeros((8, 8), int)), ValueError, r"path x\.tif must end in \.png"),
])
def test_overlay_errors(call, error, match):
    from unet_lib import viz
    with pytest.raises(error, match=match):
        call(viz)

# -- notebook 03: a transposed convolution paints overlapping kernels --

import torch.nn.functional as F

from unet_lib.viz import painted_kernels, show_transposed_conv


def test_painted_kernels_by_hand_kernel_3_stride_2():
    x, kernel = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.ones(3, 3)
    parts = painted_kernels(x, kernel, stride=2)
    per_side = torch.tensor([1, 1, 2, 1, 1])                        # the middle column is painted twice
    assert torch.equal(parts.counts, per_side[:, None] * per_side[None, :])
    assert parts.output[2, 2] == 1 + 2 + 3 + 4                       # all four kernels overlap there
    assert torch.equal(parts.painted[1, :3, 2:], 2 * kernel)         # x[0, 1] = 2, painted at (0, 2)
    assert parts.painted[1].sum() == 2 * 9 and not parts.footprints[1, 3:].any()
    assert torch.equal(parts.painted.sum(0), parts.output)
    assert torch.equal(parts.output, F.conv_transpose2d(x[None, None], kernel[None, None], stride=2)[0, 0])


def test_painted_kernels_of_the_papers_up_convolution_do_not_overlap():
    parts = painted_kernels(torch.tensor([[1.0, 10.0]]), torch.tensor([[1.0, 2.0], [3.0, 4.0]]), stride=2)
    assert parts.counts.eq(1).all() and parts.output.tolist() == [[1, 2, 10, 20], [3, 4, 30, 40]]
    gaps = painted_kernels(torch.ones(2, 2), torch.ones(1, 1), stride=2)   # kernel smaller than the stride
    assert gaps.counts.tolist() == [[1, 0, 1], [0, 0, 0], [1, 0, 1]]


def _cell_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_show_transposed_conv_draws_each_painted_kernel_and_the_counts():
    x, kernel = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.ones(3, 3)
    fig = show_transposed_conv(x, kernel, stride=2)
    shown = [ax for ax in fig.axes if ax.get_title()]
    titles = [ax.get_title() for ax in shown]
    assert titles[:4] == ["input x (2x2)", "kernel (3x3), stride 2", "output: the painted\nkernels summed",
                          "footprints covering\neach output pixel"]
    assert titles[4:] == [f"x[{i}, {j}] = {v:g} times the kernel" for (i, j), v in np.ndenumerate(x.numpy())]
    parts = painted_kernels(x, kernel, 2)
    assert _cell_texts(shown[2]) == [f"{v:g}" for v in parts.output.flatten().tolist()]
    assert _cell_texts(shown[3]) == [str(v) for v in parts.counts.flatten().tolist()]
    assert _cell_texts(shown[5]) == ["2"] * 9                      # only the painted pixels are written
    # the painted kernels and the output share one colour scale; every panel on the output's grid
    assert {ax.images[0].get_clim() for ax in shown[2:3] + shown[4:]} == {(0.0, 10.0)}
    assert {ax.get_xlim()[1] - ax.get_xlim()[0] for ax in shown} == {5.0}
    assert sum(len(ax.patches) for ax in shown[4:]) == 4             # a frame per painted kernel
    plt.close(fig)


@pytest.mark.parametrize("args, error, match", [
    ((torch.ones(1, 2, 2), torch.ones(2, 2), 2), ValueError, r"x must be a \(H, W\) tensor, got shape \(1, 2, 2\)"),
    ((torch.ones(4, 4), torch.ones(2, 2), 2), ValueError, r"x must have at most 9 pixels, one panel each, got shape "
                                                          r"\(4, 4\)"),
    ((torch.ones(2, 2), torch.ones(2, 2), 0), ValueError, r"stride must be an integer >= 1, got 0"),
    ((torch.ones(2, 2, dtype=torch.int64), torch.ones(2, 2), 2), TypeError, r"x must be a floating-point tensor"),
    ((np.ones((2, 2)), torch.ones(2, 2), 2), TypeError, r"x must be a torch.Tensor \(H, W\)"),
])
def test_show_transposed_conv_names_a_bad_argument(args, error, match):
    with pytest.raises(error, match=match):
        show_transposed_conv(*args)

# -- notebook 07: a learning-rate sweep, and paired runs over seeds --

def test_plot_lr_sweep_draws_every_run_and_the_share_left():
    from unet_lib.viz import plot_lr_sweep
    lrs, curves = [1e-4, 1e-2, 1.0], [[1.0, 0.9, 0.8], [1.0, 0.5, 0.2], [1.0, 3.0, 1.5]]
    fig = plot_lr_sweep(lrs, curves, mark=3e-3)
    left, right = fig.axes[:2]
    assert [line.get_label() for line in left.get_lines()] == ["lr 0.0001", "lr 0.01", "lr 1"]
    assert left.get_yscale() == "log" and right.get_xscale() == "log"
    shares = [line for line in right.get_lines() if len(line.get_xdata()) == 3][0]
    np.testing.assert_allclose(shares.get_ydata(), [0.8, 0.2, 1.5])            # last / first, per run
    assert right.get_ylim()[0] == 0 and "after 3 steps" in right.get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="one curve per learning rate, got 2 learning rates and 3 curves"):
        plot_lr_sweep(lrs[:2], curves)


def test_plot_paired_arms_draws_one_line_per_seed_and_the_paired_differences():
    from unet_lib.viz import plot_paired_arms
    runs = [{"arm": a, "seed": s, "iou": 0.9 + 0.01 * s + (0.025 if a == "both" else 0.0)}
            for a in ("none", "both") for s in (0, 1, 2)]
    fig = plot_paired_arms(runs, ["none", "both"], [("iou", "IoU", (0, 1))], difference=("iou", "both", 0.05))
    whole, paired = fig.axes[:2]
    assert len(whole.get_lines()) == 3 and whole.get_ylim() == (0, 1)
    assert paired.get_ylim() == (-0.05, 0.05)                                     # the difference at its size
    points = [line.get_ydata()[0] for line in paired.get_lines() if line.get_marker() == "o"]
    np.testing.assert_allclose(points, [-0.025] * 3)                              # none - both, per seed
    assert paired.get_title() == "IoU: arm minus 'both', per seed"               # the panel's name, not the key
    plt.close(fig)
    with pytest.raises(ValueError, match="runs lacks arm 'both' for seed 2"):
        plot_paired_arms(runs[:-1], ["none", "both"], [("iou", "IoU", (0, 1))])


# -- notebook 08: a detail too small to see at full size --

def test_show_zoom_frames_the_box_and_enlarges_it():
    from unet_lib.viz import show_zoom
    labels = np.zeros((40, 50), np.int64)
    labels[20, 30] = 3                                                            # a one-pixel cell
    fig = show_zoom([labels, labels > 0], (15, 25, 26, 36), titles=["cells", "mask"], cmap=["labels", "gray"])
    top, zoom = fig.axes[0], fig.axes[2]
    frame = [p for p in top.patches if isinstance(p, Rectangle)][0]
    assert frame.get_xy() == (24.5, 14.5) and (frame.get_width(), frame.get_height()) == (11, 11)
    shown = zoom.get_images()[0].get_array()
    assert shown.shape[:2] == (11, 11) and shown[5, 5].any() and not shown[0, 0].any()   # the pixel, enlarged
    assert zoom.get_title() == "rows 15-25, columns 25-35"
    plt.close(fig)
    with pytest.raises(ValueError, match=r"box \(30, 0, 45, 10\) does not lie inside image 0 of shape \(40, 50\)"):
        show_zoom([labels], (30, 0, 45, 10))


# -- notebook 09: what a channel does near the cell outlines --

def test_plot_boundary_profile_finds_a_ring_around_a_cell():
    from scipy import ndimage

    from unet_lib.viz import plot_boundary_profile
    mask = np.zeros((40, 40), bool)
    mask[10:30, 10:30] = True
    outside = ndimage.distance_transform_edt(~mask)
    ring = np.isin(np.rint(outside), [1, 2]).astype(float)                       # a ring 1-2 px outside the cell
    fmap = torch.from_numpy(np.stack([mask.astype(float), ring])).float()         # (2, H, W): a filler and a ring
    fig = plot_boundary_profile(fmap, mask, [0, 1], max_distance=4)
    filler, rings = fig.axes[0].get_lines()[:2]
    assert list(filler.get_xdata()) == [-4, -3, -2, -1, 1, 2, 3, 4]
    assert list(filler.get_ydata()) == [1, 1, 1, 1, 0, 0, 0, 0]
    assert list(rings.get_ydata()) == [0, 0, 0, 0, 1, 1, 0, 0]
    plt.close(fig)
    with pytest.raises(ValueError, match="channel 5 does not exist; fmap has channels 0 to 1"):
        plot_boundary_profile(fmap, mask, [5])
