"""Reading prediction logs back: ``nbops.predictions(model, since=...)``."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from nbops.errors import InvalidValueError
from nbops.names import check_name

_WINDOW = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)", re.IGNORECASE)
_UNIT = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def predictions_folder(store: Any = None) -> Path:
    """Where the server logs predictions by default: ``<store>/predictions``."""
    from nbops.store import open_store

    return open_store(store).path / "predictions"


def parse_since(since: Any) -> datetime | None:
    """``"7d"``, ``"12h"``, ``"30m"`` (before now), a datetime, or an ISO date; UTC."""
    if since is None:
        return None
    if isinstance(since, timedelta):
        return datetime.now(timezone.utc) - since
    if isinstance(since, datetime):
        return since if since.tzinfo else since.replace(tzinfo=timezone.utc)
    text = str(since).strip()
    match = _WINDOW.fullmatch(text)
    if match:
        seconds = float(match[1]) * _UNIT[match[2].lower()]
        return datetime.now(timezone.utc) - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValueError(
            f"since={since!r} is neither a window like '7d', '12h', '30m' nor an ISO date"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def predictions(
    model: str,
    since: Any = None,
    until: Any = None,
    *,
    version: int | None = None,
    role: str | None = "primary",
    labels: bool = True,
    folder: str | Path | None = None,
    store: Any = None,
) -> Any:
    """The logged predictions of a served model as a DataFrame, oldest first.

    Args:
        model: The model name, ``NAME@ALIAS`` or ``NAME:VERSION`` (only rows answered by the
            version the reference points at now).
        since: Only rows after this: a window before now (``"7d"``, ``"12h"``) or a datetime.
        until: Only rows before this (same forms).
        version: Only rows answered by this version.
        role: ``"primary"`` (answers sent to clients), ``"shadow"``, or None for both.
        labels: Join the labels sent to the feedback endpoint (column ``label``).
        folder: The log folder the server was given (default ``<store>/predictions``).

    Columns: ``request_id, row, ts, version, route, role, latency_ms``, the model's input
    columns, ``prediction`` and (with ``labels``) ``label``.
    """
    import pandas as pd

    name = model
    if "@" in model or ":" in model:
        from nbops.registry import get_model

        resolved = get_model(model, store=store)
        name, version = resolved.name, resolved.version
    check_name(name, "model name")
    root = Path(folder) if folder is not None else predictions_folder(store)
    start, end = parse_since(since), parse_since(until)
    frames = [pd.read_parquet(p) for p in _parts(root / name, start, end)]
    if not frames:
        return pd.DataFrame(columns=["request_id", "row", "ts", "version", "route", "role"])
    table = pd.concat(frames, ignore_index=True)
    keep = pd.Series(True, index=table.index)
    if start is not None:
        keep &= table["ts"] >= pd.Timestamp(start)
    if end is not None:
        keep &= table["ts"] < pd.Timestamp(end)
    if version is not None:
        keep &= table["version"] == int(version)
    if role is not None:
        keep &= table["role"] == role
    table = table[keep].sort_values(["ts", "request_id", "row"], kind="stable")
    table = table.reset_index(drop=True)
    if labels:
        feedback = [pd.read_parquet(p) for p in _parts(root / name / "feedback", None, None)]
        if feedback:
            given = pd.concat(feedback, ignore_index=True).sort_values("ts", kind="stable")
            given = given.drop_duplicates(["request_id", "row"], keep="last")
            table = table.merge(
                given[["request_id", "row", "label"]], "left", ["request_id", "row"]
            )
        else:
            table["label"] = None
    return table


def _split_spec(spec: str, prefix: str) -> tuple[str, str | None]:
    """``PREFIX:MODEL[@ALIAS|:VERSION][:WINDOW]`` -> (model reference, window or None)."""
    if not spec.startswith(f"{prefix}:"):
        raise InvalidValueError(
            f"{spec!r} is not a {prefix}:MODEL@ALIAS:WINDOW reference "
            f"(e.g. {prefix}:digits@production:7d)"
        )
    rest = spec[len(prefix) + 1 :]
    head, sep, tail = rest.rpartition(":")
    if sep and _WINDOW.fullmatch(tail):
        return head, tail
    return rest, None


def read_predictions_spec(spec: str, *, store: Any = None) -> Any:
    """Read ``predictions:MODEL[@ALIAS|:VERSION][:WINDOW]`` as a DataFrame of input columns.

    For ``current:`` of ``nbops monitor`` and ``nbops drift``: the logged input columns of the
    rows answered in the window (e.g. ``predictions:digits@production:7d``), without the log's
    own columns.
    """
    from nbops.serve._predlog import META_COLUMNS

    model, window = _split_spec(spec, "predictions")
    table = predictions(model, since=window, labels=False, store=store)
    return table.drop(columns=[c for c in META_COLUMNS if c in table.columns])


def read_feedback_spec(spec: str, *, store: Any = None) -> Any:
    """Read ``feedback:MODEL[@ALIAS|:VERSION][:WINDOW]``: the labelled predictions of the window.

    For ``feedback: path:`` of ``nbops monitor`` (live accuracy by window): columns ``ts``,
    ``version``, ``prediction`` and ``label`` of the rows that got a label through the feedback
    endpoint.
    """
    model, window = _split_spec(spec, "feedback")
    table = predictions(model, since=window, labels=True, store=store)
    if "prediction" not in table.columns:
        return table.assign(prediction=None, label=None)[["ts", "version", "prediction", "label"]]
    table = table[table["label"].notna()].reset_index(drop=True)
    return table[["ts", "version", "prediction", "label"]]


def read_labelled_spec(spec: str, *, store: Any = None) -> Any:
    """Read ``labelled:MODEL[@ALIAS|:VERSION][:WINDOW]``: live traffic as training data.

    For a retraining stage's ``source`` (``nbops monitor``'s ``retrain: params:``): the logged
    input columns of the rows that got a label through the feedback endpoint, and the label
    (column ``label``), oldest first. Rows without a label are left out.
    """
    from nbops.serve._predlog import META_COLUMNS

    model, window = _split_spec(spec, "labelled")
    table = predictions(model, since=window, labels=True, store=store)
    if "label" not in table.columns:
        table = table.assign(label=None)
    table = table[table["label"].notna()].reset_index(drop=True)
    return table.drop(columns=[c for c in META_COLUMNS if c in table.columns])


def _parts(base: Path, start: datetime | None, end: datetime | None) -> list[Path]:
    if not base.is_dir():
        return []
    out = []
    for day in sorted(base.glob("date=*")):
        for hour in sorted(day.glob("hour=*")):
            try:
                stamp = datetime.strptime(f"{day.name[5:]} {hour.name[5:]}", "%Y-%m-%d %H").replace(
                    tzinfo=timezone.utc
                )
            except ValueError:
                continue
            if start is not None and stamp + timedelta(hours=1) <= start:
                continue
            if end is not None and stamp > end:
                continue
            out.extend(sorted(hour.glob("part-*.parquet")))
    return out
