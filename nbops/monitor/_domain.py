"""The multivariate check: can a classifier tell reference rows from current rows?

A gradient-boosted classifier is cross-validated on up to ``rows`` sampled rows of each side;
its ROC AUC is about 0.5 when the tables look alike and near 1.0 when they are easy to tell
apart -- which also catches shifts in how columns move together that no per-column test sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: AUC above which the domain classifier counts as having told the tables apart.
DOMAIN_AUC = 0.6


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
    rows: int = 2000,
    threshold: float = DOMAIN_AUC,
    seed: int = 0,
) -> DomainCheck | None:
    """Cross-validated AUC of telling ``current`` from ``reference`` on ``columns``; None when
    scikit-learn is not installed or either side has fewer than 20 rows."""
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import cross_val_predict
    except ImportError:
        return None
    import numpy as np
    import pandas as pd
    from pandas.api import types

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
    scores = cross_val_predict(model, encoded, labels, cv=3, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(labels, scores))
    return DomainCheck(auc, threshold, len(labels))
