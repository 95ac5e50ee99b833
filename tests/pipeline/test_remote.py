"""Push and pull through a directory remote and a real OpenSSH server on loopback: a fresh
clone that pulls runs nothing; transfers move only what is missing, verified and atomic."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nbops.pipeline import (
    RemoteError,
    add_remote,
    get_remote,
    open_configured,
    pull,
    push,
    read_lock,
    run_pipeline,
)
from nbops.store import open_store
from tests.pipeline.conftest import STAMP, executions, write_notebook, write_spec

pytestmark = pytest.mark.kernel


def quiet(_line: str) -> None:
    pass


def _project(root: Path) -> None:
    """``make`` writes a file out and a folder out; ``use`` reads them."""
    (root / "input.txt").write_text("4\n")
    write_notebook(
        root / "nb" / "make.ipynb",
        "n = 3",
        STAMP.format(name="make"),
        "Path('out').mkdir(exist_ok=True)\n"
        "for i in range(n):\n    Path('out', f'{i}.txt').write_text(str(i) * 1000)\n"
        "Path('a.txt').write_text(Path('input.txt').read_text() * 2)",
    )
    write_notebook(
        root / "nb" / "use.ipynb",
        "",
        STAMP.format(name="use"),
        "Path('b.txt').write_text(str(len(list(Path('out').iterdir()))))",
    )
    write_spec(
        root,
        {
            "stages": {
                "make": {
                    "notebook": "nb/make.ipynb",
                    "params": {"n": 3},
                    "deps": ["input.txt"],
                    "outs": ["a.txt", "out"],
                },
                "use": {"notebook": "nb/use.ipynb", "deps": ["out", "a.txt"], "outs": ["b.txt"]},
            }
        },
    )


def _clone(source: Path, target: Path) -> Path:
    """What `git clone` gives: the committed files, no outs, no store."""
    target.mkdir(parents=True)
    for name in ("nbops.yaml", "nbops.lock", "input.txt", "pyproject.toml"):
        shutil.copy(source / name, target / name)
    shutil.copytree(source / "nb", target / "nb")
    return target


@pytest.fixture(params=["directory", "ssh", "fsspec-memory"])
def remote_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    if request.param == "directory":
        return str(tmp_path / "shared-remote")
    if request.param == "fsspec-memory":  # any fsspec filesystem, here its in-memory one
        return f"memory://nbops-{tmp_path.name}/remote"
    server: dict[str, str] = request.getfixturevalue("sshd")
    monkeypatch.setenv("NBOPS_SSH_CONFIG", server["config"])
    return f"ssh://127.0.0.1:{server['port']}{tmp_path / 'ssh-remote'}"


def _use_store(monkeypatch: pytest.MonkeyPatch, root: Path) -> Path:
    monkeypatch.setenv("NBOPS_HOME", str(root / ".nbops"))
    return root / ".nbops"


def test_push_then_a_fresh_clone_pulls_and_runs_nothing(
    isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, remote_url: str
) -> None:
    origin = isolated_env
    _project(origin)
    run_pipeline(origin, report=quiet)
    add_remote(origin, origin / ".nbops", "team", remote_url, default=True)
    assert "remotes:" in (origin / "nbops.yaml").read_text()
    assert get_remote(origin, origin / ".nbops").name == "team"
    lines: list[str] = []
    with open_configured(origin, origin / ".nbops") as remote:
        first = push(origin, open_store(origin / ".nbops"), remote, report=lines.append)
        # 3 folder files + the manifest + a.txt + b.txt + 2 executed notebooks
        assert (first.objects, first.records) == (8, 2)
        again = push(origin, open_store(origin / ".nbops"), remote, report=quiet)
        assert (again.objects, again.records, again.present) == (0, 0, 8)
        assert not [n for n in remote.list("objects") if ".part" in n]

    # a fresh clone: `nbops pull` restores the outs, then `nbops run` runs nothing
    clone = _clone(origin, tmp_path / "clone")
    store = _use_store(monkeypatch, clone)
    with open_configured(clone, store) as remote:
        pulled = pull(clone, open_store(store), remote, report=quiet)
    assert sorted(pulled.restored) == ["make: a.txt", "make: out", "use: b.txt"]
    assert (clone / "a.txt").read_text() == "4\n4\n"
    assert sorted(p.name for p in (clone / "out").iterdir()) == ["0.txt", "1.txt", "2.txt"]
    result = run_pipeline(clone, report=quiet)
    assert {s.outcome for s in result.stages} == {"cached"}
    assert executions(clone) == {}
    assert (clone / "nbops.lock").read_bytes() == (origin / "nbops.lock").read_bytes()

    # another clone skips `pull`: `run --pull` restores from the remote's run cache
    other = _clone(origin, tmp_path / "other")
    _use_store(monkeypatch, other)
    (other / "nbops.lock").unlink()  # not even a lock: the run cache alone decides
    result = run_pipeline(other, pull=True, report=quiet)
    assert {s.outcome for s in result.stages} == {"cached"}
    assert executions(other) == {} and (other / "b.txt").read_text() == "3"
    assert read_lock(other) == read_lock(origin)


def test_pulled_objects_are_verified(
    isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin = isolated_env
    _project(origin)
    run_pipeline(origin, ["make"], report=quiet)
    shared = tmp_path / "shared"
    add_remote(origin, origin / ".nbops", "team", str(shared), default=True)
    with open_configured(origin, origin / ".nbops") as remote:
        push(origin, open_store(origin / ".nbops"), remote, report=quiet)
    digest = read_lock(origin)["make"].outs["a.txt"]
    blob = shared / "objects" / digest[:2] / digest[2:]
    blob.chmod(0o644)
    blob.write_text("tampered")
    clone = _clone(origin, tmp_path / "clone")
    store = _use_store(monkeypatch, clone)
    with open_configured(clone, store) as remote, pytest.raises(RemoteError, match="corrupt"):
        pull(clone, open_store(store), remote, report=quiet)
    assert not open_store(store).blobs.exists(digest)
    assert not (clone / "a.txt").exists()
    assert not [p for p in store.rglob("*") if p.name.startswith((".incoming", "nbops-pull"))]


def test_remote_cli(cli: Callable[..., object], isolated_env: Path, tmp_path: Path) -> None:
    _project(isolated_env)
    shared = tmp_path / "shared"
    assert cli("remote", "default").exit_code == 1  # type: ignore[attr-defined]
    added = cli("remote", "add", "team", str(shared), "--default")
    assert added.exit_code == 0, added.stderr  # type: ignore[attr-defined]
    assert cli("remote", "default").output.strip() == "team"  # type: ignore[attr-defined]
    assert "team" in cli("remote", "list").output  # type: ignore[attr-defined]
    bad = cli("remote", "add", "x", "nosuch://bucket/path")
    assert bad.exit_code == 1 and "not supported" in bad.stderr  # type: ignore[attr-defined]
    ran = cli("run", "--push")
    assert ran.exit_code == 0, ran.stderr  # type: ignore[attr-defined]
    assert "pushed 8 object(s)" in ran.output  # type: ignore[attr-defined]
    pushed = cli("push", "make")
    assert "pushed 0 object(s)" in pushed.output  # type: ignore[attr-defined]
    missing = cli("pull", "nope")
    assert missing.exit_code == 1 and "no entry in nbops.lock for nope" in missing.stderr  # type: ignore[attr-defined]


def test_gc_keeps_the_lock_and_recent_records_here_and_on_the_remote(
    isolated_env: Path, tmp_path: Path
) -> None:
    from nbops.pipeline import gc

    root = isolated_env
    write_notebook(
        root / "emit.ipynb",
        "tag = 'a'",
        STAMP.format(name="emit"),
        "Path('tag.txt').write_text(tag * 100)",
    )
    write_spec(
        root,
        {
            "stages": {
                "emit": {"notebook": "emit.ipynb", "params": {"tag": "a"}, "outs": ["tag.txt"]}
            }
        },
    )
    for tag in ("a", "b", "c"):
        run_pipeline(root, overrides={"emit": {"tag": tag}}, report=quiet)
        time.sleep(0.05)
    store = open_store(root / ".nbops")
    add_remote(root, root / ".nbops", "team", str(tmp_path / "shared"), default=True)
    with open_configured(root, root / ".nbops") as remote:
        for tag in ("a", "b"):  # push every execution's record and objects
            run_pipeline(root, overrides={"emit": {"tag": tag}}, report=quiet)
            push(root, store, remote, report=quiet)
        run_pipeline(root, overrides={"emit": {"tag": "c"}}, report=quiet)
        push(root, store, remote, report=quiet)
        assert len(list(remote.list("runcache"))) == 3
        before = sorted(remote.list("objects"))
        dry = gc(root, store, root / ".nbops", keep=1, remote=remote, dry_run=True, report=quiet)
        assert (dry.records, dry.remote_records, dry.remote_objects) == (2, 2, 4)
        assert sorted(remote.list("objects")) == before and len(store.run_cache.list()) == 3
        done = gc(root, store, root / ".nbops", keep=1, remote=remote, report=quiet)
        assert (done.records, done.notebooks, done.remote_records) == (2, 2, 2)
        assert len(list(remote.list("objects"))) == 2  # c's out and executed notebook
        assert len(list((root / ".nbops" / "executed").iterdir())) == 1
    assert executions(root) == {"emit": 3}
    again = run_pipeline(root, overrides={"emit": {"tag": "c"}}, report=quiet)
    assert again["emit"].outcome == "cached"
    (root / "tag.txt").unlink()
    restored = run_pipeline(root, overrides={"emit": {"tag": "c"}}, report=quiet)
    assert restored["emit"].outcome == "cached" and (root / "tag.txt").read_text() == "c" * 100
    rerun = run_pipeline(root, overrides={"emit": {"tag": "a"}}, report=quiet)
    assert rerun["emit"].outcome == "ran"  # its record was collected


def test_an_interrupted_pull_of_a_large_object_resumes(
    isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    import nbops.pipeline._sync as sync
    from nbops.pipeline import DirectoryRemote

    monkeypatch.setattr(sync, "RESUMABLE", 1 << 20)
    data = os.urandom(3 << 20)
    digest = hashlib.sha256(data).hexdigest()
    remote_dir = tmp_path / "remote"
    (remote_dir / "objects" / digest[:2]).mkdir(parents=True)
    (remote_dir / "objects" / digest[:2] / digest[2:]).write_bytes(data)

    class Counting(DirectoryRemote):
        read = 0

        def open_read(self, name: str, offset: int = 0) -> Any:
            inner = super().open_read(name, offset)
            outer = self

            class Stream:
                def read(self, size: int = -1) -> bytes:
                    chunk = inner.read(size)
                    outer.read += len(chunk)
                    return chunk

                def __enter__(self) -> Stream:
                    return self

                def __exit__(self, *exc: object) -> None:
                    inner.close()

            return Stream()

    store = open_store(isolated_env / ".nbops")
    partial = sync._partial_file(store.blobs, digest)
    assert partial.parent.parent == isolated_env / ".nbops" / "objects"  # beside the blobs
    partial.write_bytes(data[: 2 << 20])  # what a killed pull had fetched
    lines: list[str] = []
    remote = Counting(remote_dir)
    assert sync.fetch_objects(remote, [digest], store.blobs, lines.append) == (1, 3 << 20)
    assert remote.read == 1 << 20  # only the missing third crossed
    assert store.blobs.path_of(digest).read_bytes() == data
    assert any("resuming at 2 of 3 MiB" in line for line in lines)
    assert not partial.exists()
    # a partial file that is not a prefix of the object is caught by the hash and dropped
    digest2 = hashlib.sha256(data[::-1]).hexdigest()
    (remote_dir / "objects" / digest2[:2]).mkdir(parents=True, exist_ok=True)
    (remote_dir / "objects" / digest2[:2] / digest2[2:]).write_bytes(data[::-1])
    sync._partial_file(store.blobs, digest2).write_bytes(b"garbage" * 1000)
    with pytest.raises(RemoteError, match="corrupt"):
        sync.fetch_objects(remote, [digest2], store.blobs, quiet)
    assert sync.fetch_objects(remote, [digest2], store.blobs, quiet)[0] == 1  # starts over


def test_a_pull_over_ssh_resumes_from_its_partial_file(
    isolated_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sshd: dict[str, str],
) -> None:
    import hashlib

    import nbops.pipeline._sync as sync
    from nbops.pipeline import open_remote

    monkeypatch.setattr(sync, "RESUMABLE", 1 << 20)
    monkeypatch.setenv("NBOPS_SSH_CONFIG", sshd["config"])
    data = os.urandom(3 << 20)
    digest = hashlib.sha256(data).hexdigest()
    remote_dir = tmp_path / "ssh-remote"
    (remote_dir / "objects" / digest[:2]).mkdir(parents=True)
    (remote_dir / "objects" / digest[:2] / digest[2:]).write_bytes(data)
    store = open_store(isolated_env / ".nbops")
    sync._partial_file(store.blobs, digest).write_bytes(data[: (2 << 20) + 123])
    lines: list[str] = []
    with open_remote(f"ssh://127.0.0.1:{sshd['port']}{remote_dir}") as remote:
        assert sync.fetch_objects(remote, [digest], store.blobs, lines.append)[0] == 1
    assert store.blobs.path_of(digest).read_bytes() == data
    assert any("resuming at 2 of 3 MiB" in line for line in lines)
