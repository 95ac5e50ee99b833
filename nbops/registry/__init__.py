"""The model registry: versions with lineage, aliases, and loading that checks integrity."""

from __future__ import annotations

from nbops.registry._api import (
    MODELS_KEY,
    alias_history,
    get_model,
    list_models,
    load_model,
    log_model,
    model_aliases,
    model_path,
    model_versions,
    run_lineage,
    set_alias,
)
from nbops.registry._catalog import AliasMove, ModelRef, ModelVersion, parse_model_ref
from nbops.registry._formats import ModelRoundTripError, PickleWarning
from nbops.registry._trust import TRUSTED_PREFIXES, is_trusted_type

__all__ = [
    "MODELS_KEY",
    "TRUSTED_PREFIXES",
    "AliasMove",
    "ModelRef",
    "ModelRoundTripError",
    "ModelVersion",
    "PickleWarning",
    "alias_history",
    "get_model",
    "is_trusted_type",
    "list_models",
    "load_model",
    "log_model",
    "model_aliases",
    "model_path",
    "model_versions",
    "parse_model_ref",
    "run_lineage",
    "set_alias",
]
