"""One background thread per process that makes buffered run data durable."""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Protocol

logger = logging.getLogger(__name__)

#: Seconds between flushes; logged metrics are on disk within about this long (contract: 1 s).
FLUSH_INTERVAL = 0.2


class Flushable(Protocol):
    def flush(self) -> None: ...


class Flusher:
    """Calls ``flush()`` on every registered run every :data:`FLUSH_INTERVAL` seconds."""

    def __init__(self, interval: float = FLUSH_INTERVAL) -> None:
        self.interval = interval
        self._runs: weakref.WeakSet[Flushable] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self, run: Flushable) -> None:
        with self._lock:
            self._runs.add(run)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="nbops-flusher", daemon=True
                )
                self._thread.start()

    def unregister(self, run: Flushable) -> None:
        with self._lock:
            self._runs.discard(run)

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._lock:
                runs = list(self._runs)
            for run in runs:
                try:
                    run.flush()
                except Exception:  # keep flushing the other runs; the run kept its buffer
                    logger.warning("nbops could not flush a run; will retry", exc_info=True)


_flusher: Flusher | None = None
_flusher_lock = threading.Lock()


def flusher() -> Flusher:
    """Return the process-wide flusher, created on first use."""
    global _flusher
    with _flusher_lock:
        if _flusher is None:
            _flusher = Flusher()
        return _flusher
