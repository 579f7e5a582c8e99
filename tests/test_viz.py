"""Tests for unet_lib.viz: the source listing notebooks show, and the figure helpers."""

import inspect

import matplotlib

matplotlib.use("Agg")

import numpy as np
import torch

from unet_lib.blocks import DoubleConv, center_crop
from unet_lib.viz import show_feature_maps, show_images, show_source


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


def test_show_feature_maps_shows_at_most_max_channels():
    fig = show_feature_maps(torch.rand(1, 20, 6, 6), max_channels=10, cols=4)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 10
    assert shown[-1].get_title() == "ch 9"
