from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

import nbops
from nbops.notebook._magics import NbopsMagics


def run(shell: Any, source: str, cell_id: str | None = None) -> Any:
    return shell.run_cell(source, store_history=True, cell_id=cell_id)


def runs_in_store() -> list[Any]:
    from nbops.store import open_store

    return open_store().list_runs()


def test_track_starts_then_reattaches_on_rerun(
    ipython: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run(ipython, "%load_ext nbops")
    cell = "%nbops track --project demo --name first --tag a --tag b"
    run(ipython, cell)
    first = nbops.active_run()
    assert first is not None and first.project == "demo" and first.tags == ("a", "b")
    assert "Tracking run" in capsys.readouterr().out
    run(ipython, cell)
    out = capsys.readouterr().out
    assert "Re-attached" in out and "options ignored" in out
    assert nbops.active_run() is first
    assert len(runs_in_store()) == 1 and runs_in_store()[0].status == "running"


def test_track_new_finishes_the_current_run(ipython: Any) -> None:
    run(ipython, "%load_ext nbops")
    run(ipython, "%nbops track")
    first = nbops.active_run()
    run(ipython, "%nbops track --new --name second")
    second = nbops.active_run()
    assert first is not None and second is not None and first.id != second.id
    statuses = {r.name: r.status for r in runs_in_store()}
    assert statuses == {first.name: "finished", "second": "running"}


def test_log_variables_by_name(ipython: Any) -> None:
    run(ipython, "%load_ext nbops")
    run(ipython, "%nbops track")
    run(ipython, "acc = 0.93\nn = 4\nkind = 'forest'\nflags = [1, 2]")
    result = run(ipython, "%nbops log acc n kind flags --step 7")
    assert result.success
    current = nbops.active_run()
    assert current is not None
    current.flush()
    stored = nbops.get_run(current.id)
    assert stored.params == {"kind": "forest", "flags": [1, 2]}
    assert [(p.key, p.step, p.value) for p in current.store.get_metrics(current.id)] == [
        ("acc", 7, 0.93),
        ("n", 7, 4.0),
    ]


def test_bad_arguments_are_one_line_usage_errors(
    ipython: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run(ipython, "%load_ext nbops")
    for line in (
        "%nbops",
        "%nbops bogus",
        "%nbops track --wandb nope",
        "%nbops log",
        "%nbops log missing_var",
        "%nbops track --unknown",
    ):
        if "log" in line:
            run(ipython, "%nbops track")
        result = run(ipython, line)
        assert isinstance(result.error_in_exec, UsageError), line
        captured = capsys.readouterr()
        assert "Traceback" not in captured.out + captured.err, line
    result = run(ipython, "%nbops log missing_var")
    assert "no variable named missing_var" in str(result.error_in_exec)


def test_log_without_a_run_says_how_to_start_one(ipython: Any) -> None:
    run(ipython, "%load_ext nbops")
    result = run(ipython, "%nbops log x")
    assert "%nbops track" in str(result.error_in_exec)


def test_exception_in_a_cell_is_recorded_and_the_run_goes_on(ipython: Any) -> None:
    run(ipython, "%load_ext nbops")
    run(ipython, "%nbops track")
    current = nbops.active_run()
    result = run(ipython, "1 / 0")
    assert not result.success
    assert current is not None and not current.finished
    run(ipython, "%nbops stop")
    cells = nbops.get_run(current.id).metadata["cells"]
    failed = [c for c in cells if c["ok"] is False]
    assert len(failed) == 1 and failed[0]["error"].startswith("ZeroDivisionError")
    assert nbops.get_run(current.id).status == "finished"


def test_stop_and_status(ipython: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run(ipython, "%load_ext nbops")
    run(ipython, "%nbops status")
    assert "no active run" in capsys.readouterr().out
    run(ipython, "%nbops track")
    current = nbops.active_run()
    assert current is not None
    current.wait_background()  # the capture is done (see the capture-in-progress test)
    run(ipython, "%nbops status")
    out = capsys.readouterr().out
    assert "Cell provenance" in out and "notebook: not found" in out
    run(ipython, "%nbops stop --status failed")
    out = capsys.readouterr().out
    assert "finished run" in out
    assert runs_in_store()[0].status == "failed"
    run(ipython, "%nbops stop")
    assert "no active run" in capsys.readouterr().out


def test_status_states_the_w_and_b_copy(
    ipython: Any,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-runs"))
    run(ipython, "%load_ext nbops")
    run(ipython, "%nbops track --wandb disabled")
    current = nbops.active_run()
    assert current is not None
    current.wait_background()
    run(ipython, "%nbops status")
    assert "W&B copy: not mirrored (the W&B mirror is disabled" in capsys.readouterr().out
    run(ipython, "%nbops track --new --wandb offline")
    current = nbops.active_run()
    assert current is not None and current.mirror is not None
    current.wait_background()
    for i in range(5):
        current.log({"x": float(i)})
    current.flush()
    deadline = time.monotonic() + 60
    while current.mirror.state.rows < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    run(ipython, "%nbops status")
    out = capsys.readouterr().out
    assert "W&B copy: 5 of 5 rows so far, offline " in out, out
    run(ipython, "%nbops stop")
    capsys.readouterr()
    assert current.mirror.state.copy == "complete"


def test_reload_ext_does_not_double_register(ipython: Any) -> None:
    def handlers() -> int:
        return sum(
            1
            for cb in ipython.events.callbacks["post_run_cell"]
            if getattr(cb, "__self__", None).__class__.__name__ == "CellRecorder"
        )

    run(ipython, "%load_ext nbops")
    run(ipython, "%load_ext nbops")
    assert handlers() == 1
    run(ipython, "%reload_ext nbops")
    assert handlers() == 1
    run(ipython, "%unload_ext nbops")
    assert handlers() == 0


def test_help_documents_every_option() -> None:
    doc = NbopsMagics.nbops.__doc__ or ""
    for option in (
        "--project",
        "--name",
        "--tag",
        "--wandb",
        "--new",
        "--step",
        "--status",
        "track",
        "log",
        "status",
        "stop",
    ):
        assert option in doc


def _notebook(path: Path, cells: list[tuple[str, str]]) -> None:
    path.write_text(
        json.dumps(
            {
                "nbformat": 4,
                "nbformat_minor": 5,
                "metadata": {},
                "cells": [
                    {
                        "cell_type": "code",
                        "id": cid,
                        "source": src,
                        "metadata": {},
                        "outputs": [],
                        "execution_count": None,
                    }
                    for cid, src in cells
                ],
            }
        )
    )


def test_provenance_flags_out_of_order_edits_and_unexecuted(
    ipython: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = tmp_path / "analysis.ipynb"
    cells = [
        ("c1", "%load_ext nbops"),
        ("c2", "%nbops track"),
        ("c3", "x = 1"),
        ("c4", "y = x + 1"),
        ("c5", "z = y * 2"),
        ("c6", "w = y * 3"),
        ("c7", "v = w"),
    ]
    _notebook(nb, cells)
    monkeypatch.setenv("NBOPS_NOTEBOOK_PATH", str(nb))
    run(ipython, "%load_ext nbops", "c1")
    run(ipython, "%nbops track", "c2")
    run(ipython, "x = 1", "c3")
    run(ipython, "y = x + 1", "c4")
    run(ipython, "w = y * 3", "c6")  # c5 skipped
    run(ipython, "x = 5", "c3")  # c3 edited in the kernel, re-run after c6, never saved
    current = nbops.active_run()
    assert current is not None
    report = ipython.magics_manager.registry["NbopsMagics"].session.stop()
    assert report is not None and not report.reproducible
    assert any("cell 3" in item and "after cell 6" in item for item in report.out_of_order)
    assert report.edited_after_run == ("cell 3 (In [6])",)
    assert report.not_executed == ("cell 5",)
    assert report.not_reached == ("cell 7",)  # after the furthest cell run: neutral
    stored = nbops.get_run(current.id).metadata["provenance"]
    assert stored["reproducible"] is False and stored["not_executed"] == ["cell 5"]


def test_provenance_clean_top_to_bottom(
    ipython: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = tmp_path / "clean.ipynb"
    cells = [("c1", "%load_ext nbops"), ("c2", "%nbops track"), ("c3", "x = 1")]
    _notebook(nb, cells)
    monkeypatch.setenv("NBOPS_NOTEBOOK_PATH", str(nb))
    for cid, src in cells:
        run(ipython, src, cid)
    report = ipython.magics_manager.registry["NbopsMagics"].session.stop()
    assert report is not None and report.reproducible, str(report)


def test_arguments_are_split_like_a_shell(ipython: Any) -> None:
    run(ipython, "%load_ext nbops")
    result = run(ipython, """%nbops track --name "my first run" --tag 'two words'""")
    assert result.success
    current = nbops.active_run()
    assert current is not None
    assert current.name == "my first run" and current.tags == ("two words",)
    result = run(ipython, '%nbops track --new --name "unclosed')
    assert isinstance(result.error_in_exec, UsageError)
    assert "close the quote" in str(result.error_in_exec)


def test_an_empty_project_name_is_refused(ipython: Any) -> None:
    run(ipython, "%load_ext nbops")
    for line in ('%nbops track --project ""', "%nbops track --project '  '"):
        result = run(ipython, line)
        assert isinstance(result.error_in_exec, UsageError), line
        assert "invalid project name" in str(result.error_in_exec)
    assert runs_in_store() == []
    run(ipython, "%nbops track")
    result = run(ipython, '%nbops track --project ""')  # refused, not silently re-attached
    assert isinstance(result.error_in_exec, UsageError)


def test_new_keeps_the_options_of_the_run_it_replaces(ipython: Any) -> None:
    run(ipython, "%load_ext nbops")
    run(ipython, "%nbops track --project exp --tag a --group g --job-type train --name one")
    run(ipython, "%nbops track --new --name two")
    second = nbops.active_run()
    assert second is not None and second.name == "two"
    assert (second.project, second.tags, second.group, second.job_type) == (
        "exp",
        ("a",),
        "g",
        "train",
    )
    run(ipython, "%nbops track --new --project other --tag b")
    third = nbops.active_run()
    assert third is not None
    assert (third.project, third.tags, third.group) == ("other", ("b",), "g")


def test_magics_act_on_the_run_started_by_init(
    ipython: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run(ipython, "%load_ext nbops")
    run(ipython, "import nbops\nr = nbops.init(project='api', name='from-init')\nacc = 0.5")
    started = nbops.active_run()
    assert started is not None and started.name == "from-init"
    capsys.readouterr()
    run(ipython, "%nbops status")
    assert f"run {started.id} (from-init)" in capsys.readouterr().out
    assert run(ipython, "%nbops log acc").success
    run(ipython, "%nbops stop")
    assert f"finished run {started.id}" in capsys.readouterr().out
    stored = nbops.get_run(started.id)
    assert stored.status == "finished" and stored.summary["acc"] == 0.5
    assert "provenance" in stored.metadata and stored.metadata["cells"]


def test_log_keeps_dataframes_and_arrays_whole(ipython: Any) -> None:
    import numpy as np
    import pandas as pd

    run(ipython, "%load_ext nbops")
    run(ipython, "%nbops track")
    frame = pd.DataFrame({"a": range(1000), "b": [f"row {i}" for i in range(1000)]})
    ipython.user_ns.update(frame=frame, weights=np.arange(12.0).reshape(3, 4), lr=0.1)
    assert run(ipython, "%nbops log frame weights lr").success
    current = nbops.active_run()
    assert current is not None
    current.finish()
    stored = nbops.get_run(current.id)
    assert stored.params == {} and stored.summary["lr"] == 0.1
    table, array = stored.artifacts["frame"], stored.artifacts["weights"]
    assert (table.type, array.type) == ("table", "array")
    back = pd.read_csv(table.restore(Path("frame.csv")), index_col=0)
    assert back.equals(frame)
    assert np.array_equal(np.load(array.restore(Path("w.npy"))), np.arange(12.0).reshape(3, 4))
    # shown in W&B as a wandb.Table at the step last logged (no step yet: 0)
    assert [(step, a.record.metadata["media"]) for step, a in stored.media("frame")] == [
        (0, "table")
    ]


def test_status_right_after_track_says_the_capture_is_in_progress(
    ipython: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import nbops.capture

    release = threading.Event()
    slow = nbops.capture.installed_packages

    def installed_packages() -> Any:
        release.wait(30)
        return slow()

    monkeypatch.setattr(nbops.capture, "installed_packages", installed_packages)
    run(ipython, "%load_ext nbops")
    run(ipython, "%nbops track")
    capsys.readouterr()
    run(ipython, "%nbops status")
    out = capsys.readouterr().out
    release.set()
    assert "notebook: capture in progress" in out and "not found" not in out
    assert "still being captured" in out


def test_unload_removes_every_hook_and_the_magic(ipython: Any) -> None:
    from nbops.tracking import _active

    def callbacks() -> dict[str, list[Any]]:
        return {event: list(cbs) for event, cbs in ipython.events.callbacks.items()}

    before = callbacks()
    run(ipython, "%load_ext nbops")
    run(ipython, "%nbops track")
    assert callbacks() != before
    run(ipython, "%unload_ext nbops")
    assert callbacks() == before
    assert _active._listeners == []
    assert "nbops" not in ipython.magics_manager.magics["line"]
    run(ipython, "%load_ext nbops")  # loads again cleanly
    assert run(ipython, "%nbops status").success


def test_active_run_is_a_plain_getter(monkeypatch: pytest.MonkeyPatch) -> None:
    owner = nbops.init(project="owner", activate=False)
    monkeypatch.setenv("NBOPS_RUN_ID", owner.id)
    assert nbops.active_run() is None  # reading it attaches nothing
    from nbops.tracking import attach_from_environment

    attached = attach_from_environment()
    assert attached is not None and attached.id == owner.id and not attached.owner
    assert nbops.active_run() is attached
    assert attach_from_environment() is attached  # idempotent
    attached.finish()
    owner.finish()


def test_a_failed_attach_is_named_by_the_no_active_run_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A kernel whose run could not be attached says why, not only "no active run"."""
    from nbops.errors import NoActiveRunError, RunNotFoundError
    from nbops.tracking import attach_from_environment

    monkeypatch.setenv("NBOPS_RUN_ID", "nosuchrun000")
    with pytest.raises(RunNotFoundError):
        attach_from_environment()
    with pytest.raises(NoActiveRunError, match=r"attaching to run nosuchrun000 of .* failed"):
        nbops.log({"x": 1.0})
    owner = nbops.init(project="owner", activate=False)
    monkeypatch.setenv("NBOPS_RUN_ID", owner.id)
    attached = attach_from_environment()
    assert attached is not None
    attached.finish()
    with pytest.raises(NoActiveRunError, match=r"start one with nbops\.init"):
        nbops.log({"x": 1.0})  # a later success forgets the failure
    owner.finish()


def test_an_executed_kernel_attaches_before_its_first_cell(
    ipython: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = nbops.init(project="owner", activate=False)
    monkeypatch.setenv("NBOPS_RUN_ID", owner.id)
    before = {event: list(cbs) for event, cbs in ipython.events.callbacks.items()}
    run(ipython, "%load_ext nbops")
    run(ipython, "import nbops\nnbops.log({'m': 1.0})")
    attached = nbops.active_run()
    assert attached is not None and attached.id == owner.id
    # flushed after the cell: the owner reads it without waiting for the flusher
    assert [p.value for p in owner.store.get_metrics(owner.id)] == [1.0]
    pre = [cb.__name__ for cb in ipython.events.callbacks["pre_run_cell"]]
    assert "_attach_before_first_cell" not in pre  # attaching is done once
    run(ipython, "%unload_ext nbops")
    assert {event: list(cbs) for event, cbs in ipython.events.callbacks.items()} == before
    attached.finish()
    owner.finish()


def test_a_run_started_before_loading_the_extension_gets_provenance(ipython: Any) -> None:
    started = nbops.init(project="early")
    run(ipython, "x = 1")
    run(ipython, "%load_ext nbops")
    run(ipython, "%nbops stop")
    stored = nbops.get_run(started.id)
    assert stored.status == "finished" and "provenance" in stored.metadata
    assert [c["n"] for c in stored.metadata["cells"]][:2] == [1, 2]  # backfilled from history
