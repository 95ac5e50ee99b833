"""The active run of this process, runs attached from a parent process, and finishing at exit."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
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

_listeners: list[Callable[[Run], None]] = []


def active_run() -> Run | None:
    """Return the active run of this process, or None."""
    return _active


def attach_from_environment(environ: Mapping[str, str] | None = None) -> Run | None:
    """Attach to the run named by ``$NBOPS_RUN_ID`` and make it active; return it.

    Called once at the start-up of a kernel that a pipeline or a sweep executes (the nbops
    extension does it when the kernel loads it), so the notebook logs into the run its executor
    opened without any magic. Returns the active run unchanged when one is already active, and
    None when the variable is not set.
    """
    env = os.environ if environ is None else environ
    run_id = env.get(RUN_ID_ENV)
    if _active is not None and (not run_id or _active.id == run_id):
        return _active
    if not run_id:
        return None
    from nbops.store import open_store
    from nbops.tracking._run import Run

    run = Run.attach(run_id, open_store())
    activate(run)
    return run


def add_activation_listener(listener: Callable[[Run], None]) -> None:
    """Call ``listener(run)`` whenever a run becomes the active one (once per listener)."""
    if listener not in _listeners:
        _listeners.append(listener)


def remove_activation_listener(listener: Callable[[Run], None]) -> None:
    """Stop calling ``listener``; unknown listeners are ignored."""
    if listener in _listeners:
        _listeners.remove(listener)


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
    if make_active:
        for listener in list(_listeners):
            try:
                listener(run)
            except Exception:
                logger.warning("nbops activation listener %r failed", listener, exc_info=True)


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
            run.finish("failed" if crashed else run.exit_status())
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
