"""``nbops.model_drift``: a model's metric per time window against its recorded reference."""

from __future__ import annotations

import dataclasses
import html
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nbops.monitor._errors import DriftInputError

logger = logging.getLogger(__name__)

MetricFn = Callable[[Any, Any], float]
Metric = str | MetricFn

#: Built-in metrics and whether higher values are better.
METRICS: dict[str, bool] = {
    "accuracy": True,
    "error_rate": False,
    "precision": True,
    "recall": True,
    "f1": True,
    "mae": False,
    "rmse": False,
    "r2": True,
}


@dataclass(frozen=True)
class WindowMetric:
    """The metric over one time window.

    Attributes:
        start: Window start (ISO 8601).
        end: Window end, exclusive (ISO 8601).
        n: Labelled rows in the window.
        unlabelled: Rows whose label (or prediction) is missing, left out of the metric.
        value: The metric, or None when the window has fewer than ``min_samples`` rows.
        status: ``"ok"``, ``"degraded"`` or ``"too few rows"``.
    """

    start: str
    end: str
    n: int
    unlabelled: int
    value: float | None
    status: str

    @property
    def drifted(self) -> bool:
        """The window's metric is worse than the reference by more than the tolerance."""
        return self.status == "degraded"


@dataclass(frozen=True)
class ModelDriftReport:
    """Performance per time window compared with the production model's recorded metric.

    ``drifted`` is True when any window with enough rows is degraded; ``latest`` is the most
    recent window with enough rows.
    """

    metric: str
    reference: float
    tolerance: float
    higher_is_better: bool
    window: str
    min_samples: int
    windows: tuple[WindowMetric, ...]

    @property
    def degraded_windows(self) -> list[WindowMetric]:
        """Windows whose metric crossed the tolerance."""
        return [w for w in self.windows if w.drifted]

    @property
    def drifted(self) -> bool:
        """Any window degraded."""
        return bool(self.degraded_windows)

    @property
    def latest(self) -> WindowMetric | None:
        """The most recent window with a value."""
        judged = [w for w in self.windows if w.value is not None]
        return judged[-1] if judged else None

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        data = dataclasses.asdict(self)
        data["windows"] = [dataclasses.asdict(w) for w in self.windows]
        data["drifted"] = self.drifted
        return data

    def to_json(self, indent: int | None = 2) -> str:
        """The report as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def __repr__(self) -> str:
        verdict = "DEGRADED" if self.drifted else "ok"
        return (
            f"<ModelDriftReport {verdict}: {self.metric} vs {self.reference:g} "
            f"(tolerance {self.tolerance:g}), {len(self.degraded_windows)}/{len(self.windows)} "
            f"windows degraded>"
        )

    def _repr_html_(self) -> str:
        e = html.escape
        rows = "".join(
            f"<tr><td>{e(w.start)}</td><td>{e(w.end)}</td><td>{w.n}</td><td>{w.unlabelled}</td>"
            f"<td>{'&ndash;' if w.value is None else f'{w.value:.4f}'}</td>"
            f"<td>{'<b>degraded</b>' if w.drifted else e(w.status)}</td></tr>"
            for w in self.windows
        )
        return (
            f"<div><p><b>{e(self.metric)}</b> per {e(self.window)} window vs reference "
            f"{self.reference:g} (tolerance {self.tolerance:g}): "
            f"<b>{'DEGRADED' if self.drifted else 'ok'}</b></p><table><tr><th>start</th>"
            "<th>end</th><th>rows</th><th>unlabelled</th><th>value</th><th>status</th></tr>"
            f"{rows}</table></div>"
        )


def model_drift(
    predictions: Sequence[Any] | Any,
    labels: Sequence[Any] | Any,
    timestamps: Sequence[Any] | Any,
    *,
    window: str = "7D",
    metric: Metric = "accuracy",
    reference: Mapping[str, float] | str,
    tolerance: float = 0.05,
    min_samples: int = 30,
    higher_is_better: bool | None = None,
) -> ModelDriftReport:
    """Compute ``metric`` per time window and compare it with the reference value.

    Args:
        predictions: Model outputs, one per row.
        labels: True values; rows with a missing label or prediction are counted as unlabelled.
        timestamps: When each prediction was made (anything ``pandas.to_datetime`` reads).
        window: Window length as a pandas offset (``"1D"``, ``"7D"``, ``"12h"``).
        metric: A built-in name (accuracy, error_rate, precision, recall, f1 -- macro-averaged
            over classes --, mae, rmse, r2) or a function ``f(labels, predictions) -> float``.
        reference: Metrics recorded for the production model, e.g. ``{"accuracy": 0.93}``, or a
            registered model reference (``"digits-forest@production"``) whose recorded
            metrics are used; must hold the metric's name (``__name__`` for a callable).
        tolerance: How much worse than the reference (absolute) a window may be.
        min_samples: Windows with fewer labelled rows get no value and no verdict.
        higher_is_better: Direction of a custom metric (built-ins know theirs).

    Raises:
        DriftInputError: Unknown metric, missing reference value, mismatched lengths, no rows,
            unreadable timestamps or window.
    """
    import numpy as np
    import pandas as pd

    name, fn, better = resolve_metric(metric, higher_is_better)
    if isinstance(reference, str):
        from nbops.registry import get_model

        reference = dict(get_model(reference).lineage.get("metrics") or {})
    if not isinstance(reference, Mapping) or name not in reference:
        known = ", ".join(sorted(map(str, reference))) if isinstance(reference, Mapping) else ""
        raise DriftInputError(
            f"reference has no value for metric {name!r} (it has: {known or 'nothing'}); "
            f"pass reference={{{name!r}: <production value>}}"
        )
    ref_value = float(reference[name])
    if tolerance < 0 or min_samples < 1:
        raise DriftInputError("tolerance must be >= 0 and min_samples >= 1")
    y_pred, y_true = np.asarray(predictions), np.asarray(labels)
    n = len(y_pred)
    if not n == len(y_true) == len(timestamps):
        raise DriftInputError(
            f"predictions, labels and timestamps must have one entry per row; got lengths "
            f"{len(y_pred)}, {len(y_true)}, {len(timestamps)}"
        )
    if n == 0:
        raise DriftInputError("no predictions given; model drift needs at least one window")
    try:
        when = pd.to_datetime(pd.Series(np.asarray(timestamps)))
    except (ValueError, TypeError) as exc:
        raise DriftInputError(f"cannot read timestamps as dates: {exc}") from exc
    if when.isna().any():
        raise DriftInputError(f"{int(when.isna().sum())} timestamp(s) are missing; drop those rows")
    frame = pd.DataFrame({"when": when, "row": np.arange(n)})
    try:
        groups = frame.groupby(pd.Grouper(key="when", freq=window))["row"]
        offset = pd.tseries.frequencies.to_offset(window)
    except (ValueError, TypeError) as exc:
        raise DriftInputError(f"window {window!r} is not a pandas offset like '7D': {exc}") from exc
    labelled = pd.notna(y_true) & pd.notna(y_pred)
    windows = []
    for start, rows in groups:
        idx = rows.to_numpy()
        keep = idx[labelled[idx]]
        value: float | None = None
        status = "too few rows"
        if keep.size >= min_samples:
            value = float(fn(y_true[keep], y_pred[keep]))
            worse = value < ref_value - tolerance if better else value > ref_value + tolerance
            status = "degraded" if worse else "ok"
        windows.append(
            WindowMetric(
                start=pd.Timestamp(start).isoformat(),
                end=(pd.Timestamp(start) + offset).isoformat(),
                n=int(keep.size),
                unlabelled=int(idx.size - keep.size),
                value=value,
                status=status,
            )
        )
    report = ModelDriftReport(
        metric=name,
        reference=ref_value,
        tolerance=float(tolerance),
        higher_is_better=better,
        window=window,
        min_samples=min_samples,
        windows=tuple(windows),
    )
    logger.info("%r", report)
    return report


def resolve_metric(metric: Metric, higher_is_better: bool | None) -> tuple[str, MetricFn, bool]:
    if callable(metric):
        if higher_is_better is None:
            raise DriftInputError(
                "a custom metric needs higher_is_better=True or False to know which way is worse"
            )
        return str(getattr(metric, "__name__", "metric")), metric, higher_is_better
    if metric not in METRICS:
        raise DriftInputError(
            f"unknown metric {metric!r}; use one of {', '.join(METRICS)} or pass a function"
        )
    better = METRICS[metric] if higher_is_better is None else higher_is_better
    return metric, _BUILTIN[metric], better


def _accuracy(y: Any, p: Any) -> float:
    import numpy as np

    return float(np.mean(y == p))


def _per_class(y: Any, p: Any) -> tuple[Any, Any]:
    """Macro precision and recall arrays over the classes seen in labels or predictions."""
    import numpy as np

    classes = np.unique(np.concatenate([y, p]))
    tp = np.array([np.sum((p == c) & (y == c)) for c in classes], dtype=float)
    predicted = np.array([np.sum(p == c) for c in classes], dtype=float)
    actual = np.array([np.sum(y == c) for c in classes], dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
    return precision, recall


def _f1(y: Any, p: Any) -> float:
    import numpy as np

    precision, recall = _per_class(y, p)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(f1.mean())


def _r2(y: Any, p: Any) -> float:
    import numpy as np

    y, p = y.astype(float), p.astype(float)
    total = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - p) ** 2)) / total if total > 0 else 0.0


_BUILTIN: dict[str, MetricFn] = {
    "accuracy": _accuracy,
    "error_rate": lambda y, p: 1.0 - _accuracy(y, p),
    "precision": lambda y, p: float(_per_class(y, p)[0].mean()),
    "recall": lambda y, p: float(_per_class(y, p)[1].mean()),
    "f1": _f1,
    "mae": lambda y, p: float(abs(y.astype(float) - p.astype(float)).mean()),
    "rmse": lambda y, p: float(((y.astype(float) - p.astype(float)) ** 2).mean() ** 0.5),
    "r2": _r2,
}
