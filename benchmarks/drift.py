"""Data drift on 1,000,000 rows x 20 columns: nbops against Evidently and NannyML.

Each tool is imported and warmed up on a small frame first, then runs on the same frames in a
forked child process, so its time leaves out imports and its peak memory (the resident set's
high-water mark above what the frames and imports already took) is its own. nbops is timed
with its default domain classifier and without it. Evidently and NannyML run only when
importable; both need ``pandas<3``, so make a separate environment::

    python -m venv .venv-bench-drift
    .venv-bench-drift/bin/pip install -e ".[monitor]" "pandas<3" evidently nannyml
    .venv-bench-drift/bin/python benchmarks/drift.py

Prints the verdict of each column from every tool next to the shift that was planted, the
timings, peak memory and ratios, then the false alarms of each on pairs of unshifted frames
(``--null-pairs``). ``--rows`` makes it smaller; ``--json PATH`` also writes the figures.

Peers as configured: Evidently's ``DataDriftPreset`` with its defaults; NannyML's
``UnivariateDriftCalculator`` twice: with its statistical tests (Kolmogorov-Smirnov and
chi-square, p < 0.05) on the whole current frame as one chunk, and with its defaults
(Jensen-Shannon distance, thresholds from the spread over 10 reference chunks; a column drifts
when any of the 10 current chunks alerts).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # NannyML's telemetry: off
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


def _status_kib(field: str) -> int:
    """A ``VmRSS``/``VmHWM`` figure of this process, in KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measured(fn: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """Run ``fn(*args)`` in a forked child: ``(result, seconds, peak MiB above the start)``."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)

    def child() -> None:
        warnings.simplefilter("ignore")  # the peers' deprecation chatter
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark
        except OSError:
            pass
        base = _status_kib("VmRSS")
        start = time.perf_counter()
        try:
            result: Any = fn(*args)
        except Exception as exc:  # noqa: BLE001 - reported by the parent
            result = exc
        seconds = time.perf_counter() - start
        send.send((result, seconds, (_status_kib("VmHWM") - base) / 1024))

    process = ctx.Process(target=child)
    process.start()
    result, seconds, peak = receive.recv()
    process.join()
    if isinstance(result, Exception):
        raise result
    return result, seconds, peak


def nbops_verdicts(
    reference: pd.DataFrame, current: pd.DataFrame, domain: bool = True
) -> dict[str, Any]:
    report = nbops.drift(reference, current, domain=domain)
    return {
        "columns": {name: col.drifted for name, col in report.columns.items()},
        "domain_auc": (report.domain or {}).get("auc"),
    }


def run_nbops(
    reference: pd.DataFrame, current: pd.DataFrame, repeat: int, domain: bool = True
) -> tuple[dict[str, Any], list[float], float]:
    times, peaks = [], []
    found: dict[str, Any] = {}
    for _ in range(repeat):
        found, seconds, peak = measured(nbops_verdicts, reference, current, domain)
        times.append(seconds)
        peaks.append(peak)
    return found, times, max(peaks)


def evidently_verdicts(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, bool]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset()]).run(current, reference)
    verdicts: dict[str, bool] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        method, value, threshold = config.get("method", ""), metric["value"], config["threshold"]
        # Distances drift at or above the threshold; p-value tests (small data) below it.
        is_p_value = "p_value" in method or "test" in method.lower()
        verdicts[config["column"]] = bool(value < threshold if is_p_value else value >= threshold)
    return verdicts


def nannyml_verdicts(reference: pd.DataFrame, current: pd.DataFrame, mode: str) -> dict[str, bool]:
    """NannyML's univariate drift: ``tests`` (KS/chi2, one chunk) or ``default`` (JS, 10)."""
    import nannyml as nml

    categorical = [c for c in reference.columns if not pd.api.types.is_numeric_dtype(reference[c])]
    if mode == "tests":
        options: dict[str, Any] = {
            "chunk_number": 1,
            "continuous_methods": ["kolmogorov_smirnov"],
            "categorical_methods": ["chi2"],
        }
    else:
        options = {"chunk_number": 10}
    calc = nml.UnivariateDriftCalculator(
        column_names=list(reference.columns), treat_as_categorical=categorical, **options
    )
    calc.fit(reference)
    table = calc.calculate(current).filter(period="analysis").to_df()
    verdicts: dict[str, bool] = {}
    for column in reference.columns:
        alerts = [key for key in table.columns if key[0] == column and key[-1] == "alert"]
        verdicts[column] = bool(any(table[key].fillna(False).astype(bool).any() for key in alerts))
    return verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="nbops runs (median reported)")
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--no-nannyml", action="store_true")
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
    nbops_verdicts(*(make(np.random.default_rng(k), 2_000, False) for k in (0, 1)))  # warm up
    found, times, nb_peak = run_nbops(reference, current, args.repeat)
    nb_median = statistics.median(times)
    _, plain_times, plain_peak = run_nbops(reference, current, args.repeat, domain=False)
    print(
        f"nbops without the domain classifier: median {statistics.median(plain_times):.2f} s, "
        f"peak +{plain_peak:,.0f} MiB"
    )
    truth = {name: name in SHIFTS for name in reference.columns}

    peers: dict[str, Callable[[pd.DataFrame, pd.DataFrame], dict[str, bool]]] = {}
    versions: dict[str, str] = {}
    for package, skip, entries in (
        ("evidently", args.no_evidently, {"evidently": evidently_verdicts}),
        (
            "nannyml",
            args.no_nannyml,
            {
                "nannyml-tests": partial(nannyml_verdicts, mode="tests"),
                "nannyml-default": partial(nannyml_verdicts, mode="default"),
            },
        ),
    ):
        if skip:
            continue
        if importlib.util.find_spec(package) is None:
            print(f"{package} not importable: skipped")
            continue
        versions[package] = importlib.metadata.version(package)
        peers.update(entries)
    results: dict[str, dict[str, Any]] = {
        "nbops": {"verdicts": found["columns"], "seconds": nb_median, "peak_mib": nb_peak}
    }
    small = tuple(make(np.random.default_rng(k), 2_000, k == 1) for k in (0, 1))
    for fn in peers.values():
        fn(*small)  # warm up here: each forked child starts with every tool imported
    for name, fn in peers.items():
        verdicts, seconds, peak = measured(fn, reference, current)
        results[name] = {"verdicts": verdicts, "seconds": seconds, "peak_mib": peak}

    print()
    names = list(results)
    header = f"{'column':<6} {'planted shift':<26} " + " ".join(f"{n:<15}" for n in names)
    print(header)
    print("-" * len(header))
    for column in reference.columns:
        cells = []
        for name in names:
            verdict = results[name]["verdicts"].get(column)
            text = "-" if verdict is None else ("DRIFT" if verdict else "no")
            cells.append(f"{text + ('' if verdict in (None, truth[column]) else ' (x)'):<15}")
        print(f"{column:<6} {SHIFTS.get(column, '-'):<26} " + " ".join(cells))
    print("(x): wrong against the planted shifts")
    print()
    for name, res in results.items():
        verdicts = res["verdicts"]
        res["found"] = sum(bool(verdicts.get(c)) for c in SHIFTS)
        res["false_alarms"] = sum(bool(verdicts.get(c)) for c in truth if not truth[c])
        timing = (
            f"median {nb_median:.2f} s over {len(times)} runs (min {min(times):.2f})"
            if name == "nbops"
            else f"{res['seconds']:.2f} s (1 run)"
        )
        ratio = "" if name == "nbops" else f"; {res['seconds'] / nb_median:.1f}x nbops' time"
        print(
            f"{name:<15} {res['found']}/{len(SHIFTS)} shifts found, {res['false_alarms']} false "
            f"alarm(s) on the {len(truth) - len(SHIFTS)} unshifted columns; {timing}; peak "
            f"+{res['peak_mib']:,.0f} MiB{ratio}"
        )
    if found.get("domain_auc") is not None:
        print(f"nbops domain classifier AUC {found['domain_auc']:.3f} (reported beside)")

    null_alarms = dict.fromkeys(results, 0)
    for pair in range(args.null_pairs):
        pair_rng = np.random.default_rng(100 + pair)
        left, right = make(pair_rng, args.rows, False), make(pair_rng, args.rows, False)
        null_alarms["nbops"] += sum(measured(nbops_verdicts, left, right)[0]["columns"].values())
        for name, fn in peers.items():
            null_alarms[name] += sum(measured(fn, left, right)[0].values())
    if args.null_pairs:
        print(
            f"false alarms on {args.null_pairs} null pair(s) x {reference.shape[1]} columns: "
            + ", ".join(f"{name} {count}" for name, count in null_alarms.items())
        )
    if args.json:
        from nbops.fileio import write_atomic

        figures = {
            "rows": args.rows,
            "columns": reference.shape[1],
            "cpus": os.cpu_count(),
            "pandas": pd.__version__,
            "versions": versions,
            "nbops_seconds": times,
            "nbops_no_domain_seconds": plain_times,
            "domain_auc": found.get("domain_auc"),
            "tools": results,
            "null_pairs": args.null_pairs,
            "null_false_alarms": null_alarms,
        }
        write_atomic(args.json, json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
