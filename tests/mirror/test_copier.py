"""The W&B copy helper: copies written from the store after their runs, in a helper process
that finishes its work even when the process that owed the copies dies first.

Real parts: the helper process, wandb writing offline runs, each file read back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import nbops
from nbops.mirror import COMPLETE, METADATA_KEY, OfflineCopier, deferred_state
from nbops.store import open_store
from tests.conftest import subprocess_env
from tests.mirror.test_copy_completion import assert_copy_equals_store

OWES_COPIES = """
import json, os, sys
import nbops
from nbops.mirror import METADATA_KEY, OfflineCopier, deferred_state

from nbops.store import open_store

copier = OfflineCopier(open_store(), sys.argv[1], "test")
ids = []
for i in range(3):
    run = nbops.init(name=f"owed-{i}", wandb="disabled", capture=False)
    run.set_metadata(METADATA_KEY, deferred_state().to_dict(), deferred=True)
    run.log({"loss": 1.0 / (i + 1)})
    run.finish()
    copier.submit(run.id)
    ids.append(run.id)
print(json.dumps(ids), flush=True)
os._exit(0)  # dies without waiting for the copies
"""


def _owed_run(name: str) -> str:
    run = nbops.init(name=name, wandb="disabled", capture=False)
    run.set_metadata(METADATA_KEY, deferred_state().to_dict(), deferred=True)
    run.log({"loss": 0.5})
    run.log({"loss": 0.25})
    run.finish()
    return run.id


def test_close_waits_for_every_copy(isolated_env: Path) -> None:
    store = open_store()
    ids = [_owed_run(f"run-{i}") for i in range(2)]
    copier = OfflineCopier(store, isolated_env, "written after the run")
    for run_id in ids:
        copier.submit(run_id)
    assert copier.close() == []
    for run_id in ids:
        state = store.get_metadata(run_id)[METADATA_KEY]
        assert state["copy"] == COMPLETE and state["reason"] == "written after the run"
        assert_copy_equals_store(store, run_id, Path(state["run_dir"]))


def test_an_in_memory_store_gets_its_copies_on_threads(isolated_env: Path) -> None:
    store = open_store("memory://copier-test")
    run = nbops.init(name="in-memory", wandb="disabled", capture=False, store=store)
    run.set_metadata(METADATA_KEY, deferred_state().to_dict(), deferred=True)
    run.log({"loss": 0.5})
    run.finish()
    copier = OfflineCopier(store, isolated_env, "written after the run")
    copier.submit(run.id)
    assert copier.close() == []
    state = store.get_metadata(run.id)[METADATA_KEY]
    assert_copy_equals_store(store, run.id, Path(state["run_dir"]))


def test_copies_owed_by_a_process_that_dies_are_still_written(isolated_env: Path) -> None:
    owner = subprocess.run(
        [sys.executable, "-c", OWES_COPIES, str(isolated_env)],
        cwd=isolated_env,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert owner.returncode == 0, owner.stderr
    ids = json.loads(owner.stdout.strip().splitlines()[-1])
    store = open_store()
    deadline = time.monotonic() + 120
    while True:
        states = [store.get_metadata(run_id)[METADATA_KEY] for run_id in ids]
        if all(s["copy"] == COMPLETE for s in states):
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.2)
    for run_id, state in zip(ids, states, strict=True):
        assert_copy_equals_store(store, run_id, Path(state["run_dir"]))


def test_the_helper_opens_the_store_with_its_own_blobs(isolated_env: Path, tmp_path: Path) -> None:
    """A store opened with explicit blobs (a Dask worker's view of its coordinator's store):
    the helper process opens the same store and blobs, not those its environment names."""
    import numpy as np

    from nbops.store import StoreAddress

    address = StoreAddress(f"sqlite://{tmp_path / 'other'}", (tmp_path / "blobs").as_uri())
    store = address.open()
    run = nbops.init(name="media", wandb="disabled", capture=False, store=store)
    run.set_metadata(METADATA_KEY, deferred_state().to_dict(), deferred=True)
    run.log({"sample": nbops.Image(np.zeros((4, 5, 3), np.uint8))})
    run.finish()
    copier = OfflineCopier(store, tmp_path / "copies", "written after the run")
    copier.submit(run.id)
    assert copier.close() == []
    assert store.get_metadata(run.id)[METADATA_KEY]["copy"] == COMPLETE
    assert list((tmp_path / "copies").rglob("*.png")), "the image blob reached the copy"
    assert not (tmp_path / "other" / "objects").exists()  # the blobs stayed where they are
