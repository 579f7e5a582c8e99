"""unet_lib: the one copy of the code behind the unet-course notebooks."""

from .blocks import DoubleConv, Down, OutConv, Up, center_crop
from .model import UNet, block_shapes, named_blocks, receptive_field

__all__ = ["DoubleConv", "Down", "Up", "OutConv", "center_crop", "UNet", "named_blocks", "block_shapes", "receptive_field"]

# toy cells, augmentation, the paper's weight map and loss (notebooks 05, 06)
# (the function augment stays in unet_lib.augment: exported here it would hide the module of that name)
from .augment import AugmentConfig, Augmented, elastic_deform, elastic_displacement, upsample_displacement
from .data import ToyCells, draw_cells, instances_to_mask, separate_touching, targets_from_instances, touching_borders
from .losses import weighted_cross_entropy
from .weights import border_term, border_term_naive, class_weight_map, two_nearest_distances, unet_weight_map

__all__ += [
    "ToyCells", "draw_cells", "touching_borders", "separate_touching", "instances_to_mask", "targets_from_instances",
    "AugmentConfig", "elastic_displacement", "upsample_displacement", "elastic_deform", "Augmented",
    "unet_weight_map", "class_weight_map", "border_term", "border_term_naive", "two_nearest_distances",
    "weighted_cross_entropy",
]

# a real image and a classical baseline (notebook 10)
from .baselines import otsu_instances, otsu_threshold
from .data import load_real_nuclei, percentile_normalize

__all__ += ["load_real_nuclei", "percentile_normalize", "otsu_threshold", "otsu_instances"]

# looking inside the trained network: forward hooks and an ipywidgets explorer (notebook 09)
from .widgets import FeatureMapExplorer, feature_maps, unet_layers

__all__ += ["FeatureMapExplorer", "feature_maps", "unet_layers"]

# training, metrics and overlap-tile inference (notebooks 07, 08)
from .metrics import InstanceScores, dice, instance_scores, iou, label_instances, pixel_error, rand_error
from .tiling import context_margin, mirror_pad, padded_forward, predict_naive_tiles, predict_tiled
from .train import (COURSE_CHECKPOINT, Checkpoint, TrainConfig, evaluate, fit, load_checkpoint, save_checkpoint,
                    train_step)

__all__ += [
    "iou", "dice", "pixel_error", "rand_error", "label_instances", "InstanceScores", "instance_scores",
    "mirror_pad", "context_margin", "padded_forward", "predict_tiled", "predict_naive_tiles",
    "TrainConfig", "fit", "train_step", "evaluate", "Checkpoint", "save_checkpoint", "load_checkpoint",
    "COURSE_CHECKPOINT",
]
