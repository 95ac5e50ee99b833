"""Optional dependencies: import one, or say which nbops extra installs it.

Every import of a package that is not a core dependency goes through :func:`require`, as
papermill's ``missing_dependency_generator`` and Optuna's ``try_import`` do::

    optuna = require("optuna")                       # or: require("optuna"); import optuna
    sio = require("skops.io", feature="saving a scikit-learn model")

A missing package raises :class:`~nbops.errors.MissingDependencyError` (an ``ImportError``)
saying ``pip install "nbops[sweeps]"``. A package that is installed but fails to import raises
its own error unchanged: hiding it behind "not installed" would send the user the wrong way.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from nbops.errors import MissingDependencyError

#: Top-level module -> (distribution to install, extra that brings it). Mirrors pyproject.toml;
#: ``tests/test_deps.py`` checks the two agree.
OPTIONAL: dict[str, tuple[str, str]] = {
    "optuna": ("optuna", "sweeps"),
    "ipywidgets": ("ipywidgets", "sweeps"),
    "cloudpickle": ("cloudpickle", "sweeps"),
    "jupyter_ui_poll": ("jupyter-ui-poll", "sweeps"),
    "psycopg2": ("psycopg2-binary", "postgres"),
    "jinja2": ("jinja2", "cards"),
    "mistune": ("mistune", "cards"),
    "skops": ("skops", "cards"),
    "sklearn": ("scikit-learn", "cards"),
    "scipy": ("scipy", "monitor"),
    "pyarrow": ("pyarrow", "monitor"),
    "matplotlib": ("matplotlib", "demo"),
    "paramiko": ("paramiko", "remote"),
    "fsspec": ("fsspec", "remote"),
    "dask": ("dask", "dask"),
    "distributed": ("dask", "dask"),
    "starlette": ("starlette", "serve"),
    "uvicorn": ("uvicorn", "serve"),
    "prometheus_client": ("prometheus-client", "serve"),
    "orjson": ("orjson", "serve"),
    "uvloop": ("uvloop", "serve"),
    "httptools": ("httptools", "serve"),
}


def require(module: str, *, extra: str | None = None, feature: str | None = None) -> ModuleType:
    """Import ``module`` (``"optuna"``, ``"skops.io"``) and return it.

    Args:
        module: The module to import.
        extra: The nbops extra that installs it; by default looked up in :data:`OPTIONAL`.
        feature: What needs it, for the message (``"nbops.drift"``); by default the extra.

    Raises:
        MissingDependencyError: The module's package is not installed.
        ValueError: ``module`` is not a known optional dependency and no ``extra`` is given.
    """
    top = module.partition(".")[0]
    package, default_extra = OPTIONAL.get(top, (top, ""))
    extra = extra or default_extra
    if not extra:
        raise ValueError(f"{top!r} is not an optional dependency of nbops; pass extra=")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if _installed(top):
            raise  # installed, but something it imports is missing: show the real cause
        raise MissingDependencyError(top, package, extra, feature) from exc


def _installed(top: str) -> bool:
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):  # a finder refused it, or a half-imported module
        return False


def available(module: str) -> bool:
    """True when ``module`` can be imported (it is imported to find out)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
