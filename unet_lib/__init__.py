"""unet_lib: the one copy of the code behind the unet-course notebooks.

One module per topic, in the order of the course: blocks, model (notebooks 01-04); data, augment
(05); weights, losses (06); train (a package: step, loop, optimizer, evaluation, course, and the
command line), config, checkpoint (07); metrics, tiling (08); hooks, widgets (09); baselines (10);
files (a package: your own images), predict, export (11); distributed (12). viz and checks serve
every notebook, shipped finds the course's files (data/, installed as unet_course_data), exercises
makes the exercise editions; validate, atomic and arguments are the checks, file writes and
command-line types that every module shares.
"""

# The function unet_lib.augment.augment is not exported here: a package attribute of that name
# would hide the module unet_lib.augment.
from .augment import AugmentConfig, Augmented, elastic_deform, elastic_displacement, upsample_displacement
from .baselines import (classical_instances, otsu_instances, otsu_threshold, remove_small_objects, seeded_watershed,
                        watershed_split)
from .blocks import DoubleConv, Down, OutConv, Up, center_crop
from .checkpoint import COURSE_CHECKPOINT, Checkpoint, load_checkpoint, load_optimizer_state, save_checkpoint
from .config import TrainConfig
from .data import (ToyCells, draw_cells, instances_to_mask, interior_border_classes, load_real_nuclei, percentile_normalize,
                   real_nuclei_crops, separate_touching, targets_from_instances, touching_borders, touching_fraction)
from .losses import weighted_cross_entropy
from .files import ImageFolder, read_image, read_mask, split_by_image, write_labels
from .metrics import (InstanceScores, class_scores, confusion_matrix, dice, instance_scores, instances_from_classes, iou,
                      label_instances, pixel_error, rand_error)
from .model import UNet, block_shapes, cut_skips, named_blocks, receptive_field
from .shipped import course_data_dir, course_file
from .tiling import context_margin, mirror_pad, padded_forward, predict_labels, predict_naive_tiles, predict_tiled
from .train import NonFiniteLossError, evaluate, fit, make_optimizer, train_step
from .weights import border_term, border_term_naive, class_weight_map, two_nearest_distances, unet_weight_map
from .hooks import average_skips, feature_maps, unet_layers
from .widgets import FeatureMapExplorer

__all__ = [
    # the course's shipped files (the checkpoints, the nuclei image, the benchmarks' results)
    "course_file", "course_data_dir",
    # blocks and model (01-04)
    "DoubleConv", "Down", "Up", "OutConv", "center_crop",
    "UNet", "named_blocks", "block_shapes", "cut_skips", "receptive_field",
    # toy cells and augmentation (05)
    "ToyCells", "draw_cells", "touching_borders", "touching_fraction", "separate_touching", "instances_to_mask",
    "targets_from_instances",
    "AugmentConfig", "elastic_displacement", "upsample_displacement", "elastic_deform", "Augmented",
    # the weight map and the loss (06)
    "unet_weight_map", "class_weight_map", "border_term", "border_term_naive", "two_nearest_distances",
    "weighted_cross_entropy",
    # training (07)
    "TrainConfig", "fit", "train_step", "evaluate", "NonFiniteLossError", "Checkpoint", "save_checkpoint", "load_checkpoint",
    "COURSE_CHECKPOINT", "make_optimizer", "load_optimizer_state",
    # metrics and overlap-tile inference (08)
    "iou", "dice", "pixel_error", "rand_error", "confusion_matrix", "class_scores", "label_instances", "InstanceScores", "instance_scores",
    "mirror_pad", "context_margin", "padded_forward", "predict_tiled", "predict_labels", "predict_naive_tiles",
    # feature-map explorer (09)
    "FeatureMapExplorer", "feature_maps", "unet_layers", "average_skips",
    # real nuclei and a classical baseline (10)
    "load_real_nuclei", "percentile_normalize", "otsu_threshold", "otsu_instances", "classical_instances",
    "remove_small_objects", "seeded_watershed",
    # your own images (the command lines: python -m unet_lib.train --images, python -m unet_lib.predict)
    "ImageFolder", "split_by_image", "read_image", "read_mask", "write_labels",
    # your own images, notebook 11: the nuclei cut into files, a border class, post-processing
    "real_nuclei_crops", "interior_border_classes", "instances_from_classes", "watershed_split",
]
