from __future__ import annotations

import os
from pathlib import Path

import pytest

from nbops.fileio import write_atomic


def test_write_atomic_replaces_and_keeps_mode(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.json"
    write_atomic(target, "one")
    os.chmod(target, 0o600)
    write_atomic(target, b"two")
    assert target.read_text() == "two"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["file.json"]


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "file.txt"
    target.write_text("old")

    with pytest.raises(TypeError):
        write_atomic(target, 12345)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in folder.iterdir()] == ["file.txt"]


def test_copies_and_streamed_files_are_fsynced_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbops.fileio import copy_atomic
    from nbops.store import ObjectStore

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    source = tmp_path / "source.bin"
    source.write_bytes(b"payload")
    copy_atomic(source, tmp_path / "copy.bin")
    assert len(synced) == 1
    objects = ObjectStore(tmp_path / "objects")
    objects.put_file(source)
    objects.put_bytes(b"other")
    assert len(synced) == 3


def test_a_copy_gets_the_usual_permissions_not_the_temp_files(tmp_path: Path) -> None:
    from nbops.fileio import copy_atomic
    from nbops.store import ObjectStore

    source = tmp_path / "source.txt"
    source.write_text("data")
    objects = ObjectStore(tmp_path / "objects")
    digest, _ = objects.put_file(source)
    assert objects.path_of(digest).stat().st_mode & 0o777 == 0o444  # blobs are read-only
    umask = os.umask(0o022)
    os.umask(umask)
    restored = objects.restore(digest, "file", tmp_path / "out" / "restored.txt")
    assert restored.stat().st_mode & 0o777 == 0o666 & ~umask
    existing = tmp_path / "private.txt"
    existing.write_text("old")
    os.chmod(existing, 0o600)
    copy_atomic(source, existing)
    assert existing.read_text() == "data"
    assert existing.stat().st_mode & 0o777 == 0o600


def test_an_uncommitted_staged_file_leaves_nothing(tmp_path: Path) -> None:
    from nbops.fileio import staged_file

    folder = tmp_path / "out"

    def interrupted() -> None:
        with staged_file(folder) as staged:
            staged.write(b"half")
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        interrupted()
    with staged_file(folder) as staged:
        staged.write(b"never committed")
    assert list(folder.iterdir()) == []


def test_a_staged_folder_replaces_the_target_only_when_complete(tmp_path: Path) -> None:
    from nbops.fileio import staged_dir

    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")

    def fill(fail: bool) -> None:
        with staged_dir(target) as staging:
            (staging / "new.txt").write_text("new")
            if fail:
                raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        fill(fail=True)
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    fill(fail=False)
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "project"]
