"""``import nbops`` and ``%load_ext nbops`` pull in the standard library and nbops only."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import subprocess_env

_CHECK = """
import sys
before = set(sys.modules)
{statement}
stdlib = set(sys.stdlib_module_names)
new = set(sys.modules) - before
foreign = sorted(m for m in new if m.split(".")[0] not in stdlib and m.split(".")[0] != "nbops"
                 and not m.startswith("_"))
print(",".join(foreign))
"""


def _foreign_modules(statement: str, prelude: str = "") -> list[str]:
    code = prelude + _CHECK.format(statement=statement)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=True,
    ).stdout.strip()
    return [m for m in out.split(",") if m]


def test_import_nbops_is_standard_library_only() -> None:
    assert _foreign_modules("import nbops") == []


def test_load_ext_adds_nothing_heavy() -> None:
    prelude = (
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
    )
    foreign = _foreign_modules("shell.run_line_magic('load_ext', 'nbops')", prelude)
    heavy = {
        "wandb",
        "pandas",
        "papermill",
        "nbformat",
        "optuna",
        "ipywidgets",
        "numpy",
        "sklearn",
        "jinja2",
    }
    assert not [m for m in foreign if m.split(".")[0] in heavy]
