"""``python -m nbops.serve``: the server process started by :func:`nbops.serve.serve`."""

from __future__ import annotations

import logging
import os
import sys

from nbops.serve._config import CONFIG_ENV, ServeConfig
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
    run(ServeConfig.from_json(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
