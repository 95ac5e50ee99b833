"""Conformance tests of the runs part every :class:`~nbops.store.RunStore` backend must pass.

Subclass :class:`StoreConformance` (and :class:`ProcessConformance` for a backend shared by
processes) in a pytest module and implement ``make_store``::

    class TestMyStore(StoreConformance, ProcessConformance):
        def make_store(self, path):
            return MyStore(path)

:class:`nbops.testing.BackendConformance` gathers every suite of every part.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from nbops.errors import AmbiguousRunIdError, NotFoundError, RunNotFoundError, StoreError
from nbops.store import (
    ArtifactRecord,
    MetricPoint,
    RunRecord,
    RunStore,
    make_query,
    open_backend,
)


def _record(run_id: str, project: str = "p", **fields: Any) -> RunRecord:
    defaults: dict[str, Any] = {
        "name": f"name-{run_id}",
        "start_time": time.time(),
        "heartbeat_time": time.time(),
        "pid": os.getpid(),
        "host": os.uname().nodename,
    }
    defaults.update(fields)
    return RunRecord(id=run_id, project=project, **defaults)


def _write_many(args: tuple[str, str, int]) -> None:
    from nbops.store import open_store

    url, run_id, n = args
    store = open_store(url)
    for start in range(0, n, 500):
        store.write_progress(
            run_id, [MetricPoint("m", i, float(i), time.time()) for i in range(start, start + 500)]
        )


class StoreConformance:
    """The contract of :class:`RunStore`, as tests. Override ``make_store``."""

    def make_store(self, path: Path) -> RunStore:
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path: Path) -> RunStore:
        return self.make_store(tmp_path / "store")

    def test_create_and_get(self, store: RunStore) -> None:
        store.create_run(_record("r1", group="g", job_type="train", tags=("a", "b")))
        got = store.get_run("r1")
        assert (got.project, got.name, got.group, got.job_type, got.tags, got.status) == (
            "p",
            "name-r1",
            "g",
            "train",
            ("a", "b"),
            "running",
        )

    def test_duplicate_id_rejected(self, store: RunStore) -> None:
        store.create_run(_record("r1"))
        with pytest.raises(StoreError):
            store.create_run(_record("r1"))

    def test_unknown_id(self, store: RunStore) -> None:
        with pytest.raises(RunNotFoundError):
            store.get_run("nope")
        with pytest.raises(RunNotFoundError):
            store.get_params("nope")
        with pytest.raises(RunNotFoundError):
            store.resolve_id("zz")

    def test_resolve_prefix(self, store: RunStore) -> None:
        store.create_run(_record("abc1"))
        store.create_run(_record("abc2"))
        store.create_run(_record("ab_x"))
        assert store.resolve_id("abc1") == "abc1"
        assert store.resolve_id("ab_") == "ab_x"  # '_' is literal, not a wildcard
        with pytest.raises(AmbiguousRunIdError):
            store.resolve_id("abc")

    def test_list_by_project_in_start_order(self, store: RunStore) -> None:
        store.create_run(_record("b", start_time=2.0, heartbeat_time=time.time()))
        store.create_run(_record("a", start_time=1.0, heartbeat_time=time.time()))
        store.create_run(_record("c", project="other"))
        assert [r.id for r in store.list_runs("p")] == ["a", "b"]
        assert len(store.list_runs()) == 3

    def test_params_merge(self, store: RunStore) -> None:
        store.create_run(_record("r"))
        store.log_params("r", {"lr": 0.1, "layers": [1, 2], "nested": {"a": None}})
        store.log_params("r", {"lr": 0.2})
        assert store.get_params("r") == {"lr": 0.2, "layers": [1, 2], "nested": {"a": None}}

    def test_metrics_roundtrip_special_floats(self, store: RunStore) -> None:
        store.create_run(_record("r"))
        values = [1.5, math.inf, -math.inf, math.nan, -0.0, 1e308]
        store.write_progress("r", [MetricPoint("m", i, v, 100.0 + i) for i, v in enumerate(values)])
        got = [p.value for p in store.get_metrics("r")]
        assert got[:3] == values[:3]
        assert math.isnan(got[3])
        assert got[4:] == values[4:]

    def test_metric_keys_with_control_characters(self, store: RunStore) -> None:
        store.create_run(_record("r"))
        keys = ["tab\tkey", "back\\slash", "new\nline", "ünï 🙂", "\\N"]
        store.write_progress("r", [MetricPoint(k, i, float(i), 1.0) for i, k in enumerate(keys)])
        assert [p.key for p in store.get_metrics("r")] == keys
        assert set(store.last_metrics(["r"])["r"]) == set(keys)

    def test_metrics_order_and_filter(self, store: RunStore) -> None:
        store.create_run(_record("r"))
        store.write_progress("r", [MetricPoint("b", 2, 2.0, 1.0), MetricPoint("a", 1, 1.0, 2.0)])
        store.write_progress("r", [MetricPoint("a", 0, 0.0, 3.0)])
        assert [(p.key, p.step) for p in store.get_metrics("r")] == [("a", 0), ("a", 1), ("b", 2)]
        assert [p.key for p in store.get_metrics("r", keys=["b"])] == ["b"]

    def test_last_metrics_is_highest_step(self, store: RunStore) -> None:
        store.create_run(_record("r"))
        store.create_run(_record("s"))
        store.write_progress("r", [MetricPoint("m", 5, 5.0, 1.0), MetricPoint("m", 1, 1.0, 2.0)])
        assert store.last_metrics(["r", "s"]) == {"r": {"m": 5.0}, "s": {}}

    def test_summary_and_metadata_merge(self, store: RunStore) -> None:
        store.create_run(_record("r"))
        store.write_progress("r", summary={"acc": 0.5, "best": 1})
        store.write_progress("r", summary={"acc": 0.9})
        store.set_metadata("r", "git", {"commit": "abc"})
        store.set_metadata("r", "env", {"python": "3"})
        assert store.get_summary("r") == {"acc": 0.9, "best": 1}
        assert store.get_metadata("r") == {"env": {"python": "3"}, "git": {"commit": "abc"}}

    def test_artifacts(self, store: RunStore) -> None:
        store.create_run(_record("r"))
        rec = ArtifactRecord("model", "model", "d" * 64, 10, "file", "/x/model.pkl", 1.0, {"k": 1})
        assert store.add_artifact("r", rec) == rec
        store.add_artifact("r", ArtifactRecord("data", "dataset", "e" * 64, 5, "dir", "/x", 2.0))
        assert [a.name for a in store.list_artifacts("r")] == ["model", "data"]
        assert store.list_artifacts("r")[0] == rec

    def test_same_artifact_name_is_a_new_version(self, store: RunStore) -> None:
        store.create_run(_record("r"))
        first = ArtifactRecord("model", "model", "d" * 64, 10, "file", "/x/model.pkl", 1.0)
        second = ArtifactRecord("model", "model", "e" * 64, 12, "file", "/x/model.pkl", 2.0)
        assert store.add_artifact("r", first).version == 0
        assert store.add_artifact("r", second).ref == "model:v1"
        assert [(a.ref, a.digest) for a in store.list_artifacts("r")] == [
            ("model:v0", "d" * 64),
            ("model:v1", "e" * 64),
        ]
        assert store.get_artifact("r", "model").digest == "e" * 64
        assert store.get_artifact("r", "model:v0").digest == "d" * 64
        with pytest.raises(NotFoundError):
            store.get_artifact("r", "model:v2")

    def test_writes_for_an_unknown_run_raise_and_write_nothing(self, store: RunStore) -> None:
        art = ArtifactRecord("a", "t", "d" * 64, 1, "file", "/x", 1.0)
        for write in (
            lambda: store.set_status("ghost", "finished"),
            lambda: store.write_progress("ghost", [MetricPoint("m", 0, 1.0, 1.0)]),
            lambda: store.write_progress("ghost", summary={"a": 1}),
            lambda: store.write_progress("ghost", heartbeat_time=time.time()),
            lambda: store.log_params("ghost", {"lr": 1}),
            lambda: store.set_metadata("ghost", "git", {}),
            lambda: store.add_artifact("ghost", art),
        ):
            with pytest.raises(RunNotFoundError):
                write()
        store.create_run(_record("ghost"))  # nothing was kept for the id
        assert store.get_metrics("ghost") == []
        assert store.get_summary("ghost") == store.get_params("ghost") == {}
        assert store.get_metadata("ghost") == {}
        assert store.list_artifacts("ghost") == []
        assert store.last_metrics(["ghost"]) == {"ghost": {}}

    def test_status_and_end_time(self, store: RunStore) -> None:
        store.create_run(_record("r"))
        store.set_status("r", "finished")
        got = store.get_run("r")
        assert got.status == "finished"
        assert got.end_time is not None
        with pytest.raises(StoreError):
            store.set_status("r", "bogus")

    def test_set_tags_replaces_them(self, store: RunStore) -> None:
        store.create_run(_record("r", tags=("a", "b")))
        store.set_status("r", "finished")
        store.set_tags("r", ["b", "c", "c"])
        assert store.get_run("r").tags == ("b", "c")
        assert [r.id for r in store.list_runs(query=make_query(tags="c"))] == ["r"]
        assert store.list_runs(query=make_query(tags="a")) == []
        with pytest.raises(RunNotFoundError):
            store.set_tags("missing", ["x"])

    def test_reopen_a_finished_or_crashed_run(self, store: RunStore) -> None:
        store.create_run(_record("r"))
        with pytest.raises(StoreError, match="running"):
            store.reopen_run("r", os.getpid(), "h", time.time())
        store.set_status("r", "finished")
        beat = time.time()
        store.reopen_run("r", os.getpid(), os.uname().nodename, beat)
        got = store.get_run("r")
        assert (got.status, got.end_time, got.pid, got.heartbeat_time) == (
            "running",
            None,
            os.getpid(),
            beat,
        )
        store.write_progress(
            "r", [MetricPoint("m", 0, 1.0, time.time())], heartbeat_time=time.time()
        )
        assert store.get_run("r").status == "running"  # owned by a live process now
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait()
        store.create_run(_record("dead", pid=proc.pid))
        assert store.get_run("dead").status == "crashed"
        store.reopen_run("dead", os.getpid(), os.uname().nodename, time.time())
        assert store.get_run("dead").status == "running"
        with pytest.raises(RunNotFoundError):
            store.reopen_run("missing", os.getpid(), "h", time.time())

    def test_deleted_runs_are_hidden_and_purged(self, store: RunStore) -> None:
        from nbops.store import DELETED_KEY

        store.create_run(_record("keep"))
        store.create_run(_record("gone"))
        store.write_progress("gone", [MetricPoint("m", 0, 1.0, time.time())], {"m": 1.0})
        store.log_params("gone", {"a": 1})
        store.add_artifact("gone", ArtifactRecord("a", "t", "0" * 64, 1, "file", "/x", 1.0))
        store.set_metadata("gone", DELETED_KEY, {"at": time.time()})
        assert [r.id for r in store.list_runs()] == ["keep"]
        assert [r.record.id for r in store.list_run_rows()] == ["keep"]
        assert [r.id for r in store.list_runs(query=make_query(deleted=True))] == ["gone"]
        assert {r.id for r in store.list_runs(query=make_query(deleted=None))} == {"keep", "gone"}
        assert store.get_run("gone").id == "gone"  # still readable until purged
        with pytest.raises(StoreError, match="running"):
            store.purge_run("gone")
        store.set_status("gone", "finished")
        store.purge_run("gone")
        with pytest.raises(RunNotFoundError):
            store.get_run("gone")
        assert store.list_runs(query=make_query(deleted=None))[0].id == "keep"
        assert store.last_metrics(["keep"]) == {"keep": {}}
        with pytest.raises(RunNotFoundError):
            store.purge_run("gone")

    def test_dead_process_is_crashed(self, store: RunStore) -> None:
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait()
        store.create_run(_record("r", pid=proc.pid))
        assert store.get_run("r").status == "crashed"
        assert store.list_runs()[0].status == "crashed"

    def test_stale_heartbeat_is_crashed_and_heartbeat_revives(self, store: RunStore) -> None:
        old = time.time() - store.stale_after - 10
        store.create_run(_record("r", host="elsewhere", heartbeat_time=old, start_time=old))
        assert store.get_run("r").status == "crashed"
        store.write_progress("r", heartbeat_time=time.time())
        assert store.get_run("r").status == "running"

    def test_live_process_stays_running(self, store: RunStore) -> None:
        store.create_run(_record("r"))
        assert store.get_run("r").status == "running"

    def test_threads_share_one_instance(self, store: RunStore) -> None:
        store.create_run(_record("r"))

        def work(k: int) -> None:
            for i in range(50):
                store.write_progress("r", [MetricPoint(f"t{k}", i, float(i), time.time())])

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(store.get_metrics("r")) == 200


_KILLED_WRITER = """
import sys, time
from nbops.store import MetricPoint, RunRecord, open_store
store = open_store(sys.argv[1])
store.create_run(RunRecord(id="victim", project="p", name="v", start_time=time.time(),
                           heartbeat_time=time.time(), pid=None, host="elsewhere"))
store.log_params("victim", {"lr": 0.1})
for start in range(0, 3000, 300):
    store.write_progress("victim", [MetricPoint("m", i, float(i), time.time())
                                    for i in range(start, start + 300)], summary={"last": start})
store.set_metadata("victim", "git", {"commit": "abc"})
print("written", flush=True)
time.sleep(60)
"""


def _append_events(args: tuple[str, int, int]) -> None:
    from nbops.store import open_store

    url, worker, n = args
    store = open_store(url)
    for i in range(n):
        store.models.update_version(
            "m",
            1,
            {"status": f"by-{worker}"},
            event={"action": f"{worker}-{i}"},
            merge={"tags": {f"{worker}-{i}": "x"}},
        )
    store.close()


class ProcessConformance:
    """The contract across processes and instances: a backend several processes share.

    Needs ``make_store`` (as :class:`StoreConformance`) returning a store whose :attr:`url`
    opens the same data from another process.
    """

    def make_store(self, path: Path) -> RunStore:
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path: Path) -> RunStore:
        return self.make_store(tmp_path / "store")

    def test_crashed_is_seen_and_persisted_by_a_second_instance(self, store: RunStore) -> None:
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait()
        other = open_backend(store.url)
        try:
            store.create_run(_record("r", pid=proc.pid))
            store.create_run(_record("live"))
            assert other.get_run("r").status == "crashed"
            assert other.get_run("live").status == "running"
            third = open_backend(store.url)
            try:  # persisted: a third instance reads it without reaping
                assert {r.id: r.status for r in third.list_runs()} == {
                    "r": "crashed",
                    "live": "running",
                }
            finally:
                third.close()
        finally:
            other.close()

    def test_close_releases_and_data_survives(self, store: RunStore) -> None:
        store.create_run(_record("r"))
        store.log_params("r", {"a": 1})
        threads = [threading.Thread(target=store.get_params, args=("r",)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        url = store.url
        store.close()
        store.close()  # closing twice is harmless
        again = open_backend(url)
        try:
            assert again.get_params("r") == {"a": 1}
        finally:
            again.close()

    def test_sigkill_loses_nothing_written(self, store: RunStore) -> None:
        child = subprocess.Popen(
            [sys.executable, "-c", _KILLED_WRITER, store.url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline()  # bounded: the child sleeps 60 s at most
            assert line.strip() == "written", child.stderr.read() if child.stderr else ""
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        reader = open_backend(store.url)
        try:
            assert [p.step for p in reader.get_metrics("victim")] == list(range(3000))
            assert reader.get_params("victim") == {"lr": 0.1}
            assert reader.get_summary("victim") == {"last": 2700}
            assert reader.get_metadata("victim") == {"git": {"commit": "abc"}}
        finally:
            reader.close()

    def test_forked_child_uses_its_own_connections(self, store: RunStore) -> None:
        store.create_run(_record("r"))
        store.log_params("r", {"parent": -1})  # the parent holds a connection now
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child, writing while the parent writes
            code = 1
            try:
                for i in range(100):
                    store.write_progress("r", [MetricPoint("child", i, 1.0, 1.0)])
                code = 0
            finally:
                os._exit(code)
        for i in range(100):
            store.write_progress("r", [MetricPoint("parent", i, 1.0, 1.0)])
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        store.log_params("r", {"after": 1})  # the parent's connection still works
        assert store.get_params("r") == {"after": 1, "parent": -1}
        points = store.get_metrics("r")
        assert sorted((p.key, p.step) for p in points) == sorted(
            [("child", i) for i in range(100)] + [("parent", i) for i in range(100)]
        )

    def test_processes_lose_nothing(self, store: RunStore) -> None:
        for k in range(4):
            store.create_run(_record(f"r{k}"))
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(4) as pool:
            pool.map(_write_many, [(store.url, f"r{k}", 2000) for k in range(4)])
        for k in range(4):
            steps = [p.step for p in store.get_metrics(f"r{k}")]
            assert steps == list(range(2000))

    def test_processes_changing_one_model_version_lose_nothing(self, store: RunStore) -> None:
        from nbops.testing.parts_conformance import model_fields

        store.models.add_version(model_fields(events=[{"action": "registered"}]))
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(4) as pool:
            pool.map(_append_events, [(store.url, w, 25) for w in range(4)])
        got = store.models.get_version("m", 1)
        assert got is not None
        actions = [e["action"] for e in got["events"]]
        assert actions[0] == "registered"
        assert sorted(actions[1:]) == sorted(f"{w}-{i}" for w in range(4) for i in range(25))
        for w in range(4):  # each process's own events stay in its order
            assert [a for a in actions if a.startswith(f"{w}-")] == [f"{w}-{i}" for i in range(25)]
        assert got["status"] in {f"by-{w}" for w in range(4)}
        assert sorted(got["tags"]) == sorted(f"{w}-{i}" for w in range(4) for i in range(25))
