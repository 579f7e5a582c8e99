"""``python -m unet_lib.translation``: runs ``unet_lib.translation.cli.main`` (see ``--help``)."""

import sys

from .cli import main

sys.exit(main())
