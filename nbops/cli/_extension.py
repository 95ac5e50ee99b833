"""``nbops install-extension`` and ``nbops sync``: the notebook and W&B side of the CLI."""

from __future__ import annotations

import argparse
import os


def cmd_sync(args: argparse.Namespace) -> int:
    from nbops.config import find_project_root
    from nbops.mirror import sync

    directory = args.dir or os.environ.get("WANDB_DIR") or find_project_root()
    print(sync(directory))
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
    p = sub.add_parser("sync", help="upload offline W&B runs")
    p.add_argument("--dir", help="folder holding wandb/ (default: WANDB_DIR or the project root)")
    p.set_defaults(func=cmd_sync)
    p = sub.add_parser("install-extension", help="make IPython load nbops automatically")
    p.add_argument("--uninstall", action="store_true", help="stop loading it automatically")
    p.add_argument("--profile", default="default", help="IPython profile (default: default)")
    p.set_defaults(func=cmd_install_extension)
