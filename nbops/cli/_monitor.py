"""``nbops monitor``: the drift check and retraining loop of ``nbops.yaml``'s ``monitor:``."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from nbops.cli._output import print_json


def cmd_monitor(args: argparse.Namespace) -> int:
    from nbops.monitor import monitor

    result = monitor(dry_run=args.dry_run, report=(lambda _line: None) if args.json else print)
    if args.json:
        print_json(asdict(result))
    return 1 if result.action == "retrain-failed" else 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``nbops monitor``."""
    p = sub.add_parser(
        "monitor",
        help="check drift; retrain, compare and promote when it drifted",
        description="Compare the current data with the production model's training data; on "
        "drift re-run the pipeline, score challenger and production on the holdout, and move "
        "the alias only if the challenger wins. Configured by monitor: in nbops.yaml.",
    )
    p.add_argument("--dry-run", action="store_true", help="check drift and say what would happen")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_monitor)
