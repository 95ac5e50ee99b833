"""``nbops remote | push | pull``: share stage outputs and the run cache through a remote."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from nbops.cli._output import print_json, table

if TYPE_CHECKING:
    from nbops.store import RunStore


def _project() -> tuple[Path, Path]:
    from nbops.config import find_project_root, store_path

    root = find_project_root()
    return root, store_path(root)


def _store(root: Path) -> RunStore:
    from nbops.config import store_url
    from nbops.store import open_store

    return open_store(store_url(root))


def _printer() -> Callable[[str], None]:
    start = time.perf_counter()

    def report(line: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f}s] {line}", flush=True)

    return report


def cmd_remote_add(args: argparse.Namespace) -> int:
    from nbops.pipeline import add_remote

    root, store = _project()
    added = add_remote(root, store, args.name, args.url, default=args.default, local=args.local)
    where = f"{store}/remotes.json" if added.local else "nbops.yaml"
    print(f"remote {added.name} -> {added.url}{' (default)' if added.default else ''} in {where}")
    return 0


def cmd_remote_list(args: argparse.Namespace) -> int:
    from nbops.pipeline import list_remotes

    remotes = list_remotes(*_project())
    rows = [
        [r.name, r.url, "yes" if r.default else "", "local" if r.local else "nbops.yaml"]
        for r in remotes.values()
    ]
    print(table(["NAME", "URL", "DEFAULT", "WHERE"], rows) if rows else "No remotes")
    return 0


def cmd_remote_default(args: argparse.Namespace) -> int:
    from nbops.pipeline import get_remote

    print(get_remote(*_project()).name)
    return 0


def cmd_remote_remove(args: argparse.Namespace) -> int:
    from nbops.pipeline import remove_remote

    remove_remote(*_project(), args.name)
    print(f"remote {args.name} removed")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from nbops.pipeline import open_configured, push

    root, store = _project()
    report = _printer()
    with open_configured(root, store, args.remote) as remote:
        result = push(root, _store(root), remote, args.stages, report)
    report(
        f"pushed {result.objects} object(s) ({result.bytes / 2**20:,.1f} MiB) and "
        f"{result.records} run cache record(s); {result.present} object(s) were already there"
    )
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from nbops.pipeline import open_configured, pull

    root, store = _project()
    report = _printer()
    with open_configured(root, store, args.remote) as remote:
        result = pull(root, _store(root), remote, args.stages, report)
    report(
        f"pulled {result.objects} object(s) ({result.bytes / 2**20:,.1f} MiB) and "
        f"{result.records} run cache record(s); restored {len(result.restored)} out(s)"
    )
    for line in result.restored:
        print(f"  restored {line}")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    import contextlib

    from nbops.pipeline import gc, open_configured

    root, store_dir = _project()
    with contextlib.ExitStack() as held:
        remote = None
        if args.remote is not None:
            remote = held.enter_context(open_configured(root, store_dir, args.remote or None))
        result = gc(
            root,
            _store(root),
            store_dir,
            keep=args.keep,
            remote=remote,
            dry_run=args.dry_run,
            report=(lambda _line: None) if args.json else print,
        )
    if args.json:
        print_json({"dry_run": args.dry_run, **result.as_dict()})
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``nbops remote``, ``push`` and ``pull``."""
    p = sub.add_parser("remote", help="where stage outputs and the run cache are shared")
    inner = p.add_subparsers(dest="remote_command", metavar="COMMAND", required=True)
    q = inner.add_parser("add", help="add or change a remote (a folder, ssh:// or sftp://)")
    q.add_argument("name")
    q.add_argument("url", help="a folder (local or mounted), file://, ssh:// or sftp:// URL")
    q.add_argument("--default", action="store_true", help="use it when no --remote is given")
    q.add_argument(
        "--local", action="store_true", help="keep it in this checkout only (not in nbops.yaml)"
    )
    q.set_defaults(func=cmd_remote_add)
    q = inner.add_parser("list", help="the configured remotes")
    q.set_defaults(func=cmd_remote_list)
    q = inner.add_parser("default", help="print the default remote (exit 1 when there is none)")
    q.set_defaults(func=cmd_remote_default)
    q = inner.add_parser("remove", help="remove a remote")
    q.add_argument("name")
    q.set_defaults(func=cmd_remote_remove)
    for name, func, text in (
        ("push", cmd_push, "copy stage outs, executed notebooks and the run cache to a remote"),
        ("pull", cmd_pull, "fetch them from a remote and restore missing outs"),
    ):
        q = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        q.add_argument("stages", nargs="*", metavar="STAGE", help="only these (default: all)")
        q.add_argument("--remote", "-r", metavar="NAME", help="not the default remote")
        q.set_defaults(func=func)
    q = sub.add_parser(
        "gc",
        help="remove deleted runs, old run cache records and notebooks, unreferenced objects",
        description="Keep what an owner refers to (runs not deleted, datasets, models, "
        "nbops.lock, each stage's --keep most recent run cache records and their executed "
        "notebooks); remove the rest here and, with --remote, on the remote. Reports the "
        "bytes freed per kind.",
    )
    q.add_argument("--keep", type=int, default=5, help="records kept per stage (default 5)")
    q.add_argument(
        "--remote",
        "-r",
        nargs="?",
        const="",
        metavar="NAME",
        help="also clean a remote (default: the default remote)",
    )
    q.add_argument("--dry-run", action="store_true", help="say what would be removed")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_gc)
