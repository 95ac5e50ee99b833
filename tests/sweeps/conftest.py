"""Notebooks for the sweep tests (the PostgreSQL server fixture is in tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path


def _cell(source: str, tags: list[str] | None = None) -> dict[str, object]:
    return {
        "cell_type": "code",
        "id": f"c{abs(hash(source)) % 10**8}",
        "source": source,
        "outputs": [],
        "execution_count": None,
        "metadata": {"tags": tags or []},
    }


def write_notebook(path: Path, parameters: str, body: str) -> Path:
    """A two-cell notebook: a ``parameters`` cell and a body."""
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "cells": [_cell(parameters, ["parameters"]), _cell(body)],
    }
    path.write_text(json.dumps(nb))
    return path
