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
