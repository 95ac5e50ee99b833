"""Where the project and its store live, and settings read from the environment."""

from __future__ import annotations

import os
import threading
from pathlib import Path

#: Files or folders whose presence marks a project root.
ROOT_MARKERS = (".git", "pyproject.toml", "nbops.yaml")
STORE_DIRNAME = ".nbops"


#: ``start`` -> (the folders searched with their mtimes, the root found); see find_project_root.
_roots: dict[str, tuple[tuple[tuple[str, int], ...], Path]] = {}
_roots_lock = threading.Lock()


def find_project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """Return the nearest ancestor of ``start`` (default: cwd) holding a root marker.

    Falls back to ``start`` itself when no ancestor holds one. The answer is cached per
    ``start`` and re-checked with one ``stat`` per folder searched: a marker created or removed
    in one of them changes that folder's mtime, which drops the cached answer (every run,
    trial and redaction asks, so this is on the path of each ``nbops.init``).
    """
    key = os.fspath(start) if start else os.getcwd()
    with _roots_lock:
        cached = _roots.get(key)
    if cached is not None and _unchanged(cached[0]):
        return cached[1]
    here = Path(key).resolve()
    searched: list[tuple[str, int]] = []
    found = here
    for candidate in (here, *here.parents):
        try:
            searched.append((str(candidate), os.stat(candidate).st_mtime_ns))
        except OSError:
            searched.clear()  # a folder that is not there: do not cache
            break
        if any((candidate / marker).exists() for marker in ROOT_MARKERS):
            found = candidate
            break
    if searched:
        with _roots_lock:
            _roots[key] = (tuple(searched), found)
    return found


def _unchanged(searched: tuple[tuple[str, int], ...]) -> bool:
    try:
        return all(os.stat(folder).st_mtime_ns == mtime for folder, mtime in searched)
    except OSError:
        return False


def store_path(start: str | os.PathLike[str] | None = None) -> Path:
    """Return the store directory: ``$NBOPS_HOME`` or ``<project root>/.nbops``."""
    home = os.environ.get("NBOPS_HOME")
    if home:
        return Path(home).expanduser().resolve()
    return find_project_root(start) / STORE_DIRNAME


def default_project(start: str | os.PathLike[str] | None = None) -> str:
    """Return the default project name: ``$NBOPS_PROJECT`` or the project root's folder name."""
    return os.environ.get("NBOPS_PROJECT") or find_project_root(start).name or "default"


def store_url(start: str | os.PathLike[str] | None = None) -> str:
    """Return the project's store as a URL: ``$NBOPS_STORE`` or ``sqlite://`` + :func:`store_path`.

    ``NBOPS_STORE`` takes ``sqlite:///FOLDER``, ``postgresql://USER@HOST/DB`` or ``memory://``;
    ``NBOPS_BLOBS`` (a folder or ``file:///FOLDER``) says where a server backend keeps blobs.
    """
    url = os.environ.get("NBOPS_STORE")
    if url:
        return url
    return f"sqlite://{store_path(start).as_posix()}"
