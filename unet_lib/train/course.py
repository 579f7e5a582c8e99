"""The course model and its recipe, which ``python -m unet_lib.train`` runs to write ``COURSE_CHECKPOINT``.

``COURSE_MODEL``, ``COURSE_TRAIN``, ``course_data`` and ``train_course_model``.

The later notebooks load that checkpoint (``unet_lib.checkpoint.COURSE_CHECKPOINT``) so that
they never retrain; notebook 07 trains the same recipe live and checks that its curve matches.
"""

import torch

from ..config import TrainConfig
from ..data import ToyCells
from ..model import UNet
from .loop import fit

__all__ = ["COURSE_MODEL", "COURSE_TRAIN", "course_data", "train_course_model"]

# The course model: the paper's valid padding and up-convolutions, at a size a CPU trains in a
# minute. Departures from the paper: depth 3 instead of 4 (toy cells are ~25 px across; a
# depth-3 output pixel sees a 92-px window, measured by model.receptive_field, with a 44-px
# margin instead of 92),
# 16 channels at the top instead of 64 (1/16 of the compute per pixel), and BatchNorm.
COURSE_MODEL = dict(in_channels=1, num_classes=2, depth=3, base_channels=16, padding="valid",
                    upsampling="transpose", batch_norm=True)

# One 256x256 tile per step, as the paper advises (Sec. 3: "we favor large input tiles over a
# large batch size"): a valid-padding net needs a 44-px mirrored margin around what it predicts,
# so a 128x128 image costs a 220x220 input (2.95x the pixels it is trained on), a 256x256 one a
# 348x348 input (1.85x). Measured on held-out cells: IoU 0.921 after 16 epochs of 16 such tiles
# (43 s), against 0.906 after 12 epochs of 64 128x128 images in batches of 4 (40 s). 18 epochs
# at lr 3e-3 was the best of the recipes tried on the validation images that fit in 50 s.
COURSE_TRAIN = TrainConfig(epochs=18, batch_size=1, optimizer="adam", lr=3e-3, seed=0)


def course_data(n_train: int = 16, n_val: int = 16, seed: int = 0, **toy_kwargs):
    """The course's training tiles and validation images: ``n_train`` 256x256 ``ToyCells`` (24 to
    48 cells each: the density of the 128x128 default) with seed ``seed``, and ``n_val`` 128x128
    ones with seed ``seed + 1000``. Held-out test images use other seeds (the benchmarks: 2000+).
    ``toy_kwargs`` (e.g. ``noise=0.03``) go to both ``ToyCells``."""
    return (ToyCells(n_train, size=256, n_cells=(24, 48), seed=seed, **toy_kwargs),
            ToyCells(n_val, seed=seed + 1000, **toy_kwargs))


def train_course_model(config: TrainConfig = COURSE_TRAIN, data_seed: int = 0, model_seed: int = 0,
                       **toy_kwargs) -> tuple[UNet, dict[str, list[float]]]:
    """Build the course model (``COURSE_MODEL``, initialised with ``torch.manual_seed(model_seed)``)
    and train it with ``fit`` on ``course_data(seed=data_seed, **toy_kwargs)`` (e.g. ``w0=0.0``
    for a weight map without the border term). Returns (model, history)."""
    train_data, val_data = course_data(seed=data_seed, **toy_kwargs)
    torch.manual_seed(model_seed)   # the He initialisation draws from torch's generator
    model = UNet(**COURSE_MODEL)
    history = fit(model, train_data, val_data, config)
    return model, history
