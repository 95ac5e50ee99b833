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


@pytest.mark.kernel
def test_downstream_single_and_status_exit_code(cli: Any, chain: Callable[[], Path]) -> None:
    from tests.pipeline.conftest import executions

    root = chain()
    assert cli("status", "--exit-code").exit_code == 1
    assert cli("run").exit_code == 0
    clean = cli("status", "--exit-code")
    assert clean.exit_code == 0 and "Everything is up to date" in clean.output
    before = executions(root)
    single = cli("run", "--single", "double")
    assert single.exit_code == 0, single.stderr
    assert "double         ran" in single.output and "make" not in single.output
    assert executions(root) == {**before, "double": before["double"] + 1}
    down = cli("run", "--downstream", "double", "--force")
    assert down.exit_code == 0, down.stderr
    ran = {
        line.split("] ", 1)[1].split()[0] for line in down.output.splitlines() if " ran " in line
    }
    assert ran == {"double", "report"}
    assert "make" not in down.output and "side" not in down.output
    assert "need the stage" in cli("run", "--single").stderr


def test_output_into_a_closed_pipe_is_not_a_traceback(isolated_env: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import subprocess_env
    from tests.pipeline.conftest import write_notebook, write_spec

    root = isolated_env
    write_notebook(root / "n.ipynb", None, "pass")
    # more output than a pipe holds, so writing goes on after `head` has gone
    write_spec(root, {"stages": {f"stage{i:04d}": {"notebook": "n.ipynb"} for i in range(2000)}})
    for command in ("status", "dag"):
        done = subprocess.run(
            f"{sys.executable} -m nbops {command} | head -c 1",
            shell=True,
            cwd=root,
            capture_output=True,
            text=True,
            env=subprocess_env(),
            timeout=120,
        )
        assert "BrokenPipeError" not in done.stderr and "Traceback" not in done.stderr, done.stderr
