"""Deleting runs and collecting their garbage: shared objects survive."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

import nbops
from nbops.errors import StoreError
from nbops.store import open_store
from nbops.tracking import delete_runs, purge_deleted_runs


def logged(tmp_path: Path, name: str, text: str, **init: Any) -> tuple[str, dict[str, str]]:
    """A finished run with artifacts; return its id and each artifact's digest."""
    folder = tmp_path / name
    folder.mkdir()
    digests = {}
    with nbops.init(project="p", name=name, capture=False, system_metrics=False, **init) as run:
        run.log({"loss": 1.0})
        for label, content in (("shared", "same bytes"), ("own", text)):
            path = folder / f"{label}.txt"
            path.write_text(content)
            digests[label] = run.log_artifact(path).digest
        tree = folder / "tree"
        tree.mkdir()
        (tree / "inner.txt").write_text(f"inside {text}")
        digests["tree"] = run.log_artifact(tree).digest
        data = folder / "data.csv"
        data.write_text("a,b\n1,2\n")
        digests["data"] = run.log_artifact(data).digest
        if name == "kept":
            nbops.log_dataset(data, name="table")
    return run.id, digests


def test_delete_hides_and_gc_removes_only_unshared_objects(tmp_path: Path, cli: Any) -> None:
    gone, gone_digests = logged(tmp_path, "gone", "only in the deleted run")
    kept, _ = logged(tmp_path, "kept", "only in the kept run")
    blobs = open_store().blobs
    result = cli("runs", "delete", gone[:8], "--yes")
    assert result.exit_code == 0, result.output
    assert list(nbops.runs()["id"]) == [kept]
    assert gone not in cli("runs", "list").output
    assert nbops.get_run(gone).status == "finished"  # still there until gc

    listed = purge_deleted_runs(dry_run=True)
    assert listed.runs == (gone,) and gone_digests["shared"] in listed.blobs
    old = time.time() - 3600  # nbops gc keeps blobs written moments ago
    for digest in blobs.digests():
        os.utime(blobs.path_of(digest), (old, old))
    dry = cli("gc", "--dry-run")
    assert dry.exit_code == 0 and "would remove 1 deleted run(s)" in dry.output
    assert ", 3 object(s)" in dry.output
    assert nbops.get_run(gone).id == gone

    own_size = blobs.path_of(gone_digests["own"]).stat().st_size
    outcome = json.loads(cli("gc", "--json").output)
    assert outcome["runs"] == [gone]
    assert outcome["objects"] == 3  # own.txt, the tree's manifest and its inner file
    assert outcome["bytes_freed"]["deleted_runs"] >= own_size
    assert not blobs.exists(gone_digests["own"])
    assert not blobs.exists(gone_digests["tree"])
    assert blobs.exists(gone_digests["shared"])  # another run logged the same bytes
    assert blobs.exists(gone_digests["data"])  # a dataset version refers to it
    with pytest.raises(nbops.NbopsError):
        nbops.get_run(gone)
    assert nbops.get_run(kept).artifact("shared.txt").restore(
        tmp_path / "back.txt"
    ).read_text() == ("same bytes")
    again = json.loads(cli("gc", "--json").output)
    assert (again["runs"], again["objects"], again["bytes_freed_total"]) == ([], 0, 0)


def test_delete_refusals(cli: Any) -> None:
    live = nbops.init(project="p", capture=False, system_metrics=False)
    with pytest.raises(StoreError, match="running"):
        delete_runs([live.id])
    assert list(nbops.runs()["id"]) == [live.id]
    live.finish()
    no_terminal = cli("runs", "delete", live.id)
    assert no_terminal.exit_code != 0 and "--yes" in no_terminal.stderr + no_terminal.output
    unknown = cli("runs", "delete", live.id, "zzzzzzzz", "--yes")
    assert unknown.exit_code != 0 and "Traceback" not in unknown.stderr + unknown.output
    assert list(nbops.runs()["id"]) == [live.id]  # nothing marked when one id is bad
