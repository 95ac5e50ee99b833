"""Dataset versions: content hashes, byte-for-byte round trips, the index and ``nbops data``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import nbops
from nbops.data import (
    dataset_versions,
    get_dataset,
    list_datasets,
    load_dataset,
    log_dataset,
    restore_dataset,
)
from nbops.errors import DataIntegrityError, InvalidValueError, NoActiveRunError, NotFoundError
from nbops.store import hash_file


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(3 * (1 << 20) + 17) + b"\r\n\x00 end")  # spans several chunks
    table = tmp_path / "table.csv"
    table.write_text("a,b,c\n1,x,true\n2,y,false\n,z,true\n")
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    (folder / "one.bin").write_bytes(os.urandom(1000))
    (folder / "sub" / "two.txt").write_text("two\n")
    return {"blob": blob, "table": table, "folder": folder}


def test_file_round_trips_byte_for_byte(files: dict[str, Path], tmp_path: Path) -> None:
    with nbops.init(project="data") as run:
        version = nbops.log_dataset(files["blob"])
    assert version.name == "blob.bin" and version.kind == "file"
    assert version.hash == hash_file(files["blob"])[0]
    out = restore_dataset(version.ref, tmp_path / "out" / "blob.bin")
    assert out.read_bytes() == files["blob"].read_bytes()
    assert run.store.get_metadata(run.id)["datasets"] == [
        {
            "name": "blob.bin",
            "hash": version.hash,
            "kind": "file",
            "rows": None,
            "size": files["blob"].stat().st_size,
            "source": str(files["blob"].resolve()),
        }
    ]


def test_folder_round_trips_and_hash_follows_content(
    files: dict[str, Path], tmp_path: Path
) -> None:
    with nbops.init(project="data"):
        first = log_dataset(files["folder"], name="images")
        (files["folder"] / "sub" / "two.txt").write_text("changed\n")
        second = log_dataset(files["folder"], name="images")
    assert first.kind == "dir" and first.files == 2
    assert first.hash != second.hash
    out = restore_dataset(first.ref, tmp_path / "restored")
    assert (out / "one.bin").read_bytes() == (files["folder"] / "one.bin").read_bytes()
    assert (out / "sub" / "two.txt").read_text() == "two\n"
    assert [v.hash for v in dataset_versions("images")] == [first.hash, second.hash]
    assert get_dataset("images").hash == second.hash  # the latest


def test_csv_gets_schema_rows_and_statistics(files: dict[str, Path]) -> None:
    with nbops.init(project="data"):
        version = log_dataset(files["table"], name="table")
    assert version.rows == 3
    assert version.schema == {"a": "float64", "b": version.schema["b"], "c": "bool"}
    assert version.stats is not None
    assert version.stats["a"] == {
        "dtype": "float64",
        "nulls": 1,
        "min": 1.0,
        "max": 2.0,
        "mean": 1.5,
        "std": pytest.approx(0.7071067811865476),
    }
    assert version.stats["b"]["unique"] == 3
    assert version.stats["c"]["true_fraction"] == pytest.approx(2 / 3)


def test_dataframe_hash_is_by_content_and_stored_once(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.5, 2.5, None], "label": ["a", "b", "a"]})
    with nbops.init(project="data") as run:
        first = log_dataset(frame, name="train")
        again = log_dataset(frame.copy(), name="train")
        other = log_dataset(frame.assign(x=[1.5, 2.5, 3.5]), name="train")
    assert first.hash == again.hash != other.hash
    assert first.kind == "dataframe" and first.rows == 3
    assert first.schema == {"x": "float64", "label": first.schema["label"]}
    assert len(run.store.get_metadata(run.id)["datasets"]) == 2  # no duplicate entry
    assert len(dataset_versions("train")) == 2
    pd.testing.assert_frame_equal(load_dataset(first.ref), frame)
    parquet = restore_dataset(first.ref, tmp_path / "train.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(parquet), frame)
    csv = restore_dataset(first.ref, tmp_path / "train.csv")
    assert csv.read_text().splitlines()[0] == "x,label"


def test_a_dataframe_needs_a_name_and_a_run() -> None:
    frame = pd.DataFrame({"x": [1]})
    with pytest.raises(NoActiveRunError):
        log_dataset(frame, name="x")
    with nbops.init(project="data"), pytest.raises(InvalidValueError, match="needs a name"):
        log_dataset(frame)


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "/abs",
        "a/b",
        "",
        " ",
        "has space",
        "tab\there",
        "bell\x07",
        "new\nline",
        "a\\b",
        ".hidden",
        "caf\u00e9",
        "x\u202ey",
    ],
)
def test_odd_dataset_names_are_rejected(name: str, files: dict[str, Path]) -> None:
    with nbops.init(project="data"), pytest.raises(InvalidValueError, match="invalid dataset name"):
        log_dataset(files["blob"], name=name)


def test_unknown_and_ambiguous_refs(files: dict[str, Path]) -> None:
    with nbops.init(project="data"):
        version = log_dataset(files["blob"], name="blob")
    assert get_dataset(f"blob@{version.hash[:6]}").hash == version.hash
    with pytest.raises(NotFoundError, match="no dataset 'nope'"):
        get_dataset("nope")
    with pytest.raises(NotFoundError):
        get_dataset("blob@" + "0" * 12)
    with pytest.raises(InvalidValueError, match="hex"):
        get_dataset("blob@../../etc")


def test_a_modified_blob_is_refused(files: dict[str, Path], tmp_path: Path) -> None:
    with nbops.init(project="data") as run:
        version = log_dataset(files["table"], name="table")
    blob = run.store.blobs.path_of(version.object)
    os.chmod(blob, 0o644)
    blob.write_bytes(blob.read_bytes().replace(b"x", b"X"))
    with pytest.raises(DataIntegrityError, match="was modified"):
        restore_dataset("table", tmp_path / "out.csv")


def test_cli_data_list_show_get(files: dict[str, Path], tmp_path: Path, cli: Any) -> None:
    assert "No datasets yet" in cli("data", "list").output
    with nbops.init(project="data") as run:
        table = log_dataset(files["table"], name="table")
        log_dataset(files["folder"], name="images")
    result = cli("data", "list")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["NAME", "LATEST", "KIND"]
    assert lines[1].startswith("images") and table.hash[:12] in lines[2]
    listed = json.loads(cli("data", "list", "--json").output)
    assert [d["name"] for d in listed] == ["images", "table"] and listed[1]["versions"] == 1
    shown = cli("data", "show", f"table@{table.hash[:8]}")
    assert shown.exit_code == 0
    assert f"Dataset table@{table.hash}" in shown.output and "3 rows" in shown.output
    assert f"used by runs {run.id}" in shown.output and "a  float64" in shown.output
    doc = json.loads(cli("data", "show", "table", "--json").output)
    assert doc["hash"] == table.hash and doc["stats"]["a"]["nulls"] == 1
    out = tmp_path / "got.csv"
    got = cli("data", "get", f"table@{table.hash[:12]}", "-o", str(out))
    assert got.exit_code == 0 and out.read_bytes() == files["table"].read_bytes()
    missing = cli("data", "show", "nope")
    assert missing.exit_code == 1 and missing.stderr.startswith("Error: no dataset 'nope'")
    bad = cli("data", "get", "../etc@abcd", "-o", str(out))
    assert bad.exit_code == 1 and "invalid dataset name" in bad.stderr
    assert [v.name for v, _ in list_datasets()] == ["images", "table"]
