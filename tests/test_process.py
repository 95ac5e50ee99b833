"""One pid check, with the sweeps' zombie semantics as a named option."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from nbops.process import pid_alive


def test_a_running_process_is_alive_and_bad_pids_are_not() -> None:
    assert pid_alive(os.getpid())
    for pid in (None, "12", True, 0, -1, 2**22 + 12345):
        assert not pid_alive(pid)


def test_a_zombie_is_dead_unless_asked_otherwise() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while pid_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.02)  # exited, not reaped: a zombie
        assert not pid_alive(child.pid)
        assert pid_alive(child.pid, zombie_is_alive=True)
    finally:
        child.wait(timeout=30)
    assert not pid_alive(child.pid, zombie_is_alive=True)
