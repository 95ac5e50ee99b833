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
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nbops.fileio import write_atomic
from nbops.redact import REDACTED, is_secret_name, scrub_text, secret_values

logger = logging.getLogger(__name__)
#: Columns the log adds next to the model's input columns.
META_COLUMNS = ("request_id", "row", "ts", "version", "route", "role", "latency_ms", "prediction")


@dataclass
class _Entry:
    model: str
    kind: str  # "predictions" or "feedback"
    frame: Any  # pandas DataFrame
    when: float


class PredictionLog:
    """Writes sampled predictions and feedback from a background thread.

    Args:
        folder: Root of the logs (one sub-folder per model).
        sample: Share of requests logged, 0 to 1.
        flush_interval: Seconds between writes of the buffered rows.
    """

    def __init__(self, folder: Path, *, sample: float = 1.0, flush_interval: float = 1.0) -> None:
        self.folder = Path(folder)
        self.sample = min(1.0, max(0.0, float(sample)))
        self.flush_interval = flush_interval
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
        """Queue one request's rows (cheap: the work happens on the writer thread)."""
        self._queue.put(
            _Entry(
                model,
                "predictions",
                (request_id, version, route, role, inputs, predictions, latency),
                time.time(),
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
                return
            if isinstance(item, _Entry):
                pending.append(item)
            if time.monotonic() >= deadline or len(pending) >= 5000:
                self._flush(pending)
                pending = []
                deadline = time.monotonic() + self.flush_interval

    def _flush(self, entries: list[_Entry]) -> None:
        import pandas as pd

        groups: dict[tuple[str, str, str], list[Any]] = {}
        for entry in entries:
            try:
                frame = self._frame(entry)
            except Exception:
                logger.exception("cannot log a prediction of %s", entry.model)
                continue
            hour = datetime.fromtimestamp(entry.when, timezone.utc).strftime("%Y-%m-%d/%H")
            groups.setdefault((entry.model, entry.kind, hour), []).append(frame)
        for (model, kind, hour), frames in groups.items():
            day, hh = hour.split("/")
            base = self.folder / model / ("feedback" if kind == "feedback" else "")
            self._seq += 1
            path = base / f"date={day}" / f"hour={hh}"
            path /= f"part-{time.time_ns()}-{os.getpid()}-{self._seq}.parquet"
            try:
                table = pd.concat(frames, ignore_index=True)
                write_atomic(path, _parquet(table))
            except Exception:
                logger.exception("cannot write the prediction log %s", path)

    def _frame(self, entry: _Entry) -> Any:
        import numpy as np
        import pandas as pd

        when = pd.Timestamp(entry.when, unit="s", tz="UTC")
        if entry.kind == "feedback":
            request_id, labels = entry.frame
            return pd.DataFrame(
                {
                    "request_id": request_id,
                    "row": np.arange(len(labels)),
                    "label": pd.Series(list(labels), dtype=_label_dtype(labels)),
                    "ts": when,
                }
            )
        request_id, version, route, role, inputs, predictions, latency = entry.frame
        frame = inputs.copy()
        frame.columns = [f"input.{c}" if str(c) in META_COLUMNS else str(c) for c in frame.columns]
        for column in frame.columns:
            if is_secret_name(column):
                frame[column] = REDACTED
            elif frame[column].dtype == object and self._secrets:
                frame[column] = [scrub_text(str(v), self._secrets) for v in frame[column]]
        frame.insert(0, "request_id", request_id)
        frame.insert(1, "row", np.arange(len(frame)))
        frame.insert(2, "ts", when)
        frame.insert(3, "version", int(version))
        frame.insert(4, "route", route)
        frame.insert(5, "role", role)
        frame.insert(6, "latency_ms", float(latency) * 1000.0)
        frame["prediction"] = np.asarray(predictions).reshape(len(frame), -1)[:, 0]
        return frame


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
