"""``nbops metrics diff``: the metrics each stage recorded in ``nbops.lock`` at two revisions."""

from __future__ import annotations

import math
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError
from nbops.pipeline._lock import LOCK_FILE

WORKTREE = "workspace"


class RevisionError(NbopsError):
    """A git revision of ``nbops.lock`` cannot be read."""


@dataclass(frozen=True)
class MetricChange:
    """One metric of one stage at revisions ``a`` and ``b`` (None where it is absent)."""

    stage: str
    metric: str
    a: float | None
    b: float | None

    @property
    def change(self) -> float | None:
        if self.a is None or self.b is None:
            return None
        return self.b - self.a

    def to_dict(self) -> dict[str, Any]:
        """Strict JSON: NaN and infinities become None."""

        def finite(value: float | None) -> float | None:
            return value if value is not None and math.isfinite(value) else None

        return {
            "stage": self.stage,
            "metric": self.metric,
            "a": finite(self.a),
            "b": finite(self.b),
            "change": finite(self.change),
        }


def _lock_text(root: Path, rev: str) -> str:
    if rev == WORKTREE:
        try:
            return (root / LOCK_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""
    try:
        done = subprocess.run(
            ["git", "show", f"{rev}:./{LOCK_FILE}"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except FileNotFoundError:
        raise RevisionError(
            "git is not installed; metrics diff reads nbops.lock from git"
        ) from None
    if done.returncode != 0:
        if "exists on disk, but not in" in done.stderr or "does not exist in" in done.stderr:
            return ""  # no lock at that revision: no metrics
        raise RevisionError(
            f"cannot read {LOCK_FILE} at {rev!r}: {done.stderr.strip() or 'git show failed'}"
        )
    return done.stdout


def _metrics_at(root: Path, rev: str) -> dict[str, dict[str, float]]:
    from nbops.pipeline._yaml import yaml_load

    raw = yaml_load(_lock_text(root, rev)) or {}
    stages = raw.get("stages") if isinstance(raw, dict) else None
    out: dict[str, dict[str, float]] = {}
    for name, body in (stages or {}).items():
        metrics = (body or {}).get("metrics") or {}
        out[str(name)] = {
            str(k): float(v)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
    return out


def metrics_diff(
    root: str | os.PathLike[str] | None = None, rev_a: str = "HEAD", rev_b: str = WORKTREE
) -> list[MetricChange]:
    """Every metric of every stage in ``nbops.lock`` at ``rev_a`` and ``rev_b`` (a git
    revision, or ``"workspace"`` for the file on disk), sorted by stage and metric."""
    from nbops.config import find_project_root

    base = Path(root) if root is not None else find_project_root()
    a, b = _metrics_at(base, rev_a), _metrics_at(base, rev_b)
    changes = []
    for stage in sorted(set(a) | set(b)):
        names = set(a.get(stage, {})) | set(b.get(stage, {}))
        for metric in sorted(names):
            changes.append(
                MetricChange(
                    stage, metric, a.get(stage, {}).get(metric), b.get(stage, {}).get(metric)
                )
            )
    return changes
