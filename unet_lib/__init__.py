"""unet_lib: the one copy of the code behind the unet-course notebooks."""

from .blocks import DoubleConv, Down, OutConv, Up, center_crop
from .model import UNet, block_shapes, named_blocks, receptive_field

__all__ = ["DoubleConv", "Down", "Up", "OutConv", "center_crop", "UNet", "named_blocks", "block_shapes", "receptive_field"]
