"""Sweep benchmarks: notebook trial throughput, worker-process speed-up, per-trial overhead.

Usage: ``python benchmarks/sweeps.py [--quick] [--only notebooks,jobs,overhead,copies]
[--repeats N]``. Runs in a temporary project and prints a table; nothing here is part of the
test suite. ``--repeats N`` runs the overhead section N times (raw Optuna right before nbops in
each round) and prints medians.

1. 20 trials of a tiny notebook: ``nbops.sweep(notebook, jobs=1)`` (a fresh kernel per trial,
   the next one started while the current trial runs) vs a plain loop of
   ``papermill.execute_notebook`` (target: nbops >= 2x the throughput).
2. A CPU-bound function objective, ``jobs=2`` vs ``jobs=1`` (target >= 1.7x on 2 cores).
3. nbops' per-trial overhead over raw Optuna (``study.optimize``) on the same kind of journal
   storage, with default settings (the W&B mirror on, offline) and with the mirror disabled
   (target: <= 5 ms per trial with the defaults; the whole call, copies complete at return).
4. The CPU of one trial's offline W&B copy written from the store: directly (no media, no
   artifacts: the default for a sweep's trials) vs through wandb (``wandb.init`` + ``finish``).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

QUICK = "--quick" in sys.argv
ONLY = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
NOTEBOOK_TRIALS = 8 if QUICK else 20
CPU_TRIALS = 8 if QUICK else 20
TRIVIAL_TRIALS = 60 if QUICK else 300
REPEATS = int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else 1
COPIES = 20 if QUICK else 100
SPACE = {"x": {"type": "float", "low": -5.0, "high": 5.0}}


def cpu_objective(params: dict[str, Any]) -> float:
    """About 0.5 s of pure-Python work."""
    total = 0
    for i in range(15_000_000):
        total += i % 7
    return float(total % 1000) + params["x"]


def trivial(params: dict[str, Any]) -> float:
    return -((params["x"] - 2.0) ** 2)


def _notebook(path: Path) -> Path:
    def cell(source: str, tags: list[str]) -> dict[str, Any]:
        return {
            "cell_type": "code",
            "id": f"c{len(source)}",
            "source": source,
            "outputs": [],
            "execution_count": None,
            "metadata": {"tags": tags},
        }

    body = (
        "import nbops\nscore = -(x - 2) ** 2\n"
        "if nbops.active_run() is not None:\n    nbops.log({'score': score})"
    )
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "cells": [cell("x = 0.0", ["parameters"]), cell(body, [])],
    }
    path.write_text(json.dumps(nb))
    return path


def bench_notebooks(root: Path) -> list[tuple[str, float, str]]:
    import random

    import papermill

    import nbops

    notebook = _notebook(root / "tiny.ipynb")
    papermill.execute_notebook(str(notebook), str(root / "warm.ipynb"), progress_bar=False)
    started = time.perf_counter()
    for i in range(NOTEBOOK_TRIALS):
        papermill.execute_notebook(
            str(notebook),
            str(root / f"pm-{i}.ipynb"),
            parameters={"x": random.uniform(-5, 5)},
            progress_bar=False,
        )
    plain = time.perf_counter() - started
    started = time.perf_counter()
    sweep = nbops.sweep(
        notebook, space=SPACE, metric="score", n_trials=NOTEBOOK_TRIALS, direction="maximize"
    )
    ours = time.perf_counter() - started
    assert len(sweep.trials()) == NOTEBOOK_TRIALS and not sweep.errors, sweep.errors
    return [
        (f"papermill loop, {NOTEBOOK_TRIALS} notebooks", plain, "s"),
        (f"nbops.sweep(notebook, jobs=1), {NOTEBOOK_TRIALS} trials", ours, "s"),
        ("  throughput ratio nbops / papermill (target >= 2x)", plain / ours, "x"),
        ("  per trial, papermill", plain / NOTEBOOK_TRIALS, "s"),
        ("  per trial, nbops", ours / NOTEBOOK_TRIALS, "s"),
    ]


def bench_jobs() -> list[tuple[str, float, str]]:
    import nbops

    times = {}
    for jobs in (1, 2):
        started = time.perf_counter()
        sweep = nbops.sweep(
            "sweeps_bench:cpu_objective",
            space=SPACE,
            n_trials=CPU_TRIALS,
            jobs=jobs,
            direction="maximize",
        )
        times[jobs] = time.perf_counter() - started
        assert len(sweep.trials()) == CPU_TRIALS and not sweep.errors, sweep.errors
    return [
        (f"CPU-bound objective, {CPU_TRIALS} trials, jobs=1", times[1], "s"),
        (f"CPU-bound objective, {CPU_TRIALS} trials, jobs=2", times[2], "s"),
        ("  speed-up jobs=2 / jobs=1 (target >= 1.7x)", times[1] / times[2], "x"),
    ]


def bench_overhead(root: Path) -> list[tuple[str, float, str]]:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    import nbops

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def raw_objective(trial: optuna.Trial) -> float:
        return trivial({"x": trial.suggest_float("x", -5, 5)})

    cpu: dict[str, float] = {}  # CPU seconds of this process per trial (the caller's cost)

    def per_trial_raw(name: str) -> float:
        storage = JournalStorage(JournalFileBackend(str(root / f"{name}.journal")))
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
        started, cpu_started = time.perf_counter(), time.process_time()
        study.optimize(raw_objective, n_trials=TRIVIAL_TRIALS)
        cpu[name] = (time.process_time() - cpu_started) / TRIVIAL_TRIALS
        return (time.perf_counter() - started) / TRIVIAL_TRIALS

    def per_trial_ours(name: str, wandb: str) -> tuple[float, float]:
        """Per trial: the whole ``nbops.sweep`` call (W&B copies complete when it returns),
        and the trial loop alone (start to the last trial's completion in the study)."""
        nbops.sweep(trivial, space=SPACE, n_trials=2, study_name=f"{name}-warm", wandb=wandb,
                    direction="maximize")  # fmt: skip
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        started, wall, cpu_started = time.perf_counter(), time.time(), time.process_time()
        sweep = nbops.sweep(
            trivial,
            space=SPACE,
            n_trials=TRIVIAL_TRIALS,
            storage=root / f"{name}.journal",
            study_name=name,
            wandb=wandb,
            direction="maximize",
        )
        whole = (time.perf_counter() - started) / TRIVIAL_TRIALS
        cpu[name] = (time.process_time() - cpu_started) / TRIVIAL_TRIALS
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
        cpu[f"{name}-helpers"] = used / TRIVIAL_TRIALS
        last = max(t.datetime_complete.timestamp() for t in sweep.trials())
        return whole, (last - wall) / TRIVIAL_TRIALS

    figures: dict[str, list[float]] = {}  # per round; medians reported
    load_before = os.getloadavg()[0]
    for round_ in range(REPEATS):
        for wandb in ("offline", "disabled"):  # raw measured right before each, the same way
            raw = per_trial_raw(f"raw-{wandb}-{round_}")
            ours, loop = per_trial_ours(f"ours-{wandb}-{round_}", wandb)
            for key, value in (
                ("raw", raw),
                ("ours", ours),
                ("overhead", ours - raw),
                ("loop", loop),
                ("loop overhead", loop - raw),
                ("raw cpu", cpu[f"raw-{wandb}-{round_}"]),
                ("ours cpu", cpu[f"ours-{wandb}-{round_}"]),
                ("helpers cpu", cpu[f"ours-{wandb}-{round_}-helpers"]),
            ):
                figures.setdefault(f"{wandb} {key}", []).append(value * 1e3)
    median = {key: statistics.median(values) for key, values in figures.items()}
    rounds = f", median of {REPEATS} rounds" if REPEATS > 1 else ""
    rows: list[tuple[str, float, str]] = []
    for wandb in ("offline", "disabled"):
        m = {key.split(" ", 1)[1]: value for key, value in median.items() if key.startswith(wandb)}
        overheads = sorted(figures[f"{wandb} overhead"])
        rows += [
            (f"raw Optuna, journal file, {TRIVIAL_TRIALS} trivial trials, per trial{rounds}",
             m["raw"], "ms"),
            (f"nbops.sweep, W&B mirror {wandb}, per trial (a tracked run each)", m["ours"], "ms"),
            (f"  nbops overhead per trial, W&B {wandb} (target <= 5 ms)", m["overhead"], "ms"),
            *([(f"    lowest / highest of {REPEATS} rounds", overheads[0], "ms"),
               ("", overheads[-1], "ms")] if REPEATS > 1 else []),
            (f"  trial loop alone, W&B {wandb}, per trial", m["loop"], "ms"),
            (f"  trial loop overhead per trial, W&B {wandb}", m["loop overhead"], "ms"),
            (f"  CPU of the calling process per trial, raw / nbops, W&B {wandb}", m["raw cpu"],
             "ms"),
            ("", m["ours cpu"], "ms"),
            (f"  CPU of helper processes per trial (W&B copies), W&B {wandb}", m["helpers cpu"],
             "ms"),
        ]  # fmt: skip
    rows.append(("load average (1 min) before / after", load_before, ""))
    rows.append(("", os.getloadavg()[0], ""))
    return rows


def _descendants_cpu() -> float:
    """CPU seconds used so far by this process's live descendants (wandb-core), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [os.getpid()]
    while todo:
        pid = todo.pop()
        for children in Path(f"/proc/{pid}/task").glob("*/children"):
            for child in children.read_text().split():
                try:
                    fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
                todo.append(int(child))
    return total


def bench_copies(root: Path) -> list[tuple[str, float, str]]:
    """CPU of one trial's offline W&B copy written from the store: directly vs through wandb
    (this process plus wandb-core), each kind warmed up first (imports, wandb-core started)."""
    import nbops
    from nbops.mirror import METADATA_KEY, deferred_state, rebuild_offline_copy
    from nbops.store import open_store

    store = open_store()

    def owed_run(i: int) -> str:
        run = nbops.init(name=f"copy-{i}", config={"x": 0.5}, wandb="disabled", capture=False)
        run.set_metadata(METADATA_KEY, deferred_state().to_dict(), deferred=True)
        for step in range(3):
            run.log({"score": -((step - 2.0) ** 2), "loss": 1.0 / (step + 1)})
        run.finish()
        return run.id

    cpu: dict[str, float] = {}
    for kind in ("direct", "wandb"):
        via_wandb = kind == "wandb"
        ids = [owed_run(i) for i in range(COPIES + 1)]
        rebuild_offline_copy(store, ids[0], root / kind, through_wandb=via_wandb)  # warm
        started, core = time.process_time(), _descendants_cpu()
        for run_id in ids[1:]:
            rebuild_offline_copy(store, run_id, root / kind, through_wandb=via_wandb)
        cpu[kind] = (time.process_time() - started) / COPIES
        cpu[f"{kind}-core"] = (_descendants_cpu() - core) / COPIES
    direct = cpu["direct"] + cpu["direct-core"]
    wandb = cpu["wandb"] + cpu["wandb-core"]
    return [
        (f"W&B copy of a 3-step run, {COPIES} copies: written directly, CPU per copy",
         direct * 1e3, "ms"),
        ("  through wandb (init, log, finish), CPU per copy: this process", cpu["wandb"] * 1e3,
         "ms"),
        ("                                                   wandb-core", cpu["wandb-core"] * 1e3,
         "ms"),
        ("  ratio wandb / direct (CPU, all processes)", wandb / direct, "x"),
    ]  # fmt: skip


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="nbops-sweep-bench-"))
    (root / "pyproject.toml").write_text("[project]\nname = 'bench'\n")
    (root / "sweeps_bench.py").write_text(Path(__file__).read_text())
    os.chdir(root)
    sys.path.insert(0, str(root))
    os.environ.update(NBOPS_HOME=str(root / ".nbops"), NBOPS_WANDB="disabled")
    os.environ.update(WANDB_DIR=str(root), WANDB_SILENT="true")  # offline runs stay in root
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sections = {
        "notebooks": bench_notebooks,
        "jobs": lambda _: bench_jobs(),
        "overhead": bench_overhead,
        "copies": bench_copies,
    }
    chosen = [bench for name, bench in sections.items() if ONLY is None or name in ONLY]
    rows = [row for bench in chosen for row in bench(root)]
    print(f"nbops sweep benchmarks ({os.cpu_count()} CPUs{', quick' if QUICK else ''})")
    width = max(len(name) for name, _, _ in rows)
    for name, value, unit in rows:
        print(f"{name.ljust(width)}  {value:8.3f} {unit}")


if __name__ == "__main__":
    main()
