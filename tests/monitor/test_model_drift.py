"""``nbops.model_drift``: a metric per time window against the production model's value."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import nbops
from nbops.monitor import DriftInputError


def predictions(errors_per_week: list[float], per_week: int = 200, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    labels, preds, when = [], [], []
    start = pd.Timestamp("2024-01-01")
    for week, error in enumerate(errors_per_week):
        y = rng.integers(0, 3, per_week)
        wrong = rng.random(per_week) < error
        p = np.where(wrong, (y + 1) % 3, y)
        labels.append(y)
        preds.append(p)
        when.append(
            start + pd.Timedelta(days=7 * week) + pd.to_timedelta(rng.random(per_week) * 6.9, "D")
        )
    return np.concatenate(preds), np.concatenate(labels), np.concatenate(when)


def test_degraded_window_is_found() -> None:
    preds, labels, when = predictions([0.05, 0.07, 0.2])
    report = nbops.model_drift(
        preds, labels, when, window="7D", metric="accuracy", reference={"accuracy": 0.93}
    )
    assert [w.status for w in report.windows] == ["ok", "ok", "degraded"]
    assert report.drifted and report.latest is report.windows[-1]
    assert report.windows[2].value == pytest.approx(0.8, abs=0.06)
    assert report.windows[0].n == 200 and report.windows[0].start.startswith("2024-01-01")
    data = json.loads(report.to_json())
    assert data["drifted"] is True and len(data["windows"]) == 3
    assert "degraded" in report._repr_html_()


def test_healthy_model_and_lower_is_better_metrics() -> None:
    preds, labels, when = predictions([0.05, 0.06])
    ok = nbops.model_drift(preds, labels, when, metric="error_rate", reference={"error_rate": 0.05})
    assert not ok.drifted
    f1 = nbops.model_drift(preds, labels, when, metric="f1", reference={"f1": 0.95})
    assert not f1.drifted and all(0.9 < w.value < 1 for w in f1.windows)
    rng = np.random.default_rng(1)
    y = rng.normal(size=400)
    t = pd.date_range("2024-01-01", periods=400, freq="h")
    noisy = y + rng.normal(0, np.where(np.arange(400) < 200, 0.1, 0.5))
    rmse = nbops.model_drift(noisy, y, t, window="2D", metric="rmse", reference={"rmse": 0.1})
    degraded = [w.start[:10] for w in rmse.degraded_windows]
    assert degraded and min(degraded) == "2024-01-09"  # row 200 is on day 9


def test_unlabelled_rows_and_small_windows() -> None:
    preds, labels, when = predictions([0.05, 0.05], per_week=40)
    labels = labels.astype(float)
    labels[:30] = np.nan  # labels not yet arrived for most of week one
    report = nbops.model_drift(preds, labels, when, reference={"accuracy": 0.95}, min_samples=30)
    first, second = report.windows
    assert first.status == "too few rows" and first.value is None and first.unlabelled == 30
    assert second.status == "ok"


def test_custom_metric_needs_a_direction() -> None:
    preds, labels, when = predictions([0.05])

    def hits(y: np.ndarray, p: np.ndarray) -> float:
        return float((y == p).sum())

    with pytest.raises(DriftInputError, match="higher_is_better"):
        nbops.model_drift(preds, labels, when, metric=hits, reference={"hits": 190})
    report = nbops.model_drift(
        preds,
        labels,
        when,
        metric=hits,
        reference={"hits": 190},
        higher_is_better=True,
        tolerance=20,
    )
    assert report.metric == "hits" and not report.drifted


def test_bad_input() -> None:
    preds, labels, when = predictions([0.05])
    with pytest.raises(DriftInputError, match="reference has no value for metric 'accuracy'"):
        nbops.model_drift(preds, labels, when, reference={"f1": 0.9})
    with pytest.raises(DriftInputError, match="unknown metric 'auc'"):
        nbops.model_drift(preds, labels, when, metric="auc", reference={"auc": 0.9})
    with pytest.raises(DriftInputError, match="one entry per row"):
        nbops.model_drift(preds[:-1], labels, when, reference={"accuracy": 0.9})
    with pytest.raises(DriftInputError, match="no predictions"):
        nbops.model_drift([], [], [], reference={"accuracy": 0.9})
    with pytest.raises(DriftInputError, match="not a pandas offset"):
        nbops.model_drift(preds, labels, when, window="fortnight", reference={"accuracy": 0.9})
    with pytest.raises(DriftInputError, match="cannot read timestamps"):
        nbops.model_drift([1], [1], ["not a date"], reference={"accuracy": 0.9})
