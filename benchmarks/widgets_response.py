"""How fast the feature-map explorer answers a change (the goal: within 200 ms on a CPU).

Run: .venv/bin/python benchmarks/widgets_response.py
Times the Python side of each change (the callback that computes and encodes the new
pictures), on the course checkpoint when data/unet_toycells.pt exists, else on an untrained
UNet(depth=3, base_channels=8) of the same shape. Sending the PNGs to the browser adds a few
milliseconds on a local connection. Not a test: timings on a shared CPU are noisy.
"""

import statistics
import time
from pathlib import Path

import torch

from unet_lib import ToyCells, UNet
from unet_lib.widgets import FeatureMapExplorer


def load_model() -> tuple[UNet, str]:
    try:
        from unet_lib.train import COURSE_CHECKPOINT, load_checkpoint
        if Path(COURSE_CHECKPOINT).exists():
            return load_checkpoint(COURSE_CHECKPOINT).model, f"course checkpoint {COURSE_CHECKPOINT.name}"
    except ImportError:
        pass
    torch.manual_seed(0)
    return UNet(depth=3, base_channels=8, padding="same", batch_norm=True).eval(), "untrained UNet(depth=3, base_channels=8)"


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    model, what = load_model()
    cells = ToyCells(8, size=128, seed=909)
    images = [cells[i]["image"] for i in range(len(cells))]
    print(f"model: {what}; {len(images)} images of 128x128; torch threads: {torch.get_num_threads()}")

    start = time.perf_counter()
    explorer = FeatureMapExplorer(model, images)
    build = (time.perf_counter() - start) * 1000
    rows = [(f"build the explorer ({len(images)} images, batched)", [build])]

    channel, layer_first, layer_again, image_first, image_again = [], [], [], [], []
    names = [layer.name for layer in explorer.layers]
    for name in names:                                   # each layer once: grid not yet cached
        layer_first.append(timed(lambda: setattr(explorer.layer_dropdown, "value", name)))
        for c in range(1, min(explorer.channel_slider.max, 8) + 1):
            channel.append(timed(lambda: setattr(explorer.channel_slider, "value", c)))
    for name in names:                                   # again: cached
        layer_again.append(timed(lambda: setattr(explorer.layer_dropdown, "value", name)))
    for i in range(1, len(images)):                      # first time shown (precomputed)
        image_first.append(timed(lambda: setattr(explorer.image_slider, "value", i)))
    lazy = FeatureMapExplorer(model, images, precompute=False)
    image_lazy = []
    for i in range(1, len(images)):                      # precompute=False: one forward pass each
        image_lazy.append(timed(lambda: setattr(lazy.image_slider, "value", i)))
    for i in range(len(images)):                         # seen images: cached
        image_again.append(timed(lambda: setattr(explorer.image_slider, "value", i)))
    rows += [("channel slider", channel), ("layer, first time", layer_first), ("layer, cached", layer_again),
             ("image, first time shown", image_first), ("image, again", image_again),
             ("image, precompute=False (forward pass)", image_lazy)]

    print(f"{'change':40s} {'n':>4s} {'median ms':>10s} {'max ms':>8s}")
    for label, times in rows:
        print(f"{label:40s} {len(times):4d} {statistics.median(times):10.1f} {max(times):8.1f}")
    worst = max(max(times) for _, times in rows[1:-1])   # the default explorer (precompute=True)
    print(f"slowest change of the default explorer: {worst:.0f} ms "
          f"({'within' if worst <= 200 else 'OVER'} the 200 ms goal)")


if __name__ == "__main__":
    main()
