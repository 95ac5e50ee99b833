"""find_notebook inside real kernels: under the papermill CLI and under a Jupyter server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nbops

pytestmark = pytest.mark.kernel

BIN = Path(sys.executable).parent
REPO = str(Path(next(iter(nbops.__path__))).parent)

REPORT = """\
import dataclasses, json, os
from nbops.capture import find_notebook
loc = find_notebook()
with open(os.environ["NBOPS_TEST_OUT"], "w") as f:
    json.dump({"loc": dataclasses.asdict(loc), "alpha": alpha, "cwd": os.getcwd()}, f)
"""


def kernel_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("NBOPS_NOTEBOOK_PATH", "JPY_SESSION_NAME")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    env.update(extra)
    return env


@pytest.mark.parametrize("absolute_cwd", [False, True], ids=["relative-cwd", "absolute-cwd"])
def test_papermill_cli(tmp_path: Path, absolute_cwd: bool) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "language": "python",
        "display_name": "Python 3",
    }
    nb.cells = [
        nbformat.v4.new_code_cell("alpha = 0.1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(REPORT),
    ]
    nbformat.write(nb, tmp_path / "in.ipynb")
    (tmp_path / "work").mkdir()
    out = tmp_path / "loc.json"
    proc = subprocess.run(
        [
            str(BIN / "papermill"),
            "in.ipynb",
            "out.ipynb",
            "-p",
            "alpha",
            "0.5",
            "-k",
            "python3",
            "--cwd",
            "work",
        ],
        cwd=tmp_path,
        # A shell sets PWD; with an absolute --cwd it is one way back to the launch directory.
        env=kernel_env(tmp_path, NBOPS_TEST_OUT=str(out), PWD=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    loc = report["loc"]
    assert report["alpha"] == 0.5
    assert report["cwd"] == str(tmp_path / "work")  # paths are not resolved against this
    assert loc["source"] == "papermill"
    assert loc["path"] == str(tmp_path / "in.ipynb")
    assert loc["papermill"] == {
        "parameters": {"alpha": 0.5},
        "input_path": str(tmp_path / "in.ipynb"),
        "output_path": str(tmp_path / "out.ipynb"),
    }
    assert "papermill CLI" in loc["detail"]
    assert "guessed" not in loc["detail"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def jupyter_server(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """A real Jupyter server (no browser) rooted at ``tmp_path / "root"``."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    port = free_port()
    env = kernel_env(tmp_path, JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    proc = subprocess.Popen(
        [
            str(BIN / "jupyter"),
            "server",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            "--IdentityProvider.token=tkn",
            f"--ServerApp.root_dir={root}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                api(url, "GET", "api/status")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(proc.stderr.read().decode()[-3000:]) from None  # type: ignore[union-attr]
                time.sleep(0.1)
        yield url, root, env
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def api(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "token tkn", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def run_in_kernel(connection_file: Path, code: str) -> str:
    from jupyter_client import BlockingKernelClient

    client = BlockingKernelClient(connection_file=str(connection_file))
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=30)
        stdout: list[str] = []
        reply = client.execute_interactive(
            code,
            timeout=30,
            output_hook=lambda msg: (
                stdout.append(msg["content"].get("text", ""))
                if msg["msg_type"] == "stream"
                else None
            ),
        )
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(stdout)
    finally:
        client.stop_channels()


def test_jupyter_server(tmp_path: Path, jupyter_server: tuple[str, Path, dict[str, str]]) -> None:
    url, root, _ = jupyter_server
    session = api(
        url,
        "POST",
        "api/sessions",
        {
            "path": "sub/exp.ipynb",
            "name": "exp.ipynb",
            "type": "notebook",
            "kernel": {"name": "python3"},
        },
    )
    kid = session["kernel"]["id"]
    code = (
        "import dataclasses, json, os\n"
        "from nbops.capture import find_notebook\n"
        "with_env = find_notebook()\n"
        "env = {k: v for k, v in os.environ.items() if k != 'JPY_SESSION_NAME'}\n"
        "via_api = find_notebook(environ=env)\n"
        "print(json.dumps([os.environ.get('JPY_SESSION_NAME'),"
        " dataclasses.asdict(with_env), dataclasses.asdict(via_api)]))\n"
    )
    try:
        out = run_in_kernel(tmp_path / "runtime" / f"kernel-{kid}.json", code)
    finally:
        api(url, "DELETE", f"api/sessions/{session['id']}")
    session_name, with_env, via_api = json.loads(out)
    expected = str(root / "sub" / "exp.ipynb")
    assert session_name == expected
    assert (with_env["path"], with_env["source"]) == (expected, "jupyter-server")
    assert "JPY_SESSION_NAME" in with_env["detail"]
    assert (via_api["path"], via_api["source"]) == (expected, "jupyter-server")
    assert "session list" in via_api["detail"]
