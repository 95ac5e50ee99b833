"""Prediction logs: sampled inputs and outputs, written off the request path to Parquet.

Files are partitioned by hour: ``<folder>/MODEL/date=YYYY-MM-DD/hour=HH/part-*.parquet`` (the
folder defaults to ``<store>/predictions``); feedback labels go under ``MODEL/feedback/``.
Inputs are redacted as tracking redacts: secret-looking column names are masked and secret
values from the environment are scrubbed from text.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nbops.fileio import write_atomic
from nbops.redact import REDACTED, is_secret_name, scrub_text, secret_values
from nbops.serve._gate import import_pandas

logger = logging.getLogger(__name__)
#: Columns the log adds next to the model's input columns.
META_COLUMNS = ("request_id", "row", "ts", "version", "route", "role", "latency_ms", "prediction")
#: Logged rows a server holds while its writer catches up; past them new rows are dropped.
MAX_PENDING_ROWS = 200_000


@dataclass
class _Entry:
    model: str
    kind: str  # "predictions" or "feedback"
    frame: Any  # the request's fields (see record / feedback)
    when: float
    rows: int = 0  # logged rows it holds against the backlog limit (feedback: 0)


class PredictionLog:
    """Writes sampled predictions and feedback from a background thread.

    The rows waiting for the writer are bounded: when traffic outruns the writer (a slow
    disk), rows past ``max_pending_rows`` are dropped, counted in :attr:`dropped_rows` and
    reported to ``on_drop(model, rows)``, so the server's memory stays bounded and the request
    path never waits for the log. Feedback labels are never dropped.

    Args:
        folder: Root of the logs (one sub-folder per model).
        sample: Share of requests logged, 0 to 1.
        flush_interval: Seconds between writes of the buffered rows.
        max_pending_rows: Most logged rows held in memory while the writer catches up.
        on_drop: Called with the model and row count of each request the log dropped.
    """

    def __init__(
        self,
        folder: Path,
        *,
        sample: float = 1.0,
        flush_interval: float = 1.0,
        max_pending_rows: int = MAX_PENDING_ROWS,
        on_drop: Callable[[str, int], None] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.sample = min(1.0, max(0.0, float(sample)))
        self.flush_interval = flush_interval
        self.max_pending_rows = max_pending_rows
        self.dropped_rows = 0
        self._on_drop = on_drop
        self._pending_rows = 0
        self._pending_lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Entry | None] = queue.SimpleQueue()
        self._secrets = secret_values()
        self._seq = 0
        self._thread = threading.Thread(target=self._run, name="nbops-predlog", daemon=True)
        self._thread.start()

    def wants(self) -> bool:
        """Whether to log the next request (the sampling decision)."""
        return self.sample >= 1.0 or (self.sample > 0 and random.random() < self.sample)

    def record(
        self,
        model: str,
        *,
        request_id: str,
        version: int,
        route: str,
        role: str,
        inputs: Any,
        predictions: Any,
        latency: float,
    ) -> None:
        """Queue one request's rows (cheap: the work happens on the writer thread); drop them
        when the writer is :attr:`max_pending_rows` behind."""
        rows = len(inputs)
        with self._pending_lock:
            full = self._pending_rows + rows > self.max_pending_rows and self._pending_rows > 0
            if full:
                self.dropped_rows += rows
                first = self.dropped_rows == rows
            else:
                self._pending_rows += rows
        if full:
            if first:
                logger.warning(
                    "the prediction log of %s is %d rows behind: dropping rows until it catches "
                    "up (lower --log-sample, or log to a faster disk)",
                    model,
                    self.max_pending_rows,
                )
            if self._on_drop is not None:
                self._on_drop(model, rows)
            return
        self._queue.put(
            _Entry(
                model,
                "predictions",
                (request_id, version, route, role, inputs, predictions, latency),
                time.time(),
                rows,
            )
        )

    def feedback(self, model: str, request_id: str, labels: list[Any]) -> None:
        """Queue labels for the rows of an answered request."""
        self._queue.put(_Entry(model, "feedback", (request_id, labels), time.time()))

    def close(self, timeout: float = 10.0) -> None:
        """Write everything queued and stop the writer."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        pending: list[_Entry] = []
        deadline = time.monotonic() + self.flush_interval
        while True:
            try:
                item = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                item = ...  # type: ignore[assignment]
            if item is None:
                self._flush(pending)
                self._written(pending)
                return
            if isinstance(item, _Entry):
                pending.append(item)
            if time.monotonic() >= deadline or len(pending) >= 5000:
                self._flush(pending)
                self._written(pending)
                pending = []
                deadline = time.monotonic() + self.flush_interval

    def _written(self, entries: list[_Entry]) -> None:
        """Release the backlog the written (or failed) ``entries`` held."""
        rows = sum(entry.rows for entry in entries)
        if rows:
            with self._pending_lock:
                self._pending_rows -= rows

    def _flush(self, entries: list[_Entry]) -> None:
        groups: dict[tuple[str, str, str], list[_Entry]] = {}
        for entry in entries:
            hour = datetime.fromtimestamp(entry.when, timezone.utc).strftime("%Y-%m-%d/%H")
            groups.setdefault((entry.model, entry.kind, hour), []).append(entry)
        for (model, kind, hour), group in groups.items():
            day, hh = hour.split("/")
            base = self.folder / model / ("feedback" if kind == "feedback" else "")
            self._seq += 1
            path = base / f"date={day}" / f"hour={hh}"
            path /= f"part-{time.time_ns()}-{os.getpid()}-{self._seq}.parquet"
            try:
                table = self._feedback(group) if kind == "feedback" else self._table(group)
                write_atomic(path, _parquet(table))
            except Exception:
                logger.exception("cannot write the prediction log %s", path)

    def _feedback(self, group: list[_Entry]) -> Any:
        import numpy as np

        pd = import_pandas()  # the log's first write imports pandas (see nbops.serve._gate)

        labels = [label for e in group for label in e.frame[1]]
        sizes = [len(e.frame[1]) for e in group]
        return pd.DataFrame(
            {
                "request_id": np.repeat([e.frame[0] for e in group], sizes),
                "row": np.concatenate([np.arange(n) for n in sizes]),
                "label": pd.Series(labels, dtype=_label_dtype(labels)),
                "ts": pd.to_datetime(np.repeat([e.when for e in group], sizes), unit="s", utc=True),
            }
        )

    def _table(self, group: list[_Entry]) -> Any:
        """One frame for many requests: columns built once, not per request."""
        import numpy as np

        pd = import_pandas()  # the log's first write imports pandas (see nbops.serve._gate)

        inputs = _inputs_frame([e.frame[4] for e in group])
        inputs.columns = [
            f"input.{c}" if str(c) in META_COLUMNS else str(c) for c in inputs.columns
        ]
        for column in inputs.columns:
            if is_secret_name(column):
                inputs[column] = REDACTED
            elif inputs[column].dtype == object and self._secrets:
                inputs[column] = [scrub_text(str(v), self._secrets) for v in inputs[column]]
        sizes = [len(e.frame[4]) for e in group]

        def each(i: int) -> Any:
            return np.repeat([e.frame[i] for e in group], sizes)

        meta = pd.DataFrame(
            {
                "request_id": each(0),
                "row": np.concatenate([np.arange(n) for n in sizes]),
                "ts": pd.to_datetime(np.repeat([e.when for e in group], sizes), unit="s", utc=True),
                "version": each(1).astype("int64"),
                "route": each(2),
                "role": each(3),
                "latency_ms": each(6).astype("float64") * 1000.0,
            }
        )
        predicted = np.concatenate(
            [np.asarray(e.frame[5]).reshape(n, -1)[:, 0] for e, n in zip(group, sizes, strict=True)]
        )
        table = pd.concat([meta, inputs], axis=1)
        table["prediction"] = predicted
        return table


def _inputs_frame(rows: list[Any]) -> Any:
    """The logged requests' rows as one DataFrame.

    Requests sent as one ``[N, F]`` tensor hold an array: those are stacked with one
    ``np.concatenate`` and framed once, instead of a DataFrame per request then ``pd.concat``
    (which cost more than the model call at a thousand requests per second).
    """
    import numpy as np
    import pandas as pd

    first = rows[0]
    if all(
        isinstance(r.data, np.ndarray) and r.data.ndim == 2 and r.names == first.names for r in rows
    ):
        stacked = np.concatenate([r.data for r in rows], axis=0)
        return pd.DataFrame(stacked, columns=first.names, copy=False)
    return pd.concat([r.frame() for r in rows], ignore_index=True)


def _label_dtype(labels: list[Any]) -> Any:
    kinds = {type(v) for v in labels}
    return object if len(kinds) > 1 and kinds - {int, float} else None


def _parquet(frame: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    try:
        frame.to_parquet(buffer, index=False)
    except (TypeError, ValueError):  # mixed object columns: keep them as text
        buffer = io.BytesIO()
        for column in frame.columns:
            if frame[column].dtype == object:
                frame[column] = frame[column].astype(str)
        frame.to_parquet(buffer, index=False)
    return buffer.getvalue()
