"""The background flusher: it stops with the last run and backs off from a failing store."""

from __future__ import annotations

import logging
import threading
import time

import pytest

import nbops
from nbops.tracking._flusher import Flusher, flusher


class FakeRun:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls = 0
        self.flushed = threading.Event()

    def flush(self) -> None:
        self.calls += 1
        self.flushed.set()
        if self.fail:
            raise OSError("disk full")

    def __repr__(self) -> str:
        return "<FakeRun>"


def _wait(predicate: object, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_the_thread_stops_with_the_last_run_and_restarts_with_the_next() -> None:
    f = Flusher(interval=10.0)  # a long interval: only the wake event can end the wait
    run = FakeRun()
    f.register(run)
    assert f.running
    f.unregister(run)
    f.join(timeout=30)
    assert not f.running  # woke up and left well before the 10 s interval
    again = FakeRun()
    f.register(again)
    assert f.running
    f.unregister(again)
    f.join(timeout=30)
    assert not f.running


def test_a_garbage_collected_run_lets_the_thread_stop() -> None:
    f = Flusher(interval=0.01)
    f.register(FakeRun())  # no reference kept: the weak set loses it
    assert _wait(lambda: not f.running)


def test_a_persistent_failure_warns_once_then_backs_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="nbops.tracking._flusher")
    f = Flusher(interval=0.01, max_backoff=0.16)
    bad, good = FakeRun(fail=True), FakeRun()
    f.register(bad)
    f.register(good)
    time.sleep(1.0)
    calls = bad.calls
    # 100 attempts without backoff; with it at most about 1.0 / 0.16 + 5 (and a loaded machine
    # only makes fewer attempts)
    assert 1 <= calls <= 15
    assert good.calls > calls  # the healthy run is flushed at the normal rate meanwhile
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "disk full" in warnings[0].getMessage()
    assert warnings[0].exc_info is not None
    bad.fail = False
    assert _wait(lambda: any("again" in r.getMessage() for r in caplog.records))
    recovered = bad.calls
    time.sleep(0.3)
    assert bad.calls > recovered + 3  # back to the normal rate
    f.unregister(bad)
    f.unregister(good)
    f.join(timeout=30)
    assert not f.running


def _flusher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "nbops-flusher"]


def test_the_process_flusher_stops_when_the_last_run_finishes() -> None:
    run = nbops.init()
    assert _flusher_threads()
    run.finish()
    assert _wait(lambda: not _flusher_threads())
    assert not flusher().running


def test_a_run_whose_store_keeps_failing_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    run = nbops.init()
    calls = []
    working = run.store.write_progress

    def broken(*args: object, **kwargs: object) -> None:
        calls.append(time.monotonic())
        raise OSError("database is locked")

    run.store.write_progress = broken  # type: ignore[method-assign]
    caplog.set_level(logging.WARNING, logger="nbops")
    run.log({"m": 1.0})
    assert _wait(lambda: len(calls) >= 3)  # 0.2 s, then 0.4 s, 0.8 s ... apart
    time.sleep(1.0)
    failures = [r for r in caplog.records if "could not" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in failures]
    assert len(calls) <= 6
    run.store.write_progress = working  # type: ignore[method-assign]
    run.finish()  # the buffered metric was kept and lands at finish
    assert [p.value for p in run.store.get_metrics(run.id)] == [1.0]


def test_rows_reach_the_mirror_once_even_when_the_store_write_is_retried(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbops.mirror import read_offline_run

    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    run = nbops.init(wandb="offline", capture=False)
    working = run.store.write_progress
    failures = []

    def flaky(*args: object, **kwargs: object) -> None:
        if len(failures) < 2:
            failures.append(1)
            raise OSError("database is locked")
        working(*args, **kwargs)  # type: ignore[arg-type]

    run.store.write_progress = flaky  # type: ignore[method-assign]
    for i in range(5):
        run.log({"m": float(i)})
    assert _wait(lambda: len(failures) >= 2)
    run.log({"m": 5.0})
    run.finish()
    assert [p.value for p in run.store.get_metrics(run.id)] == [float(i) for i in range(6)]
    assert run.mirror is not None and run.mirror.state.copy == "complete"
    copy = read_offline_run(run.mirror.state.run_dir or "")
    assert [row["m"] for row in copy.history] == [float(i) for i in range(6)]
    assert run.mirror.state.rows == 6  # no row was sent twice
