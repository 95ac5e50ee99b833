"""``nbops data``: list, show and retrieve dataset versions."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable

from nbops.cli._output import fmt, print_json, table, when


def pipe_safe(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Stop quietly when the reader of the output goes away (``nbops data show X | head``)."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            code = command(args)
            sys.stdout.flush()
            return code
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # Python's documented way out
            return 0

    return run


@pipe_safe
def cmd_data_list(args: argparse.Namespace) -> int:
    from nbops.data import list_datasets

    entries = list_datasets()
    if args.json:
        doc = [{**v.to_dict(stats=False), "versions": n} for v, n in entries]
        print_json(doc)
        return 0
    if not entries:
        print("No datasets yet; log one with nbops.log_dataset(path_or_dataframe)")
        return 0
    rows = [
        [v.name, v.hash[:12], v.kind, fmt(v.rows), str(v.size), str(n), when(v.created_at)]
        for v, n in entries
    ]
    print(table(["NAME", "LATEST", "KIND", "ROWS", "BYTES", "VERSIONS", "LOGGED"], rows))
    return 0


@pipe_safe
def cmd_data_show(args: argparse.Namespace) -> int:
    from nbops.data import dataset_versions, get_dataset

    version = get_dataset(args.ref)
    others = dataset_versions(version.name)
    if args.json:
        doc = version.to_dict()
        doc["versions"] = [{"hash": v.hash, "created_at": v.created_at} for v in others]
        print_json(doc)
        return 0
    print(f"Dataset {version.name}@{version.hash}")
    print(
        f"  {version.kind}, {version.size} bytes"
        + (f", {version.rows} rows" if version.rows is not None else "")
        + (f", {version.files} files" if version.files is not None else "")
    )
    print(f"  source {version.source}")
    print(f"  logged {when(version.created_at)} by run {version.run_id}")
    if version.used_by:
        print(f"  used by runs {', '.join(version.used_by)}")
    if version.schema:
        print("  columns:")
        for column, dtype in version.schema.items():
            stats = dict((version.stats or {}).get(column) or {})
            stats.pop("dtype", None)
            detail = " ".join(f"{k}={fmt(v)}" for k, v in stats.items() if v is not None)
            print(f"    {column}  {dtype}  {detail}".rstrip())
    if len(others) > 1:
        print("  versions:")
        for other in others:
            mark = "*" if other.hash == version.hash else " "
            print(f"   {mark} {other.hash[:12]}  {when(other.created_at)}")
    return 0


def cmd_data_get(args: argparse.Namespace) -> int:
    from nbops.data import get_dataset, restore_dataset

    version = get_dataset(args.ref)
    out = restore_dataset(f"{version.name}@{version.hash}", args.output, force=args.force)
    print(f"Wrote {version.ref} ({version.kind}) to {out}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``nbops data`` and its actions."""
    data = sub.add_parser("data", help="list, show and retrieve dataset versions")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p = actions.add_parser("list", help="one line per dataset (its latest version)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_data_list)
    p = actions.add_parser("show", help="one dataset version: schema, statistics, runs")
    p.add_argument("ref", metavar="NAME[@HASH]", help="dataset name, and a hash prefix")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_data_show)
    p = actions.add_parser("get", help="write a dataset version out of the store")
    p.add_argument("ref", metavar="NAME@HASH", help="dataset name and a hash prefix")
    p.add_argument("-o", "--output", required=True, metavar="PATH", help="where to write it")
    p.add_argument(
        "--force", action="store_true", help="replace a non-empty folder at PATH (never merged)"
    )
    p.set_defaults(func=cmd_data_get)
