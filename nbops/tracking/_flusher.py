"""One background thread per process that makes buffered run data durable."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Protocol

logger = logging.getLogger(__name__)

#: Seconds between flushes; logged metrics are on disk within about this long (contract: 1 s).
FLUSH_INTERVAL = 0.2
#: Longest wait between two attempts to flush a run whose writes keep failing.
MAX_BACKOFF = 5.0


class Flushable(Protocol):
    def flush(self) -> None: ...


@dataclass
class _Failing:
    """A run whose flushes fail: how many times in a row, and when to try again."""

    failures: int
    retry_at: float


class Flusher:
    """Calls ``flush()`` on every registered run every ``interval`` seconds.

    The thread starts with the first run registered and stops when the last one is
    unregistered (or garbage-collected). A run whose flush raises keeps its buffer; it is
    retried with exponential backoff up to ``max_backoff`` seconds, and logged once as a
    warning when it starts failing and once when it recovers.
    """

    def __init__(self, interval: float = FLUSH_INTERVAL, max_backoff: float = MAX_BACKOFF) -> None:
        self.interval = interval
        self.max_backoff = max_backoff
        self._runs: weakref.WeakSet[Flushable] = weakref.WeakSet()
        self._failing: weakref.WeakKeyDictionary[Flushable, _Failing] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True while the background thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def register(self, run: Flushable) -> None:
        """Flush ``run`` periodically from now on, starting the thread if needed."""
        with self._lock:
            self._runs.add(run)
            if self._thread is None:
                self._wake.clear()
                self._thread = threading.Thread(
                    target=self._loop, name="nbops-flusher", daemon=True
                )
                self._thread.start()

    def unregister(self, run: Flushable) -> None:
        """Stop flushing ``run``; the thread stops when no run is left."""
        with self._lock:
            self._runs.discard(run)
            self._failing.pop(run, None)
            if not self._runs:
                self._wake.set()  # let the thread notice now rather than after an interval

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to stop (after the last run is unregistered)."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._lock:
                runs = list(self._runs)
                if not runs:
                    self._thread = None
                    return
            now = time.monotonic()
            for run in runs:
                self._flush_one(run, now)

    def _flush_one(self, run: Flushable, now: float) -> None:
        failing = self._failing.get(run)
        if failing is not None and now < failing.retry_at:
            return
        try:
            run.flush()
        except Exception as exc:  # keep flushing the other runs; the run kept its buffer
            count = 1 if failing is None else failing.failures + 1
            delay = min(self.interval * 2**count, self.max_backoff)
            with self._lock:
                if run in self._runs:
                    self._failing[run] = _Failing(count, time.monotonic() + delay)
            if failing is None:
                logger.warning(
                    "nbops could not write %r to the store (%s); its data is kept in memory "
                    "and retried with backoff (up to every %.0f s)",
                    run,
                    exc,
                    self.max_backoff,
                    exc_info=True,
                )
            else:
                logger.debug("nbops flush of %r failed again (%d in a row)", run, count)
            return
        if failing is not None:
            with self._lock:
                self._failing.pop(run, None)
            logger.warning(
                "nbops writes %r to the store again, after %d failed attempts",
                run,
                failing.failures,
            )


_flusher: Flusher | None = None
_flusher_lock = threading.Lock()


def flusher() -> Flusher:
    """Return the process-wide flusher, created on first use."""
    global _flusher
    with _flusher_lock:
        if _flusher is None:
            _flusher = Flusher()
        return _flusher
