"""``nbops.drift``: seeded shifts are found, same-distribution samples raise no alarm."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import nbops
from nbops.monitor import DriftThresholds

CATS = np.array(["a", "b", "c", "d", "e"], dtype=object)
P = [0.3, 0.25, 0.2, 0.15, 0.1]


def frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Mixed columns: normal, skewed, integer counts, 5% missing, categories, flags."""
    with_gaps = rng.normal(0, 1, n)
    with_gaps[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "normal": rng.normal(5, 2, n),
            "skewed": rng.exponential(1, n),
            "counts": rng.poisson(3, n),
            "gaps": with_gaps,
            "cat": CATS[rng.choice(5, n, p=P)],
            "flag": rng.random(n) < 0.3,
        }
    )


@pytest.mark.parametrize(("n", "seeds"), [(1_000, 60), (10_000, 60), (100_000, 50)])
def test_same_distribution_raises_no_alarm(n: int, seeds: int) -> None:
    flagged = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        report = nbops.drift(frame(rng, n), frame(rng, n), domain=False)  # columns only
        assert not report.drifted, (seed, report)
        flagged += [(seed, name) for name in report.drifted_columns]
    tests = seeds * 6
    if n >= 100_000:  # effect sizes are then far below the thresholds
        assert flagged == []
    else:  # small samples: only the significance level (alpha = 0.001) bounds column flags
        assert len(flagged) <= 0.01 * tests, flagged


@pytest.mark.slow
def test_same_distribution_at_a_million_rows_across_50_seeds() -> None:
    n = 1_000_000
    rng = np.random.default_rng(12345)
    reference = pd.DataFrame(
        {"x": rng.normal(0, 1, n), "y": rng.exponential(1, n), "c": CATS[rng.choice(5, n, p=P)]}
    )
    for seed in range(50):
        rng = np.random.default_rng(seed)
        current = pd.DataFrame(
            {
                "x": rng.normal(0, 1, n),
                "y": rng.exponential(1, n),
                "c": CATS[rng.choice(5, n, p=P)],
            }
        )
        report = nbops.drift(reference, current, domain=False)  # columns only
        assert report.drifted_columns == [], (seed, report.to_dict()["columns"])


def test_statistics_match_scipy() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 5_000), rng.normal(0.2, 1.3, 7_000)
    col = nbops.drift(pd.DataFrame({"x": a}), pd.DataFrame({"x": b})).columns["x"]
    ks = stats.ks_2samp(a, b, method="asymp")
    assert col.statistic == pytest.approx(ks.statistic, abs=1e-12)
    assert col.p_value == pytest.approx(ks.pvalue, rel=1e-6)
    assert col.wasserstein == pytest.approx(stats.wasserstein_distance(a, b) / a.std(), rel=1e-9)
    ia, ib = rng.poisson(3, 6_000).astype(float), rng.poisson(3.2, 5_000).astype(float)
    ties = nbops.drift(pd.DataFrame({"k": ia}), pd.DataFrame({"k": ib})).columns["k"]
    assert ties.statistic == pytest.approx(stats.ks_2samp(ia, ib).statistic, abs=1e-12)
    assert ties.wasserstein == pytest.approx(stats.wasserstein_distance(ia, ib) / ia.std())
    x = CATS[rng.choice(5, 4_000, p=P)]
    y = CATS[rng.choice(5, 3_000, p=[0.2, 0.25, 0.2, 0.2, 0.15])]
    cat = nbops.drift(pd.DataFrame({"c": x}), pd.DataFrame({"c": y})).columns["c"]
    table = pd.crosstab(np.r_[np.zeros(x.size), np.ones(y.size)], np.r_[x, y]).to_numpy()
    chi2 = stats.chi2_contingency(table, correction=False)
    assert cat.statistic == pytest.approx(chi2.statistic, rel=1e-9)
    assert cat.p_value == pytest.approx(chi2.pvalue, rel=1e-6)


def shifted(change: str, n: int = 100_000, seed: int = 7) -> nbops.DriftReport:
    rng = np.random.default_rng(seed)
    ref, cur = frame(rng, n), frame(rng, n)
    if change == "mean":
        cur["normal"] += 0.1 * 2  # +0.1 standard deviation
    elif change == "variance":
        cur["skewed"] = rng.exponential(1, n) * 1.25
    elif change == "new category":
        cur.loc[rng.random(n) < 0.03, "cat"] = "brand-new"
    elif change == "frequency":
        cur["cat"] = CATS[rng.choice(5, n, p=[0.35, 0.2, 0.2, 0.15, 0.1])]
    elif change == "missing":
        cur.loc[rng.random(n) < 0.05, "counts"] = np.nan
    return nbops.drift(ref, cur)


@pytest.mark.parametrize(
    ("change", "column", "reason"),
    [
        ("mean", "normal", "distribution"),
        ("variance", "skewed", "distribution"),
        ("new category", "cat", "new categories"),
        ("frequency", "cat", "distribution"),
        ("missing", "counts", "missing rate"),
    ],
)
def test_seeded_shift_is_detected_and_only_there(change: str, column: str, reason: str) -> None:
    for seed in range(3):
        report = shifted(change, seed=seed)
        assert report.drifted_columns == [column], report
        assert reason in report.columns[column].reasons


def test_new_category_is_reported_by_name() -> None:
    col = shifted("new category").columns["cat"]
    assert col.new_categories == ("brand-new",)
    assert col.new_share == pytest.approx(0.03, abs=0.005)
    assert col.overlay.labels[-1] == "(new)"


def test_thresholds_decide_the_verdicts() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 50_000)})
    cur = pd.DataFrame({"x": rng.normal(0.1, 1, 50_000)})
    assert nbops.drift(ref, cur).columns["x"].drifted
    assert not nbops.drift(ref, cur, thresholds={"wasserstein": 0.2}).columns["x"].drifted
    strict = nbops.drift(ref, cur, thresholds=DriftThresholds(share=1.0))
    assert strict.drifted and strict.share == 1.0
    with pytest.raises(nbops.NbopsError, match="unknown threshold"):
        nbops.drift(ref, cur, thresholds={"alpah": 0.1})
    with pytest.raises(nbops.NbopsError, match="'alpha' must be between 0 and 1"):
        nbops.drift(ref, cur, thresholds={"alpha": 2})


def test_dataset_verdict_follows_the_share() -> None:
    rng = np.random.default_rng(5)
    n = 20_000
    ref = pd.DataFrame({f"x{i}": rng.normal(0, 1, n) for i in range(4)})
    cur = ref.sample(frac=1.0, random_state=1).reset_index(drop=True)
    cur["x0"] = cur["x0"] + 1
    report = nbops.drift(ref, cur)
    assert report.share == 0.25 and not report.drifted
    cur["x1"] = cur["x1"] * 2
    report = nbops.drift(ref, cur)
    assert report.share == 0.5 and report.drifted


def test_columns_argument_and_dtypes() -> None:
    rng = np.random.default_rng(1)
    n = 2_000
    ref = pd.DataFrame(
        {
            "i": rng.integers(0, 10, n),
            "nullable": pd.array(rng.integers(0, 5, n), dtype="Int64"),
            "cat": pd.Categorical(CATS[rng.integers(0, 5, n)]),
            "s": pd.array(CATS[rng.integers(0, 5, n)], dtype="string"),
            "other": rng.normal(size=n),
        }
    )
    cur = ref.sample(frac=1.0, random_state=2).reset_index(drop=True)
    cur["i"] = cur["i"].astype(float)  # int -> float stays numeric
    cur["other"] = "text"  # would fail, but is not compared
    report = nbops.drift(ref, cur, columns=["i", "nullable", "cat", "s"])
    assert list(report.columns) == ["i", "nullable", "cat", "s"]
    assert [c.kind for c in report.columns.values()] == ["numeric"] * 2 + ["categorical"] * 2
    assert report.drifted_columns == []


def test_constant_and_tiny_columns() -> None:
    ref = pd.DataFrame({"k": [1.0] * 50, "c": ["x"] * 50})
    same = nbops.drift(ref, ref.copy())
    assert same.drifted_columns == []
    moved = nbops.drift(ref, pd.DataFrame({"k": [2.0] * 50, "c": ["y"] * 50}))
    assert moved.drifted_columns == ["k", "c"]
    one = nbops.drift(pd.DataFrame({"k": [1.0]}), pd.DataFrame({"k": [1.5]}))
    assert not one.drifted  # a single row is never significant
