"""``nbops gc``: one referenced set from every owner; local blobs nothing refers to are freed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

import nbops
from nbops.errors import NbopsError
from nbops.pipeline import RunLock, gc, read_lock, run_pipeline
from nbops.store import open_store
from tests.pipeline.conftest import STAMP, write_notebook, write_spec

pytestmark = pytest.mark.kernel


def quiet(_line: str) -> None:
    pass


def _age_blobs(root: Path) -> None:
    """Make every stored blob look an hour old (gc keeps blobs written moments ago)."""
    old = time.time() - 3600
    for blob in (root / ".nbops" / "objects").rglob("*"):
        if blob.is_file():
            os.utime(blob, (old, old))


OUTS = ["tag.txt"]


def _emit_project(root: Path) -> None:
    write_notebook(
        root / "emit.ipynb",
        "tag = 'a'",
        STAMP.format(name="emit"),
        "Path('tag.txt').write_text(tag * 1000)",
    )
    write_spec(
        root,
        {
            "stages": {
                "emit": {"notebook": "emit.ipynb", "params": {"tag": "a"}, "outs": ["tag.txt"]}
            }
        },
    )


def _deleted_run_sharing_a_dataset(tmp_path: Path) -> tuple[str, str, str]:
    """A run that logs a file also logged as a dataset, and a file of its own; then deleted.
    Returns (run id, shared digest, own digest)."""
    folder = tmp_path / "logged"
    folder.mkdir()
    shared, own = folder / "shared.csv", folder / "own.txt"
    shared.write_text("a,b\n1,2\n")
    own.write_text("only the deleted run has this")
    with nbops.init(project="p", name="gone", capture=False, system_metrics=False) as run:
        shared_digest = run.log_artifact(shared).digest
        own_digest = run.log_artifact(own).digest
        nbops.log_dataset(shared, name="table")  # the version outlives the run
    from nbops.tracking import delete_runs

    delete_runs([run.id])
    return run.id, shared_digest, own_digest


def test_gc_frees_what_no_owner_refers_to_and_keeps_shared_objects(
    isolated_env: Path, tmp_path: Path
) -> None:
    root = isolated_env
    _emit_project(root)
    run_pipeline(root, overrides={"emit": {"tag": "a"}}, report=quiet)
    out_a = read_lock(root)["emit"].outs["tag.txt"]
    time.sleep(0.05)
    run_pipeline(root, overrides={"emit": {"tag": "b"}}, report=quiet)
    out_b = read_lock(root)["emit"].outs["tag.txt"]
    assert out_a != out_b
    gone, shared, own = _deleted_run_sharing_a_dataset(tmp_path)
    store = open_store(root / ".nbops")
    blobs = store.blobs
    left = blobs.staging_dir() / "0123.part"  # what a killed pull left
    left.write_bytes(b"p" * 777)
    _age_blobs(root)
    before = sorted(blobs.digests())

    dry = gc(root, store, root / ".nbops", keep=1, dry_run=True, min_age=0, report=quiet)
    assert sorted(blobs.digests()) == before  # a dry run deletes nothing
    assert len(store.run_cache.list()) == 2 and nbops.get_run(gone).id == gone
    assert dry.runs == (gone,) and dry.records == 1
    assert dry.freed["deleted runs"] == len("only the deleted run has this")
    assert dry.freed["run cache"] >= 1000  # a's out and its executed notebook
    assert dry.freed["partial downloads"] == 777 and left.exists()

    done = gc(root, store, root / ".nbops", keep=1, min_age=0, report=quiet)
    assert (done.runs, done.records, done.objects) == (dry.runs, dry.records, dry.objects)
    assert done.freed == dry.freed
    assert not blobs.exists(out_a)  # an out no longer in the lock (its record dropped) is freed
    assert not blobs.exists(own)  # only the deleted run had it
    assert blobs.exists(shared)  # a dataset version still refers to it
    assert blobs.exists(out_b)  # the lock refers to it
    assert not left.exists()
    with pytest.raises(nbops.NbopsError):
        nbops.get_run(gone)
    assert next(iter(store.run_cache.list().values()))["entry"]["outs"]["tag.txt"] == out_b
    again = gc(root, store, root / ".nbops", keep=1, min_age=0, report=quiet)
    assert (again.runs, again.records, again.objects, again.bytes_freed) == ((), 0, 0, 0)
    (root / "tag.txt").unlink()
    assert run_pipeline(root, overrides={"emit": {"tag": "b"}}, report=quiet)["emit"].outcome == (
        "cached"
    )


def test_gc_keeps_fresh_blobs_and_waits_for_no_run(isolated_env: Path, tmp_path: Path) -> None:
    root = isolated_env
    _emit_project(root)
    run_pipeline(root, overrides={"emit": {"tag": "a"}}, report=quiet)
    _gone, _shared, own = _deleted_run_sharing_a_dataset(tmp_path)
    store = open_store(root / ".nbops")
    fresh = gc(root, store, root / ".nbops", keep=1, report=quiet)  # default min_age
    assert fresh.objects == 0 and store.blobs.exists(own)  # written moments ago: may be in use
    with RunLock(root, root / ".nbops"), pytest.raises(NbopsError, match="once it is done"):
        gc(root, store, root / ".nbops", keep=1, min_age=0, report=quiet)
    assert store.blobs.exists(own)
    _age_blobs(root)
    assert store.blobs.put_bytes(b"only the deleted run has this") == own  # stored again
    again = gc(root, store, root / ".nbops", keep=1, min_age=60, report=quiet)
    assert again.objects == 0 and store.blobs.exists(own)  # its writer may record it next
    _age_blobs(root)
    later = gc(root, store, root / ".nbops", keep=1, min_age=60, report=quiet)
    assert later.objects == 1 and not store.blobs.exists(own)


def test_one_gc_command_with_json_and_runs_gc_is_gone(
    isolated_env: Path, tmp_path: Path, cli: Any
) -> None:
    root = isolated_env
    _gone, shared, own = _deleted_run_sharing_a_dataset(tmp_path)
    _age_blobs(root)
    dry = cli("gc", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.stderr
    doc = json.loads(dry.output)
    assert doc["dry_run"] is True and len(doc["runs"]) == 1 and doc["objects"] == 1
    assert doc["bytes_freed"]["deleted_runs"] == doc["bytes_freed_total"] > 0
    assert open_store().blobs.exists(own)
    done = cli("gc")
    assert done.exit_code == 0, done.stderr
    assert "removed 1 deleted run(s)" in done.output and "deleted runs" in done.output
    assert not open_store().blobs.exists(own) and open_store().blobs.exists(shared)
    old = cli("runs", "gc")
    assert old.exit_code != 0 and "Traceback" not in old.stderr
