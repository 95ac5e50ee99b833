"""``nbops store``: where the store is, and copying one store into another."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nbops.cli._output import print_json, table


def _counts(store: Any) -> dict[str, int]:
    return {
        "runs": len(store.list_runs()),
        "model versions": sum(n for _, n in store.models.names()),
        "dataset versions": sum(n for _, n in store.datasets.latest()),
        "run cache records": len(store.run_cache.list()),
    }


def cmd_store_info(args: argparse.Namespace) -> int:
    from nbops.store import open_store

    store = open_store(args.store)
    doc = {"url": store.location, "blobs": store.blobs.url, **_counts(store)}
    if args.json:
        print_json(doc)
        return 0
    print(table(["", ""], [[k, str(v)] for k, v in doc.items()]))
    return 0


def cmd_store_migrate(args: argparse.Namespace) -> int:
    from nbops.store import copy_store, open_store

    src, dst = open_store(args.source), open_store(args.destination)
    if src.url == dst.url:
        from nbops.cli._output import NbopsUsageError

        raise NbopsUsageError(f"source and destination are the same store ({src.location})")
    progress = None if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    report = copy_store(src, dst, progress=progress)
    if args.json:
        doc = {"source": src.location, "destination": dst.location, **report.to_dict()}
        print_json(doc)
    else:
        rows = [
            [
                kind,
                str(total),
                str(there),
                str(report.copied.get(kind, 0)),
                str(report.skipped.get(kind, 0)),
            ]
            for kind, (total, there) in report.counts.items()
        ]
        print(f"{src.location} -> {dst.location}")
        print(table(["KIND", "SOURCE", "DESTINATION", "COPIED", "ALREADY THERE"], rows))
        for what in report.mismatches:
            print(f"differs after the copy: {what}")
        print(
            "verified: counts and content hashes are equal"
            if report.ok
            else "NOT verified: run the command again to resume; if it persists, the "
            "destination holds different data under the same ids"
        )
    return 0 if report.ok else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``nbops store`` and its actions."""
    store = sub.add_parser("store", help="where the store is; copy a store into another")
    actions = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    p = actions.add_parser("info", help="the store's URL, blob store and counts")
    p.add_argument("store", nargs="?", help="a folder or URL (default: NBOPS_STORE or .nbops)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_store_info)
    p = actions.add_parser(
        "migrate",
        help="copy every run, artifact, dataset, model, alias and cache record into another "
        "store, verified; run again to resume",
        description="SRC and DST are store folders or URLs (sqlite:///FOLDER, "
        "postgresql://USER@HOST/DB). The destination's blobs go to NBOPS_BLOBS (default: "
        "the project's .nbops/objects for PostgreSQL). Exit 1 if anything differs after the copy.",
    )
    p.add_argument("source", metavar="SRC")
    p.add_argument("destination", metavar="DST")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=cmd_store_migrate)
