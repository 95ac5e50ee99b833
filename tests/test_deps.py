"""Optional dependencies: one helper names the extra to install; the core needs none of them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nbops.deps import OPTIONAL, available, require
from nbops.errors import MissingDependencyError, NbopsError
from tests.conftest import subprocess_env
from tests.test_packaging import _parse, _pyproject


def test_require_returns_the_module() -> None:
    import optuna

    assert require("optuna") is optuna
    assert require("skops.io").__name__ == "skops.io"


def test_a_missing_package_names_the_extra_to_install() -> None:
    with pytest.raises(MissingDependencyError) as caught:
        require("nbops_not_installed_xyz", extra="sweeps", feature="nbops.sweep")
    error = caught.value
    assert isinstance(error, NbopsError)
    assert isinstance(error, ImportError)  # old `except ImportError` code keeps working
    assert (error.module, error.package, error.extra) == (
        "nbops_not_installed_xyz",
        "nbops_not_installed_xyz",
        "sweeps",
    )
    assert 'pip install "nbops[sweeps]"' in str(error)
    assert "nbops.sweep needs it" in str(error)
    assert not available("nbops_not_installed_xyz")


def test_an_installed_package_that_fails_to_import_shows_its_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "nbops_broken_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("import nbops_missing_inner_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as caught:
        require("nbops_broken_pkg", extra="cards")
    assert not isinstance(caught.value, MissingDependencyError)
    assert caught.value.name == "nbops_missing_inner_module"


def test_an_unknown_module_without_an_extra_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="pass extra="):
        require("nbops_not_installed_xyz")


def test_the_extras_table_agrees_with_pyproject() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    for module, (package, extra) in OPTIONAL.items():
        names = {_parse(r)[0] for r in extras[extra]}
        assert package in names, f"{module}: {package} is not in the {extra!r} extra"
    listed = {package for package, _ in OPTIONAL.values()}
    for extra, requirements in extras.items():
        if extra in {"dev", "lab"}:
            continue
        for requirement in requirements:
            assert _parse(requirement)[0] in listed, f"{requirement} ({extra}) is not in OPTIONAL"


# A child process where every optional package is missing, as after `pip install nbops`.
_CORE_ONLY = """
import sys

BLOCKED = {blocked!r}

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Missing())

import nbops
from nbops.errors import MissingDependencyError

run = nbops.init(project="core")
run.log({{"loss": 0.5}})
import warnings
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # saved with pickle: not a scikit-learn model
    nbops.log_model({{"weights": [1, 2]}}, "model", allow_pickle=True)
run.finish()
assert nbops.get_run(run.id).id == run.id

from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "nbops")
shell.run_line_magic("nbops", "track --project core")
shell.run_line_magic("nbops", "stop")

def message(call):
    try:
        call()
    except MissingDependencyError as exc:
        return str(exc)
    raise AssertionError(f"{{call}} did not raise MissingDependencyError")

import pandas as pd

frame = pd.DataFrame({{"x": [1.0, 2.0, 3.0]}})
print(message(lambda: nbops.sweep(lambda t: 1.0, n_trials=1, direction="maximize", panel=False)))
print(message(lambda: nbops.load_sweep("s")))
print(message(lambda: nbops.drift(frame, frame)))
print(message(lambda: nbops.card("model:1").markdown))
print(message(lambda: nbops.SweepPanel))
with nbops.init(project="core"):
    print(message(lambda: nbops.log_dataset(frame, name="frame")))
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
print("loaded:", loaded)
"""


@pytest.mark.slow
def test_tracking_and_magics_work_without_any_extra() -> None:
    code = textwrap.dedent(_CORE_ONLY.format(blocked=sorted(OPTIONAL)))
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=subprocess_env(NBOPS_WANDB="disabled"),
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "loaded: []"
    sweeps, load, drift, card, panel, dataset = lines[-7:-1]
    assert sweeps == (
        "optuna is not installed (nbops.sweep needs it); "
        'install it with: pip install "nbops[sweeps]"'
    )
    assert 'pip install "nbops[sweeps]"' in load
    assert "scipy is not installed (nbops.drift needs it)" in drift
    assert 'pip install "nbops[monitor]"' in drift
    assert 'pip install "nbops[cards]"' in card
    assert "ipywidgets is not installed" in panel
    assert dataset == (
        "pyarrow is not installed (logging a DataFrame needs it); "
        'install it with: pip install "nbops[monitor]"'
    )
