"""Run ids and the identity of the process that runs them."""

from __future__ import annotations

import os
import secrets
import socket
import time

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_run_id() -> str:
    """Return a new run id: 12 lowercase base-36 characters, sortable by creation time."""
    ms = int(time.time() * 1000)
    stamp = ""
    while ms:
        ms, rem = divmod(ms, 36)
        stamp = _B36[rem] + stamp
    return stamp[-8:].rjust(8, "0") + "".join(secrets.choice(_B36) for _ in range(4))


def host_and_pid() -> tuple[str, int]:
    """Return this process's host name and pid, as recorded on runs."""
    return socket.gethostname(), os.getpid()
