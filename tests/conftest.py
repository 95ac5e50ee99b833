"""Shared fixtures: a private store and W&B directories per test, an IPython shell, the CLI,
and a real PostgreSQL server.

The server (Debian's postgresql package, any major version under /usr/lib/postgresql) runs as
the ``postgres`` system user (postgres refuses root) from a temporary data directory, on a free
loopback port, and is always stopped at teardown. A missing PostgreSQL fails the tests that need
it; it does not skip them.
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test gets its own store, W&B folders and no API key; the mirror is off by default."""
    home = tmp_path / "project"
    home.mkdir()
    (home / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    monkeypatch.chdir(home)
    monkeypatch.setenv("NBOPS_HOME", str(home / ".nbops"))
    monkeypatch.setenv("NBOPS_WANDB", "disabled")
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    for var in ("WANDB_API_KEY", "WANDB_MODE", "NBOPS_NOTEBOOK_PATH", "NBOPS_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    yield home
    from nbops.tracking import _active

    for run in list(_active._live):
        run.finish()
    from nbops import store

    for opened in store._open.values():
        opened.close()
    store._open.clear()


@pytest.fixture
def ipython() -> Iterator[Any]:
    """A fresh IPython shell; the nbops extension is unloaded and forgotten afterwards."""
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()
    yield shell
    import nbops.notebook as nb

    nb.unload_extension(shell)
    nb._sessions.pop(id(shell), None)
    InteractiveShell.clear_instance()


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.exit_code, self.output, self.stderr = code, out, err


@pytest.fixture
def cli() -> Any:
    """Run ``nbops`` in-process: ``cli("runs", "list")`` returns exit code and output."""
    from nbops.cli import main

    def invoke(*argv: str) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as exc:  # argparse usage errors
                code = int(exc.code or 0)
        return CliResult(code, out.getvalue(), err.getvalue())

    return invoke


def subprocess_env(**extra: str) -> dict[str, str]:
    """The test's environment for a child process, with the repository importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def postgres_bin() -> Path:
    """The bin folder of the newest PostgreSQL installed (``$NBOPS_PG_BIN`` overrides)."""
    if os.environ.get("NBOPS_PG_BIN"):
        return Path(os.environ["NBOPS_PG_BIN"])
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda bin_dir: int(bin_dir.parent.name) if bin_dir.parent.name.isdigit() else 0,
    )
    if not found:
        pytest.fail(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
            "apt-get install postgresql (or set NBOPS_PG_BIN to its bin folder)"
        )
    return found[-1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(*cmd: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """``postgresql://postgres@127.0.0.1:PORT`` of a private server with the databases
    ``nbops_sweeps`` and ``nbops_store``."""
    bin_dir = postgres_bin()
    initdb, pg_ctl = bin_dir / "initdb", bin_dir / "pg_ctl"
    psql = str(bin_dir / "psql") if (bin_dir / "psql").exists() else "psql"
    root = Path(tempfile.mkdtemp(prefix="nbops-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    port = _free_port()
    subprocess.run(
        _as_postgres(str(initdb), "-D", str(data), "-A", "trust", "-U", "postgres"),
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c max_connections=200"
    subprocess.run(
        _as_postgres(
            str(pg_ctl), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"
        ),
        check=True,
        capture_output=True,
    )
    try:
        for database in ("nbops_sweeps", "nbops_store"):
            deadline = time.time() + 20
            while True:
                done = subprocess.run(
                    _as_postgres(
                        psql,
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        "-U",
                        "postgres",
                        "-c",
                        f"CREATE DATABASE {database}",
                    ),
                    capture_output=True,
                    text=True,
                )
                if done.returncode == 0:
                    break
                if time.time() > deadline:
                    pytest.fail(f"could not create the test database: {done.stderr}")
                time.sleep(0.2)
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_postgres(str(pg_ctl), "-D", str(data), "-m", "immediate", "-w", "stop"),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: str) -> str:
    """URL of a database on the private server (the sweeps' Optuna storage)."""
    return f"{postgres_server}/nbops_sweeps"


@pytest.fixture
def postgres_store_url(postgres_server: str) -> str:
    """URL of a fresh, empty nbops store: its own schema in the ``nbops_store`` database."""
    return f"{postgres_server}/nbops_store?schema=t_{uuid.uuid4().hex[:16]}"


class DaskCluster:
    """A Dask scheduler and its workers, each a separate process on loopback."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.url = f"dask://127.0.0.1:{self.port}"
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.workers: dict[str, subprocess.Popen[bytes]] = {}

    def _spawn(
        self,
        name: str,
        *args: str,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        hide: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        command = [sys.executable, "-m", "dask", *args]
        if hide is not None:  # "another machine": an empty folder at that path (needs root)
            mount = 'mount -t tmpfs nbops-hidden "$0" && exec "$@"'
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount,
                       str(hide), *command]  # fmt: skip
        return subprocess.Popen(
            command,
            env=env if env is not None else subprocess_env(),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_scheduler(self) -> None:
        self.scheduler = self._spawn(
            "scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
            "--no-dashboard", "--no-show",
        )  # fmt: skip

    def add_worker(
        self,
        name: str,
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        hide: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a worker (one thread, no nanny: a killed worker stays dead) named ``name``,
        in ``cwd`` with ``env`` (default: the test's cwd and environment); with ``hide``, the
        worker sees an empty folder at that path, as a machine without this disk would."""
        worker = self._spawn(
            name, "worker", self.address, "--name", name, "--nthreads", "1", "--no-nanny",
            "--host", "127.0.0.1", "--no-dashboard",
            "--local-directory", str(self.root / name), cwd=cwd, env=env, hide=hide,
        )  # fmt: skip
        self.workers[name] = worker
        return worker

    def wait_for_workers(self, count: int, timeout: float = 60.0) -> None:
        from distributed import Client

        with Client(self.address, timeout=timeout, set_as_default=False) as client:
            client.wait_for_workers(count, timeout=timeout)

    def kill_worker(self, name: str) -> None:
        """SIGKILL a worker and reap it."""
        worker = self.workers[name]
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')}" for p in self.root.glob("*.log")
        )

    def stop(self) -> None:
        for process in [*self.workers.values(), self.scheduler]:
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


@pytest.fixture
def dask_scheduler(tmp_path: Path) -> Iterator[DaskCluster]:
    """A real Dask scheduler on 127.0.0.1 and no worker yet: the test starts its own with
    ``add_worker(name, cwd=..., env=...)`` then ``wait_for_workers(n)``."""
    root = tmp_path / "dask"
    root.mkdir()
    cluster = DaskCluster(root)
    try:
        cluster.start_scheduler()
        yield cluster
    finally:
        cluster.stop()


def start_workers(cluster: DaskCluster, names: Iterable[str], **options: Any) -> None:
    """Start workers ``names`` (``add_worker`` options) and wait until they all joined."""
    names = list(names)
    for name in names:
        cluster.add_worker(name, **options)
    try:
        cluster.wait_for_workers(len(names))
    except Exception as exc:  # noqa: BLE001 - report the processes' logs with any failure
        pytest.fail(f"the Dask cluster did not start: {exc}\n{cluster.logs()}")


@pytest.fixture
def dask_cluster(dask_scheduler: DaskCluster) -> DaskCluster:
    """A real Dask scheduler and two workers (``w0``, ``w1``) as separate processes on
    127.0.0.1, with the test's environment (store, W&B folders) and the repository importable.
    ``cluster.url`` is the ``dask://`` executor URL; ``kill_worker(name)`` SIGKILLs one."""
    start_workers(dask_scheduler, ("w0", "w1"))
    return dask_scheduler
