"""Finding the running IPython shell, without importing IPython when it is not loaded."""

from __future__ import annotations

import sys
from typing import Any


def current_shell() -> Any:
    """Return the running IPython shell, or None (also when IPython was never imported)."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    return get_ipython() if callable(get_ipython) else None


def in_jupyter() -> bool:
    """True inside a Jupyter kernel (an IPython shell with a kernel, which can show widgets)."""
    if "ipykernel" not in sys.modules:
        return False
    return getattr(current_shell(), "kernel", None) is not None
