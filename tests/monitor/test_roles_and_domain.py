"""Column roles, small samples, list-valued and missing columns, and the domain classifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nbops
from nbops.monitor import DriftInputError, DriftReport, DriftWarning


def _frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": np.arange(seed * 100_000, seed * 100_000 + n),
            "at": pd.date_range("2026-01-01", periods=n, freq="min") + pd.Timedelta(days=seed),
            "x": rng.normal(shift, 1, n),
            "y": rng.normal(0, 1, n),
            "target": rng.integers(0, 2, n),
        }
    )


def test_ids_and_timestamps_are_left_out_and_target_is_reported_apart() -> None:
    ref, cur = _frame(3000, 1), _frame(3000, 2)
    cur["target"] = 1  # the label distribution moved; the features did not
    report = nbops.drift(ref, cur, roles={"target": "target"}, domain=False)
    assert report.excluded == ["user_id", "at"] or sorted(report.excluded) == ["at", "user_id"]
    assert "user_id" not in report.columns and "at" not in report.columns
    assert report.target_drift is not None and report.target_drift.drifted
    assert not report.drifted and report.features == ["x", "y"]
    again = DriftReport.from_json(report.to_json())
    assert again.roles == report.roles and again.target_drift is not None


def test_small_samples_warn() -> None:
    with pytest.warns(DriftWarning, match="only 12 rows"):
        report = nbops.drift(_frame(12, 1), _frame(500, 2), domain=False)
    assert report.warnings and "only 12 rows" in report.warnings[0]


def test_list_valued_and_missing_columns_are_clear_errors() -> None:
    ref, cur = _frame(100, 1), _frame(100, 2)
    ref["tags"] = [["a", "b"]] * 100
    cur["tags"] = [["a"]] * 100
    with pytest.raises(DriftInputError, match=r"column 'tags' in the reference data holds list"):
        nbops.drift(ref, cur, domain=False)
    with pytest.raises(DriftInputError, match=r"only in reference: 'tags'"):
        nbops.drift(ref, cur.drop(columns="tags"), domain=False)


def test_the_domain_classifier_sees_a_joint_shift_the_columns_do_not() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    a = rng.normal(size=n)
    ref = pd.DataFrame({"a": a, "b": a + rng.normal(scale=0.1, size=n)})
    c = rng.normal(size=n)
    cur = pd.DataFrame({"a": c, "b": -c + rng.normal(scale=0.1, size=n)})  # same marginals
    report = nbops.drift(ref, cur, domain=True)
    assert not report.drifted  # no single column moved
    assert report.domain is not None and report.domain["auc"] > 0.9 and report.domain["drifted"]
    calm = nbops.drift(
        ref, ref.sample(frac=1.0, random_state=1).reset_index(drop=True), domain=True
    )
    assert calm.domain is not None and calm.domain["auc"] < 0.6


def test_the_html_report_shows_roles_domain_and_warnings() -> None:
    ref, cur = _frame(3000, 1), _frame(3000, 2, shift=1.0)
    ref["note"] = "<script>x</script>"
    cur["note"] = "<script>x</script>"
    page = nbops.drift(ref, cur, roles={"target": "target"}, domain=True).to_html()
    assert "Left out (IDs, timestamps): user_id, at." in page
    assert "Target target did not drift." in page
    assert "Domain classifier: a model can tell current from reference rows" in page
    assert "<script>x</script>" not in page


def test_the_domain_classifier_is_reported_by_default_and_configurable() -> None:
    ref, cur = _frame(3000, 1), _frame(3000, 2, shift=1.0)
    report = nbops.drift(ref, cur)  # issue 13: reported beside the per-column tests
    assert report.domain is not None and report.domain["drifted"]
    assert report.domain["threshold"] == 0.6 and report.domain["rows"] == 4000
    assert DriftReport.from_json(report.to_json()).domain == report.domain
    tuned = nbops.drift(ref, cur, domain={"auc": 0.99, "rows": 100})
    assert tuned.domain is not None and tuned.domain["threshold"] == 0.99
    assert tuned.domain["rows"] == 200
    assert nbops.drift(ref, cur, domain=False).domain is None
    for bad, match in (
        ({"auc": 0.3}, "auc must be a number in"),
        ({"rows": 5}, "rows must be a whole number"),
        ({"trees": 3}, "unknown domain setting trees"),
        ("yes", "domain must be true, false or a mapping"),
    ):
        with pytest.raises(DriftInputError, match=match):
            nbops.drift(ref, cur, domain=bad)  # type: ignore[arg-type]


def test_monitor_config_turns_the_domain_classifier_off_or_tunes_it(tmp_path: Path) -> None:
    import yaml

    from nbops.monitor import MonitorConfig, MonitorConfigError, load_monitor_config

    for name in ("current.csv", "holdout.csv"):
        (tmp_path / name).write_text("x\n1\n")
    section = {"model": "m", "current": "current.csv", "holdout": "holdout.csv", "target": "t"}

    def load(**extra: object) -> MonitorConfig:
        (tmp_path / "nbops.yaml").write_text(yaml.safe_dump({"monitor": {**section, **extra}}))
        return load_monitor_config(tmp_path)

    assert load().domain == {"auc": 0.6, "rows": 2000}
    assert load(domain=False).domain is None
    assert load(domain={"auc": 0.7}).domain == {"auc": 0.7, "rows": 2000}
    with pytest.raises(MonitorConfigError, match="domain auc must be"):
        load(domain={"auc": 2})
