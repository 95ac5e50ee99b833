"""Write deferred offline W&B copies from the store in a helper process, as runs finish.

A run whose copy was deferred (:func:`~nbops.mirror.deferred_state`, a sweep's trials) starts
no W&B run of its own. Once it has finished, :class:`OfflineCopier` hands its id to a helper
process that writes the copy from the store with :func:`~nbops.mirror.rebuild_offline_copy`:
about 1 ms of CPU for a run without media or artifacts (written directly), 15-20 ms plus
wandb-core's for the others (through wandb). Either way the work takes neither the caller's
time nor its GIL: written on threads of the sweep's own process instead, even the direct copies
cost a trivial trial more (measured: +5.5 and +6.8 ms per trial over raw Optuna against +4.2
and +4.5 ms through the helper, ``benchmarks/sweeps.py --only overhead``). The helper reads run
ids on its stdin and exits once that closes and its last copy is written, so the copies of a
process that dies are still completed; wandb is imported only for a copy that needs it.

The helper runs as ``python -m nbops.mirror copy DIRECTORY REASON`` with ``NBOPS_STORE`` naming
the store.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from nbops.mirror._rebuild import rebuild_offline_copy
from nbops.mirror._state import COMPLETE, METADATA_KEY
from nbops.store import RunStore

logger = logging.getLogger(__name__)

#: Seconds :meth:`OfflineCopier.close` waits for the helper to write the copies still owed.
CLOSE_TIMEOUT = 300.0
_THREADS = 4


class OfflineCopier:
    """Writes the deferred offline W&B copies of finished runs from the store, in a helper
    process started at the first :meth:`submit`; :meth:`close` waits for them (bounded).

    A store only this process can open (``memory://``) gets its copies written on a thread
    pool here instead. Failures are logged, never raised: the store keeps the run and marks
    its copy partial, and ``nbops sync --offline`` writes it later.

    Thread safety: :meth:`submit` and :meth:`close` may be called from any thread.
    """

    def __init__(self, store: RunStore, directory: str | os.PathLike[str], reason: str) -> None:
        self._store = store
        self._directory = os.fspath(directory)
        self._reason = reason
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._submitted: list[str] = []
        self._broken = False

    def submit(self, run_id: str) -> None:
        """Write the copy of the finished run ``run_id`` as soon as the helper can."""
        with self._lock:
            self._submitted.append(run_id)
            if self._store.url.startswith("memory:"):
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="nbops-copy")
                self._pool.submit(copy_one, self._store, run_id, self._directory, self._reason)
                return
            if self._broken:
                return
            try:
                if self._proc is None:
                    self._proc = self._start()
                assert self._proc.stdin is not None
                self._proc.stdin.write(run_id + "\n")
                self._proc.stdin.flush()
            except OSError as exc:
                self._broken = True
                logger.warning(
                    "the W&B copy writer stopped (%s); `nbops sync --offline` writes the copies "
                    "left to do",
                    exc,
                )

    def _start(self) -> subprocess.Popen[str]:
        from nbops.store import store_address

        env = {**os.environ, **store_address(self._store).environ()}
        return subprocess.Popen(
            [sys.executable, "-m", "nbops.mirror", "copy", self._directory, self._reason],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env=env,
            text=True,
        )

    def close(self, timeout: float = CLOSE_TIMEOUT) -> list[str]:
        """Wait (at most ``timeout`` s) for every submitted copy; return the run ids whose
        copy is not complete. A helper still writing after ``timeout`` goes on alone; with
        ``timeout=0`` (a stopped or interrupted sweep) nothing is awaited and nothing said."""
        with self._lock:
            proc, self._proc = self._proc, None
            pool, self._pool = self._pool, None
            submitted, self._submitted = self._submitted, []
        if pool is not None:
            pool.shutdown(wait=True)
        if proc is not None:
            try:
                assert proc.stdin is not None
                proc.stdin.close()
            except OSError:
                pass
            if timeout <= 0:  # reaped once it is done, so it never lingers as a zombie
                threading.Thread(target=proc.wait, name="nbops-copy-reap", daemon=True).start()
                return [run_id for run_id in submitted if not _complete(self._store, run_id)]
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                threading.Thread(target=proc.wait, name="nbops-copy-reap", daemon=True).start()
                logger.warning(
                    "W&B copies still being written %g s after the sweep ended; they go on in "
                    "process %s (`nbops sync --offline` completes any left unwritten)",
                    timeout,
                    proc.pid,
                )
        missing = [run_id for run_id in submitted if not _complete(self._store, run_id)]
        if missing:
            logger.warning(
                "%d W&B cop%s not written (run %s...); `nbops sync --offline` writes them",
                len(missing),
                "y was" if len(missing) == 1 else "ies were",
                missing[0],
            )
        return missing


def _complete(store: RunStore, run_id: str) -> bool:
    doc = store.get_metadata(run_id).get(METADATA_KEY)
    return isinstance(doc, dict) and doc.get("copy") == COMPLETE


def copy_one(store: RunStore, run_id: str, directory: str, reason: str) -> None:
    """Write one run's copy from the store; log, never raise."""
    try:
        rebuild_offline_copy(store, run_id, directory, reason=reason)
    except Exception as exc:  # noqa: BLE001 - wandb; the store keeps the copy marked partial
        logger.warning(
            "could not write the W&B copy of run %s (%s); `nbops sync --offline` writes it",
            run_id,
            exc,
        )


def main(argv: list[str]) -> int:
    """The helper: write the copy of each run id read on stdin until it closes."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    directory, reason = argv
    try:  # copies are background work: on a busy machine the trials come first
        os.nice(10)
    except (AttributeError, OSError):  # no os.nice on Windows
        pass
    from nbops.store import open_store

    store = open_store()
    with ThreadPoolExecutor(_THREADS, thread_name_prefix="nbops-copy") as pool:
        for line in sys.stdin:
            run_id = line.strip()
            if run_id:
                pool.submit(copy_one, store, run_id, directory, reason)
    return 0
