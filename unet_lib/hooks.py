"""Forward hooks on a U-Net's blocks: what ``unet_lib.widgets`` shows.

Every block's output recorded (``feature_maps``), and the skip connections block-averaged
(``average_skips``).

B, C, H, W = batch, channels, height, width.

``feature_maps(model, image)`` runs the network once with forward hooks on every block and
returns what each block produced, in the order of ``unet_layers(model)``: each block of the
contracting path, the bottleneck, each block of the expansive path, the output. The hooks are
removed afterwards. This module does not need ipywidgets.
"""

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .model import UNet, named_blocks
from .tiling import padded_forward
from .validate import check_finite, check_spatial

__all__ = ["Layer", "FeatureMaps", "unet_layers", "feature_maps", "feature_maps_batch", "average_skips"]


class Layer(NamedTuple):
    """One block of a ``UNet`` whose output the explorer can show."""
    name: str     # the block's name in ``named_blocks(model)``: "inc", "downs[0]", "ups[1]", "outc"
    label: str    # what the learner reads: "contracting path, level 1 (downs[0])"
    level: int    # 0 at full resolution; level k is downsampled by 2**k


class FeatureMaps(NamedTuple):
    """What ``feature_maps`` returns for one image."""
    maps: dict[str, torch.Tensor]   # layer name -> (C, h, w) output of that block, float32, CPU
    logits: torch.Tensor            # (num_classes, H, W): the output for every pixel of the image
    input: torch.Tensor             # (in_channels, H_in, W_in): what the network saw (mirror-padded)


def unet_layers(model: UNet) -> list[Layer]:
    """The blocks of ``model`` in the order the data flows through them (``named_blocks``): the
    first ``DoubleConv``, each ``Down`` of the contracting path (the last one is the
    bottleneck), each ``Up`` of the expansive path, and the ``OutConv``."""
    _check_model(model)
    depth = model.depth
    layers = []
    for name, _ in named_blocks(model):
        if name == "inc":
            layers.append(Layer(name, f"contracting path, level 0 ({name})", 0))
        elif name.startswith("downs"):
            level = int(name[6:-1]) + 1
            part = "bottleneck" if level == depth else "contracting path"
            layers.append(Layer(name, f"{part}, level {level} ({name})", level))
        elif name.startswith("ups"):
            level = depth - 1 - int(name[4:-1])   # ups[0] sits just above the bottleneck
            layers.append(Layer(name, f"expansive path, level {level} ({name})", level))
        else:
            layers.append(Layer(name, f"output: logits ({name})", 0))
    return layers


def feature_maps(model: UNet, image: torch.Tensor) -> FeatureMaps:
    """Run ``model`` once on ``image`` (C, H, W) and record every block's output with forward hooks.

    The image goes through ``tiling.padded_forward``: it is mirror-padded by the model's context
    margin so that the logits cover every pixel of the image (Fig. 2: "the missing context is
    extrapolated by mirroring the input image"). The feature maps are those of the padded input,
    so they are larger than the image at the top level. The model runs in eval mode (BatchNorm
    uses its running statistics and is not updated) and is put back in the mode it was in; the
    hooks are removed. ``feature_maps_batch`` does the work, for several images at once.
    """
    _check_model(model)
    image = _check_image(image, model.in_channels, "image")
    return feature_maps_batch(model, image[None])[0]


@torch.no_grad()
def feature_maps_batch(model: UNet, images: torch.Tensor) -> list[FeatureMaps]:
    """``feature_maps`` for a batch (B, C, H, W) in one forward pass: a list of B ``FeatureMaps``.

    One pass over a batch costs much less on a CPU than B passes over single images.
    """
    _check_model(model)
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a (B, C, H, W) tensor, got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    param = next(model.parameters())
    maps: dict[str, torch.Tensor] = {}
    seen: list[torch.Tensor] = []

    def recorder(name: str):
        def hook(module, inputs, output):
            # clone: the next block must not be able to change what we keep (in-place ReLUs)
            maps[name] = output.detach().to("cpu", torch.float32).clone()   # (B, C, h, w)
        return hook

    blocks = dict(named_blocks(model))
    handles = [blocks[layer.name].register_forward_hook(recorder(layer.name)) for layer in unet_layers(model)]
    # and what the network saw: the mirror-padded batch
    handles.append(model.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].detach().cpu())))
    was_training = model.training
    try:
        model.eval()
        logits = padded_forward(model, images.to(param.device, param.dtype))   # (B, num_classes, H, W)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    logits = logits.to("cpu", torch.float32)
    return [FeatureMaps({name: fmap[b] for name, fmap in maps.items()}, logits[b], seen[0][b].float())
            for b in range(len(images))]


def average_skips(model: UNet, blocks: Sequence[str] | None = None) -> list[torch.utils.hooks.RemovableHandle]:
    """Block-average the skip connections of ``model``: a forward pre-hook on each chosen ``Up``
    block replaces the map it receives from the contracting path by that map averaged over
    f x f blocks and upsampled back (nearest), where f = 2**(j + 1) for ``ups[j]``: the factor
    that brings the skip down to the bottleneck's resolution (``ups[0]``, just above the
    bottleneck, 2 x 2; the last ``Up``, at full resolution, 2**depth x 2**depth).

    The skip keeps what it says at the bottleneck's scale and loses only the finer detail, and
    every ``Up`` block still gets inputs of the kind it saw in training (unlike ``cut_skips``,
    whose zeros it never saw). The weights are not changed.

    ``blocks``: names from ``named_blocks`` (``"ups[0]"``, ...); ``None`` = every ``Up`` block.
    Returns the hooks' handles; ``handle.remove()`` restores the skips. Raises ``TypeError`` for
    a model that is not a ``UNet`` and ``ValueError`` listing the names for a name that is not
    an ``Up`` block of ``model``.
    """
    _check_model(model)
    names = [f"ups[{j}]" for j in range(len(model.ups))]
    if isinstance(blocks, str):
        blocks = [blocks]
    chosen = names if blocks is None else list(blocks)
    unknown = [name for name in chosen if name not in names]
    if unknown:
        raise ValueError(f"blocks={unknown[0]!r} is not an Up block of this U-Net; choose from "
                         f"{', '.join(names) or '(none: depth 0 has no skips)'}")

    def hook(module: torch.nn.Module, args: tuple[torch.Tensor, torch.Tensor], factor: int):
        x, skip = args                                                        # skip: (B, C, H_s, W_s)
        coarse = F.avg_pool2d(skip, factor, ceil_mode=True)                   # (B, C, ceil(H_s/f), ceil(W_s/f))
        fine = F.interpolate(coarse, scale_factor=factor)                     # (B, C, >= H_s, >= W_s)
        return x, fine[..., : skip.shape[-2], : skip.shape[-1]]               # (B, C, H_s, W_s)

    return [model.ups[j].register_forward_pre_hook(lambda m, args, f=2 ** (j + 1): hook(m, args, f))
            for j in range(len(model.ups)) if names[j] in chosen]


# -- validation ------------------------------------------------------------------------------

def _check_model(model) -> None:
    if not isinstance(model, UNet):
        hint = " (a Checkpoint? pass checkpoint.model)" if hasattr(model, "model") else ""
        raise TypeError(f"expected a unet_lib.UNet, got {type(model).__name__}{hint}")


def _check_image(image, in_channels: int, what: str) -> torch.Tensor:
    """An image as a (C, H, W) float32 CPU tensor, or a clear error."""
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(image)
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor or numpy array of shape (C, H, W), got {type(image).__name__}")
    if image.ndim == 2 and in_channels == 1:
        image = image[None]                       # (H, W) -> (1, H, W)
    if image.ndim != 3 or image.shape[0] != in_channels:
        raise ValueError(f"{what} must have shape ({in_channels}, H, W) for a model with "
                         f"in_channels={in_channels}, got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"{what} must be a float tensor, got {image.dtype}; "
                        f"convert with image.float() (divide by 255 if it holds 0..255)")
    check_spatial(what, image)
    check_finite(what, image, "a NaN pixel spreads through every feature map; replace them (torch.nan_to_num)")
    return image.detach().to("cpu", torch.float32)
