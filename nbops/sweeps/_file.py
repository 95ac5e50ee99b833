"""Sweep files: a W&B sweep configuration, plus the nbops keys, read into a ``SweepConfig``.

A W&B user's file runs unchanged, or fails before any trial naming the key nbops does not
support::

    program: train.py            # W&B's; nbops needs `target` (a notebook or module:function)
    target: train:objective
    method: bayes                # grid | random | bayes | tpe (or any sampler name)
    metric: {name: val_loss, goal: minimize}
    parameters:
      lr: {distribution: log_uniform_values, min: 1e-4, max: 0.1}
      optimizer: {values: [adam, sgd]}
      epochs: {value: 10}
      dropout: {distribution: normal, mu: 0.3, sigma: 0.05}
      opt: {parameters: {beta: {min: 0.8, max: 0.99}}}     # nested: params["opt"]["beta"]
    early_terminate: {type: hyperband, min_iter: 3, eta: 3}
    run_cap: 50
    jobs: 2                      # nbops-only keys: jobs, storage, executor, timeout, seed, ...

Numbers are read as YAML 1.2 (``1e-4`` is a float).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nbops.sweeps._config import SweepConfig
from nbops.sweeps._errors import SpaceError, SweepError
from nbops.sweeps._space import load_yaml

#: W&B keys that describe the sweep rather than what nbops runs; accepted, not used
_INFORMATIONAL = {"name", "description", "entity", "project", "program"}
_NBOPS_KEYS = {
    "target",
    "jobs",
    "storage",
    "executor",
    "shared_disk",
    "timeout",
    "n_trials",
    "seed",
    "sampler",
    "sampler_options",
    "pruner",
    "pruner_options",
    "study_name",
    "trial_timeout",
    "kernel_name",
    "wandb",
    "heartbeat_interval",
    "grace_period",
}
_WANDB_KEYS = {"method", "metric", "parameters", "early_terminate", "run_cap"}
_UNSUPPORTED = {
    "command": "nbops runs a notebook or a Python function, not a command line: give target",
}
_METHODS = {"grid": "grid", "random": "random", "bayes": "tpe"}
_DISTRIBUTIONS = {
    "constant",
    "categorical",
    "int_uniform",
    "uniform",
    "q_uniform",
    "log_uniform",
    "log_uniform_values",
    "q_log_uniform",
    "q_log_uniform_values",
    "inv_log_uniform",
    "inv_log_uniform_values",
    "normal",
    "q_normal",
    "log_normal",
    "q_log_normal",
}


def load_sweep_file(path: str | os.PathLike[str]) -> SweepConfig:
    """Read a sweep file (W&B's format plus nbops keys) into a :class:`SweepConfig`.

    A relative ``target`` notebook or ``storage`` journal is relative to the file's folder.

    Raises:
        SweepError: The file is unreadable, or uses a key or value nbops does not support
            (the message names it).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SweepError(f"cannot read the sweep file {file}: {exc}") from None
    import yaml

    try:
        doc = load_yaml(text)
    except yaml.YAMLError as exc:
        raise SweepError(f"the sweep file {file} is not valid YAML: {exc}") from None
    if not isinstance(doc, Mapping):
        raise SweepError(f"the sweep file {file} must be a mapping (method, metric, parameters)")
    return config_from_dict(doc, where=str(file), root=file.parent)


def config_from_dict(
    doc: Mapping[str, Any], where: str = "sweep file", root: Path | None = None
) -> SweepConfig:
    """A :class:`SweepConfig` from a W&B-style sweep configuration (see the module doc)."""
    unknown = sorted(set(doc) - _INFORMATIONAL - _NBOPS_KEYS - _WANDB_KEYS)
    if unknown:
        key = unknown[0]
        why = _UNSUPPORTED.get(key) or "nbops does not support it"
        raise SweepError(f"{where}: key {key!r} is not supported ({why}); remove it")
    options: dict[str, Any] = {k: doc[k] for k in _NBOPS_KEYS & set(doc) if k != "target"}
    target = doc.get("target")
    if target is None:
        hint = f" (W&B's program {doc['program']!r} is a script)" if "program" in doc else ""
        raise SweepError(
            f"{where}: give target: a notebook (.ipynb) or module:function to optimise{hint}"
        )
    if root is not None and str(target).endswith(".ipynb") and not os.path.isabs(str(target)):
        target = str(root / str(target))
    options["objective"] = target
    if root is not None and isinstance(options.get("storage"), str):
        storage = options["storage"]
        if storage.endswith(".journal") and not os.path.isabs(storage):
            options["storage"] = str(root / storage)
    if "project" in doc:
        options["project"] = doc["project"]
    _method(doc, options, where)
    _metric(doc, options, where)
    if "parameters" in doc:
        options["space"] = wandb_space(doc["parameters"], where)
    _early_terminate(doc, options, where)
    if "run_cap" in doc:
        cap = doc["run_cap"]
        if "n_trials" in options and options["n_trials"] != cap:
            raise SweepError(f"{where}: give run_cap or n_trials, not both")
        options["n_trials"] = cap
    try:
        return SweepConfig.build(**options)
    except TypeError as exc:
        raise SweepError(f"{where}: {exc}") from None


def _method(doc: Mapping[str, Any], options: dict[str, Any], where: str) -> None:
    method = doc.get("method")
    if method is None:
        return
    if "sampler" in options:
        raise SweepError(f"{where}: give method or sampler, not both")
    if not isinstance(method, str):
        raise SweepError(f"{where}: method must be grid, random or bayes, not {method!r}")
    options["sampler"] = _METHODS.get(method.lower(), method)


def _metric(doc: Mapping[str, Any], options: dict[str, Any], where: str) -> None:
    metric = doc.get("metric")
    if metric is None:
        return
    metrics = metric if isinstance(metric, list) else [metric]
    names, goals = [], []
    for item in metrics:
        if not isinstance(item, Mapping) or "name" not in item:
            raise SweepError(
                f"{where}: metric needs a name and a goal, e.g. {{name: loss, goal: minimize}}"
            )
        extra = sorted(set(item) - {"name", "goal"})
        if extra:
            raise SweepError(
                f"{where}: metric key {extra[0]!r} is not supported (nbops stops on budget, "
                "timeout or Stop); remove it"
            )
        if "goal" not in item:
            raise SweepError(f"{where}: metric {item['name']!r} needs goal: maximize or minimize")
        names.append(str(item["name"]))
        goals.append(str(item["goal"]))
    options["metric"] = names[0] if len(names) == 1 else names
    options["direction"] = goals[0] if len(goals) == 1 else goals


def _early_terminate(doc: Mapping[str, Any], options: dict[str, Any], where: str) -> None:
    rule = doc.get("early_terminate")
    if rule is None:
        return
    if "pruner" in options:
        raise SweepError(f"{where}: give early_terminate or pruner, not both")
    if not isinstance(rule, Mapping) or rule.get("type") != "hyperband":
        raise SweepError(f"{where}: early_terminate supports type: hyperband only")
    extra = sorted(set(rule) - {"type", "min_iter", "max_iter", "eta", "s", "strict"})
    if extra:
        raise SweepError(f"{where}: early_terminate key {extra[0]!r} is not supported")
    pruner: dict[str, Any] = {"reduction_factor": int(rule.get("eta", 3))}
    if "min_iter" in rule:
        pruner["min_resource"] = int(rule["min_iter"])
    if "max_iter" in rule:
        pruner["max_resource"] = int(rule["max_iter"])
        if "min_iter" not in rule and "s" in rule:  # W&B: min_iter = max_iter / eta**s
            pruner["min_resource"] = max(
                1, int(rule["max_iter"] / pruner["reduction_factor"] ** int(rule["s"]))
            )
    options["pruner"] = "hyperband"
    options["pruner_options"] = pruner


def wandb_space(parameters: Any, where: str, prefix: str = "") -> dict[str, Any]:
    """Translate W&B ``parameters`` into an nbops space (nested names become ``outer.inner``)."""
    if not isinstance(parameters, Mapping) or not parameters:
        raise SweepError(f"{where}: parameters must map names to definitions")
    space: dict[str, Any] = {}
    for name, spec in parameters.items():
        full = f"{prefix}{name}"
        if isinstance(spec, Mapping) and "parameters" in spec:
            extra = sorted(set(spec) - {"parameters"})
            if extra:
                raise SweepError(f"{where}: parameter {full!r}: key {extra[0]!r} is not supported")
            space.update(wandb_space(spec["parameters"], where, prefix=f"{full}."))
        elif isinstance(spec, Mapping):
            space[full] = _parameter(full, spec, where)
        else:
            raise SweepError(
                f"{where}: parameter {full!r} must be a mapping such as {{values: [1, 2]}} "
                f"or {{min: 0, max: 1}}, not {spec!r}"
            )
    return space


def _parameter(name: str, spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    allowed = {"distribution", "value", "values", "min", "max", "mu", "sigma", "q"}
    extra = sorted(set(spec) - allowed)
    if extra:
        why = "nbops samples values uniformly" if extra[0] == "probabilities" else "unsupported"
        raise SweepError(f"{where}: parameter {name!r}: key {extra[0]!r} is not supported ({why})")
    dist = spec.get("distribution")
    if dist is not None and dist not in _DISTRIBUTIONS:
        raise SweepError(f"{where}: parameter {name!r}: unknown distribution {dist!r}")
    if "value" in spec or dist == "constant":
        return {"type": "constant", "value": spec.get("value")}
    if "values" in spec or dist == "categorical":
        return {"type": "categorical", "choices": list(spec.get("values") or [])}
    q = spec.get("q")
    if dist in ("normal", "q_normal", "log_normal", "q_log_normal"):
        out: dict[str, Any] = {"type": "normal", "mu": spec.get("mu", 0.0)}
        out["sigma"] = spec.get("sigma", 1.0)
        out["log"] = "log" in dist
        if q is not None or dist.startswith("q_"):
            out["q"] = q if q is not None else 1.0
        return out
    if "min" not in spec or "max" not in spec:
        raise SweepError(f"{where}: parameter {name!r} needs min and max (or values / value)")
    low, high = spec["min"], spec["max"]
    if dist is None:  # W&B infers it from the types of min and max
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high))
        dist = "int_uniform" if ints else "uniform"
    if dist in ("log_uniform", "q_log_uniform"):  # min and max are exponents of e
        low, high = math.exp(low), math.exp(high)
    if dist.startswith("inv_log_uniform"):
        raise SpaceError(
            f"{where}: parameter {name!r}: inv_log_uniform is not supported; sample the "
            "reciprocal with log_uniform_values instead"
        )
    kind = "int" if dist == "int_uniform" else "float"
    out = {"type": kind, "low": low, "high": high, "log": "log_uniform" in dist}
    if dist.startswith("q_"):
        out["q"] = q if q is not None else 1
    return out
