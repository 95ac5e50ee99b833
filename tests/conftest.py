"""Shared fixtures: a private store and W&B directories per test, an IPython shell, the CLI."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test gets its own store, W&B folders and no API key; the mirror is off by default."""
    home = tmp_path / "project"
    home.mkdir()
    (home / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    monkeypatch.chdir(home)
    monkeypatch.setenv("NBOPS_HOME", str(home / ".nbops"))
    monkeypatch.setenv("NBOPS_WANDB", "disabled")
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    for var in ("WANDB_API_KEY", "WANDB_MODE", "NBOPS_NOTEBOOK_PATH", "NBOPS_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    yield home
    from nbops.tracking import _active

    for run in list(_active._live):
        run.finish()
    from nbops import store

    for opened in store._open.values():
        opened.close()
    store._open.clear()


@pytest.fixture
def ipython() -> Iterator[Any]:
    """A fresh IPython shell; the nbops extension is unloaded and forgotten afterwards."""
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()
    yield shell
    import nbops.notebook as nb

    nb.unload_extension(shell)
    nb._sessions.pop(id(shell), None)
    InteractiveShell.clear_instance()


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.exit_code, self.output, self.stderr = code, out, err


@pytest.fixture
def cli() -> Any:
    """Run ``nbops`` in-process: ``cli("runs", "list")`` returns exit code and output."""
    from nbops.cli import main

    def invoke(*argv: str) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as exc:  # argparse usage errors
                code = int(exc.code or 0)
        return CliResult(code, out.getvalue(), err.getvalue())

    return invoke


def subprocess_env(**extra: str) -> dict[str, str]:
    """The test's environment for a child process, with the repository importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env
