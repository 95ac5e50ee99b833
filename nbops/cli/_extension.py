"""``nbops install-extension`` and ``nbops sync``: the notebook and W&B side of the CLI."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def cmd_sync(args: argparse.Namespace) -> int:
    """Complete every incomplete W&B copy from the store, then (unless --offline) upload."""
    from nbops.cli._output import NbopsUsageError
    from nbops.config import find_project_root, store_path
    from nbops.errors import MirrorError
    from nbops.mirror import complete_offline_copies, sync
    from nbops.store import open_store

    if args.timeout <= 0:
        raise NbopsUsageError(f"--timeout must be a positive number of seconds, not {args.timeout}")
    directory = Path(args.dir or os.environ.get("WANDB_DIR") or find_project_root())
    # No store yet (a folder nbops never tracked in): nothing to complete, and none is created.
    has_store = bool(os.environ.get("NBOPS_STORE")) or store_path().exists()
    results = complete_offline_copies(open_store(), directory) if has_store else []
    folders = {directory}
    for result in results:
        if result.action == "rebuilt":
            folders.add(Path(result.detail).parent.parent)
            print(f"run {result.run_id}: W&B copy rebuilt from the store ({result.rows} rows)")
        else:
            print(f"run {result.run_id}: {result.action}, {result.detail}")
    failed = [r for r in results if r.action == "failed"]
    if not results:
        print("every W&B copy is complete")
    if args.offline:
        print("nothing uploaded (--offline)")
        if failed:
            raise MirrorError(f"{len(failed)} W&B copy(ies) could not be rebuilt; see above")
        return 0
    for folder in sorted(folders):
        print(sync(folder, timeout=args.timeout))
    if failed:
        raise MirrorError(f"{len(failed)} W&B copy(ies) could not be rebuilt; see above")
    return 0


def cmd_install_extension(args: argparse.Namespace) -> int:
    from nbops.notebook import install_extension, uninstall_extension

    if args.uninstall:
        path = uninstall_extension(args.profile)
        print(f"nbops is no longer loaded automatically ({path})")
    else:
        path = install_extension(args.profile)
        print(
            f"IPython will load nbops automatically ({path}); undo with "
            "`nbops install-extension --uninstall`"
        )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``nbops sync`` and ``nbops install-extension``."""
    p = sub.add_parser(
        "sync", help="complete every W&B copy from the store, then upload offline W&B runs"
    )
    p.add_argument("--dir", help="folder holding wandb/ (default: WANDB_DIR or the project root)")
    p.add_argument(
        "--offline", action="store_true", help="only complete the offline copies, upload nothing"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds to wait for the W&B server (default: 60)",
    )
    p.set_defaults(func=cmd_sync)
    p = sub.add_parser("install-extension", help="make IPython load nbops automatically")
    p.add_argument("--uninstall", action="store_true", help="stop loading it automatically")
    p.add_argument("--profile", default="default", help="IPython profile (default: default)")
    p.set_defaults(func=cmd_install_extension)
