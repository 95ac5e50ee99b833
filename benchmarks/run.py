"""nbops speed figures, with ratios against wandb and MLflow measured in the same run.

Run ``make bench`` (creates ``.venv-bench`` with MLflow) or ``python benchmarks/run.py``.
Every measurement runs in a fresh subprocess (``benchmarks/workers.py``) with temporary store,
W&B and MLflow folders and W&B offline. Prints a table and writes ``benchmarks/results.json``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORKERS = HERE / "workers.py"
RESULTS = HERE / "results.json"
SKIP_MLFLOW = "mlflow not installed: skipped"
UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}

Raw = dict[str, Any]


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure in seconds, shown in ``unit``, against an upper bound."""

    bench: str
    figure: str
    seconds: float | None
    unit: str = "s"
    target: float | None = None
    note: str = ""

    @property
    def status(self) -> str:
        if self.seconds is None:
            return "skip"
        if self.target is None:
            return "-"
        return "PASS" if self.seconds <= self.target else "FAIL"

    def shown(self, value: float | None) -> str:
        return "" if value is None else f"{value / UNITS[self.unit]:.3g} {self.unit}"


# --- running workers ---------------------------------------------------------------------------


def _env(tmp: Path) -> dict[str, str]:
    """A clean environment: W&B offline and silent, every folder under ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "NBOPS_", "MLFLOW_"))}
    folders = {
        "NBOPS_HOME": "nbops",
        "WANDB_DIR": "wandb",
        "WANDB_CONFIG_DIR": "wandb-config",
        "WANDB_CACHE_DIR": "wandb-cache",
        "WANDB_DATA_DIR": "wandb-data",
        "IPYTHONDIR": "ipython",
    }
    for key, name in folders.items():
        (tmp / name).mkdir(parents=True, exist_ok=True)
        env[key] = str(tmp / name)
    env.update(
        BENCH_TMP=str(tmp),
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        MLFLOW_TRACKING_URI=(tmp / "mlruns").as_uri(),
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="1",
        PYTHONWARNINGS="ignore",
    )
    return env


def work(name: str, arg: str = "", timeout: float = 240.0) -> Raw:
    """Run one worker in a fresh interpreter with its own temporary folders; return its dict."""
    with tempfile.TemporaryDirectory(prefix=f"nbops-bench-{name}-") as tmp:
        root = Path(tmp)
        target = root / "result.json"
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(WORKERS), name, str(target), arg],
            cwd=root,
            env=_env(root),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        elapsed = time.perf_counter() - started
        if proc.returncode != 0 or not target.exists():
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"worker {name} {arg} failed (exit {proc.returncode}):\n{tail}")
        print(f"  {name} {arg}".ljust(34) + f"{elapsed:6.1f} s", file=sys.stderr, flush=True)
        return dict(json.loads(target.read_text()))


def median_of(runs: int, name: str, arg: str, key: str) -> Raw:
    """Run a worker ``runs`` times (fresh processes); return the median of ``key`` and all values."""
    values = [float(work(name, arg)[key]) for _ in range(runs)]
    return {key: statistics.median(values), "all": values}


# --- the benchmarks ----------------------------------------------------------------------------


def measure(quick: bool) -> dict[str, Raw | None]:
    """Run every worker; MLflow ones are None when MLflow is not installed."""
    imports = 3 if quick else 10
    has_mlflow = importlib.util.find_spec("mlflow") is not None
    raw: dict[str, Raw | None] = {
        "import_nbops": median_of(imports, "import_time", "nbops", "import"),
        "import_wandb": median_of(imports, "import_time", "wandb", "import"),
        "import_mlflow": median_of(imports, "import_time", "mlflow", "import")
        if has_mlflow
        else None,
        "load_ext": _load_ext(3 if quick else 5),
        "nbops_local": work("nbops_local"),
        "nbops_offline": work("nbops_offline"),
        "wandb_offline": work("wandb_offline"),
        "cells": work("ipython_cells", "500,3" if quick else "2000,5"),
    }
    for kind in ("file", "sqlite"):
        for api in ("log_metric", "log_batch"):
            raw[f"mlflow_{api}_{kind}"] = work(f"mlflow_{api}", kind) if has_mlflow else None
    return raw


def _load_ext(runs: int) -> Raw:
    results = [work("load_ext") for _ in range(runs)]
    return {
        "load_ext": statistics.median(r["load_ext"] for r in results),
        "first_track": statistics.median(r["first_track"] for r in results),
        "heavy_after_load_ext": results[0]["heavy_after_load_ext"],
        "all": [r["load_ext"] for r in results],
    }


def _get(raw: dict[str, Raw | None], name: str, key: str) -> float | None:
    entry = raw.get(name)
    return None if entry is None else float(entry[key])


def rows(raw: dict[str, Raw | None]) -> list[Row]:
    """The table, in the order of the brief."""
    g = raw.get
    local, offline, cells = g("nbops_local") or {}, g("nbops_offline") or {}, g("cells") or {}
    out = [
        Row("1 nbops log, local store", "caller loop 10k x 3", local.get("loop")),
        Row("1 nbops log, local store", "median per log call", local.get("median_call"), "us", 5e-6),
        Row("1 nbops log, local store", "p99 per log call", local.get("p99_call"), "us"),
        Row("1 nbops log, local store", "flush after loop", local.get("flush"), "ms"),
        Row("1 nbops log, local store", "durable in (loop+flush)", local.get("durable"), "s", 0.1),
        Row("1 nbops log, local store", "first nbops.init", local.get("first_init"), "ms"),
        Row("2 nbops + W&B offline mirror", "caller loop 10k x 3", offline.get("loop")),
        Row("2 nbops + W&B offline mirror", "median per log call", offline.get("median_call"), "us"),
        Row("2 nbops + W&B offline mirror", "loop start to finish()", offline.get("to_finish")),
        Row("2 nbops + W&B offline mirror", "init to finish()", offline.get("init_to_finish")),
    ]
    wb = g("wandb_offline") or {}
    out += [
        Row("3 wandb offline direct", "run.log loop 10k", wb.get("loop")),
        Row("3 wandb offline direct", "median per run.log", wb.get("median_call"), "us"),
        Row("3 wandb offline direct", "loop start to finish()", wb.get("to_finish")),
        Row("3 wandb offline direct", "init to finish()", wb.get("init_to_finish")),
    ]
    out += _mlflow_rows(raw)
    out += [
        Row("5 IPython cell hooks", "bare cell", cells.get("bare_cell"), "ms"),
        Row("5 IPython cell hooks", "extra per cell, tracked", cells.get("per_cell"), "ms", 5e-4),
        Row("5 IPython cell hooks", "pre+post hook calls", cells.get("hooks_median"), "us"),
        Row("6 startup", "import nbops", _get(raw, "import_nbops", "import"), "ms", 0.05),
        Row("6 startup", "%load_ext nbops", _get(raw, "load_ext", "load_ext"), "ms"),
        Row("6 startup", "first %nbops track", _get(raw, "load_ext", "first_track"), "ms"),
        Row("6 startup", "import wandb", _get(raw, "import_wandb", "import"), "ms"),
        _skippable(raw, "import_mlflow", "import", Row("6 startup", "import mlflow", None, "ms")),
    ]
    return out


def _skippable(raw: dict[str, Raw | None], name: str, key: str, row: Row) -> Row:
    value = _get(raw, name, key)
    note = SKIP_MLFLOW if raw.get(name) is None else row.note
    return Row(row.bench, row.figure, value, row.unit, row.target, note)


def _mlflow_rows(raw: dict[str, Raw | None]) -> list[Row]:
    out = []
    for kind in ("file", "sqlite"):
        metric = raw.get(f"mlflow_log_metric_{kind}")
        note = ""
        if metric and metric["extrapolated"]:
            note = f"{metric['steps']:,} steps measured ({metric['measured']:.1f} s), extrapolated"
        out.append(
            _skippable(
                raw,
                f"mlflow_log_metric_{kind}",
                "loop",
                Row(f"4 MLflow {kind} store", "log_metric x3, 10k steps", None, note=note),
            )
        )
        out.append(
            _skippable(
                raw,
                f"mlflow_log_batch_{kind}",
                "loop",
                Row(f"4 MLflow {kind} store", "log_batch 30 x 1,000", None),
            )
        )
    return out


# --- ratios ------------------------------------------------------------------------------------

COMPARISONS: list[tuple[str, str, str, str, str, str]] = [
    # (nbops label, raw, key, peer label, raw, key)
    ("nbops local-only log loop", "nbops_local", "loop", "wandb offline run.log loop", "wandb_offline", "loop"),
    ("nbops local-only log call", "nbops_local", "median_call", "wandb offline run.log call", "wandb_offline", "median_call"),
    ("nbops local-only durable", "nbops_local", "durable", "wandb offline loop+finish", "wandb_offline", "to_finish"),
    ("nbops + W&B mirror caller loop", "nbops_offline", "loop", "wandb offline run.log loop", "wandb_offline", "loop"),
    ("nbops + W&B mirror loop+finish", "nbops_offline", "to_finish", "wandb offline loop+finish", "wandb_offline", "to_finish"),
    ("nbops local-only durable", "nbops_local", "durable", "MLflow file log_metric", "mlflow_log_metric_file", "loop"),
    ("nbops local-only durable", "nbops_local", "durable", "MLflow sqlite log_metric", "mlflow_log_metric_sqlite", "loop"),
    ("nbops local-only durable", "nbops_local", "durable", "MLflow file log_batch", "mlflow_log_batch_file", "loop"),
    ("nbops local-only durable", "nbops_local", "durable", "MLflow sqlite log_batch", "mlflow_log_batch_sqlite", "loop"),
    ("import nbops", "import_nbops", "import", "import wandb", "import_wandb", "import"),
    ("import nbops", "import_nbops", "import", "import mlflow", "import_mlflow", "import"),
]  # fmt: skip


def ratios(raw: dict[str, Raw | None]) -> list[dict[str, Any]]:
    """``peer / nbops`` for each comparison, with a sentence saying which is faster."""
    out = []
    for ours, ours_raw, ours_key, peer, peer_raw, peer_key in COMPARISONS:
        a, b = _get(raw, ours_raw, ours_key), _get(raw, peer_raw, peer_key)
        if a is None or b is None or a <= 0:
            text = f"{ours} vs {peer}: {SKIP_MLFLOW if b is None else 'n/a'}"
            out.append({"nbops": ours, "peer": peer, "ratio": None, "text": text})
            continue
        r = b / a
        faster = f"{r:.1f}x faster" if r >= 1 else f"{1 / r:.1f}x slower"
        out.append({"nbops": ours, "peer": peer, "ratio": r, "text": f"{ours} is {faster} than {peer}"})
    return out


# --- output ------------------------------------------------------------------------------------


def table(lines: list[Row]) -> str:
    """A plain-text table: benchmark, figure, value, target, status, note."""
    head = ("benchmark", "figure", "value", "target", "status", "note")
    body = [
        (r.bench, r.figure, r.shown(r.seconds), r.shown(r.target), r.status, r.note) for r in lines
    ]
    widths = [max(len(str(row[i])) for row in [head, *body]) for i in range(len(head))]
    fmt: Callable[[tuple[str, ...]], str] = lambda cols: "  ".join(  # noqa: E731
        c.ljust(w) for c, w in zip(cols, widths, strict=True)
    ).rstrip()
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(head), rule, *(fmt(row) for row in body)])


def meta() -> dict[str, Any]:
    """Versions and machine, without importing the peers."""

    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": {d: version(d) for d in ("nbops", "wandb", "mlflow", "ipython")},
        "steps": 10_000,
        "metrics_per_step": 3,
    }


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table and ratios, write ``benchmarks/results.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke test)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)
    info = meta()
    print(f"nbops benchmarks: {info['versions']}, Python {info['python']}, {info['cpus']} CPUs")
    started = time.perf_counter()
    raw = measure(args.quick)
    lines, compared = rows(raw), ratios(raw)
    print()
    print(table(lines))
    print("\nRatios (same run):")
    for item in compared:
        print(f"  {item['text']}")
    info["total_seconds"] = round(time.perf_counter() - started, 1)
    failed = [f"{r.bench}: {r.figure}" for r in lines if r.status == "FAIL"]
    print(f"\n{len(failed)} target(s) missed" + (": " + "; ".join(failed) if failed else ""))
    print(f"total {info['total_seconds']} s; results in {args.output}")
    document = {
        "meta": info,
        "rows": [{**asdict(r), "status": r.status} for r in lines],
        "ratios": compared,
        "raw": raw,
    }
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
