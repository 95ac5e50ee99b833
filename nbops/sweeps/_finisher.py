"""Finishing trial runs off the trial loop, and having their W&B copies written."""

from __future__ import annotations

import logging
import os
from typing import Any

logger = logging.getLogger(__name__)

#: Reason recorded with a trial's W&B copy, written from the store after the trial.
COPY_REASON = "written from the store after the trial, off the trial's path"


class RunFinisher:
    """Finishes trial runs on a few threads, so the next trial need not wait for a run's
    W&B mirror to close (tens of milliseconds, mostly waiting); with the offline mirror, hands
    each finished run to an :class:`~nbops.mirror.OfflineCopier`, which writes its W&B copy
    from the store in a helper process (directly, without wandb, for a run with no media or
    artifacts: about 1 ms of CPU). :meth:`close` waits for all, so the copies are complete
    when the worker returns. The trial's result is in the study before its run is handed over.
    """

    def __init__(self, threads: int = 4) -> None:
        self._pool: Any = None
        self._threads = threads
        self._pending: list[Any] = []
        self._copier: Any = None

    def finish(self, run: Any, status: str, *, copy: bool = False) -> None:
        """Finish ``run`` with ``status``, then have its W&B copy written if ``copy``."""
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="nbops-run-finish")
        copier = self._copier_for(run) if copy else None
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._pool.submit(finish_trial_run, run, status, copier))

    def _copier_for(self, run: Any) -> Any:
        if self._copier is None:
            from nbops.config import find_project_root
            from nbops.mirror import OfflineCopier

            directory = os.environ.get("WANDB_DIR") or find_project_root()
            self._copier = OfflineCopier(run.store, directory, COPY_REASON)
        return self._copier

    def close(self, *, wait_copies: bool = True) -> None:
        """Wait for the runs to finish, and for their W&B copies unless ``wait_copies`` is
        False (an interrupted worker: its helper writes the copies left on its own)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._copier is not None:
            if wait_copies:
                self._copier.close()
            else:
                self._copier.close(timeout=0)
            self._copier = None


def finish_trial_run(run: Any, status: str, copier: Any = None) -> None:
    """Finish a trial's run, then hand it to ``copier`` (an OfflineCopier) for its W&B copy;
    never raises (the trial is recorded; ``nbops sync --offline`` writes a missing copy)."""
    try:
        run.finish(status)
    except Exception:  # the store; the trial itself is recorded
        logger.warning("could not finish the run %s of a trial", run.id, exc_info=True)
        return
    if copier is not None:
        copier.submit(run.id)
