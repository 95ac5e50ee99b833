"""``nbops.drift``: check the inputs, compare each column, and give verdicts."""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbops.monitor._domain import domain_check, domain_settings
from nbops.monitor._errors import DriftInputError, DriftWarning
from nbops.monitor._report import ColumnDrift, DriftReport, DriftThresholds, Overlay
from nbops.monitor._roles import check_list_values, declared, infer, small_sample_warnings

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

NUMERIC = "numeric"
CATEGORICAL = "categorical"


@dataclass(frozen=True)
class _Column:
    """One column of both frames, checked and ready to compare."""

    key: Any
    name: str
    kind: str
    reference: pd.Series
    current: pd.Series


def drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Iterable[Any] | None = None,
    thresholds: DriftThresholds | Mapping[str, float] | None = None,
    *,
    roles: Mapping[str, Any] | None = None,
    domain: bool | Mapping[str, Any] = True,
) -> DriftReport:
    """Compare ``current`` with ``reference`` column by column.

    Numeric columns get the two-sample Kolmogorov-Smirnov test, the PSI on reference-decile bins
    and the Wasserstein distance divided by the reference standard deviation; categorical columns
    (object, string, category, bool) the chi-square test of homogeneity (categories absent from
    the reference pooled in one "unseen" bucket), the PSI and the total variation distance. Missing
    values (NaN, None, NaT; also +/-inf in numeric columns) are left out of those and their rates
    compared with a two-proportion test. A verdict always needs a significant test *and* a large
    enough effect (see :class:`DriftThresholds`), so huge samples do not flag trivial differences.

    Args:
        reference: The baseline table (e.g. the training data).
        current: The table to check.
        columns: Columns to compare (default: all; both frames must then have the same columns).
        thresholds: A :class:`DriftThresholds` or a dict overriding some of its fields.
        roles: ``{"id": ..., "datetime": ..., "target": ..., "prediction": ...}`` (a column or a
            list each). With ``columns=None``, datetime columns and unique ID-named columns are
            inferred as such; IDs and timestamps are left out, target and prediction compared
            but kept out of the share (``report.target_drift``, ``report.prediction_drift``).
        domain: The multivariate check, on by default: a classifier (scikit-learn) trained to
            tell reference from current rows on a sample of each side, its cross-validated AUC
            reported beside the per-column tests (``report.domain``; drifted above ``auc``).
            ``{"auc": 0.6, "rows": 2000}`` changes its threshold or sample size; ``False``
            turns it off. It does not change the dataset verdict, which is the columns' share.

    Returns:
        A :class:`DriftReport`; ``report.drifted`` is the dataset-level verdict.

    Raises:
        DriftInputError: Not DataFrames, empty frames, mismatched or unknown columns, a column
            with no values, a column whose type is numeric in one frame and categorical in the
            other, or an unsupported dtype (datetime, timedelta, complex).
    """
    import pandas as pd

    start = time.perf_counter()
    limits = DriftThresholds.coerce(thresholds)
    settings = domain_settings(domain)
    given = declared(roles)
    is_frame = (
        isinstance(reference, pd.DataFrame)
        and isinstance(current, pd.DataFrame)
        and not reference.columns.has_duplicates
        and not current.columns.has_duplicates
    )
    found_roles = infer(reference, given) if columns is None and is_frame else given
    if columns is None and is_frame:
        skipped = {n for n, r in found_roles.items() if r in ("id", "datetime")}
        _same_columns(reference, current)
        columns = [c for c in reference.columns if str(c) not in skipped]
    plan = _plan(reference, current, columns)
    for label, frame in (("reference", reference), ("current", current)):
        check_list_values(frame, label, [col.key for col in plan])
    notes = small_sample_warnings(len(reference), len(current))
    for note in notes:
        warnings.warn(note, DriftWarning, stacklevel=2)
    workers = max(1, min(len(plan), os.cpu_count() or 1, 8))
    if workers == 1:
        results = [_compare(col, limits) for col in plan]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nbops-drift") as pool:
            results = list(pool.map(lambda col: _compare(col, limits), plan))
    features = [c.key for c in plan if found_roles.get(c.name) not in ("target", "prediction")]
    check = None
    if settings is not None:
        check = domain_check(
            reference, current, features, rows=settings["rows"], threshold=settings["auc"]
        )
    report = DriftReport(
        columns={r.name: r for r in results},
        thresholds=limits,
        n_reference=len(reference),
        n_current=len(current),
        seconds=time.perf_counter() - start,
        roles={k: v for k, v in found_roles.items()},
        warnings=tuple(notes),
        domain=check.to_dict() if check else None,
    )
    logger.info("%r in %.2f s", report, report.seconds)
    return report


def _plan(reference: Any, current: Any, columns: Iterable[Any] | None) -> list[_Column]:
    """Validate the inputs; return the columns to compare with their kinds."""
    import pandas as pd

    for label, frame in (("reference", reference), ("current", current)):
        if not isinstance(frame, pd.DataFrame):
            raise DriftInputError(
                f"{label} must be a pandas DataFrame, got {type(frame).__name__}; "
                "wrap arrays with pandas.DataFrame(...)"
            )
        if frame.columns.has_duplicates:
            dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
            raise DriftInputError(f"{label} has duplicate column names: {', '.join(dupes)}")
        if len(frame) == 0 or len(frame.columns) == 0:
            raise DriftInputError(
                f"the {label} data is empty ({len(frame)} rows x {len(frame.columns)} columns); "
                "drift needs rows in both tables"
            )
    if columns is None:
        _same_columns(reference, current)
        keys = list(reference.columns)
    else:
        keys = [columns] if isinstance(columns, str) else list(dict.fromkeys(columns))
        if not keys:
            raise DriftInputError("columns is empty; pass None to compare every column")
        for label, frame in (("reference", reference), ("current", current)):
            missing = [c for c in keys if c not in frame.columns]
            if missing:
                raise DriftInputError(
                    f"unknown column(s) {_names(missing)} in the {label} data; "
                    f"it has: {_names(list(frame.columns))}"
                )
    plan = []
    for key in keys:
        ref, cur = reference[key], current[key]
        name = str(key)
        ref_kind, cur_kind = _kind(ref), _kind(cur)
        if ref_kind != cur_kind:  # an all-missing column often gets another dtype: say so
            for label, series in (("reference", ref), ("current", cur)):
                _require_values(name, label, int(series.notna().sum()), len(series))
        for label, series, kind in (("reference", ref, ref_kind), ("current", cur, cur_kind)):
            if kind not in (NUMERIC, CATEGORICAL):
                raise DriftInputError(
                    f"column {name!r} has dtype {series.dtype} in the {label} data, which drift "
                    "cannot compare; convert it to numbers (e.g. seconds) or leave it out "
                    "with columns=[...]"
                )
        if ref_kind != cur_kind:
            raise DriftInputError(
                f"column {name!r} changed type: {ref_kind} ({ref.dtype}) in the reference, "
                f"{cur_kind} ({cur.dtype}) in the current data; convert one side "
                "(e.g. pandas.to_numeric(..., errors='coerce')) or leave it out with columns=[...]"
            )
        plan.append(_Column(key, name, ref_kind, ref, cur))
    return plan


def _same_columns(reference: Any, current: Any) -> None:
    only_ref = [c for c in reference.columns if c not in current.columns]
    only_cur = [c for c in current.columns if c not in reference.columns]
    if only_ref or only_cur:
        parts = []
        if only_ref:
            parts.append(f"only in reference: {_names(only_ref)}")
        if only_cur:
            parts.append(f"only in current: {_names(only_cur)}")
        raise DriftInputError(
            f"the two tables have different columns ({'; '.join(parts)}); "
            "pass columns=[...] to compare the shared ones"
        )


def _require_values(name: str, label: str, present: int, total: int) -> None:
    if present == 0:
        raise DriftInputError(
            f"column {name!r} has no values in the {label} data (all {total} missing); "
            "fix the data or leave the column out with columns=[...]"
        )


def _names(keys: list[Any], limit: int = 10) -> str:
    shown = ", ".join(repr(str(k)) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _kind(series: pd.Series) -> str:
    from pandas.api import types

    dtype = series.dtype
    if types.is_bool_dtype(dtype):
        return CATEGORICAL
    if types.is_complex_dtype(dtype):
        return "unsupported"
    if types.is_numeric_dtype(dtype):
        return NUMERIC
    if isinstance(dtype, types.CategoricalDtype) or types.is_string_dtype(dtype):
        return CATEGORICAL
    if types.is_object_dtype(dtype):
        return CATEGORICAL
    return "unsupported"


def _compare(col: _Column, limits: DriftThresholds) -> ColumnDrift:
    if col.kind == NUMERIC:
        return _compare_numeric(col, limits)
    return _compare_categorical(col, limits)


def _missing(n_ref_missing: int, n_ref: int, n_cur_missing: int, n_cur: int) -> tuple[float, ...]:
    from nbops.monitor._stats import two_proportion_p

    return (
        n_ref_missing / n_ref,
        n_cur_missing / n_cur,
        two_proportion_p(n_ref_missing, n_ref, n_cur_missing, n_cur),
    )


def _verdict(
    p_value: float,
    material: bool,
    missing: tuple[float, ...],
    limits: DriftThresholds,
    new_share: float = 0.0,
) -> tuple[str, ...]:
    reasons = []
    if p_value < limits.alpha and material:
        reasons.append("distribution")
    miss_ref, miss_cur, miss_p = missing
    if miss_p < limits.alpha and abs(miss_cur - miss_ref) > limits.missing:
        reasons.append("missing rate")
    if p_value < limits.alpha and new_share > limits.new_category:
        reasons.append("new categories")
    return tuple(reasons)


def _compare_numeric(col: _Column, limits: DriftThresholds) -> ColumnDrift:
    import numpy as np

    from nbops.monitor import _stats

    ref = col.reference.to_numpy(dtype=np.float64, na_value=np.nan)
    cur = col.current.to_numpy(dtype=np.float64, na_value=np.nan)
    ref_ok, cur_ok = np.isfinite(ref), np.isfinite(cur)
    ref_values = ref if ref_ok.all() else ref[ref_ok]
    cur_values = cur if cur_ok.all() else cur[cur_ok]
    for label, values, raw in (("reference", ref_values, ref), ("current", cur_values, cur)):
        _require_values(col.name, label, int(np.count_nonzero(~np.isnan(raw))), raw.size)
        if values.size == 0:
            raise DriftInputError(
                f"column {col.name!r} has no finite values in the {label} data (only +/-inf); "
                "fix the data or leave the column out with columns=[...]"
            )
    missing = _missing(ref.size - ref_values.size, ref.size, cur.size - cur_values.size, cur.size)
    s = _stats.numeric(ref_values, cur_values, limits.bins)
    material = s.psi > limits.psi or s.wasserstein > limits.wasserstein
    reasons = _verdict(s.p_value, material, missing, limits)
    return ColumnDrift(
        name=col.name,
        kind=NUMERIC,
        drifted=bool(reasons),
        reasons=reasons,
        test="ks",
        statistic=s.ks,
        p_value=s.p_value,
        psi=s.psi,
        wasserstein=s.wasserstein,
        tvd=None,
        missing_reference=missing[0],
        missing_current=missing[1],
        missing_p_value=missing[2],
        n_reference=int(ref_values.size),
        n_current=int(cur_values.size),
        overlay=Overlay(reference=s.reference, current=s.current, edges=s.edges),
    )


def _compare_categorical(col: _Column, limits: DriftThresholds) -> ColumnDrift:
    import numpy as np
    import pandas as pd

    from nbops.monitor import _stats

    ref_codes, ref_uniques = pd.factorize(col.reference, use_na_sentinel=True)
    cur_codes, cur_uniques = pd.factorize(col.current, use_na_sentinel=True)
    # Counts per category; index 0 holds the missing values (code -1).
    ref_all = np.bincount(ref_codes + 1, minlength=len(ref_uniques) + 1)
    cur_all = np.bincount(cur_codes + 1, minlength=len(cur_uniques) + 1)
    _require_values(col.name, "reference", len(ref_codes) - int(ref_all[0]), len(ref_codes))
    _require_values(col.name, "current", len(cur_codes) - int(cur_all[0]), len(cur_codes))
    ref_index = pd.Index(np.asarray(ref_uniques, dtype=object), dtype=object)
    cur_values = np.asarray(cur_uniques, dtype=object)
    position = ref_index.get_indexer(pd.Index(cur_values, dtype=object))
    seen = position >= 0
    cur_counts = np.zeros(len(ref_uniques), dtype=np.int64)
    cur_counts[position[seen]] = cur_all[1:][seen]
    new_counts = cur_all[1:][~seen]
    s = _stats.categorical(
        ref_counts=ref_all[1:],
        ref_labels=[str(v) for v in ref_index],
        cur_counts=cur_counts,
        new_counts=new_counts,
        new_labels=[str(v) for v in cur_values[~seen]],
    )
    missing = _missing(int(ref_all[0]), len(ref_codes), int(cur_all[0]), len(cur_codes))
    material = s.psi > limits.psi or s.tvd > limits.tvd
    reasons = _verdict(s.p_value, material, missing, limits, s.new_share)
    return ColumnDrift(
        name=col.name,
        kind=CATEGORICAL,
        drifted=bool(reasons),
        reasons=reasons,
        test="chi2",
        statistic=s.chi2,
        p_value=s.p_value,
        psi=s.psi,
        wasserstein=None,
        tvd=s.tvd,
        missing_reference=missing[0],
        missing_current=missing[1],
        missing_p_value=missing[2],
        n_reference=int(len(ref_codes) - ref_all[0]),
        n_current=int(len(cur_codes) - cur_all[0]),
        new_categories=s.new_categories,
        new_share=s.new_share,
        overlay=Overlay(reference=s.reference, current=s.current, labels=s.labels),
    )
