"""Tables named by a prefix (``predictions:digits@production:7d``) instead of a file path.

Like papermill's I/O handlers: ``nbops drift``, ``nbops monitor``'s ``current:`` and its
``feedback: path:`` read a table through :func:`read_source`, which hands a spec starting with a
registered ``PREFIX:`` to that prefix's reader and reads anything else as a file. A package adds
a prefix with :func:`register_table_source` or an entry point in the group ``nbops.tables``
whose name is the prefix and whose object is ``reader(spec, *, store) -> DataFrame`` (``spec``
includes the prefix). nbops's serving package registers ``predictions:`` (logged inputs) and
``feedback:`` (logged predictions joined with their labels) that way, so this module never
imports it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbops.data._profile import TableReadError, read_table

#: ``reader(spec, *, store) -> pandas.DataFrame``; raise an NbopsError for a bad spec.
TableReader = Callable[..., Any]

_readers: dict[str, TableReader] = {}
_pending: dict[str, Any] = {}  # entry points, loaded on first use
_loaded = False
_lock = threading.Lock()
_PREFIX = re.compile(r"([a-z][a-z0-9_-]+):")


def register_table_source(prefix: str, reader: TableReader) -> None:
    """Make specs ``PREFIX:...`` read as ``reader(spec, store=store)``."""
    if not _PREFIX.fullmatch(f"{prefix.lower()}:"):
        raise ValueError(f"a table source prefix is a lower-case word, not {prefix!r}")
    _readers[prefix.lower()] = reader


def _load_entry_points() -> None:
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
    from importlib.metadata import entry_points

    for entry in entry_points(group="nbops.tables"):
        _pending.setdefault(entry.name.lower(), entry)


def table_sources() -> list[str]:
    """Every registered prefix (entry points included)."""
    _load_entry_points()
    return sorted({*_readers, *_pending})


def source_prefix(spec: str) -> str | None:
    """The registered prefix ``spec`` starts with, or None for a file path."""
    match = _PREFIX.match(spec)
    if match is None or len(match[1]) < 2:  # "C:" is a drive, not a prefix
        return None
    _load_entry_points()
    return match[1] if match[1] in _readers or match[1] in _pending else None


def read_source(
    spec: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None, store: Any = None
) -> Any:
    """Read the table ``spec`` names: ``PREFIX:...`` through its reader, else a file.

    Args:
        spec: ``predictions:MODEL@ALIAS:7d`` or a CSV/TSV/Parquet path.
        root: Folder relative paths are read from (default: the working directory).
        store: The store a prefix reader looks in (default: the project's).

    Raises:
        TableReadError: The file is missing or unreadable.
    """
    text = os.fspath(spec)
    prefix = source_prefix(text)
    if prefix is None:
        path = Path(root) / text if root is not None else Path(text)
        match = _PREFIX.match(text)
        if match is not None and len(match[1]) > 1 and not path.exists():
            known = ", ".join(f"{p}:" for p in table_sources()) or "none"
            raise TableReadError(
                f"no such file: {text}, and no table source is registered for {match[1]}: "
                f"(known: {known}; a package registers one through the entry point group "
                "nbops.tables, so reinstall it if it should be there)"
            )
        return read_table(path)
    if prefix not in _readers:
        _readers[prefix] = _pending[prefix].load()
    return _readers[prefix](text, store=store)
