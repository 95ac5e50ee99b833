"""One ``nbops run`` at a time per project: an OS file lock, with who holds it written inside.

The lock is ``flock`` on ``<store>/locks/<project hash>.lock``: the operating system releases it
when its holder exits, however it exits, so a lock left by a dead process is simply taken over.
The file's text (pid, host, start time, the project) only serves to say who holds it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from nbops.errors import NbopsError


class PipelineBusyError(NbopsError):
    """Another ``nbops run`` holds the project's run lock."""

    def __init__(self, root: Path, holder: dict[str, Any]) -> None:
        self.root = root
        self.holder = holder
        who = (
            f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"started {holder.get('started', '?')}"
        )
        super().__init__(
            f"another `nbops run` is running in {root} ({who}); wait for it, or pass --wait "
            "to queue behind it"
        )


class RunLock:
    """Context manager holding the project's run lock; re-entrant within one object."""

    def __init__(self, root: Path, store_dir: Path, *, wait: float | None = None) -> None:
        self.root = root.resolve()
        key = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
        self.path = store_dir / "locks" / f"run-{key}.lock"
        self.wait = wait
        self._fh: IO[str] | None = None

    def holder(self) -> dict[str, Any]:
        """Who holds (or last held) the lock, from the lock file."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def acquire(self) -> None:
        """Take the lock, or raise :class:`PipelineBusyError` (after ``wait`` seconds, if set;
        ``wait=float('inf')`` waits as long as it takes)."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        deadline = None if self.wait is None else time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is None or time.monotonic() >= deadline:
                    fh.close()
                    raise PipelineBusyError(self.root, self.holder()) from None
                time.sleep(0.2)
        fh.seek(0)
        fh.truncate()
        started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": started}
        fh.write(json.dumps({**info, "project": str(self.root)}))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        """Let the next run in."""
        import fcntl

        if self._fh is None:
            return
        try:
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
        finally:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
