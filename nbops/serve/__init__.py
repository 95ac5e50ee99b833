"""Serving registered models over the Open Inference Protocol (KServe V2) REST API.

``nbops.serve("digits@production")`` starts a server process and returns a handle with ``.url``
and ``.stop()``; ``nbops serve`` does the same in the foreground. Traffic can be split between
aliases or versions, mirrored to a shadow, and rolled back (``nbops rollout``); predictions are
logged to Parquet and read back with :func:`predictions`.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

from nbops.serve._config import ModelSpec, ServeConfig, check_models, model_specs
from nbops.serve._errors import RequestError, RolloutError, ServeError
from nbops.serve._predlog import META_COLUMNS
from nbops.serve._reader import (
    predictions,
    read_feedback_spec,
    read_labelled_spec,
    read_predictions_spec,
)
from nbops.serve._rollout import (
    Rollout,
    RolloutEvent,
    Route,
    parse_routes,
    promote,
    read_rollout,
    rollback,
    rollout_history,
    set_rollout,
)
from nbops.serve._server import Server, check_port, run, serve

#: Prometheus recording and alert rules for the server's metrics (error ratio, p99, rollbacks).
ALERT_RULES = Path(__file__).with_name("prometheus-rules.yml")

__all__ = [
    "ALERT_RULES",
    "META_COLUMNS",
    "ModelSpec",
    "RequestError",
    "Rollout",
    "RolloutError",
    "RolloutEvent",
    "Route",
    "ServeConfig",
    "ServeError",
    "Server",
    "check_models",
    "check_port",
    "create_app",
    "model_specs",
    "parse_routes",
    "predictions",
    "promote",
    "read_feedback_spec",
    "read_labelled_spec",
    "read_predictions_spec",
    "read_rollout",
    "rollback",
    "rollout_history",
    "run",
    "serve",
    "set_rollout",
]


def create_app(config: ServeConfig) -> Any:
    """The ASGI (Starlette) application serving ``config``'s models, to embed or test in-process."""
    from nbops.serve._app import create_app as create

    return create(config)


class _CallableModule(types.ModuleType):
    """``nbops.serve`` is both this package and the :func:`serve` function.

    Importing ``nbops.serve`` binds the package as the attribute ``serve`` of ``nbops``, which
    would hide the function; calling the package calls the function instead.
    """

    def __call__(self, *models: str, **options: Any) -> Server:
        return serve(*models, **options)


sys.modules[__name__].__class__ = _CallableModule
