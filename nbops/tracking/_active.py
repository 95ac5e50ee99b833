"""The active run, runs attached from a parent process, and finishing at exit.

The active run is the process's (a notebook's run) unless code runs inside :func:`suspended`:
there, in that thread or task only (a :mod:`contextvars` scope), the active run is the one
started inside the block, so a sweep's trial on a background thread never disturbs the run the
notebook logs into meanwhile.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from nbops.errors import NbopsError, NoActiveRunError
from nbops.shell import current_shell

if TYPE_CHECKING:
    from nbops.tracking._run import Run

logger = logging.getLogger(__name__)

_active: Run | None = None  # the process-wide active run (a notebook's)
#: Inside :func:`suspended`: a one-item list holding the active run of that scope (or None).
_scoped: contextvars.ContextVar[list[Run | None] | None] = contextvars.ContextVar(
    "nbops_scoped_run", default=None
)
_live: list[Run] = []
_atexit_registered = False
#: Why the last attach to ``$NBOPS_RUN_ID`` failed (said by :class:`NoActiveRunError`), or None.
_attach_failure: str | None = None


#: Set by a process that owns a run for the kernel it starts (pipelines, notebook sweeps).
RUN_ID_ENV = "NBOPS_RUN_ID"

_listeners: list[Callable[[Run], None]] = []


def active_run() -> Run | None:
    """Return the active run: the one started in the current :func:`suspended` scope, else
    the process's; None if there is none."""
    scope = _scoped.get()
    if scope is None:
        return _active
    run = scope[0]
    return run if run is not None and not run.finished else None


def attach_from_environment(environ: Mapping[str, str] | None = None) -> Run | None:
    """Attach to the run named by ``$NBOPS_RUN_ID`` and make it active; return it.

    Called once at the start-up of a kernel that a pipeline or a sweep executes (the nbops
    extension does it when the kernel loads it), so the notebook logs into the run its executor
    opened without any magic. Returns the active run unchanged when one is already active, and
    None when the variable is not set.
    """
    global _attach_failure
    env = os.environ if environ is None else environ
    run_id = env.get(RUN_ID_ENV)
    if _active is not None and (not run_id or _active.id == run_id):
        return _active
    if not run_id:
        return None
    from nbops.store import open_store
    from nbops.tracking._run import Run

    try:
        run = Run.attach(run_id, open_store())
    except NbopsError as exc:
        _attach_failure = f"attaching to run {run_id} of ${RUN_ID_ENV} failed: {exc}"
        raise
    _attach_failure = None
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
        raise NoActiveRunError(action, _attach_failure)
    return run


def activate(run: Run) -> None:
    """Make ``run`` the active run; finish every live run at interpreter exit."""
    register(run, make_active=True)


def register(run: Run, *, make_active: bool) -> None:
    """Track ``run`` as live (finished at interpreter exit); optionally make it active (in
    the current :func:`suspended` scope if there is one: listeners hear only of the process's
    active run)."""
    global _active, _atexit_registered
    scope = _scoped.get()
    if make_active and scope is not None:
        scope[0] = run
        make_active = False  # the process's active run is unchanged
    elif make_active:
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
    scope = _scoped.get()
    if scope is not None and scope[0] is run:
        scope[0] = None


def _finish_all_at_exit() -> None:
    crashed = current_shell() is None and getattr(sys, "last_value", None) is not None
    for run in list(_live):
        try:
            run.finish("failed" if crashed else run.exit_status())
        except Exception:
            logger.warning("nbops could not finish run %s at exit", run.id, exc_info=True)


@contextmanager
def suspended() -> Iterator[None]:
    """Run the block with no active run of its own (a sweep's trial in the caller's process).

    Runs started in the block are active in it only, for this thread or task (contextvars):
    the process's active run (the notebook's) is neither finished nor replaced, and other
    threads, such as the notebook's while a sweep runs trials on a background thread, keep
    logging into it. After the block the active run is the process's again.
    """
    token = _scoped.set([None])
    try:
        yield
    finally:
        _scoped.reset(token)
