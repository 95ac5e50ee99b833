"""What a run records about its surroundings at start and at finish."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from nbops.config import find_project_root
from nbops.shell import current_shell

if TYPE_CHECKING:
    from nbops.tracking._run import Run


def capture_start(run: Run, shell: Any = None, notebook: str | None = None) -> None:
    """Record git state, environment, packages and the notebook (path, snapshot, papermill)."""
    from nbops.capture import (
        environment,
        find_notebook,
        git_state,
        installed_packages,
        snapshot_notebook,
    )

    run.set_metadata("git", git_state(find_project_root()))
    run.set_metadata("environment", environment())
    run.set_metadata("packages", installed_packages())
    if notebook is not None:
        path = os.path.abspath(notebook)
        run.set_metadata(
            "notebook",
            {
                "path": path,
                "source": "executor",
                "detail": "given by the process that executes it",
                "snapshot": snapshot_notebook(path),
            },
        )
        return
    location = find_notebook(shell if shell is not None else current_shell())
    run.set_metadata(
        "notebook",
        {
            "path": location.path,
            "source": location.source,
            "detail": location.detail,
            "snapshot": snapshot_notebook(location.path) if location.path else None,
        },
    )
    if location.papermill:
        run.set_metadata("papermill", location.papermill)
        parameters = location.papermill.get("parameters") or {}
        if parameters and not run.finished:
            run.log_params(parameters)


def capture_finish(run: Run) -> None:
    """Record the git state and the notebook as they are at finish, when they changed."""
    from nbops.capture import git_state, snapshot_notebook

    metadata = run.store.get_metadata(run.id)
    state = git_state(find_project_root())
    if state != metadata.get("git"):
        run.set_metadata("git_finish", state)
    path = (metadata.get("notebook") or {}).get("path")
    if path:
        run.set_metadata("notebook_finish", snapshot_notebook(path))
