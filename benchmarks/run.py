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
        if value is None:
            return ""
        v = value / UNITS[self.unit]
        digits = 0 if v >= 100 else 1 if v >= 10 else 2 if v >= 0.1 else 4
        return f"{v:.{digits}f} {self.unit}"


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
        MLFLOW_ALLOW_FILE_STORE="true",  # MLflow 3.17 refuses the file store without it
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
        print(f"  {name} {arg}".ljust(34) + f"{elapsed:6.1f} s", file=sys.stderr, flush=True)
        if proc.returncode != 0 or not target.exists():
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            print(f"worker {name} {arg} failed (exit {proc.returncode}):\n{tail}", file=sys.stderr)
            return {"skipped": f"failed (exit {proc.returncode}), see stderr"}
        return dict(json.loads(target.read_text()))


def median_of(runs: int, name: str, arg: str, keys: tuple[str, ...]) -> Raw:
    """Run a worker ``runs`` times (fresh processes); return the median of each of ``keys``."""
    results = [work(name, arg) for _ in range(runs)]
    failed = next((r for r in results if "skipped" in r), None)
    if failed is not None:
        return failed
    out: Raw = {key: statistics.median(float(r[key]) for r in results) for key in keys}
    out["runs"] = results
    return out


# --- the benchmarks ----------------------------------------------------------------------------


OFFLINE_KEYS = ("loop", "median_call", "p99_call", "to_finish", "init_to_finish")
IMAGE_KEYS = ("loop", "per_image", "finish", "to_finish")


def measure(quick: bool) -> dict[str, Raw]:
    """Run every worker; MLflow entries are ``{"skipped": ...}`` when MLflow is not installed."""
    imports, repeats = (3, 1) if quick else (10, 3)
    has_mlflow = importlib.util.find_spec("mlflow") is not None
    raw: dict[str, Raw] = {
        "import_nbops": median_of(imports, "import_time", "nbops", ("import",)),
        "import_wandb": median_of(imports, "import_time", "wandb", ("import",)),
        "load_ext": median_of(3 if quick else 5, "load_ext", "", ("load_ext", "first_track")),
        "nbops_local": work("nbops_local"),
        "nbops_offline": median_of(repeats, "nbops_offline", "", OFFLINE_KEYS),
        "wandb_offline": median_of(repeats, "wandb_offline", "", OFFLINE_KEYS),
        "cells": work("ipython_cells", "500,3" if quick else "2000,5"),
        "images_local": median_of(repeats, "nbops_images", "local", IMAGE_KEYS),
        "images_offline": median_of(repeats, "nbops_images", "offline", IMAGE_KEYS),
        "images_wandb": median_of(repeats, "wandb_images", "", IMAGE_KEYS),
    }
    skipped = {"skipped": SKIP_MLFLOW}
    raw["import_mlflow"] = (
        median_of(imports, "import_time", "mlflow", ("import",)) if has_mlflow else skipped
    )
    for kind in ("file", "sqlite"):
        for api in ("log_metric", "log_batch"):
            raw[f"mlflow_{api}_{kind}"] = work(f"mlflow_{api}", kind) if has_mlflow else skipped
    return raw


def _get(raw: dict[str, Raw], name: str, key: str) -> float | None:
    entry = raw.get(name) or {"skipped": "not measured"}
    return None if "skipped" in entry else float(entry[key])


LOCAL, MIRROR, WANDB = "1 nbops, local store", "2 nbops + W&B offline", "3 wandb offline"
MLF_FILE, MLF_SQL = "4 MLflow file store", "4 MLflow sqlite store"
CELLS, STARTUP = "5 IPython cell hooks", "6 startup"
IMAGES = "7 an image per step (200 x 64x64 RGB)"

# (benchmark, figure, "raw entry.key", unit, target in seconds)
TABLE: list[tuple[str, str, str, str, float | None]] = [
    (LOCAL, "caller loop 10k x 3", "nbops_local.loop", "ms", None),
    (LOCAL, "median per log call", "nbops_local.median_call", "us", 5e-6),
    (LOCAL, "p99 per log call", "nbops_local.p99_call", "us", None),
    (LOCAL, "flush() after loop", "nbops_local.flush", "ms", None),
    (LOCAL, "durable in (loop+flush)", "nbops_local.durable", "s", 0.1),
    (LOCAL, "first nbops.init", "nbops_local.first_init", "ms", None),
    (MIRROR, "caller loop 10k x 3", "nbops_offline.loop", "ms", None),
    (MIRROR, "median per log call", "nbops_offline.median_call", "us", None),
    (MIRROR, "loop start to finish()", "nbops_offline.to_finish", "s", None),
    (MIRROR, "init to finish()", "nbops_offline.init_to_finish", "s", None),
    (WANDB, "run.log loop 10k", "wandb_offline.loop", "s", None),
    (WANDB, "median per run.log", "wandb_offline.median_call", "us", None),
    (WANDB, "loop start to finish()", "wandb_offline.to_finish", "s", None),
    (WANDB, "init to finish()", "wandb_offline.init_to_finish", "s", None),
    (MLF_FILE, "log_metric x3, 10k steps", "mlflow_log_metric_file.loop", "s", None),
    (MLF_FILE, "log_batch 30 x 1,000", "mlflow_log_batch_file.loop", "s", None),
    (MLF_SQL, "log_metric x3, 10k steps", "mlflow_log_metric_sqlite.loop", "s", None),
    (MLF_SQL, "log_batch 30 x 1,000", "mlflow_log_batch_sqlite.loop", "s", None),
    (CELLS, "bare cell x = 1", "cells.bare_cell", "us", None),
    (CELLS, "extra per cell, tracked", "cells.per_cell", "ms", 5e-4),
    (CELLS, "pre+post hook calls", "cells.hooks_median", "us", None),
    (STARTUP, "import nbops", "import_nbops.import", "ms", 0.05),
    (STARTUP, "%load_ext nbops", "load_ext.load_ext", "ms", None),
    (STARTUP, "first %nbops track", "load_ext.first_track", "ms", None),
    (STARTUP, "import wandb", "import_wandb.import", "ms", None),
    (STARTUP, "import mlflow", "import_mlflow.import", "ms", None),
    (IMAGES, "nbops local: per log call", "images_local.per_image", "ms", None),
    (IMAGES, "nbops local: loop+finish", "images_local.to_finish", "s", None),
    (IMAGES, "nbops + W&B: per log call", "images_offline.per_image", "ms", None),
    (IMAGES, "nbops + W&B: loop+finish", "images_offline.to_finish", "s", None),
    (IMAGES, "wandb alone: per run.log", "images_wandb.per_image", "ms", None),
    (IMAGES, "wandb alone: loop+finish", "images_wandb.to_finish", "s", None),
]


def rows(raw: dict[str, Raw]) -> list[Row]:
    """The table, in the order of the brief."""
    out = []
    for bench, figure, where, unit, target in TABLE:
        name, key = where.split(".")
        entry = raw.get(name) or {}
        note = str(entry.get("skipped") or entry.get("notes", {}).get(key, ""))
        out.append(Row(bench, figure, _get(raw, name, key), unit, target, note))
    return out


# --- ratios ------------------------------------------------------------------------------------

LABELS = {
    "nbops_local.loop": "nbops local-only log loop",
    "nbops_local.median_call": "nbops local-only log call",
    "nbops_local.durable": "nbops local-only durable",
    "nbops_offline.loop": "nbops + W&B mirror caller loop",
    "nbops_offline.to_finish": "nbops + W&B mirror loop+finish",
    "wandb_offline.loop": "wandb offline run.log loop",
    "wandb_offline.median_call": "wandb offline run.log call",
    "wandb_offline.to_finish": "wandb offline loop+finish",
    "mlflow_log_metric_file.loop": "MLflow file log_metric",
    "mlflow_log_metric_sqlite.loop": "MLflow sqlite log_metric",
    "mlflow_log_batch_file.loop": "MLflow file log_batch",
    "mlflow_log_batch_sqlite.loop": "MLflow sqlite log_batch",
    "import_nbops.import": "import nbops",
    "import_wandb.import": "import wandb",
    "import_mlflow.import": "import mlflow",
    "images_local.per_image": "nbops local-only image log call",
    "images_offline.per_image": "nbops + W&B mirror image log call",
    "images_offline.to_finish": "nbops + W&B mirror images loop+finish",
    "images_wandb.per_image": "wandb offline image run.log call",
    "images_wandb.to_finish": "wandb offline images loop+finish",
}

# (nbops figure, peer figure); ratio = peer / nbops
COMPARISONS = [
    ("nbops_local.loop", "wandb_offline.loop"),
    ("nbops_local.median_call", "wandb_offline.median_call"),
    ("nbops_local.durable", "wandb_offline.to_finish"),
    ("nbops_offline.loop", "wandb_offline.loop"),
    ("nbops_offline.to_finish", "wandb_offline.to_finish"),
    ("nbops_local.durable", "mlflow_log_metric_file.loop"),
    ("nbops_local.durable", "mlflow_log_metric_sqlite.loop"),
    ("nbops_local.durable", "mlflow_log_batch_file.loop"),
    ("nbops_local.durable", "mlflow_log_batch_sqlite.loop"),
    ("import_nbops.import", "import_wandb.import"),
    ("import_nbops.import", "import_mlflow.import"),
    ("images_local.per_image", "images_wandb.per_image"),
    ("images_offline.per_image", "images_wandb.per_image"),
    ("images_offline.to_finish", "images_wandb.to_finish"),
]


def ratios(raw: dict[str, Raw]) -> list[dict[str, Any]]:
    """``peer / nbops`` for each comparison, with a sentence saying which is faster."""
    out: list[dict[str, Any]] = []
    for ours_at, peer_at in COMPARISONS:
        ours, peer = LABELS[ours_at], LABELS[peer_at]
        (ours_raw, ours_key), (peer_raw, peer_key) = ours_at.split("."), peer_at.split(".")
        a, b = _get(raw, ours_raw, ours_key), _get(raw, peer_raw, peer_key)
        if a is None or b is None or a <= 0:
            why = (raw.get(peer_raw if b is None else ours_raw) or {}).get("skipped", "n/a")
            text = f"{ours} vs {peer}: {why}"
            out.append({"nbops": ours, "peer": peer, "ratio": None, "text": text})
            continue
        r = b / a
        faster = f"{r:.1f}x faster" if r >= 1 else f"{1 / r:.1f}x slower"
        out.append(
            {"nbops": ours, "peer": peer, "ratio": r, "text": f"{ours} is {faster} than {peer}"}
        )
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
