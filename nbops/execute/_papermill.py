"""Execute a notebook through papermill in a fresh kernel, with bounded time and clear errors."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError

logger = logging.getLogger(__name__)


class ExecutionError(NbopsError):
    """A notebook execution did not complete. ``output`` holds the executed notebook."""

    def __init__(self, message: str, notebook: str, output: str) -> None:
        self.notebook = notebook
        self.output = output
        super().__init__(f"{message}; executed notebook: {output}")


class CellError(ExecutionError):
    """A cell raised. Carries papermill's structure: which cell, which exception."""

    def __init__(
        self,
        notebook: str,
        output: str,
        cell_index: int,
        exec_count: int | None,
        ename: str,
        evalue: str,
        traceback: list[str],
    ) -> None:
        self.cell_index = cell_index
        self.exec_count = exec_count
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback
        where = f"cell {cell_index + 1}" + (f" (In [{exec_count}])" if exec_count else "")
        super().__init__(f"{where} raised {ename}: {evalue}", notebook, output)


class KernelDiedError(ExecutionError):
    """The kernel process died while the notebook ran."""


class ExecutionTimeoutError(ExecutionError):
    """The notebook ran longer than its time limit; its kernel was stopped."""


class KernelNotFoundError(NbopsError):
    """The requested Jupyter kernel is not installed."""


@dataclass(frozen=True)
class ExecutionResult:
    """A completed execution."""

    notebook: str
    output: str
    seconds: float
    parameters: Mapping[str, Any] = field(default_factory=dict)


def start_kernel(
    kernel_name: str = "python3",
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Any:
    """Start a kernel now (for example while another notebook still runs); return its manager."""
    from jupyter_client.kernelspec import NoSuchKernel
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync

    # nbclient needs the asynchronous manager: a blocking client stalls its event loop, and a
    # dead kernel then hangs the execution instead of raising.
    # IPC sockets in a private folder: no TCP port races, no plain-text TCP, and kernels started
    # at the same time cannot pick the same socket names.
    sockets = tempfile.mkdtemp(prefix="nbops-kernel-")
    manager = AsyncKernelManager(
        kernel_name=kernel_name, transport="ipc", ip=os.path.join(sockets, "k")
    )
    # a kernel given a run to log into loads the nbops extension at start-up, which attaches it
    from nbops.tracking import RUN_ID_ENV

    extensions = ["--ext=nbops"] if RUN_ID_ENV in (env or {}) else []
    try:
        run_sync(manager.start_kernel)(
            extra_arguments=extensions,
            env={**os.environ, **(env or {})},
            cwd=os.fspath(cwd) if cwd else os.getcwd(),
        )
    except NoSuchKernel:
        shutil.rmtree(sockets, ignore_errors=True)
        from jupyter_client.kernelspec import KernelSpecManager

        available = ", ".join(sorted(KernelSpecManager().find_kernel_specs())) or "none"
        raise KernelNotFoundError(
            f"no Jupyter kernel named {kernel_name!r} (installed: {available}); install one with "
            f"`python -m ipykernel install --user --name {kernel_name}` or pick another"
        ) from None
    except BaseException:  # a half-started kernel and its socket folder must not outlive this
        _shutdown(manager)
        raise
    return manager


def kernel_name_of(notebook: str | os.PathLike[str], default: str = "python3") -> str:
    """Return the kernel named in the notebook's metadata, or ``default``."""
    from nbops.execute._parameters import kernelspec_name, read_notebook

    return kernelspec_name(read_notebook(notebook), default)


def execute_notebook(
    notebook: str | os.PathLike[str],
    output: str | os.PathLike[str],
    parameters: Mapping[str, Any] | None = None,
    *,
    kernel_name: str | None = None,
    timeout: float | None = None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    kernel: Any = None,
    log_output: bool = False,
    wait_for_shutdown: bool = True,
    save_each_cell: bool = True,
) -> ExecutionResult:
    """Run ``notebook`` with ``parameters`` injected, writing the executed copy to ``output``.

    Each call uses a fresh kernel (``kernel``, when given, is one started by
    :func:`start_kernel` and not used before); ``env`` and ``cwd`` apply to that kernel only,
    so several executions may run at once on threads. The kernel is shut down gracefully so
    code running at its exit completes; with ``wait_for_shutdown=False`` that happens on a
    background thread (joined at interpreter exit), which takes the ~0.15 s shutdown off the
    caller's path — safe for nbops runs, which a kernel flushes after every cell.
    ``save_each_cell=False`` writes ``output`` once at the end instead of after every cell
    (short notebooks run many times, such as sweep trials).

    Raises:
        CellError: A cell raised (the executed notebook, with the error, is at ``output``).
        KernelDiedError: The kernel died.
        ExecutionTimeoutError: ``timeout`` seconds passed; the kernel was stopped.
        KernelNotFoundError: No such kernel.
    """
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    source, target = os.fspath(notebook), os.fspath(output)
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    name = kernel_name or kernel_name_of(source)
    manager = kernel if kernel is not None else start_kernel(name, env=env, cwd=cwd)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        logger.warning("%s ran past its %s s limit; stopping its kernel", source, timeout)
        kill_kernel(manager)

    watchdog = threading.Timer(timeout, expire) if timeout else None
    started = time.perf_counter()
    try:
        if watchdog is not None:
            watchdog.daemon = True
            watchdog.start()
        papermill.execute_notebook(
            source,
            target,
            parameters=dict(parameters or {}),
            kernel_name=name,
            progress_bar=False,
            request_save_on_cell_execute=save_each_cell,
            log_output=log_output,
            km=manager,
            execution_timeout=timeout,
        )
    except PapermillExecutionError as exc:
        raise CellError(
            source,
            target,
            exc.cell_index,
            exc.exec_count,
            exc.ename,
            exc.evalue,
            list(exc.traceback),
        ) from None
    except (DeadKernelError, CellTimeoutError, RuntimeError) as exc:
        if expired.is_set() or isinstance(exc, CellTimeoutError):
            raise ExecutionTimeoutError(
                f"{source} did not finish within {timeout} s", source, target
            ) from None
        if isinstance(exc, DeadKernelError):
            raise KernelDiedError(
                f"the kernel running {source} died ({exc})", source, target
            ) from None
        raise
    finally:
        if watchdog is not None:
            watchdog.cancel()
        if wait_for_shutdown:
            _shutdown(manager)
        else:
            _shutdown_later(manager)
    return ExecutionResult(source, target, time.perf_counter() - started, dict(parameters or {}))


def kill_kernel(manager: Any) -> None:
    """SIGKILL a kernel started by :func:`start_kernel` and every process it started (timeouts,
    Ctrl-C); never raises.

    jupyter_client starts each kernel in a session of its own, so the kernel's process group
    holds the processes its notebook spawned (``subprocess``, ``multiprocessing``); the whole
    group is killed, as jupyter_client's own provisioner does. A child that left the group
    (``start_new_session=True``) is out of reach, as it is for jupyter_client.
    """
    try:
        provisioner = manager.provisioner
        pid = provisioner.process.pid
    except AttributeError:
        logger.debug("kernel not started", exc_info=True)
        return
    pgid = getattr(provisioner, "pgid", None)
    try:
        if pgid is None:
            pgid = os.getpgid(pid)
    except OSError:
        pgid = None
    try:
        if pgid is not None and hasattr(os, "killpg") and pgid != os.getpgid(0):
            os.killpg(pgid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except OSError:
        logger.debug("kernel already gone", exc_info=True)


_pending_shutdowns: list[threading.Thread] = []
_pending_lock = threading.Lock()


def _shutdown_later(manager: Any) -> None:
    """Shut the kernel down on a thread; interpreter exit waits for it (10 s at most)."""
    thread = threading.Thread(
        target=_shutdown, args=(manager,), name="nbops-kernel-shutdown", daemon=True
    )
    with _pending_lock:
        if not _pending_shutdowns:
            atexit.register(_join_shutdowns)
        _pending_shutdowns[:] = [t for t in _pending_shutdowns if t.is_alive()] + [thread]
    thread.start()


def _join_shutdowns() -> None:
    deadline = time.monotonic() + 10
    for thread in list(_pending_shutdowns):
        thread.join(timeout=max(0.0, deadline - time.monotonic()))


def _shutdown(manager: Any) -> None:
    from jupyter_core.utils import run_sync

    try:
        if manager.has_kernel:
            run_sync(manager.shutdown_kernel)(now=False)
    except Exception:
        logger.debug("kernel shutdown failed", exc_info=True)
    finally:
        shutil.rmtree(os.path.dirname(manager.ip), ignore_errors=True)
