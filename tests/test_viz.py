"""Tests for unet_lib.viz: the source listing notebooks show, and the figure helpers."""

import inspect

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from unet_lib.blocks import DoubleConv, center_crop
from unet_lib.viz import plot_history, show_feature_maps, show_images, show_source


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


def test_plot_history_rejects_an_empty_history():
    with pytest.raises(ValueError, match="the history has no epochs; pass the dict that fit returns"):
        plot_history({"epoch": []})
