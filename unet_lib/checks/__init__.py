"""Learner checks for the notebooks' exercises, one module per notebook in course order.

Each ``check_*`` takes the learner's function or class, compares it with ``unet_lib`` on a few
small cases, and either returns a short ``CheckPassed`` message or raises ``CheckError`` whose
message names what is wrong and gives a hint, in stages, that never prints the solving line. A
check refuses the ready-made twin of what it asks (the library's function of the same job, the
torch object whose rule is asked for), however the learner reached it. An exercise that is still
a skeleton raises ``NotImplementedError`` with a message that says which function to fill in.

To add an exercise to notebook NN: write its check in ``nbNN_*.py`` with the machinery of
``_core`` (``learner_check``, ``call(..., refuse=...)``, ``fail``, ``passed``), add it to that
module's ``__all__``, and test it both ways in ``tests/checks/test_nbNN_*.py``.
"""

from ._core import LANGUAGES, CheckError, CheckPassed, language, reset_hints, set_language
from .nb01_intuition import check_context_margin, check_convolutionalize
from .nb02_contracting_path import check_contracting_parameters, check_receptive_field
from .nb03_bottleneck_and_expansive_path import check_overlap_counts, check_up_forward
from .nb04_skip_connections_and_full_unet import check_output_size, check_unet_forward, check_valid_sizes
from .nb05_toy_cells_and_augmentation import check_touching_pairs, check_touching_share, check_warp_image
from .nb06_weighted_loss import check_best_border_sigma, check_border_term, check_class_balance
from .nb07_training import check_lr_sweep, check_train_step
from .nb08_evaluation_and_tiling import check_count_matches, check_iou, check_shift_change
from .nb09_feature_map_explorer import check_merged_per_skip, check_record_output
from .nb10_real_nuclei import check_otsu_threshold, check_tune_peak_footprint
from .nb11_your_own_images import check_interior_border_classes, check_postprocess
from .nb12_scaling_up import check_rank_shard, check_steps_per_epoch

__all__ = [
    "CheckError", "CheckPassed", "LANGUAGES", "language", "set_language", "reset_hints",
    # notebook 01
    "check_context_margin", "check_convolutionalize",
    # notebook 02
    "check_contracting_parameters", "check_receptive_field",
    # notebook 03
    "check_overlap_counts", "check_up_forward",
    # notebook 04
    "check_output_size", "check_unet_forward", "check_valid_sizes",
    # notebook 05
    "check_touching_pairs", "check_touching_share", "check_warp_image",
    # notebook 06
    "check_best_border_sigma", "check_border_term", "check_class_balance",
    # notebook 07
    "check_lr_sweep", "check_train_step",
    # notebook 08
    "check_count_matches", "check_iou", "check_shift_change",
    # notebook 09
    "check_merged_per_skip", "check_record_output",
    # notebook 10
    "check_otsu_threshold", "check_tune_peak_footprint",
    # notebook 11
    "check_interior_border_classes", "check_postprocess",
    # notebook 12
    "check_rank_shard", "check_steps_per_epoch",
]
