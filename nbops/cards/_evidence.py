"""What a model card says, gathered only from what was tracked: the registry and the run."""

from __future__ import annotations

import base64
import logging
import math
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any

from nbops.cards._config import CardConfig
from nbops.errors import NbopsError
from nbops.registry import ModelVersion, run_lineage
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
    objects = store.blobs
    images = []
    for artifact in store.list_artifacts(run_id):
        suffix = (
            PurePosixPath(artifact.name).suffix.lower()
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
        name = artifact.name if PurePosixPath(artifact.name).suffix else artifact.name + suffix
        images.append(
            {
                "name": artifact.name,
                "filename": name,
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


def gather(version: ModelVersion, store: RunStore, config: CardConfig) -> dict[str, Any]:
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
    datasets = _datasets(store, list(lineage.get("datasets") or []))
    task_type = config.task_type or version.task
    notebook = metadata.get("notebook") or {}
    wandb = metadata.get("wandb") or {}
    papermill = metadata.get("papermill") or {}
    return {
        "model": {
            **{k: v for k, v in asdict(version).items() if k != "lineage"},
            "ref": version.ref,
            "registered": _iso(version.created_at),
            "library": "scikit-learn" if version.format == "skops" else None,
            "untrusted_types": list(version.untrusted_types),
        },
        "card": asdict(config),
        "task": {
            "type": task_type,
            "name": config.task_name or _TASK_NAMES.get(task_type or "", task_type),
        },
        "run": run_doc,
        "params": dict(sorted((lineage.get("params") or {}).items())),
        "metrics": dict(sorted(metrics.items())),
        "datasets": datasets,
        "evaluation_dataset": _evaluation_dataset(datasets, config),
        "images": images,
        "environment": _environment(metadata, version.format),
        "git": lineage.get("git"),
        "notebook": {
            "path": notebook.get("path") or lineage.get("notebook"),
            "source": notebook.get("source"),
        },
        "papermill": {
            "input": papermill.get("input_path"),
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


def _evaluation_dataset(
    datasets: list[dict[str, Any]], config: CardConfig
) -> dict[str, Any] | None:
    if config.evaluation_dataset:
        for dataset in datasets:
            if dataset["name"] == config.evaluation_dataset:
                return dataset
        raise NbopsError(
            f"card.evaluation_dataset is {config.evaluation_dataset!r}, but the run logged no "
            f"dataset of that name (it logged: {', '.join(d['name'] for d in datasets) or 'none'})"
        )
    return datasets[-1] if datasets else None


def front_matter(context: dict[str, Any]) -> dict[str, Any]:
    """The Hugging Face model-card metadata (YAML front matter) of a card's context."""
    card = context["card"]
    meta: dict[str, Any] = {}
    if card["license"]:
        meta["license"] = card["license"]
    library = card["library_name"] or ("sklearn" if context["model"]["format"] == "skops" else None)
    if library:
        meta["library_name"] = library
    tags = ["nbops"]
    if context["model"]["format"] == "skops":
        tags.append("skops")
    if context["task"]["type"]:
        tags.append(context["task"]["type"])
    meta["tags"] = list(dict.fromkeys([*tags, *card["tags"]]))
    if context["datasets"]:
        meta["datasets"] = list(dict.fromkeys(d["name"] for d in context["datasets"]))
    finite = {k: v for k, v in context["metrics"].items() if math.isfinite(v)}
    if finite:
        meta["metrics"] = list(finite)
        evaluation = context["evaluation_dataset"]
        dataset = (
            {"type": evaluation["name"], "name": evaluation["name"], "revision": evaluation["hash"]}
            if evaluation
            else {"type": "unspecified", "name": "unspecified"}
        )
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
                        "metrics": [{"type": k, "value": v, "name": k} for k, v in finite.items()],
                    }
                ],
            }
        ]
    return meta
