"""The state of the git working tree a run starts from: commit, branch, diff, untracked files."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from nbops.redact import scrub_text, secret_values

logger = logging.getLogger(__name__)

#: Seconds any single git command may take before it is killed.
GIT_TIMEOUT = 5.0
#: At most this many untracked paths are reported.
UNTRACKED_LIMIT = 1000

# No prompts, no index lock taken by `git status`, stable English output.
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}


class _GitFailed(Exception):
    """A git command failed, timed out or could not start (internal only)."""


def git_state(
    path: str | os.PathLike[str] | None = None, diff_limit: int = 1_000_000
) -> dict[str, Any] | None:
    """Return the git state of the repository containing ``path`` (default: the cwd).

    Never raises: a git command that fails or times out leaves its field empty and is described
    under ``"errors"``.

    Args:
        path: A file or folder inside the working tree.
        diff_limit: Cap, in bytes, on the ``diff`` text.

    Returns:
        None when ``path`` is not inside a git working tree or git is not installed. Otherwise a
        dict with ``root``, ``commit`` (None before the first commit), ``branch`` (None when
        detached), ``dirty`` (tracked files differ from HEAD, staged or not), ``diff`` (``git diff
        HEAD``, secrets scrubbed), ``diff_truncated``, ``untracked`` (paths relative to the root,
        at most :data:`UNTRACKED_LIMIT`; an untracked folder is listed once as ``dir/``),
        ``untracked_truncated``, ``remote`` (origin URL without credentials, or None) and
        ``errors`` (list of what went wrong).
    """
    git = shutil.which("git")
    if git is None:
        return None
    start = os.fspath(path) if path is not None else os.getcwd()
    if os.path.isfile(start):
        start = os.path.dirname(start) or "."
    env = {**os.environ, **_GIT_ENV}
    try:
        root = _run([git, "rev-parse", "--show-toplevel"], start, env).strip()
    except _GitFailed:
        return None
    secrets = secret_values()
    errors: list[str] = []

    def run(*args: str) -> str | None:
        try:
            return _run([git, *args], root, env)
        except _GitFailed as exc:
            errors.append(str(exc))
            return None

    commit = _quiet(git, root, env, "rev-parse", "--verify", "-q", "HEAD")
    branch = _quiet(git, root, env, "symbolic-ref", "-q", "--short", "HEAD")
    status = run("status", "--porcelain=v1", "-z", "--untracked-files=normal")
    entries = [e for e in (status or "").split("\0") if e]
    untracked: list[str] = []
    dirty = False
    skip_next = False
    for entry in entries:
        if skip_next:  # the original path of a rename or copy
            skip_next = False
            continue
        code, name = entry[:2], entry[3:]
        if code == "??":
            untracked.append(scrub_text(name, secrets))
        elif code != "!!":
            dirty = True
            skip_next = "R" in code or "C" in code
    diff_args = ["diff", "HEAD"] if commit else ["diff", "--cached"]
    diff_bytes, diff_truncated = b"", False
    try:
        diff_bytes, diff_truncated = _run_capped(
            [git, *diff_args, "--no-color", "--no-ext-diff"], root, env, diff_limit
        )
    except _GitFailed as exc:
        errors.append(str(exc))
    remote = _quiet(git, root, env, "config", "--get", "remote.origin.url")
    return {
        "root": root,
        "commit": commit,
        "branch": branch,
        "dirty": dirty,
        "diff": scrub_text(diff_bytes.decode("utf-8", errors="replace"), secrets),
        "diff_truncated": diff_truncated,
        "untracked": untracked[:UNTRACKED_LIMIT],
        "untracked_truncated": len(untracked) > UNTRACKED_LIMIT,
        "remote": scrub_text(strip_credentials(remote), secrets) if remote else None,
        "errors": errors,
    }


def strip_credentials(url: str) -> str:
    """Return ``url`` without a ``user:password@`` or ``token@`` part.

    ``ssh://git@host/...`` and scp-like ``git@host:org/repo.git`` keep their user name, which is
    not a secret.
    """
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    if parts.scheme.startswith("ssh") and ":" not in userinfo:
        return url
    return urlunsplit(parts._replace(netloc=host))


def _quiet(git: str, root: str, env: dict[str, str], *args: str) -> str | None:
    """Run a git query whose failure just means "no value" (e.g. detached HEAD, no remote)."""
    try:
        return _run([git, *args], root, env).strip() or None
    except _GitFailed:
        return None


def _run(args: list[str], cwd: str, env: dict[str, str]) -> str:
    try:
        proc = subprocess.run(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise _GitFailed(f"`git {args[1]}` timed out after {GIT_TIMEOUT:g} s") from exc
    except OSError as exc:
        raise _GitFailed(f"`git {args[1]}` could not start: {exc}") from exc
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", errors="replace").strip().splitlines()
        raise _GitFailed(f"`git {args[1]}` failed: {err[-1] if err else proc.returncode}")
    return proc.stdout.decode("utf-8", errors="replace")


def _run_capped(args: list[str], cwd: str, env: dict[str, str], limit: int) -> tuple[bytes, bool]:
    """Run ``args`` and return at most ``limit`` bytes of its output, and whether it was cut."""
    try:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
    except OSError as exc:
        raise _GitFailed(f"`git {args[1]}` could not start: {exc}") from exc
    timer = threading.Timer(GIT_TIMEOUT, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        data = proc.stdout.read(max(limit, 0) + 1)
        truncated = len(data) > limit
        if truncated:
            proc.kill()
        code = proc.wait()
    finally:
        timer.cancel()
        if proc.stdout is not None:
            proc.stdout.close()
    if truncated:
        return data[:limit], True
    if code != 0:
        reason = "timed out" if code < 0 else f"exited with {code}"
        raise _GitFailed(f"`git {args[1]}` {reason}")
    return data, False
