"""Drift statistics on numpy arrays: one sort per sample, then searches on the sorted arrays.

Imported only from inside :func:`nbops.drift`, so numpy and scipy load on first use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from nbops.deps import require

stats = require("scipy.stats", feature="nbops.drift")
logger = logging.getLogger(__name__)

#: Floor for a bin's or a category's share in the PSI (an empty bin would make it infinite).
PSI_EPS = 1e-4
#: Bars in the numeric distribution overlay.
PLOT_BINS = 24
#: Categories drawn individually in the categorical overlay; the rest are grouped as (other).
PLOT_CATEGORIES = 12
#: New categories listed by name in a report.
LISTED_NEW = 20


@dataclass(frozen=True)
class NumericStats:
    """KS test, PSI, normalised Wasserstein and plot data for one numeric column."""

    ks: float
    p_value: float
    psi: float
    wasserstein: float
    edges: tuple[float, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]


@dataclass(frozen=True)
class CategoricalStats:
    """Chi-square test, PSI, total variation distance, new categories and plot data."""

    chi2: float
    p_value: float
    psi: float
    tvd: float
    new_share: float
    new_categories: tuple[str, ...]
    labels: tuple[str, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]


def psi(p: NDArray[np.float64], q: NDArray[np.float64]) -> float:
    """Population stability index between reference shares ``p`` and current shares ``q``."""
    p = np.maximum(p, PSI_EPS)
    q = np.maximum(q, PSI_EPS)
    return float(np.sum((q - p) * np.log(q / p)))


def two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value that ``k1/n1`` and ``k2/n2`` come from one proportion (z-test)."""
    pooled = (k1 + k2) / (n1 + n2)
    if pooled <= 0.0 or pooled >= 1.0:
        return 1.0
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = abs(k1 / n1 - k2 / n2) / se
    return float(2 * stats.norm.sf(z))


def ks_p_value(a: NDArray[np.float64], b: NDArray[np.float64], d: float) -> float:
    """Two-sided p-value of the two-sample KS statistic ``d``: exact for small samples (as
    scipy's ``ks_2samp``), else scipy's asymptotic method."""
    n, m = a.size, b.size
    if n * m <= 10_000:
        return float(stats.ks_2samp(a, b, method="exact").pvalue)
    en = n * m / (n + m)
    return float(min(1.0, max(0.0, stats.kstwo.sf(d, max(1, round(en))))))


def numeric(
    reference: NDArray[np.float64], current: NDArray[np.float64], bins: int
) -> NumericStats:
    """Compare two samples without missing values.

    Both samples are sorted once; KS and Wasserstein come from the two empirical CDFs evaluated
    on the merged sample, the PSI from reference-quantile bins found by binary search.
    """
    a = np.sort(reference)
    b = np.sort(current)
    n, m = a.size, b.size
    # Two sorted runs: the stable sort (timsort) merges them in linear time, reference first
    # among equal values. After position i, i+1 values are merged, ``from_a`` of them from a.
    both = np.concatenate([a, b])
    order = np.argsort(both, kind="stable")
    merged = both[order]
    from_a = np.cumsum(order < n)
    # n*m*(F_a - F_b) = from_a*m - (i+1-from_a)*n, kept in integers.
    gap = np.abs(from_a * (n + m) - np.arange(1, n + m + 1) * n)
    # The ECDFs are only defined after the last of equal values.
    last = np.empty(n + m, dtype=bool)
    np.not_equal(merged[:-1], merged[1:], out=last[:-1])
    last[-1] = True
    scale = float(n) * float(m)
    d = float(gap[last].max()) / scale
    w = float(np.dot(gap[:-1], np.diff(merged))) / scale
    std = float(a.std())
    norm = std if std > 0 else (float(b.std()) or 1.0)

    cut = np.unique(a[(np.arange(1, bins) * n) // bins])
    ref_counts = np.diff(np.concatenate([[0], np.searchsorted(a, cut, "right"), [n]]))
    cur_counts = np.diff(np.concatenate([[0], np.searchsorted(b, cut, "right"), [m]]))
    index = psi(ref_counts / n, cur_counts / m)

    lo = min(a[int(0.005 * (n - 1))], b[int(0.005 * (m - 1))])
    hi = max(a[int(0.995 * (n - 1))], b[int(0.995 * (m - 1))])
    if hi - lo <= 2 * PLOT_BINS and _integral(a) and _integral(b):
        edges = np.arange(lo - 0.5, hi + 1.0)  # one bar per integer value
    elif hi > lo:
        edges = np.linspace(lo, hi, PLOT_BINS + 1)
    else:
        edges = np.array([lo - 0.5, lo + 0.5])
    return NumericStats(
        ks=d,
        p_value=ks_p_value(a, b, d),
        psi=index,
        wasserstein=w / norm,
        edges=tuple(float(e) for e in edges),
        reference=_histogram(a, edges),
        current=_histogram(b, edges),
    )


def _integral(values: NDArray[np.float64]) -> bool:
    """Whether every value is a whole number (counts, ratings, flags)."""
    return bool(np.all(np.mod(values, 1.0) == 0))


def _histogram(sorted_values: NDArray[np.float64], edges: NDArray[np.float64]) -> tuple[float, ...]:
    """Share of all values in each ``[edge, next edge)`` bin (last bin closed)."""
    pos = np.searchsorted(sorted_values, edges, "left")
    pos[-1] = np.searchsorted(sorted_values, edges[-1], "right")
    return tuple(float(c) for c in np.diff(pos) / sorted_values.size)


def categorical(
    ref_counts: NDArray[np.int64],
    ref_labels: list[str],
    cur_counts: NDArray[np.int64],
    new_counts: NDArray[np.int64],
    new_labels: list[str],
) -> CategoricalStats:
    """Compare category counts.

    Args:
        ref_counts: Count of each reference category.
        ref_labels: Their names.
        cur_counts: Current count of each reference category (same order).
        new_counts: Counts of the current categories the reference does not have.
        new_labels: Their names.
    """
    unseen = int(new_counts.sum())
    r = ref_counts.astype(np.float64)
    c = cur_counts.astype(np.float64)
    if unseen:  # one "unseen" bucket, empty in the reference
        r = np.append(r, 0.0)
        c = np.append(c, float(unseen))
    n, m = r.sum(), c.sum()
    totals = r + c
    keep = totals > 0
    r, c, totals = r[keep], c[keep], totals[keep]
    expected_r = totals * (n / (n + m))
    expected_c = totals * (m / (n + m))
    chi2 = float(np.sum((r - expected_r) ** 2 / expected_r + (c - expected_c) ** 2 / expected_c))
    dof = r.size - 1
    p_value = float(stats.chi2.sf(chi2, dof)) if dof > 0 else 1.0
    p, q = r / n, c / m

    order = np.argsort(-np.maximum(ref_counts / n, cur_counts / m), kind="stable")
    top = order[:PLOT_CATEGORIES]
    labels = [ref_labels[i] for i in top]
    ref_share = [float(ref_counts[i] / n) for i in top]
    cur_share = [float(cur_counts[i] / m) for i in top]
    if order.size > PLOT_CATEGORIES:
        rest = order[PLOT_CATEGORIES:]
        labels.append("(other)")
        ref_share.append(float(ref_counts[rest].sum() / n))
        cur_share.append(float(cur_counts[rest].sum() / m))
    if unseen:
        labels.append("(new)")
        ref_share.append(0.0)
        cur_share.append(unseen / m)
    listed = np.argsort(-new_counts, kind="stable")[:LISTED_NEW]
    return CategoricalStats(
        chi2=chi2,
        p_value=p_value,
        psi=psi(p, q),
        tvd=float(0.5 * np.abs(p - q).sum()),
        new_share=unseen / m,
        new_categories=tuple(new_labels[i] for i in listed),
        labels=tuple(labels),
        reference=tuple(ref_share),
        current=tuple(cur_share),
    )
