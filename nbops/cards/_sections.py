"""The parts of a card's context that need judgement: which metrics are evaluation results,
which data trained and which tested the model, which run trained it, and readable lineage."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nbops.cards._config import CardConfig
from nbops.cards._hub import rounded
from nbops.errors import NbopsError
from nbops.registry import ModelVersion, library_of
from nbops.store import RunStore

#: Datasets with more columns than this get a summary and a collapsible column table.
WIDE_SCHEMA = 20


def evaluation(
    version: ModelVersion,
    metrics: Mapping[str, float],
    datasets: list[dict[str, Any]],
    config: CardConfig,
) -> dict[str, Any] | None:
    """The evaluation results: recorded by ``log_model(evaluation=...)``, else configured by
    ``card.evaluation_dataset`` + ``card.evaluation_metrics``; None when neither says."""
    if version.evaluation:
        found = dict(version.evaluation)
        found["metrics"] = dict(found.get("metrics") or {})
        return found
    if not config.evaluation_metrics:
        return None
    missing = [m for m in config.evaluation_metrics if m not in metrics]
    if missing:
        raise NbopsError(
            f"card.evaluation_metrics names {', '.join(missing)}, which the run did not log "
            f"(logged: {', '.join(sorted(metrics)) or 'nothing'})"
        )
    name = config.evaluation_dataset
    entry = next((d for d in datasets if d["name"] == name), None)
    if name and entry is None:
        raise NbopsError(
            f"card.evaluation_dataset is {name!r}, but the run logged no dataset of that name "
            f"(it logged: {', '.join(d['name'] for d in datasets) or 'none'})"
        )
    return {
        "dataset": name,
        "hash": entry["hash"] if entry else None,
        "split": config.evaluation_split or "test",
        "metrics": {m: float(metrics[m]) for m in config.evaluation_metrics},
    }


def fold(dataset: dict[str, Any]) -> dict[str, Any]:
    """Mark wide datasets and summarise their column types (``64 columns: 64 float64``)."""
    columns = dataset.get("columns") or []
    counts: dict[str, int] = {}
    for column in columns:
        counts[str(column["dtype"])] = counts.get(str(column["dtype"]), 0) + 1
    summary = ", ".join(f"{n} {t}" for t, n in sorted(counts.items(), key=lambda x: -x[1]))
    return {
        **dataset,
        "wide": len(columns) > WIDE_SCHEMA,
        "summary": f"{len(columns)} columns: {summary}" if columns else "",
    }


def _duration(doc: Mapping[str, Any]) -> str | None:
    start, end = doc.get("start_time"), doc.get("end_time")
    if not isinstance(start, (int, float)) or not isinstance(end, (int, float)):
        return None
    seconds = end - start
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def run_summary(store: RunStore, run_id: str) -> dict[str, Any] | None:
    """id, name, project, status and duration of a run, or None when it is gone."""
    try:
        record = store.get_run(run_id)
    except NbopsError:
        return None
    doc = {"start_time": record.start_time, "end_time": record.end_time}
    return {
        "id": record.id,
        "name": record.name,
        "project": record.project,
        "status": record.status,
        "duration": _duration(doc),
    }


def training_run_id(
    version: ModelVersion, metadata: Mapping[str, Any], store: Any, *, recent: int = 500
) -> str | None:
    """The run that trained the model: recorded at registration, else (in a pipeline) the
    latest upstream stage run whose outs this stage read, else the registering run.

    Stage runs record their lock entry in their metadata (``pipeline``); the ``recent`` newest
    stage runs of the store are searched.
    """
    recorded = version.lineage.get("training_run")
    if recorded:
        return str(recorded)
    pipeline = metadata.get("pipeline") or {}
    deps = ((pipeline.get("lock") or {}).get("deps")) or {}
    if deps:
        stages = [r for r in store.list_runs() if r.job_type == "stage" and r.id != version.run_id]
        for record in reversed(stages[-recent:]):
            if record.status != "finished":
                continue
            found = store.get_metadata(record.id).get("pipeline") or {}
            if found.get("stage") == pipeline.get("stage"):
                continue
            outs = (found.get("lock") or {}).get("outs") or {}
            if any(deps.get(path) == digest for path, digest in outs.items()):
                return str(record.id)
    return version.run_id


def relative(path: str | None, root: Path | None) -> str | None:
    """A path relative to the project when it lies inside it."""
    if not path or root is None:
        return path
    try:
        inside = Path(path).resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return path
    return inside.as_posix()


def lock_rows(pipeline: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The pipeline lock entry as a few readable rows."""
    if not pipeline:
        return []
    entry = pipeline.get("lock") or {}
    rows = [("stage", str(pipeline.get("stage") or "-"))]
    if entry.get("notebook"):
        rows.append(("notebook", str(entry["notebook"])))
    if entry.get("code"):
        rows.append(("code hash", str(entry["code"])[:12]))
    params = entry.get("params") or {}
    if params:
        rows.append(("params", ", ".join(f"{k}={v}" for k, v in sorted(params.items()))))
    for title in ("deps", "outs"):
        items = entry.get(title) or {}
        if items:
            rows.append((title, ", ".join(f"{p} ({str(h)[:8]})" for p, h in sorted(items.items()))))
    metrics = entry.get("metrics") or {}
    if metrics:
        rows.append(
            ("metrics", ", ".join(f"{k}={rounded(float(v))}" for k, v in sorted(metrics.items())))
        )
    return rows


def load_snippets(version: ModelVersion) -> list[dict[str, str]]:
    """How to load this version: through nbops always, and with its own library when native."""
    args = f'"{version.ref}"'
    if version.untrusted_types:
        args += ", trusted=[" + ", ".join(f'"{t}"' for t in version.untrusted_types) + "]"
    if version.format == "pickle":
        args += ", allow_pickle=True"
    snippets = [
        {"title": "With nbops", "code": f"import nbops\n\nmodel = nbops.load_model({args})"}
    ]
    path = f'model_path(get_model("{version.ref}"))'
    imports = "from nbops.registry import get_model, model_path"
    library = library_of(version.model_class, version.format)
    cls = version.model_class.rsplit(".", 1)[-1]
    if version.format == "xgboost":
        code = (
            f"import xgboost\n{imports}\n\nmodel = xgboost.{cls}()\nmodel.load_model(str({path}))"
        )
        snippets.append({"title": "With XGBoost (native JSON)", "code": code})
    elif version.format == "lightgbm":
        code = f"import lightgbm\n{imports}\n\nmodel = lightgbm.Booster(model_file=str({path}))"
        snippets.append({"title": "With LightGBM (native text)", "code": code})
    elif version.format == "skops":
        trusted = list(version.trusted_types)
        code = f"import skops.io as sio\n{imports}\n\nmodel = sio.load({path}, trusted={trusted!r})"
        snippets.append({"title": f"With skops ({library})", "code": code})
    return snippets
