"""Ask running Jupyter servers which notebook owns this kernel (``/api/sessions``)."""

from __future__ import annotations

import glob
import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from nbops.process import pid_alive

logger = logging.getLogger(__name__)

#: Seconds one HTTP request to a Jupyter server may take.
HTTP_TIMEOUT = 1.0
#: At most this many live servers are asked, so a crowded runtime dir cannot stall a run.
MAX_SERVERS = 4


def kernel_id() -> tuple[str | None, str]:
    """Return this kernel's id (from its connection file name) and, when None, why."""
    if "ipykernel" not in sys.modules:
        return None, "this process is not an ipykernel kernel"
    try:
        from ipykernel.connect import get_connection_file

        name = os.path.basename(get_connection_file())
    except (ImportError, AttributeError, RuntimeError, OSError, ValueError) as exc:
        # no running kernel app, or an ipykernel without this API
        return None, f"the kernel connection file is unknown ({exc})"
    if not (name.startswith("kernel-") and name.endswith(".json")):
        return None, f"connection file {name!r} does not carry a kernel id"
    return name[len("kernel-") : -len(".json")], ""


def runtime_dir(environ: Mapping[str, str]) -> str | None:
    """Return the Jupyter runtime directory (``JUPYTER_RUNTIME_DIR`` or jupyter_core's default)."""
    explicit = environ.get("JUPYTER_RUNTIME_DIR")
    if explicit:
        return explicit
    try:
        from jupyter_core.paths import jupyter_runtime_dir
    except ImportError:
        return None
    return jupyter_runtime_dir()


def server_infos(
    environ: Mapping[str, str], prefer_pids: tuple[int, ...] = ()
) -> list[dict[str, Any]]:
    """Return the ``jpserver-*.json`` records of live servers, those in ``prefer_pids`` first."""
    where = runtime_dir(environ)
    if not where:
        return []
    infos = []
    for file in glob.glob(os.path.join(where, "jpserver-*.json")):
        try:
            with open(file, encoding="utf-8") as f:
                info = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and pid_alive(info.get("pid")):
            infos.append(info)
    infos.sort(key=lambda info: info.get("pid") not in prefer_pids)
    return infos[:MAX_SERVERS]


def server_for_pids(environ: Mapping[str, str], pids: tuple[int, ...]) -> dict[str, Any] | None:
    """Return the record of the server whose process is one of ``pids`` (kernel ancestors)."""
    for info in server_infos(environ, pids):
        if info.get("pid") in pids:
            return info
    return None


def find_session_path(
    kid: str, environ: Mapping[str, str], prefer_pids: tuple[int, ...] = ()
) -> tuple[str | None, str]:
    """Return the absolute notebook path of the session running kernel ``kid``, or why not."""
    infos = server_infos(environ, prefer_pids)
    if not infos:
        return None, f"no running Jupyter server in {runtime_dir(environ) or 'the runtime dir'}"
    problems = []
    for info in infos:
        url = str(info.get("url", "")).rstrip("/") + "/api/sessions"
        try:
            sessions = _get_json(url, str(info.get("token", "")))
        except (OSError, ValueError) as exc:
            problems.append(f"{url}: {exc}")
            continue
        for session in sessions if isinstance(sessions, list) else []:
            kernel = session.get("kernel") or {}
            if kernel.get("id") == kid and session.get("path"):
                root = info.get("root_dir") or info.get("notebook_dir") or ""
                path = os.path.join(os.path.expanduser(root), session["path"])
                return os.path.abspath(path), f"Jupyter server at {info.get('url')} session list"
        problems.append(f"{url}: no session uses kernel {kid}")
    return None, "; ".join(problems)


def _get_json(url: str, token: str) -> Any:
    import urllib.request  # pulls in http.client and ssl, so only when a server is asked

    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})  # noqa: S310
    # A local server must not be reached through an HTTP proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=HTTP_TIMEOUT) as response:
        return json.loads(response.read(10_000_000).decode("utf-8"))
