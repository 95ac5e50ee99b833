"""Data drift on 1,000,000 rows x 20 columns: nbops against Evidently's DataDriftPreset.

Both run in the same process on the same frames; Evidently only when it is importable. Evidently
0.7 needs pandas<3, so make a separate environment::

    python -m venv .venv-bench-drift
    .venv-bench-drift/bin/pip install -e ".[monitor]" "pandas<3" evidently
    .venv-bench-drift/bin/python benchmarks/drift.py

Prints the verdict of each column from both tools next to the shift that was planted, the
timings and their ratio, then the false alarms of both on pairs of unshifted frames
(``--null-pairs``). ``--rows`` makes it smaller; ``--json PATH`` also writes the figures.
NannyML is not included: its univariate drift calculator needs a chunked, timestamped setup that
is not a like-for-like comparison in one process.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import nbops  # noqa: E402

#: Columns changed in the current frame, and how (the rest are redrawn from the same law).
SHIFTS = {
    "num0": "mean +0.1 sd",
    "num1": "sd x1.3 (lognormal)",
    "num2": "mean +0.5 sd (uniform)",
    "cat0": "one category 30% -> 35%",
    "cat1": "new category at 3%",
}


def make(rng: np.random.Generator, n: int, shifted: bool) -> pd.DataFrame:
    """Ten numeric and ten categorical (string) columns; ``shifted`` plants :data:`SHIFTS`."""
    cols: dict[str, Any] = {}
    for i in range(10):
        kind = i % 4
        if kind == 0:
            x = rng.normal(10, 2, n)
        elif kind == 1:
            x = rng.lognormal(0, 0.6, n)
        elif kind == 2:
            x = rng.uniform(-5, 5, n)
        else:
            x = rng.exponential(3, n)
        cols[f"num{i}"] = x
    if shifted:
        cols["num0"] = cols["num0"] + 0.1 * 2
        cols["num1"] = 10 + (rng.lognormal(0, 0.6, n) - np.exp(0.18)) * 1.3
        cols["num2"] = cols["num2"] + 0.5 * np.sqrt(10**2 / 12)
    else:
        cols["num1"] = 10 + (cols["num1"] - np.exp(0.18))
    cols["num5"] = np.where(rng.random(n) < 0.02, np.nan, cols["num5"])
    for i in range(10):
        k = (3, 5, 8, 12, 20, 50, 4, 6, 10, 30)[i]
        labels = np.array([f"c{i}_{j}" for j in range(k)], dtype=object)
        p = np.linspace(2, 1, k)
        p = p / p.sum()
        if i == 0:
            p = np.array([0.30, 0.45, 0.25]) if not shifted else np.array([0.35, 0.40, 0.25])
        values = labels[rng.choice(k, n, p=p)]
        if i == 1 and shifted:
            values[rng.random(n) < 0.03] = "c1_new"
        if i == 5:
            values[rng.random(n) < 0.02] = None
        cols[f"cat{i}"] = values
    return pd.DataFrame(cols)


def run_nbops(
    reference: pd.DataFrame, current: pd.DataFrame, repeat: int
) -> tuple[Any, list[float]]:
    times = []
    report = None
    for _ in range(repeat):
        start = time.perf_counter()
        report = nbops.drift(reference, current)
        times.append(time.perf_counter() - start)
    return report, times


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[dict[str, bool], float]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    start = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current, reference)
    seconds = time.perf_counter() - start
    verdicts: dict[str, bool] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        method, value, threshold = config.get("method", ""), metric["value"], config["threshold"]
        # Distances drift at or above the threshold; p-value tests (small data) below it.
        is_p_value = "p_value" in method or "test" in method.lower()
        verdicts[config["column"]] = bool(value < threshold if is_p_value else value >= threshold)
    return verdicts, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="nbops runs (median reported)")
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--null-pairs", type=int, default=3, help="pairs of unshifted frames (false alarms)"
    )
    args = parser.parse_args()

    rng = np.random.default_rng(2024)
    reference, current = make(rng, args.rows, False), make(rng, args.rows, True)
    print(
        f"{args.rows:,} rows x {reference.shape[1]} columns; {os.cpu_count()} CPUs; "
        f"Python {platform.python_version()}, pandas {pd.__version__}, numpy {np.__version__}"
    )
    report, times = run_nbops(reference, current, args.repeat)
    nb_median = statistics.median(times)
    rss_nbops = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    evidently: dict[str, bool] | None = None
    ev_seconds = None
    ev_version = None
    if not args.no_evidently:
        try:
            ev_version = importlib.metadata.version("evidently")
            evidently, ev_seconds = run_evidently(reference, current)
        except ImportError as exc:
            print(f"Evidently not importable ({exc}): skipped")
    print()
    header = f"{'column':<6} {'planted shift':<26} {'nbops':<6} {'evidently':<9} {'agree':<5}"
    print(header)
    print("-" * len(header))
    agree = 0
    columns = []
    for name, col in report.columns.items():
        ev = None if evidently is None else evidently.get(name)
        same = ev is not None and ev == col.drifted
        agree += same
        shift = SHIFTS.get(name, "-")
        correct = col.drifted == (name in SHIFTS)
        print(
            f"{name:<6} {shift:<26} {'DRIFT' if col.drifted else 'no':<6} "
            f"{'-' if ev is None else ('DRIFT' if ev else 'no'):<9} "
            f"{'-' if ev is None else ('yes' if same else 'NO'):<5}"
            + ("" if correct else "  (nbops wrong)")
        )
        columns.append({"column": name, "shift": shift, "nbops": col.drifted, "evidently": ev})
    print()
    truth = {c["column"]: c["shift"] != "-" for c in columns}
    nb_right = sum(c["nbops"] == truth[c["column"]] for c in columns)
    print(
        f"nbops drift: median {nb_median:.2f} s over {len(times)} runs "
        f"(min {min(times):.2f}, max {max(times):.2f}); peak RSS {rss_nbops:,.0f} MiB; "
        f"{nb_right}/{len(columns)} verdicts match the planted shifts"
    )
    figures: dict[str, Any] = {
        "rows": args.rows,
        "columns": reference.shape[1],
        "cpus": os.cpu_count(),
        "pandas": pd.__version__,
        "nbops_seconds": times,
        "nbops_median": nb_median,
        "verdicts": columns,
    }
    if evidently is not None and ev_seconds is not None:
        ev_right = sum(evidently.get(c["column"]) == truth[c["column"]] for c in columns)
        print(
            f"Evidently {ev_version} DataDriftPreset: {ev_seconds:.2f} s (1 run); "
            f"{ev_right}/{len(columns)} verdicts match the planted shifts"
        )
        print(
            f"ratio: nbops is {ev_seconds / nb_median:.1f}x faster; "
            f"same verdict on {agree}/{len(columns)} columns"
        )
        figures.update(evidently_seconds=ev_seconds, evidently_version=ev_version, agree=agree)
    nb_false, ev_false = 0, 0
    for pair in range(args.null_pairs):
        pair_rng = np.random.default_rng(100 + pair)
        left, right = make(pair_rng, args.rows, False), make(pair_rng, args.rows, False)
        nb_false += len(nbops.drift(left, right).drifted_columns)
        if evidently is not None:
            ev_false += sum(run_evidently(left, right)[0].values())
    if args.null_pairs:
        print(
            f"false alarms on {args.null_pairs} null pair(s) x {reference.shape[1]} columns: "
            f"nbops {nb_false}" + (f", Evidently {ev_false}" if evidently is not None else "")
        )
        figures.update(null_pairs=args.null_pairs, nbops_false_alarms=nb_false)
        if evidently is not None:
            figures["evidently_false_alarms"] = ev_false
    if args.json:
        from nbops.fileio import write_atomic

        write_atomic(args.json, json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
