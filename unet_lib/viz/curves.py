"""Curves of training runs: a run's history, a learning-rate sweep, and paired runs over seeds."""

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

__all__ = ["plot_history", "plot_lr_sweep", "plot_paired_arms"]


def plot_history(history: dict[str, list[float]], size: float = 3.2) -> plt.Figure:
    """Training curves from ``unet_lib.train.fit``'s history: the training (and validation)
    loss, and the validation foreground IoU and instance F1 where the history has them."""
    if not history.get("epoch"):
        raise ValueError("the history has no epochs; pass the dict that fit returns")
    panels = [("loss", ["train_loss", "val_loss"])]
    panels += [(title, [key]) for title, key in [("validation foreground IoU", "val_iou"),
                                                 ("validation instance F1", "val_f1")] if key in history]
    fig, axes = plt.subplots(1, len(panels), figsize=(size * 1.25 * len(panels), size), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels):
        for key in keys:
            if key in history:
                ax.plot(history["epoch"], history[key], label=key.replace("_", " "))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # epochs are whole: no tick at 1.5
        if len(keys) > 1:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig



# -- notebook 07: a learning-rate sweep, and paired runs over seeds --

def plot_lr_sweep(lrs: Sequence[float], curves: Sequence[Sequence[float]], mark: float | None = None,
                  size: float = 3.4) -> plt.Figure:
    """What a learning-rate sweep shows: left, every run's loss step by step (one line per learning
    rate, on a log axis so that a loss that falls tenfold and one that climbs both show); right,
    each run's last loss as a share of its first, against the learning rate (log axis), with
    ``mark`` (e.g. the course's learning rate) drawn as a dashed line. ``curves[i]`` is the run
    at ``lrs[i]``, all from the same starting weights."""
    if len(lrs) != len(curves) or not lrs:
        raise ValueError(f"plot_lr_sweep needs one curve per learning rate, got {len(lrs)} learning rates and "
                         f"{len(curves)} curves")
    if any(len(c) == 0 for c in curves) or any(not lr > 0 for lr in lrs):
        raise ValueError("every curve needs at least one loss, and every learning rate must be > 0")
    fig, (left, right) = plt.subplots(1, 2, figsize=(size * 2.6, size))
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(lrs)))
    for lr, curve, colour in zip(lrs, curves, colours):
        left.plot(range(1, len(curve) + 1), curve, color=colour, label=f"lr {lr:g}")
    left.set_yscale("log")
    left.set_xlabel("step")
    left.set_ylabel("training loss (log axis)")
    left.set_title("every run, step by step")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    shares = [curve[-1] / curve[0] for curve in curves]
    right.plot(lrs, shares, "o-", color="tab:blue")
    right.axhline(1.0, color="grey", lw=0.8, ls=":")
    right.text(lrs[0], 1.0, " no change", va="bottom", fontsize=8, color="grey")
    if mark is not None:
        right.axvline(mark, color="tab:red", lw=1, ls="--")
        right.text(mark, max(shares + [1.0]) * 1.02, f" lr {mark:g}", color="tab:red", fontsize=8, va="bottom")
    right.set_xscale("log")
    right.set_ylim(0, max(shares + [1.0]) * 1.12)
    right.set_xlabel("learning rate (log axis)")
    right.set_ylabel("last loss / first loss")
    right.set_title(f"after {len(curves[0])} steps")
    fig.tight_layout()
    return fig


def plot_paired_arms(runs: Sequence[dict], arms: Sequence[str], panels: Sequence[tuple[str, str, tuple[float, float]]],
                     difference: tuple[str, str, float] | None = None, size: float = 3.0) -> plt.Figure:
    """An experiment with several arms run over several seeds: for each ``(key, title, (ymin, ymax))``
    of ``panels`` one line per seed across the arms (the arms of one seed are paired: same data,
    same start). ``difference = (key, reference, half_range)`` adds a last panel of the paired
    differences ``key(arm) - key(reference)`` per seed, on an axis from ``-half_range`` to
    ``+half_range`` with a line at 0: a difference of a few hundredths drawn at its true size
    next to the seeds' spread, where a 0-to-1 axis would hide it; titled with the name of the
    panel of the same key. ``runs``: dicts with "arm",
    "seed" and the keys."""
    seeds = sorted({r["seed"] for r in runs})
    value = {(r["arm"], r["seed"]): r for r in runs}
    missing = [(a, s) for a in arms for s in seeds if (a, s) not in value]
    if missing:
        raise ValueError(f"runs lacks arm {missing[0][0]!r} for seed {missing[0][1]}; every arm needs every seed")
    n = len(panels) + (difference is not None)
    fig, axes = plt.subplots(1, n, figsize=(size * n, size * 1.15), squeeze=False)
    colours = plt.cm.tab10(np.arange(len(seeds)) % 10)
    for ax, (key, title, limits) in zip(axes[0], panels):
        for s, colour in zip(seeds, colours):
            ax.plot(range(len(arms)), [value[arm, s][key] for arm in arms], "o-", color=colour, alpha=0.7,
                    label=f"seed {s}")
        ax.set_xticks(range(len(arms)), arms)
        ax.set_ylim(*limits)
        ax.set_title(title)
    if difference is not None:
        key, reference, half = difference
        ax = axes[0][-1]
        others = [a for a in arms if a != reference]
        for s, colour in zip(seeds, colours):
            ax.plot(range(len(others)), [value[a, s][key] - value[reference, s][key] for a in others], "o",
                    color=colour, alpha=0.8)
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xticks(range(len(others)), others)
        ax.set_xlim(-0.5, len(others) - 0.5)
        ax.set_ylim(-half, half)
        name = next((title for k, title, _ in panels if k == key), key)   # the panel's name for the key
        ax.set_title(f"{name}: arm minus {reference!r}, per seed")
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
