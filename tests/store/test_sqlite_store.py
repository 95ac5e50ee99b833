from __future__ import annotations

from pathlib import Path

import pytest

from nbops.errors import StoreError
from nbops.store import RunStore, SQLiteStore
from nbops.testing.store_conformance import StoreConformance


class TestSQLiteStore(StoreConformance):
    def make_store(self, path: Path) -> RunStore:
        return SQLiteStore(path)


def test_store_is_wal(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    mode = store._con().execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_unwritable_location_says_what_to_do(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="NBOPS_HOME"):
        SQLiteStore(blocker / "store")
