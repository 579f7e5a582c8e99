"""Training a U-Net: one module per part, their public names gathered here.

* ``step``: ``train_step``, one optimisation step (notebook 07 writes it), ``NonFiniteLossError``;
* ``loop``: ``fit``, the epochs (set up; for each epoch: train, validate, decide);
* ``optimizer``: ``make_optimizer`` and the learning-rate schedule;
* ``evaluation``: ``evaluate`` and the pooled counts behind it;
* ``course``: the course model and recipe (``COURSE_MODEL``, ``COURSE_TRAIN``, ``course_data``,
  ``train_course_model``);
* ``cli`` and ``own_images``: the command line ``python -m unet_lib.train`` (``main``; run by
  ``__main__.py``), on toy cells or on your own images.

``TrainConfig`` lives in ``unet_lib.config`` and checkpoints in ``unet_lib.checkpoint``, below this
package, so that a checkpoint loads without importing training. Their names are found here too,
because notebooks 02, 09 and 10 and the checks of 08 and 09 import ``COURSE_CHECKPOINT`` and
``load_checkpoint`` from ``unet_lib.train``.
"""

from ..checkpoint import COURSE_CHECKPOINT, Checkpoint, load_checkpoint, save_checkpoint
from ..config import TrainConfig
from .cli import main
from .course import COURSE_MODEL, COURSE_TRAIN, course_data, train_course_model
from .evaluation import evaluate
from .loop import fit
from .optimizer import make_optimizer
from .step import NonFiniteLossError, train_step

__all__ = ["TrainConfig", "fit", "train_step", "evaluate", "make_optimizer", "Checkpoint", "save_checkpoint",
           "load_checkpoint", "COURSE_CHECKPOINT", "COURSE_MODEL", "COURSE_TRAIN", "course_data", "train_course_model",
           "NonFiniteLossError", "main"]
