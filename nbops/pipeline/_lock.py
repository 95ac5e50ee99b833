"""``nbops.lock``: what each stage last ran with and produced; stable, diff-friendly, atomic."""

from __future__ import annotations

import os
from collections.abc import Mapping
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
    """One stage's last successful execution."""

    notebook: str
    code: str
    params: Mapping[str, Any]
    deps: Mapping[str, str]
    outs: Mapping[str, str]
    metrics: Mapping[str, Any] = field(default_factory=dict)
    run: str | None = None
    executed: str | None = None
    kernel: str | None = None
    sweep: Mapping[str, Any] | None = None  # config, best_params, best_value, study


def read_lock(root: str | os.PathLike[str]) -> dict[str, LockEntry]:
    """Return the lock's entries by stage ({} when there is no lock yet)."""
    import yaml

    path = Path(root) / LOCK_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        raw = yaml.safe_load(text) or {}
        stages = raw.get("stages") or {}
        return {name: LockEntry(**body) for name, body in stages.items()}
    except (yaml.YAMLError, TypeError, AttributeError) as exc:
        raise LockError(
            f"{path} is unreadable ({exc}); restore it from version control, or delete it to "
            "re-run every stage"
        ) from None


def write_lock(root: str | os.PathLike[str], entries: Mapping[str, LockEntry]) -> Path:
    """Write every entry, stages and keys sorted, through a temporary file and a rename."""
    import yaml

    doc = {
        "version": LOCK_VERSION,
        "stages": {name: _plain(asdict(entries[name])) for name in sorted(entries)},
    }
    text = _HEADER + yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, width=100)
    return write_atomic(Path(root) / LOCK_FILE, text)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
