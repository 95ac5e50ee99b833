"""Whether a process on this machine is still alive (crash detection, stale servers, workers)."""

from __future__ import annotations

import os
import sys


def pid_alive(pid: object, *, zombie_is_alive: bool = False) -> bool:
    """True when a process with ``pid`` runs on this machine.

    Args:
        pid: The process id; anything but a positive int counts as dead.
        zombie_is_alive: Count a zombie (exited, not yet reaped by its parent) as alive. By
            default it is dead: it will never write again. Sweeps count their killed workers
            as alive until reaped, leaving their trials to the storage's heartbeat.

    On Windows, where ``os.kill(pid, 0)`` would end the process, every valid pid counts as alive.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if sys.platform == "win32":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    if zombie_is_alive:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
