"""What a model card says, gathered only from what was tracked: the registry and the run."""

from __future__ import annotations

import base64
import logging
import math
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from nbops.cards._config import CardConfig
from nbops.cards._hub import license_fields, metric_id, plain, rounded
from nbops.cards._sections import (
    evaluation,
    fold,
    load_snippets,
    lock_rows,
    relative,
    run_summary,
    training_run_id,
)
from nbops.errors import NbopsError
from nbops.registry import ModelVersion, library_of, run_lineage
from nbops.store import RunStore

logger = logging.getLogger(__name__)

#: Packages listed in the card's environment section when the run had them installed.
KEY_PACKAGES = (
    "nbops",
    "numpy",
    "pandas",
    "scikit-learn",
    "skops",
    "scipy",
    "pyarrow",
    "torch",
    "tensorflow",
    "jax",
    "xgboost",
    "lightgbm",
    "catboost",
    "transformers",
    "matplotlib",
    "wandb",
)
#: Image artifacts embedded as evaluation plots, by suffix, and the largest embedded.
IMAGE_TYPES = {
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
}
IMAGE_MAX_BYTES = 5 * 1024 * 1024

_TASK_NAMES = {
    "tabular-classification": "Tabular Classification",
    "tabular-regression": "Tabular Regression",
}


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _datasets(store: RunStore, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from nbops.data import get_dataset

    out = []
    for entry in entries:
        doc = dict(entry)
        try:
            version = get_dataset(f"{entry['name']}@{entry['hash']}", store=store)
        except (NbopsError, KeyError):
            doc.setdefault("schema", None)
            doc.setdefault("stats", None)
        else:
            doc.update(version.to_dict())
        columns = []
        for column, dtype in (doc.get("schema") or {}).items():
            stats = dict((doc.get("stats") or {}).get(column) or {})
            stats.pop("dtype", None)
            columns.append({"name": column, "dtype": dtype, "stats": stats})
        doc["columns"] = columns
        out.append(doc)
    return out


def _images(store: RunStore, run_id: str) -> list[dict[str, Any]]:
    """Image artifacts of the run, and the last step of each image logged with ``log``."""
    objects = store.blobs
    artifacts = store.list_artifacts(run_id)
    last_step: dict[str, int] = {}  # media key -> its last step: a plot logged per epoch
    for artifact in artifacts:
        details = artifact.metadata
        if details.get("media") == "image" and isinstance(details.get("step"), int):
            key = str(details.get("key"))
            last_step[key] = max(last_step.get(key, -1), details["step"])
    images = []
    for artifact in artifacts:
        details = artifact.metadata
        media = details.get("media") == "image" and isinstance(details.get("step"), int)
        if media and details["step"] != last_step[str(details.get("key"))]:
            continue
        suffix = (
            ".png"
            if media
            else PurePosixPath(artifact.name).suffix.lower()
            or PurePosixPath(artifact.source).suffix.lower()
        )
        mime = IMAGE_TYPES.get(suffix)
        if artifact.kind != "file" or mime is None or artifact.size > IMAGE_MAX_BYTES:
            continue
        try:
            data = objects.path_of(artifact.digest).read_bytes()
        except OSError:
            logger.warning("image artifact %s is missing from the store", artifact.name)
            continue
        if media:
            name = str(details.get("key"))
            if details.get("caption"):
                name += f": {details['caption']}"
            filename = artifact.name + suffix
        else:
            name = artifact.name
            filename = name if PurePosixPath(name).suffix else name + suffix
        images.append(
            {
                "name": name,
                "filename": filename,
                "mime": mime,
                "data": data,
                "data_uri": f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}",
            }
        )
    return images


def _environment(metadata: dict[str, Any], model_format: str) -> dict[str, Any]:
    env = metadata.get("environment") or {}
    packages = metadata.get("packages") or {}
    memory = env.get("memory_total_bytes")
    gpus = [g.get("name") for g in env.get("gpu") or [] if isinstance(g, dict)]
    return {
        "python": (env.get("python") or {}).get("version"),
        "implementation": (env.get("python") or {}).get("implementation"),
        "platform": (env.get("platform") or {}).get("platform"),
        "cpu": (env.get("cpu") or {}).get("model"),
        "cpu_count": (env.get("cpu") or {}).get("count"),
        "memory": f"{memory / 1024**3:.1f} GiB" if isinstance(memory, (int, float)) else None,
        "gpus": gpus,
        "packages": {name: packages[name] for name in KEY_PACKAGES if name in packages},
        "captured": bool(env or packages),
    }


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def gather(
    version: ModelVersion, store: RunStore, config: CardConfig, root: Path | None = None
) -> dict[str, Any]:
    """Return the card's context: every value the templates render.

    The run's records are read from the store as they are now (metrics and plots logged after
    registration included); when the run is gone, the lineage kept with the version is used.
    """
    from nbops.tracking import active_run

    run_doc: dict[str, Any] | None = None
    lineage: dict[str, Any] = dict(version.lineage)
    metadata: dict[str, Any] = {}
    images: list[dict[str, Any]] = []
    if version.run_id is not None:
        live = active_run()
        if live is not None and live.id == version.run_id:
            live.flush()
        try:
            record = store.get_run(version.run_id)
        except NbopsError:
            logger.warning(
                "run %s of model %s is not in the store; using its lineage",
                version.run_id,
                version.ref,
            )
        else:
            lineage = run_lineage(store, version.run_id)
            metadata = store.get_metadata(version.run_id)
            images = _images(store, version.run_id)
            run_doc = {
                "id": record.id,
                "name": record.name,
                "project": record.project,
                "status": record.status,
                "started": _iso(record.start_time),
                "ended": _iso(record.end_time),
            }
    if run_doc is None and lineage.get("run"):
        run_doc = dict(lineage["run"])
    metrics = {k: v for k, v in (lineage.get("metrics") or {}).items() if _number(v)}
    datasets = [fold(d) for d in _datasets(store, list(lineage.get("datasets") or []))]
    evaluated = evaluation(version, metrics, datasets, config)
    evaluation_names = {evaluated["dataset"]} if evaluated and evaluated.get("dataset") else set()
    trainer = training_run_id(version, metadata, store)
    training_run = run_summary(store, trainer) if trainer else None
    registering = run_summary(store, version.run_id) if version.run_id else None
    task_type = config.task_type or version.task
    notebook = metadata.get("notebook") or {}
    wandb = metadata.get("wandb") or {}
    papermill = metadata.get("papermill") or {}
    return {
        "model": {
            **{k: v for k, v in asdict(version).items() if k != "lineage"},
            "ref": version.ref,
            "registered": _iso(version.created_at),
            "library": library_of(version.model_class, version.format),
            "untrusted_types": list(version.untrusted_types),
            "status": version.status,
            "signature": version.signature.to_dict() if version.signature else None,
        },
        "evaluation": evaluated,
        "evaluation_metrics": {
            k: rounded(v) for k, v in ((evaluated or {}).get("metrics") or {}).items()
        },
        "other_metrics": {
            k: rounded(v)
            for k, v in sorted(metrics.items())
            if k not in ((evaluated or {}).get("metrics") or {}) and math.isfinite(v)
        },
        "training_datasets": [d for d in datasets if d["name"] not in evaluation_names],
        "evaluation_datasets": [d for d in datasets if d["name"] in evaluation_names],
        "training_run": training_run,
        "registering_run": registering,
        "lock_rows": lock_rows(lineage.get("pipeline")),
        "load_snippets": load_snippets(version),
        "card": asdict(config),
        "task": {
            "type": task_type,
            "name": config.task_name or _TASK_NAMES.get(task_type or "", task_type),
        },
        "run": run_doc,
        "params": dict(sorted((lineage.get("params") or {}).items())),
        "metrics": dict(sorted(metrics.items())),
        "datasets": datasets,
        "evaluation_dataset": next((d for d in datasets if d["name"] in evaluation_names), None),
        "images": images,
        "environment": _environment(metadata, version.format),
        "git": lineage.get("git"),
        "notebook": {
            "path": relative(notebook.get("path") or lineage.get("notebook"), root),
            "source": notebook.get("source"),
        },
        "papermill": {
            "input": relative(papermill.get("input_path"), root),
            "parameters": papermill.get("parameters"),
        }
        if papermill
        else None,
        "wandb": {
            "mode": wandb.get("mode"),
            "url": wandb.get("url"),
            "run_dir": wandb.get("run_dir"),
        }
        if wandb
        else None,
        "pipeline": lineage.get("pipeline"),
    }


def front_matter(context: dict[str, Any]) -> dict[str, Any]:
    """The Hugging Face model-card metadata (YAML front matter) of a card's context.

    ``model-index`` holds only the evaluation results (with their dataset and split); the
    license is a Hub id (or ``other`` with ``license_name``); ``datasets`` lists only Hub
    datasets (``card.hub_datasets``); no value carries raw HTML.
    """
    card = context["card"]
    meta: dict[str, Any] = dict(license_fields(card["license"]))
    library = card["library_name"] or context["model"]["library"]
    if library:
        meta["library_name"] = library
    tags = ["nbops"]
    if context["model"]["format"] in ("skops", "xgboost", "lightgbm"):
        tags.append(context["model"]["format"])
    if context["task"]["type"]:
        tags.append(context["task"]["type"])
    meta["tags"] = list(dict.fromkeys([*tags, *card["tags"]]))
    hub = card.get("hub_datasets") or {}
    hub_ids = [hub[d["name"]] for d in context["datasets"] if d["name"] in hub]
    if hub_ids:
        meta["datasets"] = list(dict.fromkeys(hub_ids))
    evaluated = context["evaluation"]
    finite = {k: v for k, v in ((evaluated or {}).get("metrics") or {}).items() if math.isfinite(v)}
    if finite:
        meta["metrics"] = list(dict.fromkeys(metric_id(k) for k in finite))
        name = evaluated.get("dataset") or "unspecified"
        dataset: dict[str, Any] = {"type": hub.get(name, name), "name": name}
        dataset["split"] = evaluated.get("split") or "test"
        if evaluated.get("hash"):
            dataset["revision"] = evaluated["hash"]
        meta["model-index"] = [
            {
                "name": context["model"]["name"],
                "results": [
                    {
                        "task": {
                            "type": context["task"]["type"] or "other",
                            "name": context["task"]["name"] or "Other",
                        },
                        "dataset": dataset,
                        "metrics": [
                            {"type": metric_id(k), "value": float(f"{v:.6g}"), "name": k}
                            for k, v in finite.items()
                        ],
                    }
                ],
            }
        ]
    cleaned: dict[str, Any] = plain(meta)
    return cleaned
