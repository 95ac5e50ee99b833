"""The ``nbops`` command line: thin shells over the public Python API.

Each command group lives in its own module with a ``register(subparsers)`` function; add a
group by listing its module in :data:`COMMAND_GROUPS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from nbops import __version__
from nbops.cli._output import NbopsUsageError
from nbops.errors import NbopsError

#: Modules under ``nbops.cli`` that each add one or more commands, in help order.
COMMAND_GROUPS = [
    "_pipeline",
    "_metrics",
    "_remote",
    "_runs",
    "_data",
    "_models",
    "_predict",
    "_card",
    "_extension",
    "_drift",
    "_monitor",
    "_sweep",
    "_serve",
    "_build",
    "_reproduce",
    "_store",
]


def build_parser() -> argparse.ArgumentParser:
    """Return the full ``nbops`` argument parser."""
    parser = argparse.ArgumentParser(prog="nbops", description="Jupyter-first experiment toolkit.")
    parser.add_argument("--version", action="version", version=f"nbops {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_GROUPS:
        importlib.import_module(f"nbops.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (``Error: ...`` on stderr and 1 on failure)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except NbopsUsageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except NbopsError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted", file=sys.stderr)
        return 130
