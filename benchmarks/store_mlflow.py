"""The peer of ``benchmarks/store.py`` on PostgreSQL: MLflow's tracking with a ``postgresql://``
backend store on the same server (its own database, ``mlflow_bench``).

Measured (needs ``mlflow`` and ``psycopg2``: the ``.venv-bench`` that ``make bench`` creates):

* logging 10,000 steps x 3 metrics, durable: ``mlflow.log_metrics`` per step (synchronous: one
  transaction per call; 1,000 steps extrapolated when 10,000 would take over a minute),
  ``mlflow.log_metrics(..., synchronous=False)`` then ``mlflow.flush_async_logging()``
  (MLflow's background batching, the nearest to nbops'), and ``MlflowClient.log_batch`` with
  1,000 prebuilt metrics per call;
* listing 10,000 runs (3 params, 3 metrics x 10 steps, a tag on every tenth): the DataFrame of
  ``mlflow.search_runs`` (the peer of ``nbops.runs()``) and a filtered, sorted, limited
  ``MlflowClient.search_runs`` (the peer of ``nbops runs list --filter ... --sort ... --limit``).

The runs are filled through ``MlflowClient`` on 4 threads with ``synchronous_commit=off`` (set-up,
not a figure, as for nbops' own fill); the figures use a normal connection.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DATABASE = "mlflow_bench"
STEPS = 10_000
BATCH = 1_000
BUDGET_S = 60.0
FALLBACK_STEPS = 1_000
ROW = {"loss": 0.5, "acc": 0.9, "lr": 0.01}


def _best(fn: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def mlflow_uri(nbops_url: str, options: str = "") -> str:
    """The MLflow backend URI on the server of ``nbops_url`` (database ``mlflow_bench``)."""
    parts = urlsplit(nbops_url)
    query = f"options={options}" if options else ""
    return urlunsplit(("postgresql+psycopg2", parts.netloc, f"/{DATABASE}", query, ""))


def create_database(nbops_url: str) -> None:
    """Create (empty) the database MLflow uses on the same server."""
    import sqlalchemy

    parts = urlsplit(nbops_url)
    admin = urlunsplit(("postgresql+psycopg2", parts.netloc, "/postgres", "", ""))
    engine = sqlalchemy.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {DATABASE}"))
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {DATABASE}"))
    engine.dispose()


def _quiet() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.ERROR)


def logging_figures(uri: str) -> dict[str, float | str]:
    """10,000 steps x 3 metrics, each way; seconds until the values are in the database."""
    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("bench-log")
    client = MlflowClient()
    out: dict[str, float | str] = {}

    with mlflow.start_run() as run:  # synchronous: a transaction per call
        start = time.perf_counter()
        for step in range(100):
            mlflow.log_metrics(ROW, step=step)
        projected = (time.perf_counter() - start) * STEPS / 100
    steps = STEPS if projected <= BUDGET_S else FALLBACK_STEPS
    with mlflow.start_run() as run:
        start = time.perf_counter()
        for step in range(steps):
            mlflow.log_metrics(ROW, step=step)
        measured = time.perf_counter() - start
    assert len(client.get_metric_history(run.info.run_id, "loss")) == steps
    out["log_metrics sync, durable"] = measured * STEPS / steps
    if steps != STEPS:
        out["note"] = f"sync: {steps:,} steps measured in {measured:.1f} s, extrapolated"

    with mlflow.start_run() as run:  # MLflow's own background batching
        start = time.perf_counter()
        for step in range(STEPS):
            mlflow.log_metrics(ROW, step=step, synchronous=False)
        out["log_metrics async, caller loop"] = time.perf_counter() - start
        mlflow.flush_async_logging()
        out["log_metrics async, durable"] = time.perf_counter() - start
    assert len(client.get_metric_history(run.info.run_id, "loss")) == STEPS

    experiment = mlflow.get_experiment_by_name("bench-log")
    run_id = client.create_run(experiment.experiment_id).info.run_id
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, step) for step in range(STEPS) for k, v in ROW.items()]
    start = time.perf_counter()
    for i in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + BATCH])
    out["log_batch 30 x 1,000, durable"] = time.perf_counter() - start
    client.set_terminated(run_id)
    return out


def fill(uri: str, n: int) -> tuple[str, float]:
    """``n`` finished runs like nbops' fill (3 params, 3 metrics x 10 steps, a tag on every
    tenth); return the experiment id and the seconds it took."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("bench")
    now = time.time()

    def one(i: int) -> None:
        run = client.create_run(
            experiment, start_time=int((now - n + i) * 1000), run_name=f"run-{i}"
        )
        rid = run.info.run_id
        params = [Param("lr", str([0.1, 0.01, 0.001][i % 3])), Param("layers", str(i % 7))]
        params.append(Param("opt", "adam"))
        metrics = [
            Metric(
                key, math.sin(i + step) if key != "acc" else (i % 100) / 100, int(now * 1000), step
            )
            for step in range(10)
            for key in ("loss", "acc", "lr")
        ]
        tags = [RunTag("baseline", "true")] if i % 10 == 0 else []
        client.log_batch(rid, metrics=metrics, params=params, tags=tags)
        client.set_terminated(rid)

    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        for done, _ in enumerate(pool.map(one, range(n))):
            if done and done % 2000 == 0:
                print(f"[mlflow] filled {done} runs ...", file=sys.stderr, flush=True)
    return experiment, time.perf_counter() - start


def listing_figures(uri: str, experiment: str, n: int) -> dict[str, float]:
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(uri)
    client = MlflowClient()

    def frame() -> None:
        df = mlflow.search_runs(experiment_ids=[experiment], max_results=n)
        assert len(df) == n, len(df)

    def filtered() -> None:
        found = client.search_runs(
            [experiment],
            "metrics.acc > 0.9 and params.lr = '0.1' and tags.baseline = 'true'",
            order_by=["metrics.acc DESC"],
            max_results=20,
        )
        assert len(found) <= 20  # the same query as nbops' row (no run matches all three)

    return {"search_runs() frame": _best(frame), "filtered+sorted+limit": _best(filtered)}


def measure(nbops_url: str, n: int) -> dict[str, float | str]:
    """Every MLflow figure on the server of ``nbops_url``."""
    _quiet()
    create_database(nbops_url)
    uri = mlflow_uri(nbops_url)
    print("[mlflow] logging ...", file=sys.stderr, flush=True)
    figures: dict[str, float | str] = dict(logging_figures(uri))
    print(f"[mlflow] filling {n} runs ...", file=sys.stderr, flush=True)
    experiment, seconds = fill(mlflow_uri(nbops_url, "-c%20synchronous_commit%3Doff"), n)
    figures["fill"] = seconds
    figures.update(listing_figures(uri, experiment, n))
    return figures
