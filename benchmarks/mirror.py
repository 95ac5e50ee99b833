"""Cost of the W&B offline mirror at ``finish()``, side by side with wandb alone.

Run ``python benchmarks/mirror.py`` (10,000 and 300,000 steps x 3 metrics) or
``python benchmarks/mirror.py --steps 10000``. Each measurement runs in a fresh interpreter with
its own temporary store and W&B folders, ``WANDB_MODE=offline``; nothing touches the network.

Timed, per tool, from the first ``log`` call to ``finish()`` returning with the ``.wandb`` file
complete on disk:

* **wandb alone**: ``wandb.init(mode="offline")``, ``run.log({3 metrics}, step=i)`` per step,
  ``run.finish()``.
* **nbops + mirror**: ``nbops.init(wandb="offline", capture=False)``, ``run.log({3 metrics})``
  per step, ``run.finish()``, then until the mirror holds every row (checked by reading the file
  back): ``finish()`` itself returns after 60 s at most, recording a partial copy that the
  mirror completes in the background, so on a slow machine it can return before the copy is
  done.

The ratio nbops / wandb is the mirror's cost target (<= 1.2).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_RATIO = 1.2


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "NBOPS_"))}
    for key, name in (
        ("NBOPS_HOME", "nbops"),
        ("WANDB_DIR", "wandb"),
        ("WANDB_CONFIG_DIR", "wandb-config"),
        ("WANDB_CACHE_DIR", "wandb-cache"),
        ("WANDB_DATA_DIR", "wandb-data"),
    ):
        (tmp / name).mkdir(parents=True, exist_ok=True)
        env[key] = str(tmp / name)
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", HOME=str(tmp))
    return env


def _worker(tool: str, steps: int) -> dict[str, Any]:
    rows = [{"loss": 1.0 / (i + 1), "acc": i / steps, "lr": 0.001} for i in range(steps)]
    if tool == "wandb":
        import wandb

        run = wandb.init(project="bench", dir=os.environ["WANDB_DIR"], mode="offline")
        run_dir = str(Path(run.dir).parent)
        start = time.perf_counter()
        for i, row in enumerate(rows):
            run.log(row, step=i)
        loop = time.perf_counter() - start
        run.finish()
        total = time.perf_counter() - start
    else:
        import nbops

        nb_run = nbops.init(project="bench", wandb="offline", capture=False)
        mirror = nb_run.mirror
        assert mirror is not None
        deadline = time.monotonic() + 60
        while mirror.state.status == "starting" and time.monotonic() < deadline:
            time.sleep(0.01)
        start = time.perf_counter()
        for row in rows:
            nb_run.log(row)
        loop = time.perf_counter() - start
        nb_run.finish()
        returned = time.perf_counter() - start
        # finish() returns after FINISH_TIMEOUT (60 s) at most, recording a partial copy that
        # the worker completes in the background: time until the copy is complete
        mirror.finish(timeout=3600)
        total = time.perf_counter() - start
        run_dir = mirror.state.run_dir or ""
    from nbops.mirror import read_offline_run

    back = read_offline_run(run_dir)
    result = {"loop": loop, "total": total, "rows": len(back.history), "complete": back.complete}
    if tool == "nbops":
        result["finish_returned"] = returned
    return result


def _measure(tool: str, steps: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="nbops-bench-mirror-") as tmp:
        out = subprocess.run(
            [sys.executable, __file__, "--worker", tool, "--steps", str(steps)],
            env=_env(Path(tmp)),
            capture_output=True,
            text=True,
            check=False,
            timeout=3600,
        )
    if out.returncode != 0:
        raise SystemExit(f"{tool} worker failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, action="append", help="steps (repeatable)")
    parser.add_argument("--repeat", type=int, default=1, help="fresh processes per figure")
    parser.add_argument("--worker", choices=("wandb", "nbops"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args.steps[0])))
        return
    print(f"{'steps':>8}  {'wandb alone':>12}  {'nbops+mirror':>12}  {'ratio':>6}  target")
    for steps in args.steps or [10_000, 300_000]:
        figures: dict[str, list[float]] = {"wandb": [], "nbops": []}
        for _ in range(args.repeat):
            for tool in figures:
                result = _measure(tool, steps)
                if result["rows"] != steps or not result["complete"]:
                    raise SystemExit(f"{tool}: .wandb file has {result['rows']} of {steps} rows")
                figures[tool].append(result["total"])
        wandb_s = statistics.median(figures["wandb"])
        nbops_s = statistics.median(figures["nbops"])
        ratio = nbops_s / wandb_s
        verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
        print(
            f"{steps:>8}  {wandb_s:>10.2f} s  {nbops_s:>10.2f} s  {ratio:>6.2f}  "
            f"<= {TARGET_RATIO} {verdict}"
        )


if __name__ == "__main__":
    main()
