"""What a tracked run recorded that a reproduction needs: the recipe read back from the store."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nbops.errors import NbopsError


class ReproduceError(NbopsError):
    """A run cannot be reproduced; the message names the missing piece and what would fetch it."""


@dataclass(frozen=True)
class DatasetPin:
    """A dataset version the run used, with where it lived relative to the project root."""

    name: str
    hash: str
    kind: str
    relpath: str | None


@dataclass(frozen=True)
class Recipe:
    """Everything recorded about a run that re-running it top to bottom needs.

    Attributes:
        run_id: The original run.
        project: Its project.
        name: Its name.
        notebook_text: The notebook as it was saved when the run started (secrets scrubbed).
        notebook_relpath: The notebook's path relative to the project root (or its file name).
        root: The project root the run started in (git root, else the notebook's folder).
        parameters: Parameters injected by papermill or a pipeline (empty for interactive runs).
        commit: The git commit, or None when the project was not under git.
        diff: ``git diff HEAD`` at start ("" when clean).
        diff_truncated: The recorded diff was cut at its size limit (it cannot be applied).
        untracked: Paths that were untracked at start (not in the commit).
        datasets: Dataset versions the run logged or used.
        packages: Installed distributions and versions at start.
        python: The Python version at start.
        metrics: Last value of each metric the run logged.
        history: Every metric point, by key: ``[(step, value), ...]``.
        artifacts: Artifact name to sha256.
        provenance: The run's cell provenance report, when it had one.
        executed_text: The original executed notebook (outputs included), when it can be found.
        stage: The pipeline stage the run executed, or None.
        inputs: For a stage, its deps as recorded (relative path to content hash).
        secret_parameters: Parameters recorded only as redacted (the notebook's default runs).
        source: A folder holding the project's files at ``commit`` with ``diff`` applied (read
            from a bundle); the workspace is copied from it instead of from git.
    """

    run_id: str
    project: str
    name: str
    notebook_text: str
    notebook_relpath: str
    root: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    commit: str | None = None
    diff: str = ""
    diff_truncated: bool = False
    untracked: tuple[str, ...] = ()
    datasets: tuple[DatasetPin, ...] = ()
    packages: Mapping[str, str] = field(default_factory=dict)
    python: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    history: Mapping[str, tuple[tuple[int, float], ...]] = field(default_factory=dict)
    artifacts: Mapping[str, str] = field(default_factory=dict)
    provenance: Mapping[str, Any] | None = None
    executed_text: str | None = None
    stage: str | None = None
    inputs: Mapping[str, str] = field(default_factory=dict)
    secret_parameters: tuple[str, ...] = ()
    source: str | None = None


def _read(path: str | None) -> str | None:
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def read_recipe(run_id: str, store: Any) -> Recipe:
    """Read the recipe of ``run_id`` (a full id) from ``store``.

    Raises:
        ReproduceError: The run recorded no notebook snapshot (it was not run from a notebook,
            or its notebook could not be found when it started).
    """
    record = store.get_run(run_id)
    meta = store.get_metadata(run_id)
    notebook = meta.get("notebook") or {}
    snapshot = notebook.get("snapshot") or {}
    text = snapshot.get("text")
    if not text:
        why = snapshot.get("error") or notebook.get("detail") or "no notebook was recorded"
        raise ReproduceError(
            f"run {run_id} has no notebook snapshot to re-run ({why}); only runs started from a "
            "notebook (%nbops track, papermill, a pipeline stage, a sweep trial) can be reproduced"
        )
    path = str(snapshot.get("path") or notebook.get("path") or "notebook.ipynb")
    git = meta.get("git") or {}
    root = str(git.get("root") or os.path.dirname(path) or ".")
    rel = os.path.relpath(path, root) if os.path.isabs(path) else os.path.basename(path)
    if rel.startswith(".."):
        rel = os.path.basename(path)
    pipeline = meta.get("pipeline") or {}
    papermill = meta.get("papermill") or {}
    lock = pipeline.get("lock") or {}
    if pipeline:
        # the run's parameters are the stage's, sweep results included (the lock seals secrets)
        declared = set(lock.get("params") or {}) | set(
            (lock.get("sweep") or {}).get("best_params") or {}
        )
        parameters = {
            k: v for k, v in store.get_params(run_id).items() if k in declared or not declared
        }
        executed = pipeline.get("executed") or lock.get("executed")
        executed_path = os.path.join(root, executed) if executed else None
    else:
        parameters = dict(papermill.get("parameters") or {})
        executed_path = papermill.get("output_path")
    secret = tuple(sorted(k for k, v in parameters.items() if v == "[redacted]"))
    parameters = {k: v for k, v in parameters.items() if k not in secret}
    if executed_path and not os.path.isabs(executed_path):
        executed_path = os.path.join(root, executed_path)
    executed_text = _read(executed_path)
    if executed_text is None and not pipeline and not papermill:
        finish = meta.get("notebook_finish") or {}
        executed_text = finish.get("text")
    datasets = []
    for entry in meta.get("datasets") or []:
        source = entry.get("source")
        relpath = None
        if source and os.path.isabs(str(source)):
            candidate = os.path.relpath(str(source), root)
            relpath = None if candidate.startswith("..") else candidate
        datasets.append(
            DatasetPin(
                str(entry["name"]), str(entry["hash"]), str(entry.get("kind") or "file"), relpath
            )
        )
    points = store.get_metrics(run_id)
    history: dict[str, list[tuple[int, float]]] = {}
    for p in points:
        history.setdefault(p.key, []).append((p.step, p.value))
    environment = meta.get("environment") or {}
    return Recipe(
        run_id=run_id,
        project=record.project,
        name=record.name,
        notebook_text=str(text),
        notebook_relpath=rel,
        root=root,
        parameters=parameters,
        commit=git.get("commit"),
        diff=str(git.get("diff") or ""),
        diff_truncated=bool(git.get("diff_truncated")),
        untracked=tuple(git.get("untracked") or ()),
        datasets=tuple(datasets),
        packages=dict(meta.get("packages") or {}),
        python=(environment.get("python") or {}).get("version"),
        metrics=store.last_metrics([run_id])[run_id],
        history={k: tuple(v) for k, v in history.items()},
        artifacts={a.name: a.digest for a in store.list_artifacts(run_id)},
        provenance=meta.get("provenance"),
        executed_text=executed_text,
        stage=pipeline.get("stage"),
        inputs=dict(lock.get("deps") or {}),
        secret_parameters=secret,
    )
