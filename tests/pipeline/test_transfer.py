"""Transfers to a directory remote and a real OpenSSH server: a killed push of a large object
is continued, not restarted; SFTP moves several objects at once, each verified and atomic."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import nbops.pipeline._remote as remote_module
from nbops.pipeline import LockEntry, add_remote, open_configured, pull, push, write_lock
from nbops.store import open_store


def quiet(_line: str) -> None:
    pass


@pytest.fixture(params=["directory", "ssh"])
def remote_dir(
    request: pytest.FixtureRequest, isolated_env: Path, tmp_path: Path, monkeypatch: Any
) -> Path:
    """The project's default remote, a folder here or the same folder through sshd."""
    folder = tmp_path / "remote"
    url = str(folder)
    if request.param == "ssh":
        server: dict[str, str] = request.getfixturevalue("sshd")
        monkeypatch.setenv("NBOPS_SSH_CONFIG", server["config"])
        url = f"ssh://127.0.0.1:{server['port']}{folder}"
    add_remote(isolated_env, isolated_env / ".nbops", "team", url, default=True, local=True)
    return folder


def _lock_with_outs(root: Path, sizes: dict[str, int]) -> dict[str, str]:
    """Objects of random bytes in the local store, named as outs of one stage in the lock."""
    blobs = open_store(root / ".nbops").blobs
    outs = {}
    for name, size in sizes.items():
        path = root / name
        path.write_bytes(os.urandom(size))
        outs[name] = blobs.put_file(path)[0]
    write_lock(root, {"make": LockEntry("make.ipynb", "c" * 64, {}, {}, outs)})
    return outs


_SLOW_PUSH = """
import sys, time
import nbops.pipeline._remote as remote
real = remote.copy_stream

class Slow:
    def __init__(self, inner):
        self.inner = inner
    def read(self, size=-1, /):
        time.sleep(0.05)
        return self.inner.read(size)

remote.copy_stream = lambda source, *rest: real(Slow(source), *rest)
from nbops.cli import main
sys.exit(main(["push"]))
"""


def _partials(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*.part") if p.is_file()]


def test_a_killed_push_of_a_large_object_is_continued(
    isolated_env: Path, remote_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = isolated_env
    size = 24 << 20
    digest = _lock_with_outs(root, {"big.bin": size})["big.bin"]
    child = subprocess.Popen([sys.executable, "-c", _SLOW_PUSH], cwd=root)
    deadline = time.monotonic() + 120
    try:
        while not any(p.stat().st_size >= 10 << 20 for p in _partials(remote_dir)):
            assert child.poll() is None, "the push ended before it could be killed"
            assert time.monotonic() < deadline, "no partial upload appeared"
            time.sleep(0.02)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    (partial,) = _partials(remote_dir)
    kept = -1
    while kept != partial.stat().st_size:  # the server may still be writing what it got
        kept = partial.stat().st_size
        time.sleep(0.3)
    assert kept >= 10 << 20 and not (remote_dir / "objects" / digest[:2] / digest[2:]).exists()

    monkeypatch.setattr(remote_module, "PARTIAL_IDLE", 0.2)
    sent = [0]
    real = remote_module.copy_stream

    def counting(source: Any, target: Any, *rest: Any) -> None:
        class Counted:
            def read(self, n: int = -1, /) -> bytes:
                chunk: bytes = source.read(n)
                sent[0] += len(chunk)
                return chunk

        real(Counted(), target, *rest)

    monkeypatch.setattr(remote_module, "copy_stream", counting)
    store = open_store(root / ".nbops")
    with open_configured(root, root / ".nbops") as remote:
        result = push(root, store, remote, report=quiet)
    assert result.objects == 1
    assert sent[0] == size - kept  # only what the killed push had not sent crossed
    landed = remote_dir / "objects" / digest[:2] / digest[2:]
    assert hashlib.sha256(landed.read_bytes()).hexdigest() == digest
    assert _partials(remote_dir) == []


def test_a_partial_upload_that_does_not_match_is_replaced(
    isolated_env: Path, remote_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = isolated_env
    digest = _lock_with_outs(root, {"big.bin": 9 << 20})["big.bin"]
    folder = remote_dir / "objects" / digest[:2]
    folder.mkdir(parents=True)
    (folder / f".{digest[2:]}.0123.part").write_bytes(b"not this object" * 1000)
    monkeypatch.setattr(remote_module, "PARTIAL_IDLE", 0.1)
    store = open_store(root / ".nbops")
    with open_configured(root, root / ".nbops") as remote:
        assert push(root, store, remote, report=quiet).objects == 1
    assert hashlib.sha256((folder / digest[2:]).read_bytes()).hexdigest() == digest
    assert _partials(remote_dir) == []


def test_sftp_moves_objects_on_several_channels_verified_and_atomic(
    isolated_env: Path, tmp_path: Path, sshd: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbops.pipeline import SFTPRemote

    root = isolated_env
    monkeypatch.setenv("NBOPS_SSH_CONFIG", sshd["config"])
    folder = tmp_path / "ssh-remote"
    url = f"ssh://127.0.0.1:{sshd['port']}{folder}"
    add_remote(root, root / ".nbops", "team", url, default=True, local=True)
    outs = _lock_with_outs(root, {f"f{i}.bin": (256 << 10) + i for i in range(16)})
    active, most = [0], [0]
    guard = threading.Lock()
    real = remote_module.copy_stream

    def overlapping(*args: Any) -> None:
        with guard:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            time.sleep(0.1)  # long enough for the other channels' transfers to overlap
            real(*args)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(remote_module, "copy_stream", overlapping)
    store = open_store(root / ".nbops")
    with open_configured(root, root / ".nbops") as remote:
        assert isinstance(remote, SFTPRemote)
        assert push(root, store, remote, report=quiet).objects == 16
        channels = len(remote._opened)
    assert 1 < most[0] <= remote.concurrency and channels <= remote.concurrency
    for digest in outs.values():
        landed = folder / "objects" / digest[:2] / digest[2:]
        assert hashlib.sha256(landed.read_bytes()).hexdigest() == digest
    assert [p for p in folder.rglob(".*") if p.is_file()] == []  # no temporary names left

    # a fresh checkout pulls them through the pool too, each checked against its hash
    for name in outs:
        (root / name).unlink()
    fresh = open_store(tmp_path / "other-store")
    with open_configured(root, root / ".nbops") as remote:
        moved = pull(root, fresh, remote, report=quiet)
    assert moved.objects == 16 and len(moved.restored) == 16
    assert all(fresh.blobs.exists(d) for d in outs.values())


def test_gc_drops_interrupted_uploads_nobody_continues(
    isolated_env: Path, remote_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbops.pipeline import gc

    root = isolated_env
    digest = _lock_with_outs(root, {"a.bin": 1000})["a.bin"]
    folder = remote_dir / "objects" / "ab"
    folder.mkdir(parents=True)
    stray = folder / ".cdef.0123.part"
    stray.write_bytes(b"x" * 5000)
    monkeypatch.setattr(remote_module, "PARTIAL_IDLE", 0.1)
    store = open_store(root / ".nbops")
    with open_configured(root, root / ".nbops") as remote:
        push(root, store, remote, report=quiet)
        dry = gc(root, store, root / ".nbops", remote=remote, dry_run=True, report=quiet)
        assert (dry.remote_objects, dry.freed["remote"]) == (1, 5000) and stray.exists()
        done = gc(root, store, root / ".nbops", remote=remote, report=quiet)
        assert done.freed["remote"] == 5000 and not stray.exists()
        assert remote.exists(f"objects/{digest[:2]}/{digest[2:]}")  # the lock's out stays
