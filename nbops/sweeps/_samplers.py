"""Samplers and pruners by name (``"tpe"``, ``"hyperband"``), with options, as W&B and the CLI
name them: ``method: bayes`` and ``early_terminate: {type: hyperband}`` in a sweep file,
``--sampler tpe --seed 0 --pruner hyperband`` on the command line, ``sampler="random"`` in
Python.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from nbops.sweeps._errors import SweepError

#: name -> Optuna class name (``bayes`` and ``random`` are W&B's methods)
SAMPLERS = {
    "tpe": "TPESampler",
    "bayes": "TPESampler",
    "random": "RandomSampler",
    "grid": "GridSampler",
    "cmaes": "CmaEsSampler",
    "gp": "GPSampler",
    "qmc": "QMCSampler",
    "nsgaii": "NSGAIISampler",
    "nsgaiii": "NSGAIIISampler",
    "bruteforce": "BruteForceSampler",
}
PRUNERS = {
    "median": "MedianPruner",
    "hyperband": "HyperbandPruner",
    "successive-halving": "SuccessiveHalvingPruner",
    "percentile": "PercentilePruner",
    "threshold": "ThresholdPruner",
    "patient": "PatientPruner",
    "wilcoxon": "WilcoxonPruner",
    "none": "NopPruner",
}


_ALIASES = {"successivehalving": "successive-halving", "nop": "none", "brute-force": "bruteforce"}


def _build(kind: str, names: Mapping[str, str], name: str, options: Mapping[str, Any]) -> Any:
    import optuna

    key = name.strip().lower().replace("_", "-")
    key = {
        "successivehalving": "successive-halving",
        "nop": "none",
        "brute-force": "bruteforce",
    }.get(key, key)
    if key not in names:
        raise SweepError(
            f"unknown {kind} {name!r}: use one of {', '.join(sorted(names))} "
            f"(or pass an optuna.{kind}s object)"
        )
    cls = getattr(getattr(optuna, f"{kind}s"), names[key])
    allowed = set(inspect.signature(cls).parameters)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise SweepError(
            f"{kind} {name!r} ({cls.__name__}) has no option {', '.join(unknown)}; "
            f"its options: {', '.join(sorted(allowed)) or 'none'}"
        )
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise SweepError(f"cannot make {kind} {name!r} with {dict(options)}: {exc}") from None


def make_sampler(
    name: str, seed: int | None = None, options: Mapping[str, Any] | None = None, **extra: Any
) -> Any:
    """An Optuna sampler by name; ``seed`` goes to samplers that take one."""
    opts = {**(options or {}), **extra}
    if seed is not None:
        opts.setdefault("seed", seed)
    return _build("sampler", SAMPLERS, name, opts)


def make_pruner(name: str, options: Mapping[str, Any] | None = None) -> Any:
    """An Optuna pruner by name (``none`` never prunes)."""
    return _build("pruner", PRUNERS, name, dict(options or {}))
