"""find_notebook with faked environments, the papermill argv parser, snapshots and code_hash."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from nbops.capture import (
    NotebookLocation,
    _jupyter_server,
    _notebook,
    find_notebook,
    snapshot_notebook,
)
from nbops.capture._papermill import papermill_args, parse_papermill_args
from nbops.hashing import code_hash


class FakeShell:
    def __init__(self, user_ns: dict[str, Any]) -> None:
        self.user_ns = user_ns


def test_env_var_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shell = FakeShell({"__vsc_ipynb_file__": "/elsewhere/vs.ipynb"})
    environ = {"NBOPS_NOTEBOOK_PATH": "nb/train.ipynb", "JPY_SESSION_NAME": "/x/y.ipynb"}
    loc = find_notebook(shell, environ)
    assert loc == NotebookLocation(
        str(tmp_path / "nb" / "train.ipynb"),
        "env",
        "from $NBOPS_NOTEBOOK_PATH (no such file yet)",
        None,
    )


def test_vscode(tmp_path: Path) -> None:
    path = str(tmp_path / "vs.ipynb")
    loc = find_notebook(FakeShell({"__vsc_ipynb_file__": path}), {"JPY_SESSION_NAME": "/x.ipynb"})
    assert (loc.path, loc.source, loc.papermill) == (path, "vscode", None)


def test_jpy_session_name_absolute() -> None:
    loc = find_notebook(FakeShell({}), {"JPY_SESSION_NAME": "/srv/lab/a/../exp.ipynb"})
    assert (loc.path, loc.source) == ("/srv/lab/exp.ipynb", "jupyter-server")
    assert "JPY_SESSION_NAME" in loc.detail


def write_server_info(runtime: Path, root: Path, url: str = "http://127.0.0.1:9/") -> None:
    runtime.mkdir(exist_ok=True)
    info = {"pid": os.getpid(), "url": url, "token": "tkn", "root_dir": str(root)}
    (runtime / f"jpserver-{os.getpid()}.json").write_text(json.dumps(info))


def test_jpy_session_name_relative_uses_server_root(tmp_path: Path) -> None:
    write_server_info(tmp_path / "runtime", tmp_path / "root")
    environ = {"JPY_SESSION_NAME": "exp/a.ipynb", "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    loc = find_notebook(FakeShell({}), environ)
    assert (loc.path, loc.source) == (str(tmp_path / "root" / "exp" / "a.ipynb"), "jupyter-server")


@pytest.fixture
def sessions_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in for Jupyter Server's /api/sessions that checks the token."""
    sessions: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == "/api/sessions" and self.headers["Authorization"] == "token tkn"
            body = json.dumps(sessions if ok else {"message": "Forbidden"}).encode()
            self.send_response(200 if ok else 403)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", sessions
    server.shutdown()
    server.server_close()


def test_sessions_api(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sessions_server: tuple[str, list[dict[str, Any]]],
) -> None:
    url, sessions = sessions_server
    sessions.append({"path": "other.ipynb", "kernel": {"id": "k-other"}})
    sessions.append({"path": "sub/mine.ipynb", "kernel": {"id": "k-mine"}})
    write_server_info(tmp_path / "runtime", tmp_path / "root", url)
    monkeypatch.setattr(_notebook, "kernel_id", lambda: ("k-mine", ""))
    environ = {"JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    loc = find_notebook(FakeShell({}), environ)
    assert (loc.path, loc.source) == (
        str(tmp_path / "root" / "sub" / "mine.ipynb"),
        "jupyter-server",
    )

    monkeypatch.setattr(_notebook, "kernel_id", lambda: ("k-gone", ""))
    loc = find_notebook(FakeShell({}), environ)
    assert loc.source == "none"
    assert "no session uses kernel k-gone" in loc.detail


def test_unreachable_server_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_server_info(tmp_path / "runtime", tmp_path, "http://127.0.0.1:9/")  # nothing listens
    monkeypatch.setattr(_notebook, "kernel_id", lambda: ("k1", ""))
    loc = find_notebook(FakeShell({}), {"JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")})
    assert loc.path is None
    assert "127.0.0.1:9/api/sessions" in loc.detail


def test_dead_servers_are_skipped(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / "jpserver-999999999.json").write_text(json.dumps({"pid": 999_999_999, "url": "x"}))
    (runtime / "jpserver-1.json").write_text("{not json")
    assert _jupyter_server.server_infos({"JUPYTER_RUNTIME_DIR": str(runtime)}) == []


def test_nothing_found_says_what_to_do(tmp_path: Path) -> None:
    loc = find_notebook(FakeShell({}), {"JUPYTER_RUNTIME_DIR": str(tmp_path)})
    assert (loc.path, loc.source, loc.papermill) == (None, "none", None)
    assert "Set NBOPS_NOTEBOOK_PATH" in loc.detail
    assert "papermill" in loc.detail


@pytest.mark.parametrize(
    "argv",
    [
        ["papermill", "a.ipynb", "b.ipynb"],
        ["/venv/bin/python", "/venv/bin/papermill", "a.ipynb", "b.ipynb"],
        ["python3", "-m", "papermill", "a.ipynb", "b.ipynb"],
    ],
)
def test_papermill_argv_is_recognised(argv: list[str]) -> None:
    assert papermill_args(argv) == ["a.ipynb", "b.ipynb"]


def test_other_commands_are_not_papermill() -> None:
    assert papermill_args(["python", "-m", "ipykernel_launcher", "-f", "k.json"]) is None
    assert papermill_args(["jupyter-lab", "--no-browser"]) is None


def test_papermill_options_are_skipped(tmp_path: Path) -> None:
    args = [
        "-k", "python3", "-p", "alpha", "0.5", "--log-output", "in/a.ipynb", "-r", "name", "x y",
        "--engine=nbclient", "-f", "p.yaml", "../out.ipynb", "--execution-timeout", "60",
    ]  # fmt: skip
    cmd = parse_papermill_args(args, "/proj/nb", pid=7)
    assert cmd.input_path == "/proj/nb/in/a.ipynb"
    assert cmd.output_path == "/proj/out.ipynb"
    assert cmd.parameters == {"alpha": "0.5", "name": "x y"}
    assert (cmd.pid, cmd.warning) == (7, "")


def test_papermill_cwd_option(tmp_path: Path) -> None:
    """papermill chdirs into --cwd, so paths resolve against the directory it started from."""
    (tmp_path / "work" / "deep").mkdir(parents=True)
    (tmp_path / "in.ipynb").write_text("{}")
    (tmp_path / "out.ipynb").write_text("{}")
    now = str(tmp_path / "work" / "deep")
    cmd = parse_papermill_args(["in.ipynb", "out.ipynb", "--cwd", "work/deep"], now)
    assert (cmd.input_path, cmd.warning) == (str(tmp_path / "in.ipynb"), "")
    # An absolute --cwd: found through another candidate (parent's cwd, $PWD) that checks out.
    args = ["in.ipynb", "out.ipynb", f"--cwd={now}"]
    cmd = parse_papermill_args(args, now, other_dirs=("/nonexistent", str(tmp_path)))
    assert (cmd.output_path, cmd.warning) == (str(tmp_path / "out.ipynb"), "")
    cmd = parse_papermill_args(args, now, other_dirs=("/nonexistent",))
    assert "guessed" in cmd.warning


def test_papermill_stdin_and_remote_paths() -> None:
    assert parse_papermill_args(["-", "-"], "/p").input_path is None
    cmd = parse_papermill_args(["s3://b/in.ipynb"], "/p")
    assert (cmd.input_path, cmd.output_path) == ("s3://b/in.ipynb", None)


def write_notebook(path: Path, cells: list[dict[str, Any]]) -> None:
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb, indent=1))


def test_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "abcdef0123456789")
    path = tmp_path / "nb.ipynb"
    write_notebook(
        path,
        [
            {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": "# Title"},
            {
                "cell_type": "code",
                "id": "c1",
                "metadata": {},
                "source": ["key = 'abcdef0123456789'\n", "print(key)\n"],
                "outputs": [],
                "execution_count": None,
            },
            {"cell_type": "code", "metadata": {}, "source": "x = 1", "outputs": []},
        ],
    )
    snap = snapshot_notebook(path)
    assert snap["error"] is None
    assert snap["path"] == str(path)
    assert snap["size"] == path.stat().st_size
    assert len(snap["sha256"]) == 64
    assert "abcdef0123456789" not in snap["text"]
    assert "[redacted]" in snap["text"]
    first, second = snap["code_cells"]
    assert (first["id"], first["index"]) == ("c1", 1)
    assert first["source"] == "key = '[redacted]'\nprint(key)\n"
    assert first["sha256"] == code_hash(["key = 'abcdef0123456789'\nprint(key)"])
    assert (second["id"], second["index"], second["source"]) == (None, 2, "x = 1")
    assert second["sha256"] == code_hash(["x = 1\n"])


def test_code_hash_ignores_only_trailing_whitespace() -> None:
    assert code_hash(["a = 1\n"]) == code_hash(["a = 1"]) == code_hash(["a = 1\n\n  "])
    assert code_hash([" a = 1"]) != code_hash(["a = 1"])
    assert code_hash(["a = 1"]) != code_hash(["a = 2"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read notebook"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"worksheets": []}', "no 'cells' list"),
    ],
)
def test_snapshot_errors(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "nb.ipynb"
    if content is not None:
        path.write_bytes(content)
    snap = snapshot_notebook(path)
    assert message in snap["error"]
    assert snap["code_cells"] == []
