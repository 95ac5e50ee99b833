"""What the store knows about a run's code, laid out as W&B lays it out for its own runs.

wandb records, for a run it starts itself: the git commit and remote in the run record and in
``wandb-metadata.json``, the uncommitted changes in ``diff.patch``, the installed packages in
``requirements.txt`` and the notebook under ``code/``. nbops turns its own captures (store
metadata ``git``, ``packages`` and ``notebook``) into the same files, scrubbed of secrets.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from nbops.redact import redact, scrub_text

#: Store metadata keys the W&B copy takes code information from.
CODE_KEYS = ("git", "packages", "notebook")


def git_info(metadata: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """Return ``(commit, remote)`` from the store's ``git`` metadata (None when unknown)."""
    git = metadata.get("git")
    if not isinstance(git, Mapping):
        return None, None
    commit = git.get("commit")
    remote = git.get("remote")
    return (
        scrub_text(commit) if isinstance(commit, str) and commit else None,
        scrub_text(remote) if isinstance(remote, str) and remote else None,
    )


def code_files(metadata: Mapping[str, Any]) -> dict[str, str]:
    """Return ``{path relative to the run's files folder: text}`` for the run's code.

    Paths are ``wandb-metadata.json``, ``diff.patch`` (only when there is a diff),
    ``requirements.txt`` and ``code/<notebook file name>``; every text is scrubbed of secrets.
    """
    files: dict[str, str] = {}
    meta: dict[str, Any] = {}
    commit, remote = git_info(metadata)
    if commit or remote:
        meta["git"] = {"commit": commit, "remote": remote}
    git = metadata.get("git")
    diff = git.get("diff") if isinstance(git, Mapping) else None
    if isinstance(diff, str) and diff.strip():
        files["diff.patch"] = diff if diff.endswith("\n") else diff + "\n"
    packages = metadata.get("packages")
    if isinstance(packages, Mapping) and packages:
        files["requirements.txt"] = "".join(
            f"{name}=={version}\n" for name, version in sorted(packages.items())
        )
    notebook = metadata.get("notebook")
    if isinstance(notebook, Mapping):
        path = notebook.get("path")
        snapshot = notebook.get("snapshot")
        text = snapshot.get("text") if isinstance(snapshot, Mapping) else None
        if isinstance(path, str) and path:
            name = PurePath(path).name
            if name in ("", ".", ".."):  # a folder, not a file: never a path out of code/
                name = "notebook.ipynb"
            meta["program"] = path
            meta["codePath"] = name
            if isinstance(text, str):
                files[f"code/{name}"] = text
    if meta:
        files["wandb-metadata.json"] = json.dumps(redact(meta), indent=2) + "\n"
    return {path: scrub_text(text) for path, text in files.items()}


def write_code_files(run: Any, files: Mapping[str, str]) -> list[str]:
    """Write ``files`` into a wandb run's files folder and mark them for upload.

    Returns:
        The paths written, relative to the files folder.
    """
    from nbops.fileio import write_atomic

    written = []
    for relative, text in files.items():
        target = os.path.join(run.dir, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        write_atomic(target, text.encode("utf-8"))
        run.save(target, base_path=run.dir, policy="now")
        written.append(relative)
    return written
