"""Recognise a kernel started by the papermill CLI, from its ancestor processes in ``/proc``."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

#: How many ancestors of the kernel are inspected (parent, grandparent, ...).
MAX_ANCESTORS = 3

# papermill CLI options that take one or two values (papermill 2.x); every other option is a flag.
_TWO_VALUES = {"-p", "--parameters", "-r", "--parameters_raw"}
_ONE_VALUE = {
    "-f", "--parameters_file", "-y", "--parameters_yaml", "-b", "--parameters_base64",
    "--engine", "--autosave-cell-every", "-k", "--kernel", "-l", "--language", "--cwd",
    "--stdout-file", "--stderr-file", "--log-level", "--start-timeout", "--start_timeout",
    "--execution-timeout",
}  # fmt: skip


@dataclass(frozen=True)
class PapermillCommand:
    """A papermill CLI invocation found among the kernel's ancestors.

    Attributes:
        pid: Process id of the papermill CLI.
        input_path: Absolute input notebook path, or None when read from stdin.
        output_path: Absolute output notebook path, or None when written to stdout.
        parameters: ``-p``/``-r`` values as given on the command line (strings, untyped).
    """

    pid: int
    input_path: str | None
    output_path: str | None
    parameters: dict[str, str]


def find_papermill_parent(start_pid: int | None = None) -> tuple[PapermillCommand | None, str]:
    """Return the papermill CLI among the ancestors of ``start_pid``, and a sentence saying how.

    Args:
        start_pid: First process to inspect (default: this process's parent).
    """
    if not os.path.isdir("/proc/self"):
        return None, "no /proc filesystem, so the parent process cannot be inspected"
    pid = os.getppid() if start_pid is None else start_pid
    seen = []
    for _ in range(MAX_ANCESTORS):
        if pid <= 1:
            break
        argv = _cmdline(pid)
        if argv:
            seen.append(os.path.basename(argv[0]))
            args = papermill_args(argv)
            if args is not None:
                try:
                    cwd = os.readlink(f"/proc/{pid}/cwd")
                except OSError as exc:
                    return None, f"papermill (pid {pid}) found but its cwd is unreadable: {exc}"
                return parse_papermill_args(args, cwd, pid), f"papermill CLI is process {pid}"
        pid = _parent_of(pid)
    names = ", ".join(seen) or "unreadable"
    return None, f"no papermill CLI among the kernel's ancestors ({names})"


def ancestor_pids(start_pid: int | None = None) -> tuple[int, ...]:
    """Return up to :data:`MAX_ANCESTORS` ancestor process ids, parent first (empty off Linux)."""
    pids = []
    pid = os.getppid() if start_pid is None else start_pid
    while pid > 1 and len(pids) < MAX_ANCESTORS and os.path.isdir("/proc/self"):
        pids.append(pid)
        pid = _parent_of(pid)
    return tuple(pids)


def papermill_args(argv: list[str]) -> list[str] | None:
    """Return the arguments after the program if ``argv`` runs the papermill CLI, else None.

    Recognises ``papermill ...``, ``python /path/bin/papermill ...`` and ``python -m papermill``.
    """
    for i, arg in enumerate(argv[:3]):
        if os.path.basename(arg) in ("papermill", "papermill.exe"):
            return argv[i + 1 :]
        if arg == "-m" and i + 1 < len(argv) and argv[i + 1] == "papermill":
            return argv[i + 2 :]
    return None


def parse_papermill_args(args: list[str], cwd: str, pid: int = 0) -> PapermillCommand:
    """Parse papermill CLI arguments, resolving notebook paths against ``cwd``."""
    positional: list[str] = []
    parameters: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            positional.extend(args[i + 1 :])
            break
        if arg in _TWO_VALUES:
            if i + 2 < len(args):
                parameters[args[i + 1]] = args[i + 2]
            i += 3
            continue
        if arg in _ONE_VALUE:
            i += 2
            continue
        if arg.startswith("-") and arg != "-":
            i += 1  # a flag, or --option=value
            continue
        positional.append(arg)
        i += 1

    def resolve(index: int) -> str | None:
        if len(positional) <= index or positional[index] in ("", "-"):
            return None
        path = positional[index]
        if "://" in path:
            return path
        return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))

    return PapermillCommand(pid, resolve(0), resolve(1), parameters)


def read_papermill_metadata(output_path: str, attempts: int = 3) -> tuple[dict[str, Any], str]:
    """Read ``metadata.papermill`` from the output notebook papermill writes before executing.

    Papermill rewrites that file after each cell without an atomic rename, so a read that finds
    invalid JSON is retried a few times.

    Returns:
        The metadata dict (empty on failure) and the reason it is empty ("" on success).
    """
    reason = ""
    for attempt in range(attempts):
        try:
            with open(output_path, encoding="utf-8") as f:
                nb = json.load(f)
            meta = nb.get("metadata", {}).get("papermill")
            if isinstance(meta, dict):
                return meta, ""
            return {}, f"{output_path} has no metadata.papermill"
        except FileNotFoundError:
            return {}, f"output notebook {output_path} does not exist yet"
        except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
            reason = f"output notebook {output_path} is unreadable: {exc}"
        if attempt + 1 < attempts:
            time.sleep(0.05)
    return {}, reason


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [a.decode("utf-8", errors="replace") for a in raw.split(b"\0") if a]


def _parent_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", errors="replace")
        # The command name (field 2) is in parentheses and may contain spaces.
        return int(stat.rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return 0
