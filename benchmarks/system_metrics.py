"""System-metrics sampler: cost per sample, share of one core at the default period, and the
delay it adds to ``finish()`` (contract: <= 1% of a core at 10 s, <= 50 ms at finish).

The peer is psutil (what MLflow's ``log_system_metrics`` samples with) reading the same values,
measured in the same run when it is importable. A fake ``nvidia-smi`` that takes 0.5 s stands in
for a GPU so the finish delay is measured while a sample is under way::

    python benchmarks/system_metrics.py [--samples 200] [--finishes 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import nbops  # noqa: E402
from nbops.tracking import SystemProbe  # noqa: E402

DEFAULT_INTERVAL = 10.0

SLOW_SMI = """#!/bin/sh
sleep 0.5
echo "0, 37, 1024, 16384, 55, 71.50"
"""


def cpu_per_sample(sample: Any, count: int) -> float:
    """Seconds of CPU (this process) one call of ``sample()`` costs, median of ``count``."""
    sample()
    costs = []
    for _ in range(count):
        began = time.process_time()
        sample()
        costs.append(time.process_time() - began)
    return statistics.median(costs) if count else 0.0


def psutil_sample() -> Any:
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        return None
    process = psutil.Process()

    def sample() -> None:
        process.cpu_percent()
        psutil.cpu_percent()
        process.memory_info()
        psutil.virtual_memory()
        psutil.disk_io_counters()
        psutil.disk_usage(".")
        psutil.net_io_counters()

    return sample


def finish_delays(count: int, sampling: bool) -> list[float]:
    """Seconds ``finish()`` takes, each run finished while a (slow) GPU sample is under way."""
    delays = []
    for _ in range(count):
        run = nbops.init(
            project="bench", capture=False, wandb=False, system_metrics=0.05 if sampling else False
        )
        run.log({"x": 1.0})
        time.sleep(0.2)
        began = time.perf_counter()
        run.finish()
        delays.append(time.perf_counter() - began)
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--finishes", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["NBOPS_HOME"] = str(Path(folder) / "store")
        smi = Path(folder) / "nvidia-smi"
        smi.write_text(SLOW_SMI)
        smi.chmod(0o755)
        probe = SystemProbe(folder, nvidia_smi=None)
        ours = cpu_per_sample(probe.sample, args.samples)
        peer_sample = psutil_sample()
        peer = cpu_per_sample(peer_sample, args.samples) if peer_sample else None
        os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ['PATH']}"
        with_gpu = cpu_per_sample(SystemProbe(folder).sample, min(args.samples, 5))
        off = finish_delays(args.finishes, sampling=False)
        on = finish_delays(args.finishes, sampling=True)
    figures = {
        "cpu_ms_per_sample": ours * 1e3,
        "cpu_ms_per_sample_with_nvidia_smi": with_gpu * 1e3,
        "core_percent_at_default_period": 100 * ours / DEFAULT_INTERVAL,
        "psutil_cpu_ms_per_sample": None if peer is None else peer * 1e3,
        "finish_ms_off_median": statistics.median(off) * 1e3,
        "finish_ms_on_median": statistics.median(on) * 1e3,
        "finish_extra_ms_max": (max(on) - statistics.median(off)) * 1e3,
    }
    print(f"one sample (/proc):       {figures['cpu_ms_per_sample']:.3f} ms CPU")
    print(f"one sample + nvidia-smi:  {figures['cpu_ms_per_sample_with_nvidia_smi']:.3f} ms CPU")
    print(
        f"share of one core at {DEFAULT_INTERVAL:.0f} s: "
        f"{figures['core_percent_at_default_period']:.4f} % (contract <= 1 %)"
    )
    if peer is not None:
        print(
            f"psutil, same values:      {peer * 1e3:.3f} ms CPU (ratio nbops/psutil "
            f"{ours / peer:.2f})"
        )
    else:
        print("psutil not importable: no peer figure")
    print(
        f"finish(): {figures['finish_ms_off_median']:.1f} ms without sampling, "
        f"{figures['finish_ms_on_median']:.1f} ms with (median); worst extra "
        f"{figures['finish_extra_ms_max']:.1f} ms (contract <= 50 ms)"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
