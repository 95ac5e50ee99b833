"""The one line ``nbops runs show`` prints about a run's W&B copy."""

from __future__ import annotations

from nbops.mirror import MirrorState, describe_copy


def test_complete_partial_and_not_mirrored_say_why() -> None:
    complete = MirrorState(mode="offline", status="finished", copy="complete", rows=5, total=5)
    assert describe_copy(complete.to_dict(), 5).startswith("W&B copy: complete, 5 rows, offline")
    partial = MirrorState(
        mode="offline",
        status="running",
        copy="partial",
        rows=5600,
        total=10000,
        reason="the process ended before the mirror drained",
        run_dir="/w/wandb/offline-run-x",
    )
    line = describe_copy(partial.to_dict(), 10000)
    assert "5600 of 10000 rows" in line
    assert "the process ended before the mirror drained" in line
    assert "nbops sync --offline" in line
    failed = MirrorState(
        mode="offline", status="failed", copy="not mirrored", reason="wandb cannot be imported"
    )
    assert describe_copy(failed.to_dict()) == "W&B copy: not mirrored (wandb cannot be imported)"
    assert "not mirrored" in describe_copy(None)


def test_state_written_before_copies_were_tracked_still_reads() -> None:
    old = {"mode": "offline", "status": "finished", "error": None, "run_dir": "/x", "url": None}
    assert MirrorState.from_dict(old).copy == "complete"
    assert MirrorState.from_dict({**old, "status": "failed"}).copy == "partial"


def test_a_live_mirror_is_described_as_in_progress() -> None:
    starting = MirrorState(mode="online", status="starting")
    assert describe_copy(starting.to_dict(), 0, live=True) == "W&B copy: starting, online"
    draining = MirrorState(mode="offline", status="running", rows=40, total=100, run_dir="/w/r")
    line = describe_copy(draining.to_dict(), 100, live=True)
    assert line == "W&B copy: 40 of 100 rows so far, offline /w/r"
    fallen = MirrorState(
        mode="offline", status="running", rows=3, total=3, reason="the server answered HTTP 500"
    )
    assert "(the server answered HTTP 500)" in describe_copy(fallen.to_dict(), 3, live=True)
    # the same state once the run has ended is a partial copy to complete
    assert "complete it with `nbops sync --offline`" in describe_copy(draining.to_dict(), 100)
