"""``notebooks/sweep_panel.ipynb`` in a real JupyterLab: the panel updates live and Stop stops."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import nbops
from tests.browser import _lab

pytestmark = pytest.mark.browser

N_TRIALS = 30  # as in the notebook
_PROGRESS = """() => {
    const bar = document.querySelector('.widget-hprogress .progress-bar');
    return bar ? parseFloat(bar.style.width) : null;
}"""
_PROGRESS_ABOVE = """(previous) => {
    const bar = document.querySelector('.widget-hprogress .progress-bar');
    return bar !== null && parseFloat(bar.style.width) > previous;
}"""


def _progress(page: Any) -> float:
    value = page.evaluate(_PROGRESS)
    assert value is not None, "no progress bar (.widget-hprogress) in the page"
    return float(value)


def test_sweep_panel_updates_live_and_stop_stops_the_sweep(
    lab_server: Any, lab_page: Any, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = lab_page
    _lab.open_notebook(page, lab_server, "sweep_panel.ipynb")
    _lab.run_all(page)
    _lab.wait_all_executed(page)  # panel=True: the sweep cell returns at once

    panel = page.locator(".jp-OutputArea-output", has=page.locator(".widget-hprogress")).first
    panel.wait_for(timeout=30_000)
    header = page.locator(".nbops-sweep-header").first
    first = _progress(page)
    page.wait_for_function(_PROGRESS_ABOVE, arg=first, timeout=30_000, polling=100)
    second = _progress(page)
    assert 0 <= first < second < 100, (first, second)
    header.filter(has_text=re.compile(r"best \S+ -?\d")).wait_for(timeout=30_000)
    name = header.locator("b").first.inner_text().strip()
    status = header.inner_text()
    assert " running: " in status, f"the sweep ended before Stop could be pressed: {status}"
    panel.screenshot(path=str(artifacts / "sweep_panel_running.png"))

    page.locator("button.widget-button", has_text=re.compile(r"^\s*Stop\s*$")).click()
    page.locator("button.widget-button", has_text="Stopped").wait_for(timeout=30_000)
    status = header.inner_text()
    assert " stopped: " in status, status
    done = int(re.search(r"(\d+)/30 trials", status).group(1))  # type: ignore[union-attr]
    assert "Loading widget" not in _lab.notebook_text(page)
    assert _lab.error_outputs(page) == []
    panel.screenshot(path=str(artifacts / "sweep_panel_stopped.png"))
    _lab.screenshot(page, artifacts / "sweep_panel_page.png")

    # The Optuna storage and the run store say the same as the page.
    from optuna.trial import TrialState

    monkeypatch.setenv("NBOPS_HOME", str(lab_server.store))
    sweep = nbops.load_sweep(name)
    states = [trial.state for trial in sweep.trials()]
    assert TrialState.RUNNING not in states, states
    ended = [s for s in states if s in (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)]
    assert TrialState.COMPLETE in states
    assert 2 <= len(ended) < N_TRIALS, states
    assert done <= len(ended)
    # Stop is recorded in the study, for workers elsewhere and for whoever loads the sweep
    assert sweep.study.user_attrs.get("nbops.stop") is not None
    assert sweep.stopped
    runs = nbops.runs("sweep-panel", store=str(lab_server.store))
    assert len(runs) >= len(ended)
    assert "running" not in set(runs["status"]), runs[["name", "status"]]


BLOCKING = [
    "import time\n\nimport nbops\n\n\ndef objective(trial):\n"
    "    x = trial.suggest_float('x', -5.0, 5.0)\n    time.sleep(0.4)\n    return -abs(x)",
    # the default panel=None: the cell blocks, the panel is shown, its Stop must still work
    "sweep = nbops.sweep(objective, n_trials=60, direction='maximize', "
    "project='sweep-blocking', study_name='blocking-stop')",
    "print(f'after the sweep: stopped={sweep.stopped} done={sweep.done}')",
]


def _notebook(path: Path, sources: list[str]) -> None:
    import json

    cells = [
        {
            "cell_type": "code",
            "id": f"c{i}",
            "source": source,
            "outputs": [],
            "execution_count": None,
            "metadata": {},
        }
        for i, source in enumerate(sources)
    ]
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    path.write_text(
        json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": meta, "cells": cells})
    )


def test_stop_works_while_the_sweep_blocks_the_cell(
    lab_server: Any, lab_page: Any, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = lab_page
    _notebook(lab_server.root / "sweep_blocking.ipynb", BLOCKING)
    _lab.open_notebook(page, lab_server, "sweep_blocking.ipynb")
    _lab.run_all(page)
    header = page.locator(".nbops-sweep-header").first
    header.filter(has_text=re.compile(r"best \S+ -?\d")).wait_for(timeout=60_000)
    assert " running: " in header.inner_text()
    page.locator("button.widget-button", has_text=re.compile(r"^\s*Stop\s*$")).click()
    page.get_by_text("after the sweep: stopped=True done=True").wait_for(timeout=60_000)
    _lab.wait_all_executed(page)
    header.filter(has_text=" stopped: ").wait_for(timeout=30_000)
    status = header.inner_text()
    done = int(re.search(r"(\d+)/60 trials", status).group(1))  # type: ignore[union-attr]
    assert done < 60
    assert _lab.error_outputs(page) == []
    panel = page.locator(".jp-OutputArea-output", has=page.locator(".widget-hprogress")).first
    panel.screenshot(path=str(artifacts / "sweep_panel_blocking_stopped.png"))

    from optuna.trial import TrialState

    monkeypatch.setenv("NBOPS_HOME", str(lab_server.store))
    states = [t.state for t in nbops.load_sweep("blocking-stop").trials()]
    assert TrialState.RUNNING not in states and len(states) < 60, states
    assert TrialState.FAIL not in states  # Stop let the running trial finish
