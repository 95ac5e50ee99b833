"""``python -m nbops``: the command line."""

import sys

from nbops.cli import main

sys.exit(main())
