"""The course's figure style: its resolution and fonts, and the colours of label images.

Shared by every figure module of ``unet_lib.viz``.
"""

import matplotlib
import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["COURSE_DPI", "use_course_style", "label_colours"]

# The course's figure resolution: 8-px tick labels stay readable at JupyterLab's default zoom,
# and a notebook of about twenty figures stays under 1.5 MB.
COURSE_DPI = 80

FONT = 8            # points: labels and legends of the drawn figures (8 pt reads at JupyterLab's default zoom)
TITLE_FONT = 10


def use_course_style() -> None:
    """The course's figure style, for the first cell of every notebook: ``COURSE_DPI`` dots per
    inch, 10-pt titles, 9-pt labels and ticks (no text smaller than 8 px on screen), no grid."""
    plt.rcParams.update({"figure.dpi": COURSE_DPI, "axes.titlesize": 10, "axes.labelsize": 9,
                         "xtick.labelsize": 9, "ytick.labelsize": 9, "legend.fontsize": 9, "font.size": 9})


def label_colours(instances) -> np.ndarray:
    """An (H, W) label image (0 = background, a distinct positive id per object) as (H, W, 3)
    RGB in [0, 1]: background black, each id a bright colour of its own, the same colour for the
    same id in every figure. Hues are spread by the golden ratio, so neighbouring ids differ
    strongly (tab20 repeats after 20 ids and paints the background blue)."""
    labels = _to_numpy(instances)
    if labels.ndim != 2:
        raise ValueError(f"instances must be an (H, W) label image, got shape {labels.shape}")
    if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)) or labels.min(initial=0) < 0:
        raise ValueError("instances must hold non-negative integer labels (0 = background)")
    ids = labels.astype(np.int64)
    top = int(ids.max(initial=0))
    k = np.arange(top + 1)
    hue = (k * 0.618033988749895) % 1.0
    saturation = 0.65 + 0.3 * ((k * 7) % 3) / 2                   # 0.65, 0.8, 0.95
    value = 1.0 - 0.15 * ((k * 5) % 2)                            # 1.0, 0.85
    palette = matplotlib.colors.hsv_to_rgb(np.stack([hue, saturation, value], axis=-1))   # (top + 1, 3)
    palette[0] = 0.0                                                # background: black
    return palette[ids]


def _to_numpy(image) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().float().numpy()
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3):   # (C, H, W) -> (H, W) or (H, W, 3)
        image = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    return image

