"""``nbops.reproduce``: re-run a tracked result from its record and say exactly what differs."""

from __future__ import annotations

import html
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nbops.reproduce._bundle import import_bundle
from nbops.reproduce._compare import (
    ArtifactDiff,
    MetricDiff,
    OutputDiff,
    compare_artifacts,
    compare_metrics,
    compare_outputs,
)
from nbops.reproduce._recipe import Recipe, ReproduceError, read_recipe
from nbops.reproduce._workspace import (
    Check,
    build_workspace,
    datasets_changed_on_disk,
    package_changes,
    preflight,
)
from nbops.store import store_env

#: Metadata key of a reproduction run naming the run it reproduces.
REPRODUCES_KEY = "reproduces"
#: Verdicts, best first. Exit codes: 0 for the first two, 1 for ``differs``, 2 for ``failed``.
VERDICTS = ("reproduced", "reproduced within tolerance", "differs", "failed")


@dataclass(frozen=True)
class Reproduction:
    """The outcome of re-running a tracked run.

    Attributes:
        original: The run reproduced.
        run_id: The reproduction's own tracked run (None when it failed before starting).
        verdict: One of :data:`VERDICTS`.
        reasons: Why, most likely explanation first.
        checks: The pre-flight checks.
        metrics: Each metric of the original against the re-run.
        artifacts: Each artifact of the original against the re-run's.
        outputs: The first code cell whose outputs differ, or None.
        workspace: The scratch project, when kept (``keep=True``).
        error: Why the re-run failed, when it did.
    """

    original: str
    run_id: str | None
    verdict: str
    reasons: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()
    metrics: tuple[MetricDiff, ...] = ()
    artifacts: tuple[ArtifactDiff, ...] = ()
    outputs: OutputDiff | None = None
    workspace: str | None = None
    error: str | None = None
    second_run_id: str | None = field(default=None)

    @property
    def exit_code(self) -> int:
        """0 reproduced (within tolerance or exactly), 1 differs, 2 failed: for CI."""
        return {"differs": 1, "failed": 2}.get(self.verdict, 0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able document of the whole outcome."""
        return asdict(self)

    def _repr_html_(self) -> str:
        e = html.escape
        rows = "".join(
            f"<tr><td>{e(m.key)}</td><td>{e(repr(m.original))}</td><td>{e(repr(m.reproduced))}"
            f"</td><td>{'✓' if m.within else '✗'}</td></tr>"
            for m in self.metrics
        )
        reasons = "".join(f"<li>{e(r)}</li>" for r in self.reasons)
        return (
            f"<div class='nbops-reproduction'><b>{e(self.verdict)}</b> — run {e(self.original)}"
            f"{f' re-run as {e(self.run_id)}' if self.run_id else ''}<ul>{reasons}</ul>"
            "<table><tr><th>metric</th><th>original</th><th>re-run</th><th>ok</th></tr>"
            f"{rows}</table></div>"
        )


def reproduce(
    run: str,
    *,
    tolerances: Mapping[str, float] | None = None,
    keep: bool = False,
    timeout: float | None = None,
    store: Any = None,
) -> Reproduction:
    """Re-execute a run's recorded notebook top to bottom in a fresh kernel and compare.

    The notebook snapshot runs in a scratch copy of the project at the recorded git commit with
    the recorded diff applied and the recorded dataset versions restored by hash, with the
    recorded parameters; the user's checkout is only read. The re-run is a tracked run whose
    metadata names the original (``reproduces``). When metrics differ, the notebook runs once
    more to tell nondeterminism from a real difference.

    Args:
        run: The run id (or unique prefix, or ``latest``), or the path of a bundle written by
            :func:`export_bundle` (its source files are used; a bundle written with
            ``source=False`` needs its commit in the working directory's checkout).
        tolerances: Relative tolerance per metric key (default: exact for integers, 1e-9 for
            floats).
        keep: Keep the scratch project (its path is in ``workspace``).
        timeout: Seconds the notebook may run.
        store: The store, or its folder (default: the project's).

    Raises:
        ReproduceError: A blocking pre-flight check failed (the message lists them).
    """
    from nbops.store import open_store

    target = open_store(store)
    bundle = Path(run) if run.endswith(".zip") or Path(run).is_file() else None
    if bundle is not None:
        recipe = import_bundle(bundle, store=target, root=_project_root())
        run_id = recipe.run_id
    else:
        run_id = _resolve(target, run)
        recipe = read_recipe(run_id, target)
    try:
        kernel = _kernel_of(recipe)
        checks = tuple(preflight(recipe, kernel=kernel, store=target))
        blocking = [c for c in checks if c.blocking and not c.ok]
        if blocking:
            raise ReproduceError(
                f"cannot reproduce run {run_id}: "
                + "; ".join(f"{c.name}: {c.detail}" for c in blocking)
            )
        workspace = build_workspace(recipe, keep=keep, store=target)
        try:
            source = {"run": run_id, **({"bundle": str(bundle)} if bundle else {})}
            first = _execute(recipe, workspace, target, kernel, timeout, source)
            if first.error is not None:
                return Reproduction(
                    run_id,
                    first.run_id,
                    "failed",
                    (f"the re-run failed: {first.error}",),
                    checks,
                    workspace=str(workspace) if keep else None,
                    error=first.error,
                )
            metrics = tuple(
                compare_metrics(
                    recipe.metrics,
                    first.metrics,
                    tolerances=tolerances,
                    original_history=recipe.history,
                    reproduced_history=first.history,
                )
            )
            artifacts = tuple(compare_artifacts(recipe.artifacts, first.artifacts))
            outputs = (
                compare_outputs(recipe.executed_text, first.executed_text)
                if recipe.executed_text and first.executed_text
                else None
            )
            exact = all(m.exact for m in metrics) and all(a.same for a in artifacts)
            within = all(m.within for m in metrics) and all(a.same for a in artifacts)
            second = None
            if not within:
                second = _execute(recipe, workspace, target, kernel, timeout, source)
            # Outputs are compared like nbval, but the logged metrics are the result: differing
            # outputs only downgrade an exact match (or decide when nothing was logged).
            if not within or (outputs is not None and not metrics):
                verdict = "differs"
            elif exact and outputs is None:
                verdict = "reproduced"
            else:
                verdict = "reproduced within tolerance"
            reasons = _reasons(recipe, checks, metrics, artifacts, outputs, first, second)
            for result in (first, second):
                if result is not None:
                    target.set_metadata(
                        result.run_id, REPRODUCES_KEY, {**source, "verdict": verdict}
                    )
            return Reproduction(
                run_id,
                first.run_id,
                verdict,
                tuple(reasons),
                checks,
                metrics,
                artifacts,
                outputs,
                workspace=str(workspace) if keep else None,
                second_run_id=second.run_id if second else None,
            )
        finally:
            if not keep:
                shutil.rmtree(workspace.parent, ignore_errors=True)
    finally:
        if recipe.source is not None:  # the bundle's source files, unpacked for this run
            shutil.rmtree(recipe.source, ignore_errors=True)


def _project_root() -> str:
    """The git root of the working directory (a bundle's commit is looked up there), or it."""
    import subprocess

    try:
        found = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return os.getcwd()
    return found.stdout.strip() if found.returncode == 0 else os.getcwd()


def _resolve(store: Any, run: str) -> str:
    if run == "latest":
        runs = [r for r in store.list_runs() if r.job_type != "reproduction"]
        if not runs:
            raise ReproduceError(f"the store at {store.path} has no runs to reproduce")
        return str(runs[-1].id)
    return str(store.resolve_id(run))


def _kernel_of(recipe: Recipe) -> str:
    try:
        nb = json.loads(recipe.notebook_text)
    except ValueError as exc:
        raise ReproduceError(
            f"the recorded notebook of run {recipe.run_id} is not JSON: {exc}"
        ) from None
    spec = (nb.get("metadata") or {}).get("kernelspec") or {}
    return str(spec.get("name") or "python3")


@dataclass
class _Rerun:
    run_id: str
    metrics: dict[str, float]
    history: dict[str, tuple[tuple[int, float], ...]]
    artifacts: dict[str, str]
    executed_text: str | None
    error: str | None


def _execute(
    recipe: Recipe,
    workspace: Path,
    store: Any,
    kernel: str,
    timeout: float | None,
    source: Mapping[str, str],
) -> _Rerun:
    import nbops
    from nbops.capture import NOTEBOOK_PATH_ENV
    from nbops.errors import NbopsError
    from nbops.execute import execute_notebook
    from nbops.fileio import write_atomic
    from nbops.tracking import RUN_ID_ENV

    notebook = workspace / recipe.notebook_relpath
    notebook.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(notebook, recipe.notebook_text)
    run = nbops.init(
        project=recipe.project,
        name=f"reproduce-{recipe.name}",
        config=dict(recipe.parameters),
        job_type="reproduction",
        tags=["reproduction"],
        notebook=notebook,
        store=store,
        activate=False,
        wandb="disabled",
    )
    run.set_metadata(REPRODUCES_KEY, dict(source))
    executed = workspace.parent / f"executed-{run.id}.ipynb"
    env = {
        **store_env(store),  # the kernel writes to this store, whichever backend it is
        RUN_ID_ENV: run.id,
        "NBOPS_WANDB": "disabled",
        NOTEBOOK_PATH_ENV: str(notebook),
    }
    error = None
    try:
        execute_notebook(
            notebook,
            executed,
            dict(recipe.parameters),
            kernel_name=kernel,
            timeout=timeout,
            cwd=workspace if recipe.stage else notebook.parent,  # as the pipeline runs stages
            env=env,
        )
    except NbopsError as exc:
        error = str(exc)
    run.sync_from_store()
    if not run.finished:
        run.finish("failed" if error else "finished")
    points = store.get_metrics(run.id)
    history: dict[str, list[tuple[int, float]]] = {}
    for p in points:
        history.setdefault(p.key, []).append((p.step, p.value))
    try:
        text: str | None = executed.read_text(encoding="utf-8")
    except OSError:
        text = None
    return _Rerun(
        run.id,
        store.last_metrics([run.id])[run.id],
        {k: tuple(v) for k, v in history.items()},
        {a.name: a.digest for a in store.list_artifacts(run.id)},
        text,
        error,
    )


def _reasons(
    recipe: Recipe,
    checks: tuple[Check, ...],
    metrics: tuple[MetricDiff, ...],
    artifacts: tuple[ArtifactDiff, ...],
    outputs: OutputDiff | None,
    first: _Rerun,
    second: _Rerun | None,
) -> list[str]:
    """Explanations, most likely first: environment, hidden state, nondeterminism, data."""
    reasons: list[str] = []
    differing = [m for m in metrics if not m.within]
    changed = package_changes(dict(recipe.packages)) if recipe.packages else []
    if differing or outputs or not all(a.same for a in artifacts):
        if changed:
            reasons.append(
                "environment: "
                + ", ".join(
                    f"{c.name} {c.recorded or 'absent'} -> {c.installed or 'absent'}"
                    for c in changed[:5]
                )
                + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
                + " since the run"
            )
        python = next((c for c in checks if c.name == "python" and not c.ok), None)
        if python is not None:
            reasons.append(f"environment: {python.detail}")
        provenance = recipe.provenance or {}
        if provenance and provenance.get("reproducible") is False:
            from nbops.notebook import ProvenanceReport

            named = "; ".join(ProvenanceReport.from_dict(provenance).findings()[:3])
            per_metric = ", ".join(
                f"{m.key} interactively {m.original!r}, top to bottom {m.reproduced!r}"
                for m in differing
            )
            reasons.append(
                "hidden state: the original run's cells did not run top to bottom"
                + (f" ({named})" if named else "")
                + (f"; {per_metric}" if per_metric else "")
            )
        if second is not None:
            again = compare_metrics(first.metrics, second.metrics)
            if not all(m.within for m in again):
                keys = ", ".join(m.key for m in again if not m.within)
                reasons.append(
                    f"nondeterminism: a second re-run differs from the first on {keys} "
                    "(no seed set?)"
                )
    drifted = datasets_changed_on_disk(recipe)
    if drifted:
        reasons.append(
            "data: the file(s) of " + ", ".join(drifted) + " changed on disk since the run; "
            "the re-run used the recorded version"
        )
    for m in differing:
        reasons.append(f"metric {m.describe()}")
    for a in artifacts:
        if not a.same:
            state = "missing" if a.reproduced is None else "different content"
            reasons.append(f"artifact {a.name}: {state}")
    if outputs is not None:
        reasons.append(f"outputs of code cell {outputs.cell} differ")
    return reasons
