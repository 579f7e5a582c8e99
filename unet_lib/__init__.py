"""unet_lib: the one copy of the code behind the unet-course notebooks."""

from .blocks import DoubleConv, Down, OutConv, Up, center_crop
from .model import UNet, receptive_field

__all__ = ["DoubleConv", "Down", "Up", "OutConv", "center_crop", "UNet", "receptive_field"]
