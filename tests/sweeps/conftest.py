"""A real PostgreSQL server for the sweep tests (Debian's postgresql package), and notebooks.

The server runs as the ``postgres`` system user (postgres refuses root) from a temporary data
directory, on a free loopback port, and is always stopped at teardown. A missing PostgreSQL
fails the tests that need it; it does not skip them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _pg_bin() -> Path:
    """``$NBOPS_PG_BIN``, else the newest installed Debian PostgreSQL major version's bin/."""
    if os.environ.get("NBOPS_PG_BIN"):
        return Path(os.environ["NBOPS_PG_BIN"])
    majors = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    majors.sort(
        key=lambda bin_dir: int(bin_dir.parent.name) if bin_dir.parent.name.isdigit() else 0
    )
    return majors[-1] if majors else Path("/usr/lib/postgresql/<version>/bin")


PG_BIN = _pg_bin()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(*cmd: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh database on a private PostgreSQL server."""
    initdb, pg_ctl = PG_BIN / "initdb", PG_BIN / "pg_ctl"
    if not initdb.exists():
        pytest.fail(
            f"PostgreSQL is not installed ({initdb} missing): apt-get install postgresql "
            "(or set NBOPS_PG_BIN to its bin folder)"
        )
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
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sock}"
    subprocess.run(
        _as_postgres(
            str(pg_ctl), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"
        ),
        check=True,
        capture_output=True,
    )
    try:
        deadline = time.time() + 20
        while True:
            done = subprocess.run(
                _as_postgres(
                    str(PG_BIN / "psql") if (PG_BIN / "psql").exists() else "psql",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    "-c",
                    "CREATE DATABASE nbops_sweeps",
                ),
                capture_output=True,
                text=True,
            )
            if done.returncode == 0:
                break
            if time.time() > deadline:
                pytest.fail(f"could not create the test database: {done.stderr}")
            time.sleep(0.2)
        yield f"postgresql://postgres@127.0.0.1:{port}/nbops_sweeps"
    finally:
        subprocess.run(
            _as_postgres(str(pg_ctl), "-D", str(data), "-m", "immediate", "-w", "stop"),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def _cell(source: str, tags: list[str] | None = None) -> dict[str, object]:
    return {
        "cell_type": "code",
        "id": f"c{abs(hash(source)) % 10**8}",
        "source": source,
        "outputs": [],
        "execution_count": None,
        "metadata": {"tags": tags or []},
    }


def write_notebook(path: Path, parameters: str, body: str) -> Path:
    """A two-cell notebook: a ``parameters`` cell and a body."""
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "cells": [_cell(parameters, ["parameters"]), _cell(body)],
    }
    path.write_text(json.dumps(nb))
    return path
