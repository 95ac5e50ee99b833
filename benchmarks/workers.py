"""Measurements, each run in a fresh subprocess by ``benchmarks/run.py``.

Usage: ``python benchmarks/workers.py NAME RESULT_JSON [ARG]``. Every worker returns a dict of
plain numbers (seconds unless the key says otherwise) that is written to ``RESULT_JSON``.
The caller sets the environment: temporary ``NBOPS_HOME``/``WANDB_DIR``/``IPYTHONDIR``/
``MLFLOW_TRACKING_URI``, ``WANDB_MODE=offline``, ``WANDB_SILENT=true``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

STEPS = 10_000
BATCH = 1_000
MLFLOW_BUDGET_S = 60.0
MLFLOW_FALLBACK_STEPS = 1_000

Result = dict[str, Any]


def _rows(steps: int = STEPS) -> list[dict[str, float]]:
    """Prebuilt metric dicts, so every tool is timed on the logging call only."""
    return [{"loss": 1.0 / (i + 1), "acc": i / steps, "lr": 1e-3 * 0.999**i} for i in range(steps)]


Log = Callable[..., Any]


def _per_call(log: Log, rows: list[dict[str, float]]) -> Result:
    """Time each ``log`` call with ``perf_counter_ns``; return median, p99 and timer overhead."""
    ns = time.perf_counter_ns
    deltas = []
    for row in rows:
        start = ns()
        log(row)
        deltas.append(ns() - start)
    empty = []
    for _ in range(len(rows)):
        start = ns()
        empty.append(ns() - start)
    deltas.sort()
    return {
        "median_call": deltas[len(deltas) // 2] / 1e9,
        "p99_call": deltas[int(len(deltas) * 0.99)] / 1e9,
        "timer_overhead": statistics.median(empty) / 1e9,
    }


def _timed_loop(log: Log, rows: list[dict[str, float]]) -> float:
    start = time.perf_counter()
    for row in rows:
        log(row)
    return time.perf_counter() - start


def _count_metrics(store: Path, run_id: str) -> int:
    with closing(sqlite3.connect(store / "runs.db")) as con:
        row = con.execute("SELECT COUNT(*) FROM metrics WHERE run_id = ?", (run_id,)).fetchone()
    return int(row[0])


def nbops_local(_: str) -> Result:
    """10,000 x 3 metrics, local store only: loop, per call, and durable (loop + flush)."""
    store = Path(os.environ["NBOPS_HOME"])
    start = time.perf_counter()
    import nbops

    out: Result = {"import": time.perf_counter() - start}
    rows = _rows()
    loops, durables, flushes = [], [], []
    for repeat in range(3):
        start = time.perf_counter()
        run = nbops.init(project="bench", wandb="disabled", store=store, capture=False)
        if repeat == 0:
            out["first_init"] = time.perf_counter() - start
        loop = _timed_loop(run.log, rows)
        start = time.perf_counter()
        run.flush()
        flush = time.perf_counter() - start
        stored = _count_metrics(store, run.id)
        if stored != 3 * STEPS:
            raise RuntimeError(f"expected {3 * STEPS} durable values, found {stored}")
        loops.append(loop)
        flushes.append(flush)
        durables.append(loop + flush)
        run.finish()
    run = nbops.init(project="bench", wandb="disabled", store=store, capture=False)
    out.update(_per_call(run.log, rows))
    run.finish()
    out.update(
        loop=statistics.median(loops),
        flush=statistics.median(flushes),
        durable=statistics.median(durables),
        loops=loops,
        durables=durables,
    )
    return out


def _wait_mirror(run: Any, timeout: float = 60.0) -> float:
    """Wait until the W&B mirror has started; return the seconds waited."""
    start = time.perf_counter()
    while run.mirror.state.status == "starting":
        if time.perf_counter() - start > timeout:
            raise RuntimeError("W&B mirror did not start within 60 s")
        time.sleep(0.005)
    if run.mirror.state.status != "running":
        raise RuntimeError(f"W&B mirror failed: {run.mirror.state}")
    return time.perf_counter() - start


def nbops_offline(_: str) -> Result:
    """The same with the W&B offline mirror: caller loop, and until ``finish`` returns."""
    store = Path(os.environ["NBOPS_HOME"])
    import nbops

    rows = _rows()
    start = time.perf_counter()
    run = nbops.init(project="bench", wandb="offline", store=store, capture=False)
    out: Result = {"first_init": time.perf_counter() - start}
    out["mirror_start"] = _wait_mirror(run)
    out["loop"] = _timed_loop(run.log, rows)
    start = time.perf_counter()
    run.finish()
    out["finish"] = time.perf_counter() - start
    out["to_finish"] = out["loop"] + out["finish"]
    out["init_to_finish"] = out["first_init"] + out["mirror_start"] + out["to_finish"]
    state = run.mirror.state if run.mirror is not None else None
    if state is None or state.status != "finished":
        raise RuntimeError(f"W&B mirror did not finish cleanly: {state}")
    run = nbops.init(project="bench", wandb="offline", store=store, capture=False)
    _wait_mirror(run)
    out.update(_per_call(run.log, rows))
    run.finish()
    return out


def wandb_offline(_: str) -> Result:
    """wandb directly, offline: 10,000 x ``run.log`` of 3 metrics, then ``finish``."""
    directory = os.environ["WANDB_DIR"]
    start = time.perf_counter()
    import wandb

    out: Result = {"import": time.perf_counter() - start}
    rows = _rows()
    start = time.perf_counter()
    run = wandb.init(mode="offline", dir=directory, project="bench")
    out["first_init"] = time.perf_counter() - start
    out["loop"] = _timed_loop(run.log, rows)
    start = time.perf_counter()
    run.finish()
    out["finish"] = time.perf_counter() - start
    out["to_finish"] = out["loop"] + out["finish"]
    out["init_to_finish"] = out["first_init"] + out["to_finish"]
    run = wandb.init(mode="offline", dir=directory, project="bench")
    out.update(_per_call(run.log, rows))
    run.finish()
    return out


IMAGE_STEPS = 200
IMAGE_SIDE = 64


def _images(steps: int) -> list[Any]:
    """``steps`` distinct 64 x 64 RGB uint8 images (distinct, so no blob is shared)."""
    import numpy as np

    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (IMAGE_SIDE, IMAGE_SIDE, 3), dtype=np.uint8) for _ in range(steps)]


def nbops_images(arg: str) -> Result:
    """One image and one scalar per step with ``log``: ARG ``local`` (no mirror) or ``offline``
    (W&B mirror, the images become ``wandb.Image`` history values)."""
    import nbops

    images = _images(int(os.environ.get("BENCH_IMAGE_STEPS", IMAGE_STEPS)))
    mode = "disabled" if arg == "local" else "offline"
    start = time.perf_counter()
    run = nbops.init(project="bench", wandb=mode, capture=False, system_metrics=False)
    out: Result = {"init": time.perf_counter() - start}
    if run.mirror is not None and mode == "offline":
        out["mirror_start"] = _wait_mirror(run)
    start = time.perf_counter()
    for step, image in enumerate(images):
        run.log({"loss": 1.0 / (step + 1), "sample": image})
    out["loop"] = time.perf_counter() - start
    out["per_image"] = out["loop"] / len(images)
    start = time.perf_counter()
    run.finish()
    out["finish"] = time.perf_counter() - start
    out["to_finish"] = out["loop"] + out["finish"]
    if mode == "offline":
        state = run.mirror.state if run.mirror is not None else None
        if state is None or state.copy != "complete":
            raise RuntimeError(f"W&B mirror did not complete: {state}")
    return out


def wandb_images(_: str) -> Result:
    """wandb alone, offline: ``run.log({"loss": x, "sample": wandb.Image(array)})`` per step."""
    import wandb

    images = _images(int(os.environ.get("BENCH_IMAGE_STEPS", IMAGE_STEPS)))
    start = time.perf_counter()
    run = wandb.init(mode="offline", dir=os.environ["WANDB_DIR"], project="bench")
    out: Result = {"init": time.perf_counter() - start}
    start = time.perf_counter()
    for step, image in enumerate(images):
        run.log({"loss": 1.0 / (step + 1), "sample": wandb.Image(image)}, step=step)
    out["loop"] = time.perf_counter() - start
    out["per_image"] = out["loop"] / len(images)
    start = time.perf_counter()
    run.finish()
    out["finish"] = time.perf_counter() - start
    out["to_finish"] = out["loop"] + out["finish"]
    return out


def _mlflow_uri(kind: str) -> str:
    base = Path(os.environ["BENCH_TMP"])
    if kind == "file":
        return (base / "mlruns").as_uri()
    return f"sqlite:///{base / 'mlflow.db'}"


def mlflow_log_metric(kind: str) -> Result:
    """``mlflow.log_metric`` x 3 per step; 1,000 steps extrapolated if 10,000 would take > 60 s."""
    import mlflow

    mlflow.set_tracking_uri(_mlflow_uri(kind))
    mlflow.set_experiment("bench")
    rows = _rows()

    def log(row: Mapping[str, float], step: int) -> None:
        for key, value in row.items():
            mlflow.log_metric(key, value, step=step)

    with mlflow.start_run():
        start = time.perf_counter()
        for step in range(100):
            log(rows[step], step)
        projected = (time.perf_counter() - start) * STEPS / 100
    steps = STEPS if projected <= MLFLOW_BUDGET_S else MLFLOW_FALLBACK_STEPS
    with mlflow.start_run():
        start = time.perf_counter()
        for step in range(steps):
            log(rows[step], step)
        measured = time.perf_counter() - start
    out: Result = {"steps": steps, "measured": measured, "loop": measured * STEPS / steps}
    if steps != STEPS:
        out["notes"] = {"loop": f"{steps:,} steps measured ({measured:.1f} s), extrapolated"}
    out["projected_from_probe"] = projected
    return out


def mlflow_log_batch(kind: str) -> Result:
    """``MlflowClient.log_batch`` with 1,000 metrics per call, 30,000 values in all."""
    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(_mlflow_uri(kind))
    client = MlflowClient()
    experiment = client.create_experiment("bench")
    run_id = client.create_run(experiment).info.run_id
    now = int(time.time() * 1000)
    metrics = [
        Metric(key, value, now, step)
        for step, row in enumerate(_rows())
        for key, value in row.items()
    ]
    start = time.perf_counter()
    for i in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + BATCH])
    out: Result = {"loop": time.perf_counter() - start, "calls": len(metrics) // BATCH}
    client.set_terminated(run_id)
    return out


def _shell() -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    return InteractiveShell.instance()


def _cells(shell: Any, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        shell.run_cell("x = 1", store_history=True)
    return time.perf_counter() - start


def ipython_cells(arg: str) -> Result:
    """Trivial cells with and without the extension (interleaved), then the hooks alone."""
    cells, repeats = (int(v) for v in arg.split(","))
    shell = _shell()
    _cells(shell, 200)  # warm up
    shell.run_line_magic("load_ext", "nbops")
    shell.run_line_magic("nbops", "track --wandb disabled --project bench")
    _cells(shell, 200)
    bare, hooked = [], []
    for _ in range(repeats):
        shell.run_line_magic("unload_ext", "nbops")
        bare.append(_cells(shell, cells) / cells)
        shell.run_line_magic("load_ext", "nbops")
        hooked.append(_cells(shell, cells) / cells)
    spread = max(max(bare) - min(bare), max(hooked) - min(hooked))
    out: Result = {
        "bare_cell": min(bare),
        "hooked_cell": min(hooked),
        "per_cell": min(hooked) - min(bare),  # fastest blocks: least disturbed by the machine
        "per_cell_paired_median": statistics.median(
            h - b for h, b in zip(hooked, bare, strict=True)
        ),
        "bare": bare,
        "hooked": hooked,
        "notes": {"per_cell": f"fastest of {repeats} blocks; blocks vary {spread * 1e3:.3f} ms"},
    }
    out.update(_hook_calls(shell))
    shell.run_line_magic("nbops", "stop")
    return out


def _hook_calls(shell: Any, n: int = 20_000) -> Result:
    """Call the recorder's pre_run_cell + post_run_cell directly ``n`` times."""
    from IPython.core.interactiveshell import ExecutionInfo, ExecutionResult

    from nbops.notebook import session_for

    recorder = session_for(shell).recorder
    info = ExecutionInfo("x = 1", True, False, True, None)
    result = ExecutionResult(info)
    result.execution_count = 1
    ns = time.perf_counter_ns
    deltas = []
    for _ in range(n):
        start = ns()
        recorder.pre_run_cell(info)
        recorder.post_run_cell(result)
        deltas.append(ns() - start)
    deltas.sort()
    return {"hooks_median": deltas[n // 2] / 1e9, "hooks_p99": deltas[int(n * 0.99)] / 1e9}


HEAVY = ("wandb", "pandas", "nbformat", "papermill", "optuna", "ipywidgets", "jinja2", "sklearn")


def load_ext(_: str) -> Result:
    """``%load_ext nbops`` then ``%nbops track --wandb disabled`` in a fresh shell."""
    shell = _shell()
    before = set(sys.modules)
    start = time.perf_counter()
    shell.run_line_magic("load_ext", "nbops")
    out: Result = {"load_ext": time.perf_counter() - start}
    loaded = set(sys.modules) - before
    out["heavy_after_load_ext"] = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    out["modules_added"] = len(loaded)
    start = time.perf_counter()
    shell.run_line_magic("nbops", "track --wandb disabled --project bench")
    out["first_track"] = time.perf_counter() - start
    shell.run_line_magic("nbops", "stop")
    return out


def import_time(module: str) -> Result:
    """Seconds to import ``module`` in this (fresh) interpreter."""
    start = time.perf_counter()
    __import__(module)
    return {"import": time.perf_counter() - start}


WORKERS: dict[str, Callable[[str], Result]] = {
    "nbops_local": nbops_local,
    "nbops_offline": nbops_offline,
    "wandb_offline": wandb_offline,
    "mlflow_log_metric": mlflow_log_metric,
    "mlflow_log_batch": mlflow_log_batch,
    "ipython_cells": ipython_cells,
    "load_ext": load_ext,
    "import_time": import_time,
    "nbops_images": nbops_images,
    "wandb_images": wandb_images,
}


def main(argv: list[str]) -> None:
    """Run one worker and write its result as JSON."""
    name, target = argv[0], argv[1]
    arg = argv[2] if len(argv) > 2 else ""
    result = WORKERS[name](arg)
    Path(target).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
