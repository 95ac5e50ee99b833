"""``nbops.log_model``, ``nbops.load_model`` and aliases."""

from __future__ import annotations

import getpass
import hashlib
import os
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.errors import InvalidValueError, ModelIntegrityError, NotFoundError
from nbops.names import check_name
from nbops.registry._catalog import (
    STATUSES,
    AliasMove,
    ModelCatalog,
    ModelVersion,
    check_alias,
    parse_model_ref,
)
from nbops.registry._formats import class_path, deserialize, serialize, task_of
from nbops.registry._signature import infer_signature
from nbops.store import RunStore, open_store

if TYPE_CHECKING:
    from nbops.tracking import Run

#: Run metadata key listing the model versions a run registered.
MODELS_KEY = "models"
_metadata_lock = threading.Lock()

StoreArg = RunStore | str | os.PathLike[str] | None


def _catalog(store: RunStore) -> ModelCatalog:
    return ModelCatalog(store)


def current_user() -> str:
    """The user name recorded on registrations and alias moves."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def run_lineage(store: RunStore, run_id: str) -> dict[str, Any]:
    """What a run recorded that a model version's lineage keeps."""
    record = store.get_run(run_id)
    metadata = store.get_metadata(run_id)
    git = metadata.get("git_finish") or metadata.get("git") or {}
    notebook = metadata.get("notebook") or {}
    metrics: dict[str, Any] = dict(store.last_metrics([run_id])[run_id])
    for key, value in store.get_summary(run_id).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics[key] = value
    return {
        "run": {"id": record.id, "name": record.name, "project": record.project},
        "datasets": list(metadata.get("datasets") or []),
        "params": store.get_params(run_id),
        "metrics": metrics,
        "git": {k: git.get(k) for k in ("commit", "branch", "dirty", "remote")} if git else None,
        "notebook": notebook.get("path"),
        "pipeline": metadata.get("pipeline"),
    }


def log_model(
    model: Any,
    name: str,
    *,
    run: Run | None = None,
    allow_pickle: bool = False,
    status: str | None = None,
    input_example: Any = None,
    evaluation: Mapping[str, Any] | None = None,
    training_run: str | None = None,
) -> ModelVersion:
    """Save ``model`` and register it as the next version of ``name``, with its lineage.

    scikit-learn models are saved with skops (loading them runs no arbitrary code), XGBoost and
    LightGBM models in their native formats; any other object needs ``allow_pickle=True`` and is
    saved with pickle, with a warning. The file is loaded back once before it is registered, so
    a model that could never be loaded (a lambda in a pipeline) is refused here. The lineage
    (run id, dataset versions, parameters, last metric values, git commit, notebook) comes from
    ``run``, by default the active run; with no run the version has no lineage.

    ``status`` is ``candidate`` by default inside a pipeline stage (its gates decide later) and
    ``validated`` elsewhere; only validated versions are what a bare name resolves to. The input
    signature (columns, dtypes) comes from ``input_example`` or from the model's feature names
    typed by a dataset in the lineage; the output kind from the model.

    ``evaluation`` says which metrics are evaluation results and on what data, e.g.
    ``{"dataset": "digits-test", "split": "test", "metrics": ["accuracy", "f1_macro"]}`` (values
    taken from the run's last logged values) or ``"metrics": {"accuracy": 0.93}``; only these
    reach the card's ``model-index``. ``training_run`` names the run that trained the model when
    it is not the registering run (an evaluate notebook registering what a train stage fit).
    """
    from nbops.tracking import active_run

    check_name(name, "model name")
    if status is not None and status not in STATUSES:
        raise InvalidValueError(f"invalid status {status!r}: use one of {', '.join(STATUSES)}")
    source = run if run is not None else active_run()
    store = source.store if source is not None else open_store()
    blob = serialize(model, allow_pickle=allow_pickle)
    digest = store.blobs.put_bytes(blob.data)
    lineage: dict[str, Any] = {}
    if source is not None:
        source.wait_background()
        source.flush()
        lineage = run_lineage(store, source.id)
    if status is None:
        in_stage = source is not None and store.get_run(source.id).job_type == "stage"
        status = "candidate" if in_stage else "validated"
    signature = infer_signature(model, input_example, _schemas(store, lineage))
    evaluated = _evaluation(evaluation, lineage)
    if training_run is not None:
        lineage["training_run"] = store.get_run(training_run).id
    catalog = _catalog(store)
    user = current_user()
    now = time.time()
    version = catalog.add(
        {
            "name": name,
            "digest": digest,
            "size": len(blob.data),
            "format": blob.format,
            "trusted_types": blob.trusted_types,
            "model_class": class_path(model),
            "task": task_of(model),
            "run_id": source.id if source is not None else None,
            "created_at": now,
            "created_by": user,
            "lineage": lineage,
            "status": status,
            "signature": signature.to_dict() if signature else None,
            "evaluation": evaluated,
            "events": [
                {"action": f"registered as {status}", "by": user, "at": now, "reason": None}
            ],
        }
    )
    if source is not None and not source.finished:
        with _metadata_lock:
            current = list(store.get_metadata(source.id).get(MODELS_KEY) or [])
            source.set_metadata(MODELS_KEY, [*current, {"name": name, "version": version}])
    return catalog.get(parse_model_ref(f"{name}:{version}"))


def _evaluation(
    evaluation: Mapping[str, Any] | None, lineage: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Check ``log_model(evaluation=...)`` and fill in values and the dataset's hash."""
    if evaluation is None:
        return None
    if not isinstance(evaluation, Mapping) or not evaluation.get("metrics"):
        raise InvalidValueError(
            "evaluation must be a mapping with metrics (a list of logged metric names or "
            '{name: value}) and a dataset, e.g. {"dataset": "test", "metrics": ["accuracy"]}'
        )
    logged = lineage.get("metrics") or {}
    wanted = evaluation["metrics"]
    if isinstance(wanted, Mapping):
        values = {str(k): float(v) for k, v in wanted.items()}
    else:
        missing = [m for m in wanted if m not in logged]
        if missing:
            raise InvalidValueError(
                f"evaluation metric(s) {', '.join(missing)} were not logged by the run "
                f"(logged: {', '.join(sorted(logged)) or 'nothing'})"
            )
        values = {str(m): float(logged[m]) for m in wanted}
    name = evaluation.get("dataset")
    entry = next((d for d in lineage.get("datasets") or [] if d.get("name") == name), None)
    return {
        "dataset": name,
        "hash": entry.get("hash") if entry else evaluation.get("revision"),
        "split": str(evaluation.get("split") or "test"),
        "metrics": values,
    }


def _schemas(store: RunStore, lineage: dict[str, Any]) -> list[dict[str, Any]]:
    """The schemas of the lineage's datasets, last logged first (training data usually)."""
    from nbops.data import get_dataset
    from nbops.errors import NbopsError

    found = []
    for entry in reversed(lineage.get("datasets") or []):
        try:
            version = get_dataset(f"{entry['name']}@{entry['hash']}", store=store)
        except (NbopsError, KeyError):
            continue
        found.append({"name": entry["name"], "schema": version.schema or {}})
    return found


def get_model(ref: str, *, store: StoreArg = None) -> ModelVersion:
    """Return the registered version ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS`` refers to."""
    return _catalog(open_store(store)).get(parse_model_ref(ref))


def model_path(version: ModelVersion, *, store: StoreArg = None) -> Path:
    """Where a version's file lives in the store."""
    return open_store(store).blobs.path_of(version.digest)


def load_model(
    ref: str,
    *,
    trusted: Iterable[str] = (),
    allow_pickle: bool = False,
    store: StoreArg = None,
) -> Any:
    """Load a registered model, after checking its file still has the recorded sha256.

    A skops file may only construct skops' default-trusted types and the types of the libraries
    nbops supports (scikit-learn, NumPy, SciPy, XGBoost, LightGBM); name anything else in
    ``trusted`` once you have checked where the model came from.

    Raises:
        ModelIntegrityError: The stored file was modified since registration.
        UnsafeModelError: The file needs types outside the allow-list and ``trusted`` (the
            message lists them), or it is a pickle and ``allow_pickle`` is False.
    """
    target = open_store(store)
    version = get_model(ref, store=target)
    path = model_path(version, store=target)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(
            f"the file of model {version.ref} is missing from the store ({path})"
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != version.digest:
        raise ModelIntegrityError(version.ref, str(path), version.digest, actual)
    return deserialize(
        data,
        version.format,
        ref=version.ref,
        model_class=version.model_class,
        allow_pickle=allow_pickle,
        trusted=trusted,
    )


def list_models(*, store: StoreArg = None) -> list[tuple[ModelVersion, int]]:
    """Each model's latest version and its number of versions, by name."""
    return _catalog(open_store(store)).names()


def model_versions(name: str, *, store: StoreArg = None) -> list[ModelVersion]:
    """Every version of one model, oldest first."""
    return _catalog(open_store(store)).versions(check_name(name, "model name"))


def model_aliases(name: str, *, store: StoreArg = None) -> dict[str, int]:
    """``{alias: version}`` of one model."""
    return _catalog(open_store(store)).aliases(check_name(name, "model name"))


def set_alias(
    name: str,
    version: int,
    alias: str,
    *,
    reason: str | None = None,
    force: bool = False,
    store: StoreArg = None,
) -> AliasMove:
    """Point ``name@alias`` at ``version``, recording who moved it, when and why.

    Only a validated version can get an alias, unless ``force=True`` with a ``reason``.
    """
    check_name(name, "model name")
    catalog = _catalog(open_store(store))
    target = catalog.get(parse_model_ref(f"{name}:{int(version)}"))
    if target.status != "validated" or target.archived:
        state = "archived" if target.archived else target.status
        if not force:
            raise InvalidValueError(
                f"model {target.ref} is {state}: only a validated version can get an alias; "
                "pass force=True (--force) with a reason to point it there anyway"
            )
        if not reason:
            raise InvalidValueError(
                f"forcing alias {alias!r} onto {state} version {target.ref} needs a reason"
            )
        reason = f"forced onto a {state} version: {reason}"
    return catalog.move_alias(name, check_alias(alias), int(version), current_user(), reason)


def alias_history(
    name: str, alias: str | None = None, *, store: StoreArg = None
) -> list[AliasMove]:
    """Every move of the model's aliases (or of one alias), oldest first."""
    return _catalog(open_store(store)).alias_moves(check_name(name, "model name"), alias)
