"""A real JupyterLab server and Debian's chromium driven by Playwright, for the ``browser`` tests.

The server runs on a free loopback port with a token, private Jupyter config/data/runtime folders
(lab news and update checks off), a private store and W&B disabled; it serves a scratch copy of
``notebooks/`` (JupyterLab autosaves into what it serves) and is always stopped at teardown.
Chromium is Debian's (``/usr/bin/chromium``), launched by Playwright's sync API; Playwright's own
browser download is never used. A missing part fails the tests, it does not skip them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

CHROMIUM = Path(os.environ.get("NBOPS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
#: Screenshots land here; the folder is git-ignored and kept by CI.
ARTIFACTS = REPO / "test-artifacts" / "browser"
SERVER_START_TIMEOUT = 60.0
#: Lab settings that keep the "news" and "update available" toasts off the page.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


@dataclass(frozen=True)
class LabServer:
    """A running JupyterLab server: where it listens, what it serves, where runs are stored."""

    url: str
    token: str
    root: Path
    store: Path
    log: Path
    pid: int

    def notebook_url(self, name: str, workspace: str | None = None) -> str:
        """The lab URL opening ``name`` (relative to :attr:`root`), token included.

        Each page gets a fresh workspace (``reset``): JupyterLab otherwise restores the tabs a
        previous page left open and may show another notebook than ``name``.
        """
        workspace = workspace or f"t{secrets.token_hex(6)}"
        return f"{self.url}lab/workspaces/{workspace}/tree/{name}?reset&token={self.token}"

    def api(self, method: str, path: str) -> Any:
        """Call the server's REST API (``path`` like ``api/sessions``); return the JSON or None."""
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_sessions(self) -> None:
        """Shut down every notebook session (and its kernel) the server runs."""
        for session in self.api("GET", "api/sessions"):
            self.api("DELETE", f"api/sessions/{session['id']}")

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError as exc:
            return f"(no server log: {exc})"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_settings(config_dir: Path) -> None:
    for rel, values in LAB_SETTINGS.items():
        path = config_dir / "lab" / "user-settings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def _server_env(base: Path, store: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JUPYTER", "JPY_", "WANDB_", "NBOPS_")) and k != "IPYTHONDIR"
    }
    env.update(
        JUPYTER_CONFIG_DIR=str(base / "jupyter-config"),
        JUPYTER_DATA_DIR=str(base / "jupyter-data"),
        JUPYTER_RUNTIME_DIR=str(base / "jupyter-runtime"),
        JUPYTER_PLATFORM_DIRS="1",
        JUPYTERLAB_SETTINGS_DIR=str(base / "jupyter-config" / "lab" / "user-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "jupyter-config" / "lab" / "workspaces"),
        IPYTHONDIR=str(base / "ipython"),
        NBOPS_HOME=str(store),
        NBOPS_WANDB="disabled",
        WANDB_MODE="disabled",
        WANDB_SILENT="true",
        WANDB_DIR=str(base / "wandb"),
        NETRC=str(base / "no-netrc"),
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    return env


def _is_ready(
    proc: subprocess.Popen[bytes], runtime: Path, port: int, url: str, token: str
) -> bool:
    """True once THIS process wrote its server file for ``port`` and answers ``/api/status``.

    A stale server on the same port would answer ``/api/status`` too; the runtime file named
    after our pid, in our private runtime folder, proves the answer comes from ours.
    """
    info = runtime / f"jpserver-{proc.pid}.json"
    try:
        if json.loads(info.read_text()).get("port") != port:
            return False
    except (OSError, ValueError):
        return False
    request = urllib.request.Request(
        f"{url}api/status", headers={"Authorization": f"token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the server shuts its kernels down), then SIGKILL to its process group."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """A JupyterLab server on 127.0.0.1 serving a scratch copy of ``notebooks/``."""
    if importlib.util.find_spec("jupyterlab") is None:
        pytest.fail(
            "JupyterLab is not installed in this Python: pip install -e '.[dev]' "
            "(or pip install 'jupyterlab>=4' ipywidgets)"
        )
    base = tmp_path_factory.mktemp("lab")
    root, store = base / "notebooks", base / "store"
    shutil.copytree(REPO / "notebooks", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    _write_settings(base / "jupyter-config")
    port, token = _free_port(), secrets.token_hex(16)
    url = f"http://127.0.0.1:{port}/"
    log = base / "jupyterlab.log"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=root,
            env=_server_env(base, store),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LabServer(url, token, root, store, log, proc.pid)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not _is_ready(proc, base / "jupyter-runtime", port, url, token):
            if proc.poll() is not None:
                pytest.fail(
                    f"JupyterLab exited with code {proc.returncode} before it was ready "
                    f"(port {port}); its log:\n{server.log_tail()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"JupyterLab was not ready on port {port} after {SERVER_START_TIMEOUT:.0f} s; "
                    f"its log:\n{server.log_tail()}"
                )
            time.sleep(0.1)
        yield server
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's chromium, launched headless by Playwright (sync API)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is not installed ({CHROMIUM} missing): apt-get install -y chromium "
            "(or set NBOPS_CHROMIUM to its executable). Do not run `playwright install`."
        )
    if importlib.util.find_spec("playwright") is None:
        pytest.fail(
            "Playwright is not installed: pip install -e '.[dev]' (or pip install playwright)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def _keep_failure_screenshot(page: Any, request: pytest.FixtureRequest) -> None:
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.failed or page.is_closed():
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"))
    except Exception:  # noqa: BLE001 - the page may be broken; the test failure matters
        pass


@pytest.fixture
def page(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page (own context: no shared storage); a screenshot is kept when the test fails."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    new_page = context.new_page()
    try:
        yield new_page
    finally:
        _keep_failure_screenshot(new_page, request)
        context.close()


@pytest.fixture
def lab_page(lab_server: LabServer, page: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A page for JupyterLab; the notebook sessions it started are shut down afterwards."""
    try:
        yield page
    finally:
        _keep_failure_screenshot(page, request)
        page.close()  # before the kernels go, so no "kernel died" dialog races the shutdown
        lab_server.shutdown_sessions()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item, so fixtures can tell a failed test at teardown."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The screenshot folder, ``test-artifacts/browser`` under the repository root."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
