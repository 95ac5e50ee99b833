"""Where the project and its store live, and settings read from the environment."""

from __future__ import annotations

import os
from pathlib import Path

#: Files or folders whose presence marks a project root.
ROOT_MARKERS = (".git", "pyproject.toml", "nbops.yaml")
STORE_DIRNAME = ".nbops"


def find_project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """Return the nearest ancestor of ``start`` (default: cwd) holding a root marker.

    Falls back to ``start`` itself when no ancestor holds one.
    """
    here = Path(start or os.getcwd()).resolve()
    for candidate in (here, *here.parents):
        if any((candidate / marker).exists() for marker in ROOT_MARKERS):
            return candidate
    return here


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
