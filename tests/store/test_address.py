"""A store as another process opens it (:class:`nbops.store.StoreAddress`), and Dask workers
elsewhere (another folder, another store in their environment, no shared project) recording
pipeline stages and sweep trials into the coordinator's PostgreSQL store."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

import nbops
from nbops.config import store_path
from nbops.store import StoreAddress, open_store, store_address
from tests.conftest import DaskCluster, start_workers, subprocess_env


def test_an_address_opens_the_store_with_its_blobs_whatever_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    coordinator = store_address(tmp_path / "store")
    assert coordinator.url == f"sqlite://{tmp_path / 'store'}"
    assert coordinator.blobs == (tmp_path / "store" / "objects").as_uri()
    elsewhere = StoreAddress(coordinator.url, (tmp_path / "shared-blobs").as_uri())
    monkeypatch.setenv("NBOPS_BLOBS", str(tmp_path / "env-blobs"))  # loses to the address
    opened = elsewhere.open()
    assert opened.blobs.url == elsewhere.blobs
    digest = opened.blobs.put_bytes(b"hello")
    assert any(p.is_file() for p in (tmp_path / "shared-blobs").rglob(f"*{digest[2:]}*"))
    assert opened is elsewhere.open()  # one instance per process, URL and blobs
    assert elsewhere.environ() == {"NBOPS_STORE": coordinator.url, "NBOPS_BLOBS": elsewhere.blobs}
    assert not (tmp_path / "env-blobs").exists()


def test_an_address_hides_a_password_in_its_repr() -> None:
    address = StoreAddress("postgresql://me:s3cret@db/nbops", "file:///blobs")
    assert "s3cret" not in repr(address)
    assert address.environ()["NBOPS_STORE"] == "postgresql://me:s3cret@db/nbops"


def test_an_address_opens_its_own_sqlite_store_only(tmp_path: Path) -> None:
    """Another machine may have a folder at the same path: missing, or another store. Opening
    the address there refuses, naming the fix, and creates or writes nothing."""
    from nbops.errors import StoreError
    from nbops.store import SQLiteStore

    folder = tmp_path / "store"
    address = store_address(folder)
    assert address.identity and (folder / "store-id").read_text() == address.identity
    assert store_address(folder).identity == address.identity  # kept, not remade
    assert address.open().url == address.url  # the same machine: fine

    folder.rename(tmp_path / "moved")
    with pytest.raises(StoreError, match="is not there on this machine") as missing:
        address.open()
    assert "postgresql://" in str(missing.value) and not folder.exists()

    other = SQLiteStore(folder)  # another store at the same path
    with pytest.raises(StoreError, match="holds another store"):
        address.open()
    assert other.list_runs() == []
    assert not (folder / "store-id").exists()  # nothing written into the other store
    assert other.identity != address.identity
    with pytest.raises(StoreError, match="holds another store"):
        address.open()


def _identity_of(folder: str) -> str:
    from nbops.store import SQLiteStore

    return SQLiteStore(folder).identity


def test_processes_opening_a_new_store_agree_on_its_identity(tmp_path: Path) -> None:
    import multiprocessing

    folder = str(tmp_path / "fresh")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        seen = pool.map(_identity_of, [folder] * 8)
    assert len(set(seen)) == 1 and (Path(folder) / "store-id").read_text() == seen[0]


def _worker_env(elsewhere: Path) -> dict[str, str]:
    """The environment of a worker on "another machine": its own store, not the project's."""
    env = subprocess_env()
    for name in ("NBOPS_STORE", "NBOPS_HOME", "NBOPS_BLOBS"):
        env.pop(name, None)
    env["NBOPS_STORE"] = f"sqlite://{elsewhere / 'own-store'}"
    return env


@pytest.mark.slow
@pytest.mark.kernel
@pytest.mark.postgres
def test_workers_elsewhere_record_stages_and_trials_into_the_coordinators_store(
    isolated_env: Path,
    dask_scheduler: DaskCluster,
    postgres_store_url: str,
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nbops.pipeline import add_remote, run_pipeline
    from tests.pipeline.conftest import write_notebook, write_spec

    root = isolated_env
    elsewhere = tmp_path / "elsewhere"  # not the project: no pyproject.toml, no .nbops
    elsewhere.mkdir()
    start_workers(dask_scheduler, ("w0", "w1"), cwd=elsewhere, env=_worker_env(elsewhere))
    monkeypatch.setenv("NBOPS_STORE", postgres_store_url)
    store = open_store()
    assert store.url == postgres_store_url

    # a pipeline: files through a directory remote, no shared disk assumed
    (root / "input.txt").write_text("4\n")
    write_notebook(
        root / "nb" / "a.ipynb",
        "",
        "from pathlib import Path\nimport nbops\n"
        "n = int(Path('input.txt').read_text()) * 2\nPath('a.txt').write_text(str(n))\n"
        "nbops.log({'n': float(n)})",
    )
    write_notebook(
        root / "nb" / "b.ipynb",
        "",
        "from pathlib import Path\nPath('b.txt').write_text(Path('a.txt').read_text() + '!')",
    )
    write_spec(
        root,
        {
            "stages": {
                "a": {"notebook": "nb/a.ipynb", "deps": ["input.txt"], "outs": ["a.txt"]},
                "b": {"notebook": "nb/b.ipynb", "deps": ["a.txt"], "outs": ["b.txt"]},
            }
        },
    )
    add_remote(root, store_path(root), "shared", str(tmp_path / "remote"), default=True)
    lines: list[str] = []
    result = run_pipeline(root, executor=dask_scheduler.url, report=lines.append)
    assert {s.name: s.outcome for s in result.stages} == {"a": "ran", "b": "ran"}, (
        lines,
        dask_scheduler.logs(),
    )
    assert (root / "b.txt").read_text() == "8!"
    stages = [r for r in store.list_runs() if r.job_type == "stage"]
    assert sorted(r.name for r in stages) == ["a", "b"]
    for run in stages:
        assert run.status == "finished"
        assert store.get_metadata(run.id)["executor"]["worker"] in ("w0", "w1")
    (a,) = [r for r in stages if r.name == "a"]
    assert nbops.get_run(a.id).summary["n"] == 8.0  # the kernel logged into PostgreSQL too
    again = run_pipeline(root, executor=dask_scheduler.url, report=lines.append)
    assert {s.outcome for s in again.stages} == {"cached"}
    assert len([r for r in store.list_runs() if r.job_type == "stage"]) == 2

    # sweeps: a function objective and a notebook objective
    space = {"x": {"type": "float", "low": -5.0, "high": 5.0}}

    def objective(params: dict[str, Any]) -> float:
        return -((params["x"] - 2.0) ** 2)

    notebook = root / "train.ipynb"
    write_notebook(notebook, "x = 0.0", "import nbops\nnbops.log({'score': -(x - 2) ** 2})")
    for target, extra in ((objective, {}), (str(notebook), {"metric": "score"})):
        sweep = nbops.sweep(
            target,
            space=space,
            n_trials=2,
            direction="maximize",
            storage=postgres_url,
            study_name=f"elsewhere-{uuid.uuid4().hex[:8]}",
            executor=dask_scheduler.url,
            jobs=2,
            **extra,
        )
        trials = sweep.study.get_trials()
        assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"], sweep.errors
        for trial in trials:
            run = nbops.get_run(trial.user_attrs["nbops.run_id"])
            assert run.status == "finished"
            assert run.summary.get("score", trial.value) == pytest.approx(trial.value)
            where = store.get_metadata(run.id)["sweep"]
            assert where["dask_worker"] == trial.user_attrs["nbops.dask_worker"]
            assert where["dask_worker"] in ("w0", "w1")
        in_store = {r.id for r in store.list_runs() if r.group == sweep.spec.study_name}
        assert {t.user_attrs["nbops.run_id"] for t in trials} <= in_store

    # nothing went to the workers' own store
    own = elsewhere / "own-store"
    assert not own.exists() or not open_store(f"sqlite://{own}").list_runs(), os.listdir(own)


@pytest.mark.slow
@pytest.mark.kernel
@pytest.mark.postgres
def test_a_worker_that_cannot_see_the_sqlite_store_refuses_stages_and_trials(
    isolated_env: Path, dask_scheduler: DaskCluster, postgres_url: str, tmp_path: Path
) -> None:
    """A worker on a machine without the coordinator's disk (an empty folder at the store's
    path) would record into a store of its own that nobody reads: it refuses instead, and the
    coordinator says why."""
    from nbops.pipeline import PipelineFailed, add_remote, run_pipeline
    from tests.pipeline.conftest import write_notebook, write_spec

    root = isolated_env
    store = open_store()
    assert store.url.startswith("sqlite:")
    start_workers(dask_scheduler, ("far",), hide=store.path)
    write_notebook(
        root / "nb" / "a.ipynb", "", "from pathlib import Path\nPath('a.txt').write_text('1')"
    )
    write_spec(root, {"stages": {"a": {"notebook": "nb/a.ipynb", "outs": ["a.txt"]}}})
    add_remote(root, store_path(root), "shared", str(tmp_path / "remote"), default=True)
    lines: list[str] = []
    with pytest.raises(PipelineFailed) as failed:
        run_pipeline(root, executor=dask_scheduler.url, report=lines.append)
    said = str(failed.value) + "\n".join(lines)
    assert "is not there on this machine" in said, (said, dask_scheduler.logs())
    assert "postgresql://" in said
    assert [r for r in store.list_runs() if r.job_type == "stage"] == []

    def objective(params: dict[str, Any]) -> float:
        return float(params["x"])

    from nbops.sweeps import SweepError

    with pytest.raises(SweepError, match="is not there on this machine") as refused:
        nbops.sweep(
            objective,
            space={"x": {"type": "float", "low": 0.0, "high": 1.0}},
            n_trials=2,
            direction="maximize",
            storage=postgres_url,
            study_name=f"far-{uuid.uuid4().hex[:8]}",
            executor=dask_scheduler.url,
            jobs=1,
        )
    assert "postgresql://" in str(refused.value)
    assert [r for r in store.list_runs() if r.job_type == "trial"] == []
