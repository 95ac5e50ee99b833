"""The isolated workspace a retrain runs in, so the user's checkout is never touched.

A scratch folder gets the project as it was at the production model's commit (``git archive``,
which reads the repository without changing it) or, without git, a copy of the working tree;
then the current data -- the monitor's ``current`` file and every pipeline input that no stage
writes -- is copied in from the working tree. The pipeline runs there against the user's store,
so only the registry (and the card, written by the monitor) change.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nbops.errors import NbopsError

logger = logging.getLogger(__name__)

#: Never copied into a workspace: stores, version control, environments, caches.
SKIPPED = (".nbops", ".git", ".venv", "venv", "wandb", "__pycache__", ".ipynb_checkpoints")


@dataclass(frozen=True)
class Workspace:
    """Where a retrain runs and what it was made from (``commit`` None: a working-tree copy)."""

    path: Path
    commit: str | None
    copied: tuple[str, ...]


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, check=False)


def _from_commit(root: Path, commit: str, target: Path) -> bool:
    top = _git(root, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        return False
    prefix = os.path.relpath(root.resolve(), Path(top.stdout.decode().strip()).resolve())
    treeish = commit if prefix == "." else f"{commit}:{Path(prefix).as_posix()}"
    archive = _git(root, "archive", "--format=tar", treeish)
    if archive.returncode != 0:
        logger.warning("git archive %s failed: %s", treeish, archive.stderr.decode().strip())
        return False
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return True


def _copy_tree(root: Path, target: Path) -> None:
    shutil.copytree(
        root, target, dirs_exist_ok=True, symlinks=True, ignore=shutil.ignore_patterns(*SKIPPED)
    )


def _copy_inputs(root: Path, target: Path, inputs: Iterable[str]) -> tuple[str, ...]:
    copied = []
    for name in inputs:
        source = (root / name).resolve()
        if not source.is_relative_to(root.resolve()) or not source.exists():
            continue
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(source, dest)
        copied.append(name)
    return tuple(copied)


@contextlib.contextmanager
def isolated_workspace(
    root: Path, commit: str | None, inputs: Iterable[str]
) -> Iterator[Workspace]:
    """A scratch copy of the project at ``commit`` with ``inputs`` from the working tree.

    Removed when the block ends, whatever happened inside.
    """
    scratch = Path(tempfile.mkdtemp(prefix="nbops-retrain-"))
    try:
        target = scratch / root.resolve().name
        target.mkdir()
        used = commit if commit and _from_commit(root, commit, target) else None
        if used is None:
            _copy_tree(root, target)
        if not (target / "nbops.yaml").is_file():
            raise NbopsError(
                f"the project at {commit or 'the working tree'} has no nbops.yaml to retrain with"
            )
        yield Workspace(target, used, _copy_inputs(root, target, inputs))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def using_store(store_dir: Path, project: str) -> Iterator[None]:
    """Point nbops (and the kernels it starts) at the user's store and project meanwhile."""
    saved = {k: os.environ.get(k) for k in ("NBOPS_HOME", "NBOPS_PROJECT")}
    os.environ["NBOPS_HOME"] = str(store_dir)
    os.environ["NBOPS_PROJECT"] = project
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
