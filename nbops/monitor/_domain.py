"""The multivariate check: can a classifier tell reference rows from current rows?

A gradient-boosted classifier is cross-validated on up to ``rows`` sampled rows of each side;
its ROC AUC is about 0.5 when the tables look alike and near 1.0 when they are easy to tell
apart -- which also catches shifts in how columns move together that no per-column test sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: AUC above which the domain classifier counts as having told the tables apart.
DOMAIN_AUC = 0.6
#: Rows sampled from each side for the domain classifier.
DOMAIN_ROWS = 2000
#: The settings ``drift(domain={...})`` and ``monitor: domain:`` accept.
DOMAIN_KEYS = ("auc", "rows")


def domain_settings(value: bool | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``drift(domain=...)`` as ``{"auc": ..., "rows": ...}``, or None when turned off.

    ``True`` (the default) keeps :data:`DOMAIN_AUC` and :data:`DOMAIN_ROWS`; a mapping overrides
    some of them; ``False`` or ``None`` turns the check off.
    """
    from nbops.monitor._errors import DriftInputError

    if value is None or value is False:
        return None
    if value is True:
        return {"auc": DOMAIN_AUC, "rows": DOMAIN_ROWS}
    if not isinstance(value, Mapping):
        raise DriftInputError(
            f"domain must be true, false or a mapping of {', '.join(DOMAIN_KEYS)}, got {value!r}"
        )
    unknown = sorted(str(k) for k in value if k not in DOMAIN_KEYS)
    if unknown:
        raise DriftInputError(
            f"unknown domain setting {', '.join(unknown)}: use {', '.join(DOMAIN_KEYS)}"
        )
    auc, rows = value.get("auc", DOMAIN_AUC), value.get("rows", DOMAIN_ROWS)
    if isinstance(auc, bool) or not isinstance(auc, (int, float)) or not 0.5 <= auc < 1:
        raise DriftInputError(f"domain auc must be a number in [0.5, 1), got {auc!r}")
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 20:
        raise DriftInputError(f"domain rows must be a whole number of at least 20, got {rows!r}")
    return {"auc": float(auc), "rows": rows}


@dataclass(frozen=True)
class DomainCheck:
    """The domain classifier's cross-validated AUC on ``rows`` sampled rows."""

    auc: float
    threshold: float
    rows: int

    @property
    def drifted(self) -> bool:
        return self.auc > self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "auc": self.auc,
            "threshold": self.threshold,
            "rows": self.rows,
            "drifted": self.drifted,
        }


def domain_check(
    reference: Any,
    current: Any,
    columns: list[Any],
    *,
    rows: int = DOMAIN_ROWS,
    threshold: float = DOMAIN_AUC,
    seed: int = 0,
) -> DomainCheck | None:
    """Cross-validated AUC of telling ``current`` from ``reference`` on ``columns``; None when
    either side has fewer than 20 rows.

    Raises:
        MissingDependencyError: scikit-learn is not installed (the ``monitor`` extra has it).
    """
    from nbops.deps import require

    require("sklearn", extra="monitor", feature="the domain classifier of nbops.drift")
    import numpy as np
    import pandas as pd
    from pandas.api import types
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict
    from threadpoolctl import threadpool_limits

    if len(reference) < 20 or len(current) < 20 or not columns:
        return None
    ref = reference[columns].sample(min(rows, len(reference)), random_state=seed)
    cur = current[columns].sample(min(rows, len(current)), random_state=seed)
    both = pd.concat([ref, cur], ignore_index=True)
    encoded = pd.DataFrame(index=both.index)
    for key in columns:
        col = both[key]
        if types.is_bool_dtype(col.dtype) or not types.is_numeric_dtype(col.dtype):
            encoded[str(key)] = pd.Categorical(col.astype(str)).codes.astype(float)
        else:
            encoded[str(key)] = pd.to_numeric(col, errors="coerce").astype(float)
    labels = np.r_[np.zeros(len(ref)), np.ones(len(cur))]
    model = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=15, random_state=seed)
    with threadpool_limits(1):  # a few thousand rows: OpenMP threads only oversubscribe the CPUs
        scores = cross_val_predict(model, encoded, labels, cv=3, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(labels, scores))
    return DomainCheck(auc, threshold, len(labels))
