"""Scratch copies of a project: a git commit exported into a folder, or the working tree copied.

Used wherever nbops re-runs work away from the user's checkout (retraining, reproduction): both
read the repository or folder and never change it.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

logger = logging.getLogger(__name__)

#: Never copied into a scratch project: stores, version control, environments, caches.
SKIPPED = (
    ".nbops",
    ".git",
    ".venv",
    "venv",
    "wandb",
    "__pycache__",
    ".ipynb_checkpoints",
    "node_modules",
)


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, check=False)


def export_commit(root: str | os.PathLike[str], commit: str, target: Path) -> bool:
    """Write the files of ``commit`` (below ``root``'s place in the repository) into ``target``
    with ``git archive``. Returns False, with a logged reason, when git cannot."""
    base = Path(root)
    top = _git(base, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        return False
    prefix = os.path.relpath(base.resolve(), Path(top.stdout.decode().strip()).resolve())
    treeish = commit if prefix == "." else f"{commit}:{Path(prefix).as_posix()}"
    archive = _git(base, "archive", "--format=tar", treeish)
    if archive.returncode != 0:
        logger.warning("git archive %s failed: %s", treeish, archive.stderr.decode().strip())
        return False
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return True


def copy_tree(root: str | os.PathLike[str], target: Path) -> None:
    """Copy a working tree into ``target``, leaving out :data:`SKIPPED` folders."""
    shutil.copytree(
        root, target, dirs_exist_ok=True, symlinks=True, ignore=shutil.ignore_patterns(*SKIPPED)
    )
