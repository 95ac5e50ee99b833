"""Which notebook is running in this kernel, and a snapshot of its saved contents."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nbops.capture._jupyter_server import find_session_path, kernel_id, server_for_pids
from nbops.capture._jupyter_server import server_infos as _server_infos
from nbops.capture._papermill import (
    PapermillCommand,
    ancestor_pids,
    find_papermill_parent,
    read_papermill_metadata,
)
from nbops.hashing import code_hash
from nbops.redact import redact, scrub_text, secret_values
from nbops.shell import current_shell

logger = logging.getLogger(__name__)

#: Environment variable that names the notebook explicitly; it wins over every detection.
NOTEBOOK_PATH_ENV = "NBOPS_NOTEBOOK_PATH"
_HINT = f"set {NOTEBOOK_PATH_ENV} to the notebook's path"


@dataclass(frozen=True)
class NotebookLocation:
    """Where the running notebook lives and how that was found.

    Attributes:
        path: Absolute path of the notebook source, or None when it could not be found.
        source: How it was found: ``"env"``, ``"papermill"``, ``"vscode"``, ``"jupyter-server"``
            or ``"none"``.
        detail: One sentence saying how it was found, or why not and what to do.
        papermill: ``{"parameters", "input_path", "output_path"}`` when papermill runs the
            notebook, else None. ``path`` is then the input notebook.
    """

    path: str | None
    source: str
    detail: str
    papermill: dict[str, Any] | None = None


def find_notebook(
    shell: object | None = None, environ: Mapping[str, str] | None = None
) -> NotebookLocation:
    """Find the notebook this kernel runs. Fast (at most a few 1 s HTTP calls) and never raises.

    Tried in order: ``$NBOPS_NOTEBOOK_PATH``; a papermill CLI among the kernel's ancestor
    processes; VS Code's ``__vsc_ipynb_file__`` in the shell's namespace; Jupyter Server's
    ``$JPY_SESSION_NAME``; the ``/api/sessions`` list of each running Jupyter server.

    Args:
        shell: The IPython shell (default: the running one, if IPython is already imported).
        environ: Environment to read (default: ``os.environ``).
    """
    env = os.environ if environ is None else environ
    location = _find(shell, env)
    secrets = secret_values()
    return NotebookLocation(
        path=scrub_text(location.path, secrets) if location.path else None,
        source=location.source,
        detail=scrub_text(location.detail, secrets),
        papermill=redact(location.papermill, secrets) if location.papermill else None,
    )


def _find(shell: object | None, env: Mapping[str, str]) -> NotebookLocation:
    reasons = []
    explicit = env.get(NOTEBOOK_PATH_ENV)
    command, why = find_papermill_parent()
    papermill, pm_problem = _papermill_info(command) if command else (None, "")
    if explicit:
        path = os.path.abspath(os.path.expanduser(explicit))
        note = "" if os.path.isfile(path) else " (no such file yet)"
        return NotebookLocation(path, "env", f"from ${NOTEBOOK_PATH_ENV}{note}", papermill)
    reasons.append(f"${NOTEBOOK_PATH_ENV} is not set")

    if command is not None and papermill is not None:
        if command.input_path is None:
            detail = f"run by papermill (pid {command.pid}) reading stdin, so no path; {_HINT}"
            return NotebookLocation(None, "papermill", detail, papermill)
        detail = f"input notebook of the papermill CLI (pid {command.pid})"
        if command.warning:
            detail += f"; {command.warning}"
        if pm_problem:
            detail += f"; parameters taken from its command line as strings ({pm_problem})"
        return NotebookLocation(command.input_path, "papermill", detail, papermill)
    reasons.append(why)

    shell = current_shell() if shell is None else shell
    user_ns = getattr(shell, "user_ns", None)
    vsc = user_ns.get("__vsc_ipynb_file__") if isinstance(user_ns, Mapping) else None
    if isinstance(vsc, str) and vsc:
        return NotebookLocation(os.path.abspath(vsc), "vscode", "from VS Code's __vsc_ipynb_file__")
    reasons.append("no VS Code notebook marker" if shell else "no IPython shell")

    session = env.get("JPY_SESSION_NAME")
    if session:
        return _from_session_name(session, env)
    kid, why = kernel_id()
    if kid is not None:
        found, why = find_session_path(kid, env, ancestor_pids())
        if found is not None:
            return NotebookLocation(found, "jupyter-server", f"from the {why}")
    reasons.append(f"JPY_SESSION_NAME is not set and {why}")
    return NotebookLocation(
        None, "none", f"notebook not found: {'; '.join(reasons)}. S{_HINT[1:]}."
    )


def _papermill_info(command: PapermillCommand) -> tuple[dict[str, Any], str]:
    """Return the papermill dict for ``command`` and a problem reading its output notebook."""
    meta: dict[str, Any] = {}
    problem = "the output is not a local file"
    if command.output_path and "://" not in command.output_path:
        meta, problem = read_papermill_metadata(command.output_path)
    parameters = meta.get("parameters")
    info = {
        "parameters": parameters if isinstance(parameters, dict) else dict(command.parameters),
        "input_path": command.input_path,
        "output_path": command.output_path,
    }
    return info, problem if not isinstance(parameters, dict) else ""


def _from_session_name(session: str, env: Mapping[str, str]) -> NotebookLocation:
    """Resolve ``$JPY_SESSION_NAME``, relative to the Jupyter server's root when relative."""
    detail = "from $JPY_SESSION_NAME set by Jupyter Server"
    session = os.path.expanduser(session)
    if os.path.isabs(session):
        return NotebookLocation(os.path.normpath(session), "jupyter-server", detail)
    server = server_for_pids(env, ancestor_pids())
    if server is None:
        servers = _server_infos(env)
        server = servers[0] if len(servers) == 1 else None
    root = (server or {}).get("root_dir")
    if isinstance(root, str) and root:
        path = os.path.join(os.path.expanduser(root), session)
        return NotebookLocation(os.path.abspath(path), "jupyter-server", f"{detail} (relative)")
    detail += f", relative to the working directory because the server root is unknown; {_HINT}"
    return NotebookLocation(os.path.abspath(session), "jupyter-server", detail)


def snapshot_notebook(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the saved contents of a notebook file. Never raises.

    Returns:
        A dict with ``path`` (absolute), ``sha256`` and ``size`` of the file bytes, ``text`` (the
        file with secret values scrubbed), ``code_cells`` (``id`` or None, ``index`` in the
        notebook's cell list, ``source`` scrubbed, ``sha256`` = ``code_hash([source])`` of the
        original source) and ``error`` (None, or why the file could not be read or parsed;
        the fields that could be filled still are).
    """
    full = os.path.abspath(os.fspath(path))
    snap: dict[str, Any] = {
        "path": full,
        "sha256": None,
        "size": None,
        "text": None,
        "code_cells": [],
        "error": None,
    }
    try:
        with open(full, "rb") as f:
            data = f.read()
    except OSError as exc:
        snap["error"] = f"cannot read notebook {full}: {exc.strerror or exc}"
        return snap
    snap["sha256"] = hashlib.sha256(data).hexdigest()
    snap["size"] = len(data)
    secrets = secret_values()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        snap["error"] = f"notebook {full} is not UTF-8 text: {exc}"
        return snap
    snap["text"] = scrub_text(text, secrets)
    try:
        nb = json.loads(text)
    except ValueError as exc:
        snap["error"] = f"notebook {full} is not valid JSON: {exc}"
        return snap
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        snap["error"] = f"notebook {full} has no 'cells' list (only nbformat 4 is supported)"
        return snap
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        raw = cell.get("source", "")
        source = "".join(map(str, raw)) if isinstance(raw, list) else str(raw)
        cell_id = cell.get("id")
        snap["code_cells"].append(
            {
                "id": cell_id if isinstance(cell_id, str) else None,
                "index": index,
                "source": scrub_text(source, secrets),
                "sha256": code_hash([source]),
            }
        )
    return snap
