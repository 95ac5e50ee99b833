"""nbops: Jupyter-first experiment tracking, sweeps and notebook pipelines.

``import nbops`` loads only the standard library; everything else loads on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nbops._version import __version__
from nbops.errors import NbopsError

if TYPE_CHECKING:
    from nbops.cards import ModelCard as ModelCard
    from nbops.cards import card as card
    from nbops.data import log_dataset as log_dataset
    from nbops.monitor import DriftReport as DriftReport
    from nbops.monitor import drift as drift
    from nbops.monitor import model_drift as model_drift
    from nbops.registry import load_model as load_model
    from nbops.registry import log_model as log_model
    from nbops.registry import predict as predict
    from nbops.serve import predictions as predictions
    from nbops.serve import serve as serve
    from nbops.sweeps import Sweep as Sweep
    from nbops.sweeps import SweepConfig as SweepConfig
    from nbops.sweeps import SweepPanel as SweepPanel
    from nbops.sweeps import load_sweep as load_sweep
    from nbops.sweeps import report as report
    from nbops.sweeps import sweep as sweep
    from nbops.tracking import Histogram as Histogram
    from nbops.tracking import Image as Image
    from nbops.tracking import (
        Run as Run,
    )
    from nbops.tracking import RunsPanel as RunsPanel
    from nbops.tracking import (
        StoredRun as StoredRun,
    )
    from nbops.tracking import Table as Table
    from nbops.tracking import (
        active_run as active_run,
    )
    from nbops.tracking import (
        autolog as autolog,
    )
    from nbops.tracking import (
        compare as compare,
    )
    from nbops.tracking import (
        finish as finish,
    )
    from nbops.tracking import (
        get_run as get_run,
    )
    from nbops.tracking import (
        init as init,
    )
    from nbops.tracking import (
        log as log,
    )
    from nbops.tracking import (
        log_artifact as log_artifact,
    )
    from nbops.tracking import (
        log_params as log_params,
    )
    from nbops.tracking import (
        runs as runs,
    )

_LAZY = {
    "ModelCard": "nbops.cards",
    "card": "nbops.cards",
    "load_model": "nbops.registry",
    "log_dataset": "nbops.data",
    "log_model": "nbops.registry",
    "predict": "nbops.registry",
    "DriftReport": "nbops.monitor",
    "drift": "nbops.monitor",
    "model_drift": "nbops.monitor",
    "Run": "nbops.tracking",
    "RunsPanel": "nbops.tracking",
    "StoredRun": "nbops.tracking",
    "active_run": "nbops.tracking",
    "autolog": "nbops.tracking",
    "compare": "nbops.tracking",
    "finish": "nbops.tracking",
    "Histogram": "nbops.tracking",
    "Image": "nbops.tracking",
    "Table": "nbops.tracking",
    "get_run": "nbops.tracking",
    "init": "nbops.tracking",
    "log": "nbops.tracking",
    "log_artifact": "nbops.tracking",
    "log_params": "nbops.tracking",
    "runs": "nbops.tracking",
    "predictions": "nbops.serve",
    "serve": "nbops.serve",
    "Sweep": "nbops.sweeps",
    "SweepConfig": "nbops.sweeps",
    "SweepPanel": "nbops.sweeps",
    "load_sweep": "nbops.sweeps",
    "report": "nbops.sweeps",
    "sweep": "nbops.sweeps",
}

__all__ = [
    "NbopsError",
    "__version__",
    "load_ipython_extension",
    "unload_ipython_extension",
    *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbops' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbops``: register the ``%nbops`` magic and the cell recorder."""
    from nbops.notebook import load_extension

    load_extension(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext nbops``: unregister everything ``load_ipython_extension`` registered."""
    from nbops.notebook import unload_extension

    unload_extension(ipython)
