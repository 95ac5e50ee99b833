"""Whether a stage is stale, and exactly why: its notebook, params, deps, kernel or outs."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nbops.execute import code_hash, kernelspec_name, read_notebook
from nbops.pipeline._graph import StageGraph
from nbops.pipeline._hashing import HashCache, path_hash
from nbops.pipeline._ignore import IgnoreRules
from nbops.pipeline._lock import LockEntry
from nbops.pipeline._secrets import Sealer
from nbops.pipeline._spec import PipelineSpec, Stage
from nbops.pipeline._validate import effective_params
from nbops.redact import is_secret_name

DEFAULT_KERNEL = "python3"


@dataclass(frozen=True)
class Fingerprint:
    """The inputs of one stage execution."""

    notebook: str
    code: str
    params: Mapping[str, Any]
    deps: Mapping[str, str | None]
    kernel: str
    sweep: Mapping[str, Any] | None = None

    def key(self, sealer: Sealer) -> str:
        """The run cache key: a hash of every input (secret params by a keyed hash)."""
        params = {
            k: "secret:" + sealer.keyed(v) if is_secret_name(k) else v
            for k, v in self.params.items()
        }
        doc = {
            "notebook": self.notebook,
            "code": self.code,
            "params": params,
            "deps": self.deps,
            "kernel": self.kernel,
            "sweep": self.sweep,
        }
        return hashlib.sha256(_canon(doc).encode()).hexdigest()


@dataclass(frozen=True)
class StageStatus:
    """``stale`` with the reasons, one sentence each."""

    name: str
    stale: bool
    reasons: tuple[str, ...] = ()
    fingerprint: Fingerprint | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.name, "stale": self.stale, "reasons": list(self.reasons)}


def fingerprint(
    spec: PipelineSpec, stage: Stage, overrides: Mapping[str, Mapping[str, Any]], cache: HashCache
) -> Fingerprint:
    """Hash what the stage reads now."""
    nb = read_notebook(spec.root / stage.notebook)
    kernel = stage.kernel or kernelspec_name(nb, DEFAULT_KERNEL)
    return Fingerprint(
        notebook=stage.notebook,
        code=code_hash(nb),
        params=effective_params(stage, overrides),
        deps={dep: path_hash(spec.root / dep, cache) for dep in stage.deps},
        kernel=kernel,
        sweep=dict(stage.sweep) if stage.sweep else None,
    )


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def input_reasons(fp: Fingerprint, entry: LockEntry | None, sealer: Sealer) -> list[str]:
    """Why the stage's inputs differ from its lock entry (empty: the entry still holds)."""
    if entry is None:
        return ["never ran (no entry in nbops.lock)"]
    reasons: list[str] = []
    if entry.notebook != fp.notebook:
        reasons.append(f"notebook changed from {entry.notebook} to {fp.notebook}")
    elif entry.code != fp.code:
        reasons.append(f"code cells of {fp.notebook} changed")
    for key in sorted(set(entry.params) | set(fp.params)):
        old, new = entry.params.get(key, "<unset>"), fp.params.get(key, "<unset>")
        if is_secret_name(key):
            why = sealer.changed(key, old, new)
            if why:
                reasons.append(why)
        elif _canon(old) != _canon(new):
            reasons.append(f"param {key} changed: {old!r} -> {new!r}")
    for dep in sorted(set(entry.deps) | set(fp.deps)):
        if dep not in fp.deps:
            reasons.append(f"dep {dep} was removed from the stage")
        elif dep not in entry.deps:
            reasons.append(f"dep {dep} was added to the stage")
        elif fp.deps[dep] is None:
            reasons.append(f"dep {dep} is missing")
        elif fp.deps[dep] != entry.deps[dep]:
            reasons.append(f"dep {dep} changed")
    if _canon(fp.sweep) != _canon((entry.sweep or {}).get("config")):
        reasons.append("sweep settings changed")
    if (entry.kernel or DEFAULT_KERNEL) != fp.kernel:
        reasons.append(f"kernel changed from {entry.kernel} to {fp.kernel}")
    return reasons


def out_reasons(
    spec: PipelineSpec, stage: Stage, entry: LockEntry | None, cache: HashCache
) -> list[str]:
    """Why the stage's outs on disk are not the ones its lock entry recorded."""
    reasons: list[str] = []
    for out in stage.outs:
        current = path_hash(spec.root / out, cache)
        if entry is None:
            continue
        if out not in entry.outs:
            reasons.append(f"out {out} is new")
        elif current is None:
            reasons.append(f"out {out} is missing")
        elif current != entry.outs[out]:
            reasons.append(f"out {out} was modified after the stage ran")
    return reasons


def stale_reasons(
    spec: PipelineSpec,
    stage: Stage,
    fp: Fingerprint,
    entry: LockEntry | None,
    cache: HashCache,
    sealer: Sealer,
) -> list[str]:
    """Why the stage must run; an empty list means its lock entry still holds."""
    return input_reasons(fp, entry, sealer) + out_reasons(spec, stage, entry, cache)


def pipeline_status(
    spec: PipelineSpec,
    graph: StageGraph,
    lock: Mapping[str, LockEntry],
    overrides: Mapping[str, Mapping[str, Any]],
    cache: HashCache,
    sealer: Sealer,
    only: set[str] | None = None,
) -> list[StageStatus]:
    """Status of every stage (or ``only`` these) in run order; stale upstream makes stale."""
    statuses: dict[str, StageStatus] = {}
    for name in graph.topological(only):
        stage = spec.stages[name]
        fp = fingerprint(spec, stage, overrides, cache)
        reasons = stale_reasons(spec, stage, fp, lock.get(name), cache, sealer)
        stale_up = [u for u in graph.upstream[name] if u in statuses and statuses[u].stale]
        reasons += [f"upstream stage {u!r} will re-run" for u in stale_up]
        statuses[name] = StageStatus(name, bool(reasons), tuple(reasons), fp)
    return list(statuses.values())


def project_status(root: str | os.PathLike[str] | None = None) -> list[StageStatus]:
    """Status of every stage of the project at ``root`` (default: the current project)."""
    from pathlib import Path

    from nbops.config import find_project_root, store_path
    from nbops.pipeline._lock import read_lock
    from nbops.pipeline._spec import load_spec
    from nbops.pipeline._validate import validate

    base = Path(root) if root is not None else find_project_root()
    spec = load_spec(base, strict=False)
    graph = validate(spec)
    store_dir = store_path(base)
    cache = HashCache(store_dir / "hashcache.sqlite", IgnoreRules.load(base))
    statuses = pipeline_status(spec, graph, read_lock(base), {}, cache, Sealer.for_store(store_dir))
    cache.save()
    return statuses
