"""Prometheus metrics of the server (``GET /metrics``), multiprocess-safe with ``--workers``.

With several workers, ``PROMETHEUS_MULTIPROC_DIR`` is set before any worker starts and every
worker's values are merged when scraped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from nbops.deps import require

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class Metrics:
    """The server's metrics, in a registry of their own (single process) or shared files."""

    def __init__(self) -> None:
        require("prometheus_client", feature="the server's /metrics")
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            disable_created_metrics,
        )

        disable_created_metrics()  # type: ignore[no-untyped-call]

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        registry = None if self.multiprocess else CollectorRegistry()
        self._registry = registry
        kw: dict[str, Any] = {"registry": registry} if registry is not None else {}
        route = ["model", "version", "route"]
        self.requests = Counter(
            "nbops_serve_requests",
            "Inference requests answered, by HTTP status code.",
            [*route, "code"],
            **kw,
        )
        self.errors = Counter(
            "nbops_serve_errors",
            "Failed inference requests by kind (input, model, timeout).",
            [*route, "kind"],
            **kw,
        )
        self.latency = Histogram(
            "nbops_serve_request_duration_seconds",
            "Time from request to answer for inference requests.",
            route,
            buckets=_LATENCY_BUCKETS,
            **kw,
        )
        self.batch_size = Histogram(
            "nbops_serve_batch_rows",
            "Rows per model call after adaptive batching.",
            ["model", "version"],
            buckets=_BATCH_BUCKETS,
            **kw,
        )
        gauge_mode: dict[str, Any] = {"multiprocess_mode": "livesum"} if self.multiprocess else {}
        self.in_flight = Gauge(
            "nbops_serve_in_flight_requests",
            "Inference requests being answered now.",
            ["model"],
            **gauge_mode,
            **kw,
        )
        load_mode: dict[str, Any] = {"multiprocess_mode": "max"} if self.multiprocess else {}
        self.load_seconds = Gauge(
            "nbops_serve_model_load_seconds",
            "Seconds it took to load and warm a model version.",
            ["model", "version"],
            **load_mode,
            **kw,
        )
        self.predicted_class = Counter(
            "nbops_serve_predicted_class",
            "Predicted rows per class (classifiers).",
            ["model", "version", "class"],
            **kw,
        )
        self.predicted_value = Histogram(
            "nbops_serve_predicted_value",
            "Distribution of predicted values (regressors).",
            ["model", "version"],
            **kw,
        )
        self.shadow_disagreements = Counter(
            "nbops_serve_shadow_disagreements",
            "Rows where the shadow version's prediction differs from the answer.",
            ["model", "version"],
            **kw,
        )
        self.rollbacks = Counter(
            "nbops_serve_rollbacks",
            "Automatic rollbacks of canary routes.",
            ["model"],
            **kw,
        )
        self.log_dropped = Counter(
            "nbops_serve_prediction_log_dropped_rows",
            "Sampled rows the prediction log dropped because its writer fell behind.",
            ["model"],
            **kw,
        )

    def observe_predictions(self, model: str, version: str, kind: str, values: Any) -> None:
        """Count predicted classes or record predicted values."""
        import numpy as np

        array = np.asarray(values).reshape(-1)
        if kind == "class":
            if array.size <= 64:  # a request's few rows: counting in Python beats np.unique
                from collections import Counter

                pairs: Iterable[tuple[str, int]] = Counter(
                    str(v)[:64] for v in array.tolist()
                ).items()
            else:
                values = array if array.dtype.kind in "biu" else array.astype(str)
                labels, counts = np.unique(values, return_counts=True)
                pairs = ((str(label)[:64], int(n)) for label, n in zip(labels, counts, strict=True))
            for label, count in pairs:
                self.predicted_class.labels(model, version, label).inc(count)
        elif array.dtype.kind in "iuf":
            hist = self.predicted_value.labels(model, version)
            for value in array[:256]:
                hist.observe(float(value))

    def exposition(self) -> tuple[bytes, str]:
        """The exposition text of every metric, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        assert self._registry is not None
        return generate_latest(self._registry), CONTENT_TYPE_LATEST
