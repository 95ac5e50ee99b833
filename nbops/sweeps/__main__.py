"""``python -m nbops.sweeps SPEC_FILE [PARENT_PID]``: a worker process of a sweep."""

import sys

from nbops.sweeps._worker import main

sys.exit(main())
