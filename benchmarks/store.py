"""Store figures: listing 10,000 runs, and logging, on SQLite (and PostgreSQL when given).

Run ``python benchmarks/store.py`` (``--runs 2000`` for a quick check; ``--postgres URL`` adds
the PostgreSQL backend, e.g. ``postgresql://postgres@127.0.0.1:5432/bench``, and
``--postgres auto`` starts a private server on loopback for the run; ``$NBOPS_BENCH_POSTGRES``
is the default of ``--postgres``). Each store is filled through the public store API, then
timed:

* ``nbops.runs()`` (a DataFrame with params and last metrics), ``nbops runs list --json`` and
  a filtered, sorted, limited listing, all answered by the store in a few queries;
* the peer in the same run: the way listings worked before (one parameters query per run);
* logging: 10,000 steps x 3 metrics through ``nbops.init(...).log`` then ``flush()`` (durable);
* with PostgreSQL, MLflow's tracking on the same server (``benchmarks/store_mlflow.py``; needs
  mlflow, as in ``make bench``'s ``.venv-bench``): the same logging and listings, side by side.

Prints a table with ratios and writes ``benchmarks/store-results.json``; targets (issue 10/19):
listing 10,000 runs <= 0.5 s.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_LIST = 0.5


def _best(fn: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def fill(store: Any, n: int) -> float:
    """Create ``n`` finished runs with 3 params and 3 metrics (10 steps); return seconds."""
    from nbops.store import MetricPoint, RunRecord

    start = time.perf_counter()
    now = time.time()
    for i in range(n):
        rid = f"bench{i:06d}"
        store.create_run(
            RunRecord(
                id=rid,
                project="bench",
                name=f"run-{i}",
                tags=("baseline",) if i % 10 == 0 else (),
                start_time=now - n + i,
                heartbeat_time=now,
                host="bench-host",
            )
        )
        store.log_params(rid, {"lr": [0.1, 0.01, 0.001][i % 3], "layers": i % 7, "opt": "adam"})
        points = [
            MetricPoint(key, step, math.sin(i + step) if key != "acc" else (i % 100) / 100, now)
            for step in range(10)
            for key in ("loss", "acc", "lr")
        ]
        store.write_progress(rid, points)
        store.set_status(rid, "finished", now)
    return time.perf_counter() - start


def old_runs(store: Any) -> Any:
    """``nbops.runs()`` as it was before listings moved into the store: one parameters query
    per run, and a frame built from one dict per run."""
    from datetime import datetime, timezone

    import pandas as pd

    records = store.list_runs("bench")
    last = store.last_metrics([r.id for r in records])
    rows = []
    for r in records:
        row: dict[str, Any] = {
            "id": r.id,
            "name": r.name,
            "status": r.status,
            "tags": list(r.tags),
            "start_time": datetime.fromtimestamp(r.start_time, tz=timezone.utc),
        }
        row.update({f"params.{k}": v for k, v in store.get_params(r.id).items()})
        row.update({f"metrics.{k}": v for k, v in last[r.id].items()})
        rows.append(row)
    return pd.DataFrame(rows)


def cli_list(*argv: str) -> None:
    from nbops.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["runs", "list", *argv]) == 0


def logging_figures(url: str) -> dict[str, float]:
    """10,000 steps x 3 metrics through the tracking API; caller loop and durable time."""
    import nbops

    os.environ["NBOPS_STORE"] = url
    run = nbops.init(project="bench-log", wandb="disabled", capture=False)
    row = {"loss": 0.5, "acc": 0.9, "lr": 0.01}
    start = time.perf_counter()
    for _ in range(10_000):
        run.log(row)
    loop = time.perf_counter() - start
    run.flush()
    durable = time.perf_counter() - start
    run.finish()
    stored = len(run.store.get_metrics(run.id))
    assert stored == 30_000, stored
    del os.environ["NBOPS_STORE"]
    return {"loop": loop, "per_call": loop / 10_000, "durable": durable}


def measure(label: str, url: str, n: int) -> dict[str, float]:
    from nbops.store import open_store

    os.environ["NBOPS_STORE"] = url
    store = open_store(url)
    print(f"[{label}] filling {n} runs ...", file=sys.stderr, flush=True)
    if url.startswith("postgresql"):  # filling is set-up, not a figure: skip the per-commit fsync
        from nbops.store import open_backend

        sep = "&" if "?" in url else "?"
        filler = open_backend(f"{url}{sep}options=-c%20synchronous_commit%3Doff")
        figures = {"fill": fill(filler, n)}  # synchronous_commit=off
        filler.close()
    else:
        figures = {"fill": fill(store, n)}
    import nbops

    figures["nbops.runs()"] = _best(lambda: nbops.runs("bench"))
    figures["runs list --json"] = _best(lambda: cli_list("--project", "bench", "--json"))
    figures["runs list (table)"] = _best(lambda: cli_list("--project", "bench"))
    figures["filtered+sorted+limit"] = _best(
        lambda: cli_list(
            "--filter",
            "metrics.acc>0.9",
            "--filter",
            "params.lr=0.1",
            "--tag",
            "baseline",
            "--sort=-metrics.acc",
            "--limit",
            "20",
        )
    )
    figures["runs(filters,sort,limit)"] = _best(
        lambda: nbops.runs(
            "bench",
            filters=["metrics.acc>0.9", "params.lr=0.1"],
            tags="baseline",
            sort="-metrics.acc",
            limit=20,
        )
    )
    figures["store rows, one pass"] = _best(lambda: store.list_run_rows("bench"))
    figures["old runs(): per run"] = _best(lambda: old_runs(store))
    del os.environ["NBOPS_STORE"]
    figures.update({f"log {k}": v for k, v in logging_figures(url).items()})
    return figures


@contextlib.contextmanager
def private_postgres() -> Iterator[str]:
    """A throw-away PostgreSQL server on 127.0.0.1 (Debian's package), stopped afterwards."""
    import glob
    import shutil
    import socket
    import subprocess

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise SystemExit("PostgreSQL is not installed: apt-get install postgresql")
    bin_dir = Path(found[-1]).parent

    def as_pg(*cmd: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)

    root = Path(tempfile.mkdtemp(prefix="nbops-bench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = root / "data"
    subprocess.run(
        as_pg(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"),
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root}"
    subprocess.run(
        as_pg(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "log"),
            "-w",
            "start",
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres?schema=bench"
    finally:
        subprocess.run(
            as_pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("NBOPS_BENCH_POSTGRES"),
        help="a PostgreSQL URL to measure too (tables are created), or 'auto' for a private "
        "server (default: $NBOPS_BENCH_POSTGRES)",
    )
    parser.add_argument("--no-mlflow", action="store_true", help="skip MLflow on PostgreSQL")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    peer: dict[str, float | str] | str = "skipped: no PostgreSQL (--postgres)"
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NBOPS_HOME"] = str(Path(tmp) / "home")
        os.environ["NBOPS_BLOBS"] = str(Path(tmp) / "blobs")
        results["sqlite"] = measure("sqlite", f"sqlite://{tmp}/store", args.runs)
        with contextlib.ExitStack() as stack:
            url = args.postgres
            if url == "auto":
                url = stack.enter_context(private_postgres())
            if url:
                results["postgresql"] = measure("postgresql", url, args.runs)
                from nbops.store import open_store

                open_store(url).close()
                peer = mlflow_peer(url, args.runs, args.no_mlflow)
    names = list(results)
    print(f"\nstore benchmark, {args.runs} runs (best of 3; seconds)")
    print(f"{'figure':<24}" + "".join(f"{n:>14}" for n in names))
    for figure in results[names[0]]:
        cells = "".join(f"{results[n][figure]:>14.4f}" for n in names)
        print(f"{figure:<24}{cells}")
    for name in names:
        r = results[name]
        verdict = "PASS" if r["nbops.runs()"] <= TARGET_LIST else "FAIL"
        print(
            f"{name}: nbops.runs() {r['nbops.runs()']:.3f} s for {args.runs} runs "
            f"(target <= {TARGET_LIST} s: {verdict}); "
            f"{r['old runs(): per run'] / r['nbops.runs()']:.1f}x "
            "faster than runs() with a query per run; "
            f"log per call {r['log per_call'] * 1e6:.2f} us, "
            f"10k x 3 durable in {r['log durable']:.3f} s"
        )
    if len(names) > 1:
        a, b = results[names[1]], results[names[0]]
        ratios = ", ".join(f"{k} {a[k] / b[k]:.2f}x" for k in a if b[k] > 0)
        print(
            f"postgresql / sqlite: {statistics.median([a[k] / b[k] for k in a]):.2f}x "
            f"median; {ratios}"
        )
    print_peer(results.get("postgresql"), peer, args.runs)
    out = Path(__file__).with_name("store-results.json")
    doc = {"runs": args.runs, "load_average": os.getloadavg(), "nbops": results, "mlflow": peer}
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


def mlflow_peer(url: str, runs: int, skip: bool) -> dict[str, float | str] | str:
    """MLflow's figures on the server of ``url``, or why there are none."""
    if skip:
        return "skipped: --no-mlflow"
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        return "skipped: mlflow not installed (make bench installs it into .venv-bench)"
    import store_mlflow

    return store_mlflow.measure(url, runs)


#: (row, nbops figure, MLflow figure): each ratio is MLflow's time / nbops' time
PAIRS = [
    ("list N runs as a DataFrame", "nbops.runs()", "search_runs() frame"),
    ("filtered+sorted+limit 20", "runs(filters,sort,limit)", "filtered+sorted+limit"),
    ("10k x 3, caller loop", "log loop", "log_metrics async, caller loop"),
    ("10k x 3 durable (background)", "log durable", "log_metrics async, durable"),
    ("10k x 3 durable (sync calls)", "log durable", "log_metrics sync, durable"),
    ("10k x 3 durable (log_batch)", "log durable", "log_batch 30 x 1,000, durable"),
    ("fill N runs (set-up)", "fill", "fill"),
]


def print_peer(ours: dict[str, float] | None, peer: dict[str, float | str] | str, n: int) -> None:
    if ours is None or isinstance(peer, str):
        print(f"\nMLflow on PostgreSQL: {peer if isinstance(peer, str) else 'skipped'}")
        return
    print(f"\nnbops vs MLflow tracking, both on the same PostgreSQL ({n} runs; seconds)")
    print(f"{'figure':<30}{'nbops':>10}{'MLflow':>10}   ratio")
    for row, mine, theirs in PAIRS:
        a, b = ours[mine], peer[theirs]
        assert isinstance(b, float)
        ratio = b / a
        word = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
        print(f"{row:<30}{a:>10.3f}{b:>10.3f}   nbops {word}")
    if "note" in peer:
        print(f"note: {peer['note']}")


if __name__ == "__main__":
    main()
