"""The isolated workspace a retrain runs in, so the user's checkout is never touched.

A scratch folder gets the project as it was at the production model's commit (``git archive``,
which reads the repository without changing it) or, without git, a copy of the working tree;
then the current data -- the monitor's ``current`` file and every pipeline input that no stage
writes -- is copied in from the working tree. The pipeline runs there against the user's store,
so only the registry (and the card, written by the monitor) change.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nbops.errors import NbopsError
from nbops.snapshot import copy_tree, export_commit
from nbops.store import RunStore, store_env

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Workspace:
    """Where a retrain runs and what it was made from (``commit`` None: a working-tree copy)."""

    path: Path
    commit: str | None
    copied: tuple[str, ...]


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
        used = commit if commit and export_commit(root, commit, target) else None
        if used is None:
            copy_tree(root, target)
        if not (target / "nbops.yaml").is_file():
            raise NbopsError(
                f"the project at {commit or 'the working tree'} has no nbops.yaml to retrain with"
            )
        yield Workspace(target, used, _copy_inputs(root, target, inputs))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def using_store(store: RunStore, project: str) -> Iterator[None]:
    """Point nbops (and the kernels it starts) at the user's store and project meanwhile: its
    URL, blob store and local folder (:func:`nbops.store.store_env`), so a team store works."""
    settings = {**store_env(store), "NBOPS_PROJECT": project}
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
