"""``python -m unet_lib.export``: the command line of ``unet_lib.export.cli``."""

from .cli import main

raise SystemExit(main())
