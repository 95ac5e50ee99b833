"""``nbops run | status | dag | init`` through the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO


@pytest.mark.kernel
def test_init_then_run_then_status(cli: Any, isolated_env: Path) -> None:
    result = cli("init", "--ci", "both")
    assert result.exit_code == 0, result.stderr
    for path in (
        "nbops.yaml",
        "notebooks/analysis.ipynb",
        ".github/workflows/nbops.yml",
        ".gitlab-ci.yml",
    ):
        assert (isolated_env / path).is_file(), path
    again = cli("init")
    assert again.exit_code == 1 and "refusing to overwrite" in again.stderr

    status = json.loads(cli("status", "--json").output)
    assert status == [
        {"stage": "analysis", "stale": True, "reasons": ["never ran (no entry in nbops.lock)"]}
    ]
    ran = cli("run")
    assert ran.exit_code == 0, ran.stderr
    assert "analysis       ran" in ran.output and "1 ran" in ran.output
    assert (isolated_env / "results" / "summary.json").is_file()
    assert "Everything is up to date" in cli("status").output
    dry = cli("run", "--dry-run", "-p", "analysis.n_samples=50")
    assert "would run (param n_samples changed: 200 -> 50)" in dry.output


def test_status_explains_staleness(cli: Any, chain: Callable[[], Path]) -> None:
    chain()
    out = cli("status").output
    assert "make           stale" in out
    assert "- upstream stage 'make' will re-run" in out
    assert "4 of 4 stage(s) stale" in out


def test_dag_formats(cli: Any, chain: Callable[[], Path]) -> None:
    chain()
    assert "double (nb/double.ipynb)  <- make" in cli("dag").output
    assert "make --> double" in cli("dag", "--format", "mermaid").output
    assert '"double" -> "report";' in cli("dag", "--format", "dot").output


def test_bad_input_exits_non_zero_with_the_fix(cli: Any, chain: Callable[[], Path]) -> None:
    chain()
    bad = cli("run", "-p", "double.time=3")
    assert bad.exit_code == 1
    assert "did you mean 'times'" in bad.stderr and bad.stderr.startswith("Error: ")
    assert "no stage named nope" in cli("run", "nope").stderr
    assert "STAGE.KEY=VALUE" in cli("run", "-p", "oops").stderr


def test_templates_shipped_match_the_repository_copies() -> None:
    for name in ("github-actions.yml", "gitlab-ci.yml"):
        packaged = REPO / "nbops" / "pipeline" / "templates" / name
        assert packaged.read_text() == (REPO / "templates" / name).read_text(), name
