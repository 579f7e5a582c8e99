"""Your own images: a folder of images and a folder of masks, paired by file name.

C, H, W = channels, height, width. K = num_classes.

``images/cell_01.tif`` pairs with ``masks/cell_01.png``: the stem (the name without its extension)
is the key, the formats may differ. ``ImageFolder`` reads every pair once, checks it, keeps it in
memory and gives the same sample dict as ``unet_lib.data.ToyCells``. With ``tile_size`` it says
``draws_on_access``, so ``fit`` asks it for new tiles every epoch instead of computing each sample
once; ``evaluate`` scores whole images of any sizes. ``fit``'s augmentation (``Augmented``) moves
every channel alike, and warps class maps with the image (nearest neighbour) and rebalances them.

Images
------
TIFF (``.tif``, ``.tiff``; 8-, 16-bit, float; read with ``tifffile``), PNG and JPEG (``.png``,
``.jpg``, ``.jpeg``; 8- or 16-bit gray, 8-bit colour; read with ``imageio.v3`` and its pillow
plugin; save 16-bit colour as TIFF). Grayscale, RGB or more channels.
The channel axis of a 3-D array is decided by one rule, unless ``channel_axis`` says otherwise:

* (H, W): one channel;
* (H, W, C) if the last axis has <= 4 entries (RGB and RGBA files, most microscope exports);
* else (C, H, W) if the first axis has <= 4 entries (multi-page TIFFs, ImageJ stacks);
* else refused: a stack with more than 4 planes is a z-stack or a time series, not a 2-D image.

Size-1 axes beyond three are dropped ((1, 1, H, W) from ImageJ is (H, W)). An alpha channel that
is fully opaque everywhere carries nothing and is dropped. Each channel of each image is mapped to
[0, 1] by its own ``low`` and ``high`` percentiles (``unet_lib.data.percentile_normalize``), so 8-,
16-bit and float images can be mixed; every image must have the same number of channels. With
``keep_objects=True`` (what ``python -m unet_lib.train`` does unless ``--percentiles`` is given)
the masks say how much of the objects the percentiles clip, and they are widened until at most 5%
of the objects' pixels are (``unet_lib.files.normalization``): dark objects covering under 1% of
an image lie below its 1st percentile, every pixel of them 0.

Masks
-----
One label per pixel, any integer dtype, PNG or TIFF (JPEG is refused: its lossy compression
changes label values along object edges). A float mask is accepted when every value is a whole
number (some tools save labels as float32); a value such as 0.5 is refused (a probability map, or
a mask resized with interpolation).

* ``mask_kind="instances"`` (the default): 0 = background, a distinct positive id per object. The
  targets are the paper's: the borders between touching objects become background and the weight
  map is Eq. 2 (``unet_lib.data.targets_from_instances`` with ``w0``, ``sigma``); K = 2. A binary
  mask (values 0 and 1 only) is labelled into connected components (4-connectivity, as
  ``unet_lib.metrics.label_instances``), with a warning: touching objects in a binary mask are one
  component, and cannot be told apart, which is what the separation borders are for.
* ``mask_kind="classes"``: a class map with values 0..K-1, ``num_classes=K`` given. There are no
  instances (``instances`` is all 0) and the weight map is w_c of Eq. 2 alone, balanced over the
  K classes (``class_balance_map``).

Training and evaluation
-----------------------
With ``tile_size`` every access draws a random tile_size x tile_size tile (access k of image i from
``np.random.default_rng([seed, i, k])``, as ``unet_lib.augment.Augmented`` counts; in DataLoader
worker w, which counts its own accesses, from ``[seed, i, k, w + 1]``); an image
smaller than a tile is mirrored up to the tile's size (``unet_lib.tiling.mirror_pad``; image and
targets alike, so they stay a matching pair). Without it each access is the whole image: that is
for evaluation. Mask and weight map are always those of the sample's own labels, as
``unet_lib.augment.Augmented`` recomputes them after a deformation: Eq. 2 on a tile sees the
objects in the tile. A whole image's targets are computed on its first access and kept.

Split by image, never by tile: tiles of one image share its cells, its staining and its
background, so tiles of a validation image are not new data for a model trained on its other
tiles. ``split_by_image`` gives two disjoint lists of stems::

    stems = list(find_pairs("images", "masks"))
    train_stems, val_stems = split_by_image(stems, val_fraction=0.2, seed=0)
    train = ImageFolder("images", "masks", tile_size=128, stems=train_stems)
    val = ImageFolder("images", "masks", stems=val_stems)

One large image (or a few): ``split_by_region(data, val_fraction, side)`` holds out the right (or
bottom) strip of every image for validation instead.

Modules: ``reading`` (one file; every pair read and checked once), ``pairing`` (the files of two
folders paired by name), ``normalization`` (the share of the objects the percentiles clip),
``folder`` (``ImageFolder``, ``split_by_image``, ``split_by_region``); their public names are
found here.

API
---
* ``ImageFolder(images_dir, masks_dir, mask_kind="instances", *, num_classes=None,
  tile_size=None, seed=0, w0=10.0, sigma=5.0, low=1.0, high=99.8, stems=None,
  channel_axis=None, keep_objects=False)``: a ``torch.utils.data.Dataset``; ``ds[i]`` is a dict with ``image``
  float32 (C, H, W) in [0, 1], ``instances`` int64 (H, W), ``mask`` int64 (H, W) in [0, K),
  ``weight_map`` float32 (H, W). Attributes ``stems``, ``in_channels``, ``num_classes``,
  ``mask_kind``, ``tile_size``, ``target_kwargs``, ``low``, ``high`` (the percentiles used), ``clipping``
  (the share of the objects they clip); ``summary()`` -> dict; ``object_size()`` -> the objects'
  median area and inscribed radius (``unet_lib.baselines.object_size``); ``subset(stems,
  tile_size=None)`` -> ImageFolder sharing the arrays already read; ``sample(i, targets=True)``:
  ``ds[i]``, with ``targets=False`` without the targets ``Augmented`` recomputes anyway.
* ``find_pairs(images_dir, masks_dir) -> dict[stem, (image_path, mask_path)]``, sorted by stem.
* ``split_by_image(data, val_fraction=0.2, seed=0) -> (train, val)``.
* ``split_by_region(data, val_fraction=0.2, side="right") -> (train, val)``: two ImageFolders.
* ``read_image(path, channel_axis=None) -> (C, H, W)`` as stored (dtype kept, not normalised).
* ``normalize_image(image, low=1.0, high=99.8) -> float32 (C, H, W)``, per channel.
* ``read_mask(path) -> int64 (H, W)``.
* ``class_balance_map(mask, num_classes) -> float32 (H, W)`` (from ``unet_lib.weights``, where the other w_c lives).
* ``write_labels(path, labels) -> Path``: a label image as a TIFF, written atomically.
"""

from ..weights import class_balance_map   # here too: the weights of a class map, beside the readers
from .folder import ImageFolder, split_by_image, split_by_region
from .pairing import find_pairs
from .reading import IMAGE_SUFFIXES, MASK_SUFFIXES, normalize_image, read_image, read_mask, write_labels

__all__ = [
    "ImageFolder", "find_pairs", "split_by_image", "split_by_region", "read_image", "normalize_image", "read_mask",
    "class_balance_map", "write_labels", "IMAGE_SUFFIXES", "MASK_SUFFIXES",
]
