"""Pipeline stages on a Dask cluster: ``nbops run --executor dask://...`` on two workers against
``nbops run --jobs 1`` on this machine.

Run ``python benchmarks/dask_pipeline.py`` with an interpreter that has ``nbops[dask]`` (the dev
venv). It starts a Dask scheduler and two workers (one thread each, no nanny) as separate
processes on 127.0.0.1, builds a temporary project of ``--stages`` independent stages that each
sleep ``--seconds`` and write one out, with a directory remote as the transfer medium (no shared
disk assumed), and times, wall clock, ``run_pipeline(force=True)`` locally with one job and on
the cluster (its default ``--jobs``: one stage per worker), alternately, ``--repeats`` times
each. The first round is cold (fresh workers import papermill, jupyter_client and nbops on their
first stage); the target compares the warm rounds (a cluster's workers outlive one run): the
cluster at least 1.8x faster. Prints a table and writes ``benchmarks/dask-pipeline-results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET = 1.8
RESULTS = Path(__file__).resolve().parent / "dask-pipeline-results.json"


def _notebook(params: str, code: str) -> str:
    def cell(cid: str, source: str, tags: list[str]) -> dict[str, Any]:
        meta = {"tags": tags} if tags else {}
        return {"cell_type": "code", "id": cid, "metadata": meta, "source": source,
                "outputs": [], "execution_count": None}  # fmt: skip

    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return json.dumps(
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "cells": [cell("p", params, ["parameters"]), cell("c", code, [])],
            "metadata": {"kernelspec": kernelspec},
        }
    )


def _project(root: Path, stages: int, seconds: float) -> None:
    (root / "pyproject.toml").write_text("[project]\nname = 'daskbench'\n")
    (root / "nb").mkdir()
    (root / "nb" / "sleep.ipynb").write_text(
        _notebook(
            "index = 0\nseconds = 1.0",
            "import time\nfrom pathlib import Path\ntime.sleep(seconds)\n"
            "Path('out').mkdir(exist_ok=True)\nPath(f'out/{index}.txt').write_text(str(index))",
        )
    )
    lines = ["stages:"]
    for i in range(stages):
        lines += [
            f"  s{i}:",
            "    notebook: nb/sleep.ipynb",
            f"    params: {{index: {i}, seconds: {seconds}}}",
            f"    outs: [out/{i}.txt]",
        ]
    (root / "nbops.yaml").write_text("\n".join(lines) + "\n")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Cluster:
    """A scheduler and ``workers`` workers as separate processes (killed on exit)."""

    def __init__(self, folder: Path, workers: int) -> None:
        self.port = _free_port()
        self.url = f"dask://127.0.0.1:{self.port}"
        address = f"tcp://127.0.0.1:{self.port}"
        self.processes = [
            self._spawn(folder, "scheduler", "scheduler", "--host", "127.0.0.1", "--port",
                        str(self.port), "--no-dashboard", "--no-show")
        ]  # fmt: skip
        for i in range(workers):
            self.processes.append(
                self._spawn(folder, f"w{i}", "worker", address, "--name", f"w{i}", "--nthreads",
                            "1", "--no-nanny", "--host", "127.0.0.1", "--no-dashboard",
                            "--local-directory", str(folder / f"w{i}"))
            )  # fmt: skip
        from distributed import Client

        with Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=60)

    @staticmethod
    def _spawn(folder: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(folder / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
        return subprocess.Popen(
            [sys.executable, "-m", "dask", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


def _timed(root: Path, **options: Any) -> float:
    from nbops.pipeline import run_pipeline

    started = time.perf_counter()
    result = run_pipeline(root, force=True, report=lambda _: None, **options)
    seconds = time.perf_counter() - started
    assert all(s.outcome == "ran" for s in result.stages), result
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=8, help="independent stages (default 8)")
    parser.add_argument("--seconds", type=float, default=2.0, help="each stage sleeps (2 s)")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers (default 2)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of each (default 2)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nbops-dask-bench-") as tmp:
        base = Path(tmp)
        root = base / "project"
        root.mkdir()
        _project(root, args.stages, args.seconds)
        os.environ.update(NBOPS_HOME=str(root / ".nbops"), NBOPS_WANDB="disabled")
        os.chdir(root)
        from nbops.config import store_path
        from nbops.pipeline import add_remote

        add_remote(root, store_path(root), "shared", str(base / "remote"), default=True)
        cluster = _Cluster(base, args.workers)
        locals_: list[float] = []
        dasks: list[float] = []
        try:
            for _ in range(max(1, args.repeats)):
                locals_.append(_timed(root, jobs=1))
                dasks.append(_timed(root, executor=cluster.url))
        finally:
            cluster.stop()
    warm_local = min(locals_[1:] or locals_)
    warm_dask = min(dasks[1:] or dasks)
    speedup = warm_local / warm_dask
    figures = {
        "stages": args.stages,
        "seconds_each": args.seconds,
        "workers": args.workers,
        "local_jobs_1_s": [round(t, 2) for t in locals_],
        "dask_s": [round(t, 2) for t in dasks],
        "cold_speedup": round(locals_[0] / dasks[0], 2),
        "warm_speedup": round(speedup, 2),
        "target": TARGET,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
    }
    print(f"{'run':<40} {'cold':>8} {'warm (best)':>12}")
    print(f"{'local, --jobs 1':<40} {locals_[0]:>6.1f} s {warm_local:>10.1f} s")
    label = f"dask, {args.workers} workers (files via a remote)"
    print(f"{label:<40} {dasks[0]:>6.1f} s {warm_dask:>10.1f} s")
    verdict = "PASS" if speedup >= TARGET else "FAIL"
    print(
        f"speedup cold {locals_[0] / dasks[0]:.2f}x, warm {speedup:.2f}x "
        f"(target >= {TARGET}x): {verdict}; load average {os.getloadavg()[0]:.1f}"
    )
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
