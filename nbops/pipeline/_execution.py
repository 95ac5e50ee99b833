"""A stage's notebook in a fresh kernel, and what is read from its run afterwards; shared by
the local executor and the Dask workers (:mod:`nbops.pipeline._job`)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.errors import NbopsError
from nbops.pipeline._spec import Stage
from nbops.store import RunStore

if TYPE_CHECKING:
    from nbops.tracking import Run

logger = logging.getLogger(__name__)


def scrub_secrets(executed: Path, params: Mapping[str, Any]) -> None:
    """Remove secret values (secret-named parameters, secret environment variables) from the
    executed notebook papermill wrote, rewriting it atomically."""
    from nbops.fileio import write_atomic
    from nbops.redact import is_secret_name, scrub_text, secret_values

    secrets = secret_values() + [
        str(v) for k, v in params.items() if is_secret_name(k) and len(str(v)) >= 4
    ]
    if not secrets or not executed.is_file():
        return
    text = executed.read_text(encoding="utf-8")
    variants = sorted(
        {form for s in secrets for form in (s, json.dumps(s)[1:-1])}, key=len, reverse=True
    )
    clean = scrub_text(text, variants)
    if clean != text:
        write_atomic(executed, clean)


def _numeric(values: Mapping[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.startswith("_")
    }


def stage_env(run_id: str, store: RunStore, store_dir: Path, notebook: Path) -> dict[str, str]:
    """The environment a stage's kernel gets: its run, the project's store (whichever backend),
    no W&B of its own."""
    from nbops.capture import NOTEBOOK_PATH_ENV
    from nbops.store import store_env
    from nbops.tracking import RUN_ID_ENV

    return {
        **store_env(store),
        RUN_ID_ENV: run_id,
        "NBOPS_HOME": str(store_dir),
        "NBOPS_WANDB": "disabled",
        NOTEBOOK_PATH_ENV: str(notebook),
    }


def run_notebook(
    notebook: Path,
    executed: Path,
    params: Mapping[str, Any],
    *,
    kernel_name: str,
    timeout: float | None,
    env: Mapping[str, str],
    cwd: Path,
    kernels: dict[str, Any],
    name: str,
    stopping: threading.Event,
) -> str | None:
    """Execute ``notebook`` into ``executed`` in a fresh kernel (papermill); return why it
    failed, if it did. The kernel is in ``kernels[name]`` while it runs, for Ctrl-C to kill."""
    from nbops.execute import execute_notebook, kill_kernel, start_kernel

    try:
        kernel = start_kernel(kernel_name, env=dict(env), cwd=cwd)
        kernels[name] = kernel
        if stopping.is_set():  # Ctrl-C arrived while this kernel was starting
            kill_kernel(kernel)
        execute_notebook(
            notebook,
            executed,
            dict(params),
            kernel_name=kernel_name,
            timeout=timeout,
            kernel=kernel,
            wait_for_shutdown=False,
        )
    except NbopsError as exc:  # ExecutionError included: cell, kernel, timeout
        return str(exc)
    except Exception as exc:  # anything else still fails the stage, never "finished"
        logger.warning("stage %s failed unexpectedly", name, exc_info=True)
        return f"{type(exc).__name__}: {exc}"
    finally:
        kernels.pop(name, None)
    return None


def stage_metrics(store: RunStore, run: Run) -> dict[str, float]:
    """The numeric summary and last metric values of a stage's run (after syncing it)."""
    summary = _numeric(dict(run.summary))
    return {**summary, **_numeric(store.last_metrics([run.id])[run.id])}


def check_gates(stage: Stage, metrics: Mapping[str, float]) -> list[str]:
    """Why the stage's gates fail on ``metrics`` (nothing when they pass)."""
    problems = []
    for gate in stage.gates:
        if gate.metric not in metrics:
            logged = ", ".join(sorted(metrics)) or "nothing"
            problems.append(
                f"{stage.name}: gate on {gate.metric!r}, but the notebook never "
                f"logged it (logged: {logged})"
            )
        elif not gate.passes(metrics[gate.metric]):
            problems.append(gate.describe_failure(stage.name, metrics[gate.metric]))
    return problems
