"""Adaptive batching: concurrent requests for one model version share one ``predict`` call.

Requests queue while the model is busy; the next call takes everything queued, up to
``max_batch_size`` rows (a request that would overflow the call waits for the next one; a
single request larger than the limit runs alone). A lone request is never held back; once
requests have been arriving together, the batcher waits up to ``max_latency`` seconds for more
before calling the model. Batches are sized in rows, not requests: a model call has a fixed
cost (a 100-tree forest: ~3 ms for 1 row, ~10 ms for 1,024), so 32 requests of 32 rows cost
about one call's overhead, not 32.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from nbops.serve._config import MAX_BATCH_ROWS, MAX_LATENCY

logger = logging.getLogger(__name__)

Predict = Callable[[Any, frozenset[str]], dict[str, Any]]


@dataclass
class _Item:
    X: Any
    rows: int
    outputs: frozenset[str]
    future: asyncio.Future[dict[str, Any]] = field(repr=False)


class Batcher:
    """Groups requests for one model into batches run on one worker thread.

    Args:
        predict: ``predict(X, outputs) -> {output name: array with one entry per row}``; runs on
            the batcher's own thread, one call at a time.
        max_batch_size: The most rows in one call (a larger single request runs alone).
        max_latency: The longest a request waits for others to join its batch, in seconds.
        on_batch: Called with the number of rows of each call (for metrics).
    """

    def __init__(
        self,
        predict: Predict,
        *,
        max_batch_size: int = MAX_BATCH_ROWS,
        max_latency: float = MAX_LATENCY,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._predict = predict
        self.max_batch_size = max(1, int(max_batch_size))
        self.max_latency = max(0.0, float(max_latency))
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbops-predict")
        self._busy_together = False
        self._held: _Item | None = None  # taken from the queue, left for the next call
        self.in_flight = 0

    async def submit(self, X: Any, rows: int, outputs: frozenset[str] = frozenset()) -> Any:
        """Queue ``X`` and return its slice of the batch's outputs (raises the model's error)."""
        loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._run(), name="nbops-batcher")
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.in_flight += 1
        try:
            self._queue.put_nowait(_Item(X, rows, outputs, future))
            return await future
        finally:
            self.in_flight -= 1

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until no request is queued or running, then stop the worker."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False)

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        limit = self.max_batch_size
        while True:
            if self._held is not None:
                first, self._held = self._held, None
            else:
                first = await queue.get()
            batch, rows = [first], first.rows
            while rows < limit and self._held is None and not queue.empty():
                rows = self._add(batch, rows, queue.get_nowait())
            if self._busy_together and self.max_latency and rows < limit:
                deadline = loop.time() + self.max_latency
                while rows < limit and self._held is None:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        nxt = await asyncio.wait_for(queue.get(), remaining)
                    except asyncio.TimeoutError:
                        break
                    rows = self._add(batch, rows, nxt)
                    while rows < limit and self._held is None and not queue.empty():
                        rows = self._add(batch, rows, queue.get_nowait())
            self._busy_together = len(batch) > 1 or self._held is not None or not queue.empty()
            await self._call(batch, rows, loop)

    def _add(self, batch: list[_Item], rows: int, item: _Item) -> int:
        """Add ``item`` to ``batch`` when it fits, else hold it for the next call."""
        if rows + item.rows > self.max_batch_size:
            self._held = item
            return rows
        batch.append(item)
        return rows + item.rows

    async def _call(self, batch: list[_Item], rows: int, loop: asyncio.AbstractEventLoop) -> None:
        live = [item for item in batch if not item.future.done()]
        if not live:
            return
        if self._on_batch is not None:
            self._on_batch(rows)
        wanted = frozenset().union(*(item.outputs for item in live))
        if len(live) == 1:
            await self._one(live[0], wanted, loop)
            return
        try:
            X = _concat([item.X for item in live])
            result = await loop.run_in_executor(self._executor, self._predict, X, wanted)
        except Exception:  # noqa: BLE001 - any model error: retried per request just below
            # One bad request must not fail the others: retry each request on its own.
            for item in live:
                await self._one(item, wanted, loop)
            return
        start = 0
        for item in live:
            part = {k: v[start : start + item.rows] for k, v in result.items()}
            start += item.rows
            if not item.future.done():
                item.future.set_result(part)

    async def _one(self, item: _Item, wanted: frozenset[str], loop: Any) -> None:
        try:
            result = await loop.run_in_executor(self._executor, self._predict, item.X, wanted)
        except Exception as exc:  # noqa: BLE001 - handed to the request, which answers 500
            if not item.future.done():
                item.future.set_exception(exc)
            return
        if not item.future.done():
            item.future.set_result(result)


def _concat(parts: list[Any]) -> Any:
    first = parts[0]
    if hasattr(first, "iloc"):
        import pandas as pd

        return pd.concat(parts, ignore_index=True)
    import numpy as np

    return np.concatenate(parts, axis=0)
