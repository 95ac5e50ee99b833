"""``python -m nbops.serve``: the server process started by :func:`nbops.serve.serve`."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

from nbops.serve._config import CONFIG_ENV, PARENT_ENV, ServeConfig
from nbops.serve._server import run


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    text = os.environ.get(CONFIG_ENV)
    if not text:
        print(
            f"Error: {CONFIG_ENV} is not set; start the server with `nbops serve`", file=sys.stderr
        )
        return 2
    parent = os.environ.get(PARENT_ENV)
    if parent and parent.isdigit():
        _stop_with_parent(int(parent))
    run(ServeConfig.from_json(text))
    return 0


def _stop_with_parent(parent: int) -> None:
    """Stop gracefully when the process that started us (a notebook kernel) is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="nbops-parent-watch", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
