"""The active run of this process, runs attached from a parent process, and finishing at exit."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from nbops.errors import NoActiveRunError
from nbops.shell import current_shell

if TYPE_CHECKING:
    from nbops.tracking._run import Run

logger = logging.getLogger(__name__)

_active: Run | None = None
_live: list[Run] = []
_atexit_registered = False


#: Set by a process that owns a run for the kernel it starts (pipelines, notebook sweeps).
RUN_ID_ENV = "NBOPS_RUN_ID"
_attached_env_run = False


def active_run() -> Run | None:
    """Return the active run, or None.

    In a kernel started by a pipeline or a sweep (``NBOPS_RUN_ID`` set), the first call attaches
    to that run, so a notebook is tracked without any magic in it.
    """
    global _attached_env_run
    if _active is None and not _attached_env_run and os.environ.get(RUN_ID_ENV):
        _attached_env_run = True
        from nbops.store import open_store
        from nbops.tracking._run import Run

        run = Run.attach(os.environ[RUN_ID_ENV], open_store())
        activate(run)
        _flush_after_each_cell(run)
    return _active


def _flush_after_each_cell(run: Run) -> None:
    """In a kernel run by a pipeline or sweep, make each cell's metrics durable before its reply.

    The owner then reads them as soon as the notebook completes, without waiting for the kernel
    to shut down.
    """
    shell = current_shell()
    if shell is None:
        return

    def flush(_result: object = None) -> None:
        if not run.finished:
            run.flush()

    shell.events.register("post_run_cell", flush)


def require_active(action: str) -> Run:
    """Return the active run or raise :class:`NoActiveRunError` naming ``action``."""
    run = active_run()
    if run is None:
        raise NoActiveRunError(action)
    return run


def activate(run: Run) -> None:
    """Make ``run`` the active run; finish every live run at interpreter exit."""
    register(run, make_active=True)


def register(run: Run, *, make_active: bool) -> None:
    """Track ``run`` as live (finished at interpreter exit); optionally make it active."""
    global _active, _atexit_registered
    if make_active:
        _active = run
    _live.append(run)
    if not _atexit_registered:
        _register_exit_hook()
        _atexit_registered = True


def _register_exit_hook() -> None:
    """Finish live runs at exit while threads still work (the W&B mirror needs them).

    ``threading._register_atexit`` hooks run before the interpreter refuses new threads and
    executor work, in reverse order; importing ``concurrent.futures.thread`` first makes its own
    hook run after ours. Plain ``atexit`` is the fallback.
    """
    import concurrent.futures.thread  # noqa: F401

    register = getattr(threading, "_register_atexit", None)
    if register is None:
        atexit.register(_finish_all_at_exit)
        return
    try:
        register(_finish_all_at_exit)
    except RuntimeError:  # already shutting down
        atexit.register(_finish_all_at_exit)


def forget(run: Run) -> None:
    """Drop ``run`` from the live runs (it finished)."""
    global _active
    if run in _live:
        _live.remove(run)
    if _active is run:
        _active = None


def _finish_all_at_exit() -> None:
    crashed = current_shell() is None and getattr(sys, "last_value", None) is not None
    for run in list(_live):
        try:
            run.finish("failed" if crashed else "finished")
        except Exception:
            logger.warning("nbops could not finish run %s at exit", run.id, exc_info=True)


@contextmanager
def suspended() -> Iterator[None]:
    """Set the active run aside for the block (a sweep's trial runs in the caller's process),
    then put it back if it is still running; it is not finished meanwhile."""
    global _active
    previous, _active = _active, None
    try:
        yield
    finally:
        _active = previous if previous is not None and not previous.finished else None
