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


def cmd_export(args: argparse.Namespace) -> int:
    from nbops.reproduce import export_bundle, write_environment

    if args.env:
        written = write_environment(args.run, args.env)
        print(f"wrote {written} (the packages run {args.run} recorded)")
    if args.output:
        bundle = export_bundle(
            args.run, args.output, data=not args.no_data, source=not args.no_source
        )
        size = bundle.stat().st_size
        print(f"wrote {bundle} ({size / 1e6:.1f} MB); reproduce it with `nbops reproduce {bundle}`")
    if not args.env and not args.output:
        print("Error: give -o BUNDLE.zip and/or --env FILE", file=sys.stderr)
        return 2
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``nbops reproduce`` and ``nbops export``."""
    p = sub.add_parser(
        "reproduce",
        help="re-run a tracked run from its record and say what differs",
        description="Re-execute a run's recorded notebook top to bottom in a fresh kernel, in a "
        "scratch copy of the project at the recorded commit with the recorded diff and dataset "
        "versions, then compare metrics, artifacts and outputs. Exit 0 reproduced, 1 differs, "
        "2 failed.",
    )
    p.add_argument("run", metavar="RUN", help="run id, unique prefix, 'latest', or a bundle .zip")
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
    p = sub.add_parser(
        "export",
        help="pack what reproducing a run needs into a portable bundle",
        description="Write a zip with the run's notebook, parameters, dataset versions, package "
        "lock, git commit and diff, and the project's files at that commit with the diff "
        "applied (so it reproduces outside the repository), verified by hash when read back by "
        "`nbops reproduce`.",
    )
    p.add_argument("run", metavar="RUN", help="run id or unique prefix")
    p.add_argument("-o", "--output", metavar="BUNDLE.zip", help="the bundle to write")
    p.add_argument(
        "--no-data", action="store_true", help="bundle only the hashes of datasets and inputs"
    )
    p.add_argument(
        "--no-source",
        action="store_true",
        help="leave out the project's files (reproducing then needs a checkout with the commit)",
    )
    p.add_argument(
        "--env",
        metavar="FILE",
        help="also write requirements.txt (or environment.yml) pinned to the recorded packages",
    )
    p.set_defaults(func=cmd_export)
