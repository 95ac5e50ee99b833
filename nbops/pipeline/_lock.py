"""``nbops.lock``: what each stage last ran with and produced; stable, diff-friendly, atomic."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError
from nbops.fileio import write_atomic

LOCK_FILE = "nbops.lock"
LOCK_VERSION = 1
_HEADER = "# Written by `nbops run`. Commit it: it records what each stage last ran with.\n"


class LockError(NbopsError):
    """``nbops.lock`` cannot be read."""


@dataclass(frozen=True)
class LockEntry:
    """One stage's last successful execution: only what it ran with and produced.

    The run id and the executed notebook live in the store and the run cache (they differ per
    checkout); a re-run that produced the same results leaves the entry unchanged.
    """

    notebook: str
    code: str
    params: Mapping[str, Any]
    deps: Mapping[str, str]
    outs: Mapping[str, str]
    metrics: Mapping[str, Any] = field(default_factory=dict)
    kernel: str | None = None
    sweep: Mapping[str, Any] | None = None  # config, best_params, best_value


#: keys of older locks that now live in the store
_LEGACY_KEYS = ("run", "executed")


def read_lock(root: str | os.PathLike[str]) -> dict[str, LockEntry]:
    """Return the lock's entries by stage ({} when there is no lock yet)."""
    import yaml

    from nbops.pipeline._yaml import yaml_load

    path = Path(root) / LOCK_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        raw = yaml_load(text) or {}
        stages = raw.get("stages") or {}
        return {
            name: LockEntry(**{k: v for k, v in body.items() if k not in _LEGACY_KEYS})
            for name, body in stages.items()
        }
    except (yaml.YAMLError, ValueError, TypeError, AttributeError) as exc:
        raise LockError(
            f"{path} is unreadable ({exc}); restore it from version control, or delete it to "
            "re-run every stage"
        ) from None


def _render(entries: Mapping[str, LockEntry]) -> str:
    import yaml

    doc = {
        "version": LOCK_VERSION,
        "stages": {name: plain_value(asdict(entries[name])) for name in sorted(entries)},
    }
    return _HEADER + yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, width=100)


def write_lock(root: str | os.PathLike[str], entries: Mapping[str, LockEntry]) -> Path:
    """Write every entry, stages and keys sorted, through a temporary file and a rename; an
    unchanged lock is not rewritten."""
    path = Path(root) / LOCK_FILE
    text = _render(entries)
    try:
        if path.read_text(encoding="utf-8") == text:
            return path
    except FileNotFoundError:
        pass
    return write_atomic(path, text)


def update_lock(
    root: str | os.PathLike[str],
    changes: Mapping[str, LockEntry],
    stages: Collection[str],
) -> dict[str, LockEntry]:
    """Merge ``changes`` into the lock as it is on disk now (read-modify-write, the caller
    holding the project's run lock), dropping stages no longer in ``stages``; return it."""
    entries = {k: v for k, v in read_lock(root).items() if k in stages}
    entries.update(changes)
    write_lock(root, entries)
    return entries


def plain_value(value: Any) -> Any:
    """Mappings and sequences as plain dicts and lists (for YAML and JSON)."""
    if isinstance(value, Mapping):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    return value
