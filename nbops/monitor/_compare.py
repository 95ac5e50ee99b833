"""Challenger against production on the holdout: improvement, significance, overlap.

Promotion needs evidence: the challenger must beat production by more than ``min_improvement``
and the difference must be significant at ``level`` -- McNemar's exact test on the rows the two
models disagree about for accuracy and error rate, a one-sided paired bootstrap of the metric
difference otherwise. The holdout must not overlap either model's training data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Metrics compared row by row with McNemar's test; the others use the paired bootstrap.
PAIRED_CORRECTNESS = ("accuracy", "error_rate")


@dataclass(frozen=True)
class Comparison:
    """Scores of both models on the holdout and whether the difference is evidence enough."""

    metric: str
    production: float
    challenger: float
    gain: float
    test: str
    p_value: float
    level: float
    min_improvement: float
    rows: int

    @property
    def wins(self) -> bool:
        """The challenger beats production by more than ``min_improvement``, significantly."""
        return self.gain > self.min_improvement and self.p_value < self.level

    def explain(self) -> str:
        """One line: the scores, the gain and the test."""
        return (
            f"{self.metric} {self.challenger:.4g} vs {self.production:.4g} "
            f"(gain {self.gain:+.4g}, needs > {self.min_improvement:g}; {self.test} "
            f"p={self.p_value:.3g}, needs < {self.level:g}; {self.rows} holdout rows)"
        )


def mcnemar_p(production_right: Any, challenger_right: Any) -> float:
    """One-sided exact McNemar p-value that the challenger is right more often."""
    import numpy as np
    from scipy.stats import binomtest

    prod = np.asarray(production_right, dtype=bool)
    chal = np.asarray(challenger_right, dtype=bool)
    only_challenger = int(np.sum(chal & ~prod))
    only_production = int(np.sum(prod & ~chal))
    discordant = only_challenger + only_production
    if discordant == 0:
        return 1.0
    return float(binomtest(only_challenger, discordant, 0.5, alternative="greater").pvalue)


def bootstrap_p(
    labels: Any,
    production: Any,
    challenger: Any,
    metric: Callable[[Any, Any], float],
    higher: bool,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> float:
    """One-sided paired bootstrap p-value: the share of resamples where the challenger is not
    better than production."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y, p, c = (np.asarray(a) for a in (labels, production, challenger))
    n = len(y)
    worse = 0
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        diff = metric(y[idx], c[idx]) - metric(y[idx], p[idx])
        if (diff if higher else -diff) <= 0:
            worse += 1
    return (worse + 1) / (resamples + 1)


def compare(
    labels: Any,
    production: Any,
    challenger: Any,
    *,
    metric_name: str,
    metric: Callable[[Any, Any], float],
    higher: bool,
    min_improvement: float,
    level: float,
    test: str = "auto",
) -> Comparison:
    """Score both models' predictions and test the difference."""
    import numpy as np

    y, p, c = (np.asarray(a) for a in (labels, production, challenger))
    old, new = float(metric(y, p)), float(metric(y, c))
    chosen = (
        test
        if test != "auto"
        else ("mcnemar" if metric_name in PAIRED_CORRECTNESS else "bootstrap")
    )
    if chosen == "mcnemar":
        p_value = mcnemar_p(p == y, c == y)
    else:
        p_value = bootstrap_p(y, p, c, metric, higher)
    return Comparison(
        metric=metric_name,
        production=old,
        challenger=new,
        gain=(new - old) if higher else (old - new),
        test=chosen,
        p_value=p_value,
        level=level,
        min_improvement=min_improvement,
        rows=len(y),
    )


def overlap(holdout: Any, training: Any) -> int:
    """How many holdout rows also appear (all shared columns equal) in ``training``."""
    import pandas as pd

    shared = [c for c in holdout.columns if c in training.columns]
    if not shared or training.empty or holdout.empty:
        return 0
    rows = holdout[shared]
    try:
        rows = rows.astype(training[shared].dtypes.to_dict())
    except (TypeError, ValueError):
        pass  # incompatible types: rows that cannot be cast cannot be equal either
    left = pd.util.hash_pandas_object(rows, index=False)
    right = set(pd.util.hash_pandas_object(training[shared], index=False).tolist())
    return int(left.isin(right).sum())
