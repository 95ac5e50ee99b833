"""``python -m nbops.mirror copy DIRECTORY REASON``: the helper of
:class:`nbops.mirror.OfflineCopier` (writes the W&B copy of each run id read on stdin)."""

from __future__ import annotations

import sys

from nbops.mirror._copier import main

if __name__ == "__main__":
    if sys.argv[1:2] != ["copy"]:
        sys.exit("usage: python -m nbops.mirror copy DIRECTORY REASON (run by nbops itself)")
    sys.exit(main(sys.argv[2:]))
