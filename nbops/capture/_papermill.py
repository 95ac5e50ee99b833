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
        warning: Why the paths may be wrong, or "".
    """

    pid: int
    input_path: str | None
    output_path: str | None
    parameters: dict[str, str]
    warning: str = ""


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
                others = (_cwd_of(_parent_of(pid)), _environ_of(pid).get("PWD", ""))
                command = parse_papermill_args(args, cwd, pid, others)
                return command, f"papermill CLI is process {pid}"
        pid = _parent_of(pid)
    names = ", ".join(seen) or "unreadable"
    return None, f"no papermill CLI among the kernel's ancestors ({names})"


def ancestor_pids(start_pid: int | None = None) -> tuple[int, ...]:
    """Return up to :data:`MAX_ANCESTORS` ancestor process ids, parent first (empty off Linux)."""
    pids: list[int] = []
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


def parse_papermill_args(
    args: list[str], cwd: str, pid: int = 0, other_dirs: tuple[str, ...] = ()
) -> PapermillCommand:
    """Parse papermill CLI arguments and resolve the notebook paths to absolute paths.

    Args:
        args: The arguments after ``papermill``.
        cwd: The papermill process's current directory. With ``--cwd DIR`` papermill has
            changed into DIR, so the directory it was started from is worked out: by removing a
            relative DIR from ``cwd``, else by trying ``other_dirs`` (e.g. the parent's cwd).
        pid: Process id of the papermill CLI.
        other_dirs: Candidate launch directories used when ``--cwd`` is given.
    """
    positional: list[str] = []
    parameters: dict[str, str] = {}
    cwd_option: str | None = None
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
            if arg == "--cwd" and i + 1 < len(args):
                cwd_option = args[i + 1]
            i += 2
            continue
        if arg.startswith("--cwd="):
            cwd_option = arg.partition("=")[2]
        elif not arg.startswith("-") or arg == "-":
            positional.append(arg)
        i += 1  # a flag, --option=value, or a positional argument
    paths = [os.path.expanduser(p) for p in positional[:2]]
    base, warning = cwd, ""
    if cwd_option:
        base, warning = _launch_dir(cwd, cwd_option, paths, other_dirs)

    def resolve(index: int) -> str | None:
        if len(paths) <= index or paths[index] in ("", "-"):
            return None
        if "://" in paths[index]:
            return paths[index]
        return os.path.normpath(os.path.join(base, paths[index]))

    return PapermillCommand(pid, resolve(0), resolve(1), parameters, warning)


def _launch_dir(
    cwd: str, cwd_option: str, paths: list[str], other_dirs: tuple[str, ...]
) -> tuple[str, str]:
    """Return the directory papermill was started from, given it has changed into ``--cwd``."""
    candidates = []
    option = os.path.normpath(os.path.expanduser(cwd_option))
    if not os.path.isabs(option) and ".." not in option.split(os.sep):
        depth = 0 if option == "." else len(option.split(os.sep))
        candidates.append(os.path.normpath(os.path.join(cwd, *[".."] * depth)))
    candidates.extend(d for d in other_dirs if d)
    relative = [p for p in paths if p not in ("", "-") and "://" not in p and not os.path.isabs(p)]
    if not relative:
        return cwd, ""
    for candidate in candidates:
        same_cwd = os.path.realpath(os.path.join(candidate, option)) == os.path.realpath(cwd)
        if same_cwd and all(os.path.exists(os.path.join(candidate, p)) for p in relative):
            return candidate, ""
    guess = candidates[0] if candidates else cwd
    return (
        guess,
        f"papermill ran with --cwd, so relative notebook paths were guessed against {guess}",
    )


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


def _cwd_of(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd") if pid > 0 else ""
    except OSError:
        return ""


def _environ_of(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    pairs = (item.decode("utf-8", errors="replace").partition("=") for item in raw.split(b"\0"))
    return {key: value for key, sep, value in pairs if sep}


def _parent_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", errors="replace")
        # The command name (field 2) is in parentheses and may contain spaces.
        return int(stat.rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return 0
