"""Data edge cases: non-empty destinations, symlinks, empty folders, no second copy, types."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import nbops
from nbops.data import DatasetPathError, load_dataset, read_table, restore_dataset
from nbops.store import open_store


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a\n")
    (root / "sub" / "b.txt").write_text("b\n")
    return root


def test_get_into_a_non_empty_folder_refuses_or_replaces(
    folder: Path, tmp_path: Path, cli: Any
) -> None:
    with nbops.init(project="d"):
        version = nbops.log_dataset(folder, name="images")
    target = tmp_path / "out"
    target.mkdir()
    (target / "stale.txt").write_text("old\n")
    with pytest.raises(DatasetPathError, match="non-empty folder"):
        restore_dataset(version.ref, target)
    assert (target / "stale.txt").exists()  # nothing lost
    refused = cli("data", "get", version.ref, "-o", str(target))
    assert refused.exit_code == 1 and refused.stderr.startswith("Error: ")
    assert "--force" in refused.stderr
    done = cli("data", "get", version.ref, "-o", str(target), "--force")
    assert done.exit_code == 0, done.stderr
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == [
        "a.txt",
        "sub/b.txt",
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert restore_dataset(version.ref, empty) == empty  # an empty folder is fine


def test_symlinks_and_empty_folders_are_refused_not_dropped(folder: Path) -> None:
    os.symlink(folder / "a.txt", folder / "link.txt")
    with nbops.init(project="d"):
        with pytest.raises(DatasetPathError, match=r"symlinks \(link\.txt\)") as info:
            nbops.log_dataset(folder, name="images")
        assert info.value.paths == ("link.txt",)
        (folder / "link.txt").unlink()
        (folder / "nothing").mkdir()
        with pytest.raises(DatasetPathError, match=r"empty folders \(nothing/\)"):
            nbops.log_dataset(folder, name="images")


def test_relogging_an_unchanged_file_does_not_copy_it_again(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(2 << 20))
    with nbops.init(project="d") as run:
        first = nbops.log_dataset(big)
    stored = open_store(run.store.path).blobs.path_of(first.object)
    before = stored.stat()
    with nbops.init(project="d"):
        again = nbops.log_dataset(big)
    assert again.hash == first.hash
    after = stored.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_integer_columns_keep_integer_bounds_and_csv_dates_are_dates(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text(
        "id,when,at,label,note\n"
        "1,2026-01-01,2026-01-01T10:00:00,3,x\n"
        "7,2026-02-03,2026-02-03T11:30:00,9,2026-13-45\n"
    )
    frame = read_table(table)
    assert str(frame["when"].dtype).startswith("datetime64")
    assert str(frame["at"].dtype).startswith("datetime64")
    assert frame["note"].dtype == object or str(frame["note"].dtype) == "str"
    with nbops.init(project="d"):
        version = nbops.log_dataset(table)
    stats = version.stats or {}
    assert stats["id"]["min"] == 1 and isinstance(stats["id"]["min"], int)
    assert stats["label"]["max"] == 9 and isinstance(stats["label"]["max"], int)
    assert stats["when"]["min"].startswith("2026-01-01")
    assert list(load_dataset(version.ref)["when"]) == list(pd.to_datetime(frame["when"]))


def test_cli_errors_are_error_lines(tmp_path: Path, cli: Any) -> None:
    for argv in (
        ("data", "get", "nope@abc", "-o", str(tmp_path / "x")),
        ("data", "show", "nope"),
    ):
        result = cli(*argv)
        assert result.exit_code == 1 and result.stderr.startswith("Error: ")
        assert "Traceback" not in result.stderr


def test_output_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    wide = pd.DataFrame({f"column_{i}": range(3) for i in range(3000)})
    with nbops.init(project="d"):
        nbops.log_dataset(wide, name="wide")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbops", "data", "show", "wide"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"Dataset wide@")
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert "Traceback" not in err and "BrokenPipeError" not in err
