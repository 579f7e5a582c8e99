"""``python -m unet_lib.train`` (and ``torchrun -m unet_lib.train``): runs ``unet_lib.train.cli.main``.

A module of its own, which the package does not import, so that running it imports every other
module once (no "found in sys.modules" RuntimeWarning, one ``TrainConfig`` class).
"""

from .cli import main

main()
