"""``nbops reproduce``: re-run a tracked result from its record and compare."""

from __future__ import annotations

import argparse
import sys

from nbops.cli._output import fmt, print_json, table


def cmd_reproduce(args: argparse.Namespace) -> int:
    from nbops.reproduce import ReproduceError, parse_tolerances, reproduce

    tolerances = parse_tolerances(args.tolerance or [])
    try:
        result = reproduce(args.run, tolerances=tolerances, keep=args.keep, timeout=args.timeout)
    except ReproduceError as exc:
        if args.json:
            print_json({"run": args.run, "verdict": "failed", "error": str(exc)})
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print_json(result.to_dict())
        return result.exit_code
    for check in result.checks:
        mark = "ok " if check.ok else ("FAIL" if check.blocking else "warn")
        print(f"  [{mark}] {check.name}: {check.detail}")
    print()
    if result.metrics:
        rows = [
            [m.key, fmt(m.original), fmt(m.reproduced), "yes" if m.within else "NO"]
            for m in result.metrics
        ]
        print(table(["metric", "original", "re-run", "matches"], rows))
        print()
    print(
        f"{result.verdict}: run {result.original}"
        + (f", re-run as {result.run_id}" if result.run_id else "")
    )
    for reason in result.reasons:
        print(f"  - {reason}")
    if result.workspace:
        print(f"scratch project kept at {result.workspace}")
    return result.exit_code


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``nbops reproduce``."""
    p = sub.add_parser(
        "reproduce",
        help="re-run a tracked run from its record and say what differs",
        description="Re-execute a run's recorded notebook top to bottom in a fresh kernel, in a "
        "scratch copy of the project at the recorded commit with the recorded diff and dataset "
        "versions, then compare metrics, artifacts and outputs. Exit 0 reproduced, 1 differs, "
        "2 failed.",
    )
    p.add_argument("run", metavar="RUN", help="run id, unique prefix, or 'latest'")
    p.add_argument(
        "--tolerance",
        action="append",
        metavar="KEY=REL",
        help="relative tolerance for one metric, e.g. accuracy=0.01 (repeatable)",
    )
    p.add_argument("--timeout", type=float, help="seconds the notebook may run")
    p.add_argument("--keep", action="store_true", help="keep the scratch project")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_reproduce)
