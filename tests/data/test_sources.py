"""Tables named by a registered prefix instead of a path (``predictions:...``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from nbops.data import (
    TableReadError,
    read_source,
    register_table_source,
    source_prefix,
    table_sources,
)


def test_prefixes_go_to_their_reader_and_paths_to_files(tmp_path: Path) -> None:
    seen: list[tuple[str, Any]] = []

    def reader(spec: str, *, store: Any) -> pd.DataFrame:
        seen.append((spec, store))
        return pd.DataFrame({"x": [1, 2]})

    register_table_source("test-source", reader)
    assert "test-source" in table_sources()
    frame = read_source("test-source:anything:7d", store="S")
    assert frame["x"].tolist() == [1, 2] and seen == [("test-source:anything:7d", "S")]

    pd.DataFrame({"y": [3]}).to_csv(tmp_path / "t.csv", index=False)
    assert read_source("t.csv", root=tmp_path)["y"].tolist() == [3]
    assert source_prefix("C:/data/t.csv") is None  # a drive letter, not a prefix
    assert source_prefix("unknown:thing") is None
    with pytest.raises(TableReadError, match="no table source is registered for unknown:"):
        read_source("unknown:thing", root=tmp_path)
    with pytest.raises(TableReadError, match="no such file"):
        read_source("missing.csv", root=tmp_path)
    with pytest.raises(ValueError, match="lower-case word"):
        register_table_source("Bad Prefix", reader)


def test_serving_registers_its_log_readers_by_entry_point() -> None:
    """nbops.data names no serving module: the prefixes come from the installed entry points."""
    assert {"predictions", "feedback"} <= set(table_sources())
    source = (Path(__file__).parents[2] / "nbops" / "data" / "_sources.py").read_text()
    assert "nbops.serve" not in source
