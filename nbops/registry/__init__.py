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
from nbops.registry._catalog import (
    STATUSES,
    AliasMove,
    ModelRef,
    ModelVersion,
    VersionEvent,
    parse_model_ref,
)
from nbops.registry._formats import ModelRoundTripError, PickleWarning, library_of
from nbops.registry._lifecycle import (
    archive_version,
    delete_version,
    remove_alias,
    set_run_models_status,
    set_status,
    tag_version,
)
from nbops.registry._predict import BATCH_ROWS, predict, predict_file, print_progress
from nbops.registry._serving import defer_imports, import_skops_for_serving
from nbops.registry._signature import (
    ColumnSpec,
    Signature,
    SignatureError,
    infer_signature,
    validate_input,
)
from nbops.registry._trust import TRUSTED_PREFIXES, is_trusted_type

__all__ = [
    "BATCH_ROWS",
    "MODELS_KEY",
    "STATUSES",
    "TRUSTED_PREFIXES",
    "AliasMove",
    "ColumnSpec",
    "ModelRef",
    "ModelRoundTripError",
    "ModelVersion",
    "PickleWarning",
    "Signature",
    "SignatureError",
    "VersionEvent",
    "alias_history",
    "archive_version",
    "defer_imports",
    "delete_version",
    "get_model",
    "import_skops_for_serving",
    "infer_signature",
    "is_trusted_type",
    "library_of",
    "list_models",
    "load_model",
    "log_model",
    "model_aliases",
    "model_path",
    "model_versions",
    "parse_model_ref",
    "predict",
    "predict_file",
    "print_progress",
    "remove_alias",
    "run_lineage",
    "set_alias",
    "set_run_models_status",
    "set_status",
    "tag_version",
    "validate_input",
]
