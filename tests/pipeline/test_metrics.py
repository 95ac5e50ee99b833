"""``nbops metrics diff`` between git revisions of ``nbops.lock``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from nbops.pipeline import LockEntry, metrics_diff, write_lock


def _entry(**metrics: float) -> LockEntry:
    return LockEntry(notebook="n.ipynb", code="c", params={}, deps={}, outs={}, metrics=metrics)


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def test_metrics_between_revisions_and_the_workspace(cli: Any, isolated_env: Path) -> None:
    root = isolated_env
    _git(root, "init", "-q")
    write_lock(root, {"train": _entry(acc=0.8, loss=0.5), "eval": _entry(auc=0.9)})
    _git(root, "add", "nbops.lock")
    _git(root, "commit", "-q", "-m", "first")
    write_lock(root, {"train": _entry(acc=0.85, f1=0.7), "eval": _entry(auc=float("nan"))})
    changes = {(c.stage, c.metric): c for c in metrics_diff(root)}
    assert changes["train", "acc"].a == 0.8 and changes["train", "acc"].b == 0.85
    assert abs((changes["train", "acc"].change or 0) - 0.05) < 1e-12
    assert changes["train", "loss"].b is None and changes["train", "f1"].a is None
    shown = cli("metrics", "diff")
    assert shown.exit_code == 0, shown.stderr
    assert "train  acc     0.8   0.85" in shown.output and "+0.05" in shown.output
    strict = json.loads(cli("metrics", "diff", "--json").output)  # NaN is null, not NaN
    assert {"stage": "eval", "metric": "auc", "a": 0.9, "b": None, "change": None} in strict
    _git(root, "commit", "-q", "-am", "second")
    assert [c.metric for c in metrics_diff(root, "HEAD~1", "HEAD") if c.change] == ["auc", "acc"]
    bad = cli("metrics", "diff", "no-such-rev")
    assert bad.exit_code == 1 and bad.stderr.startswith("Error: cannot read nbops.lock")
