"""Small real pipelines: notebooks that copy, transform and log, executed by real kernels."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml


def write_notebook(path: Path, params: str | None, *cells: str, markdown: str = "") -> Path:
    """A notebook with an optional ``parameters`` cell, code cells and a markdown cell."""
    body: list[dict[str, Any]] = []
    if markdown:
        body.append({"cell_type": "markdown", "id": "md", "metadata": {}, "source": markdown})
    if params is not None:
        body.append(
            {
                "cell_type": "code",
                "id": "params",
                "metadata": {"tags": ["parameters"]},
                "source": params,
                "outputs": [],
                "execution_count": None,
            }
        )
    for i, source in enumerate(cells):
        body.append(
            {
                "cell_type": "code",
                "id": f"c{i}",
                "metadata": {},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "nbformat": 4,
                "nbformat_minor": 5,
                "cells": body,
                "metadata": {
                    "kernelspec": {
                        "name": "python3",
                        "display_name": "Python 3",
                        "language": "python",
                    }
                },
            }
        )
    )
    return path


def write_spec(root: Path, spec: dict[str, Any]) -> None:
    (root / "nbops.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


STAMP = (
    "import os, time\n"
    "from pathlib import Path\n"
    "Path('stamps').mkdir(exist_ok=True)\n"
    "Path('stamps', '{name}-' + str(time.time_ns())).write_text('')\n"
)


@pytest.fixture
def chain(isolated_env: Path) -> Callable[[], Path]:
    """``make`` (input.txt -> a.txt), ``double`` (a.txt -> b.txt), ``report`` (b.txt, gate),
    and an independent ``side`` stage. Each execution leaves a file in ``stamps/``."""

    def build() -> Path:
        root = isolated_env
        (root / "input.txt").write_text("3\n")
        write_notebook(
            root / "nb" / "make.ipynb",
            "factor = 1",
            STAMP.format(name="make"),
            "value = int(Path('input.txt').read_text()) * factor\n"
            "Path('a.txt').write_text(str(value))",
            markdown="# make",
        )
        write_notebook(
            root / "nb" / "double.ipynb",
            "times = 2",
            STAMP.format(name="double"),
            "Path('b.txt').write_text(str(int(Path('a.txt').read_text()) * times))",
        )
        write_notebook(
            root / "nb" / "report.ipynb",
            "",
            STAMP.format(name="report"),
            "import nbops\nnbops.log({'value': float(Path('b.txt').read_text())})",
        )
        write_notebook(
            root / "nb" / "side.ipynb",
            "",
            STAMP.format(name="side"),
            "Path('side.txt').write_text('ok')",
        )
        write_spec(
            root,
            {
                "stages": {
                    "make": {
                        "notebook": "nb/make.ipynb",
                        "params": {"factor": 1},
                        "deps": ["input.txt"],
                        "outs": ["a.txt"],
                    },
                    "double": {
                        "notebook": "nb/double.ipynb",
                        "params": {"times": 2},
                        "deps": ["a.txt"],
                        "outs": ["b.txt"],
                    },
                    "report": {
                        "notebook": "nb/report.ipynb",
                        "deps": ["b.txt"],
                        "gates": {"value": ">= 1"},
                    },
                    "side": {"notebook": "nb/side.ipynb", "outs": ["side.txt"]},
                }
            },
        )
        return root

    return build


def executions(root: Path) -> dict[str, int]:
    """How many times each stage's notebook has executed so far."""
    counts: dict[str, int] = {}
    for stamp in (root / "stamps").glob("*"):
        name = stamp.name.rsplit("-", 1)[0]
        counts[name] = counts.get(name, 0) + 1
    return counts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real OpenSSH server on 127.0.0.1 with its own host key and one client key."""
    where = tmp_path_factory.mktemp("sshd")
    sshd_bin = shutil.which("sshd") or "/usr/sbin/sshd"
    assert Path(sshd_bin).is_file(), "openssh-server is not installed (.ci/run installs it)"
    for key in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(where / key)], check=True
        )
    shutil.copy(where / "client_key.pub", where / "authorized_keys")
    port = _free_port()
    (where / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {where / 'host_key'}\n"
        f"AuthorizedKeysFile {where / 'authorized_keys'}\nPidFile {where / 'sshd.pid'}\n"
        "PasswordAuthentication no\nUsePAM no\nStrictModes no\n"
        "Subsystem sftp internal-sftp\n"
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sshd_bin, "-f", str(where / "sshd_config"), "-E", str(where / "sshd.log")], check=True
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, (where / "sshd.log").read_text()
            time.sleep(0.1)
    host_key = (where / "host_key.pub").read_text().split()
    (where / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    (where / "ssh_config").write_text(
        f"Host 127.0.0.1\n  User {getpass.getuser()}\n  IdentityFile {where / 'client_key'}\n"
        f"  UserKnownHostsFile {where / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
    )
    try:
        yield {"port": str(port), "config": str(where / "ssh_config"), "dir": str(where)}
    finally:
        pid = int((where / "sshd.pid").read_text())
        os.kill(pid, signal.SIGTERM)
