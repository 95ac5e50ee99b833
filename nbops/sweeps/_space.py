"""Search spaces given as data: a dict or a YAML file of ``name: {type, low, high, ...}``.

Example::

    {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
     "depth": {"type": "int", "low": 2, "high": 12},
     "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
     "batch": {"type": "grid", "values": [32, 64]},   # or just: "batch": [32, 64]
     "epochs": {"type": "constant", "value": 10},      # or just: "epochs": 10
     "momentum": {"type": "float", "low": 0.0, "high": 0.99,
                  "when": {"optimizer": "sgd"}}}       # only sampled when optimizer == sgd

A ``grid`` parameter makes the sweep a grid search: every combination of the grid values
runs exactly once. ``when`` makes a parameter conditional on earlier ones (a value, or a
list of accepted values). YAML files are read as YAML 1.2 (``1e-4`` is a number).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from statistics import NormalDist
from typing import Any

from nbops.sweeps._errors import SpaceError

TYPES = ("float", "int", "categorical", "grid", "constant", "normal")
_KEYS = {
    "float": {"type", "low", "high", "log", "step", "q", "when"},
    "int": {"type", "low", "high", "log", "step", "q", "when"},
    "normal": {"type", "mu", "sigma", "log", "q", "when"},
    "categorical": {"type", "choices", "when"},
    "grid": {"type", "values", "when"},
    "constant": {"type", "value"},
}
_SCALAR = (bool, int, float, str, type(None))

Space = dict[str, dict[str, Any]]


def load_space(space: Mapping[str, Any] | str | os.PathLike[str]) -> Space:
    """Return a validated space from a dict or a YAML/JSON file.

    Raises:
        SpaceError: The file is unreadable or a parameter's definition is invalid.
    """
    if isinstance(space, (str, os.PathLike)):
        path = Path(space)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SpaceError(f"cannot read the search space file {path}: {exc}") from None
        import yaml

        try:
            data = load_yaml(text)
        except yaml.YAMLError as exc:
            raise SpaceError(f"the search space file {path} is not valid YAML: {exc}") from None
        if not isinstance(data, Mapping):
            raise SpaceError(
                f"the search space file {path} must map parameter names to definitions, "
                "e.g. lr: {type: float, low: 0.0001, high: 0.1, log: true}"
            )
        return validate_space(data, where=str(path))
    return validate_space(space)


def _number(name: str, key: str, value: Any, integer: bool) -> float:
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value):
        kind = "an integer" if integer else "a finite number"
        raise SpaceError(f"parameter {name!r}: {key} must be {kind}, not {value!r}")
    return value  # type: ignore[no-any-return]


def validate_space(space: Mapping[str, Any], where: str = "space") -> Space:
    """Check every definition; return a normalised copy (``log`` and ``step`` filled in)."""
    if not isinstance(space, Mapping) or not space:
        raise SpaceError(f"{where} is empty: give at least one parameter")
    out: Space = {}
    for name, spec in space.items():
        if not isinstance(name, str) or not all(p.isidentifier() for p in name.split(".")):
            raise SpaceError(
                f"{where}: parameter name {name!r} is not a valid Python identifier "
                "(nested parameters are written outer.inner)"
            )
        if isinstance(spec, (list, tuple)):  # shorthand: a grid of these values
            spec = {"type": "grid", "values": list(spec)}
        elif isinstance(spec, _SCALAR):  # shorthand: a constant
            spec = {"type": "constant", "value": spec}
        if not isinstance(spec, Mapping):
            raise SpaceError(
                f"{where}: parameter {name!r} must be a mapping such as "
                "{type: int, low: 2, high: 12}, not " + repr(spec)
            )
        kind = spec.get("type")
        if kind not in TYPES:
            raise SpaceError(
                f"{where}: parameter {name!r} has unknown type {kind!r}; use one of "
                + ", ".join(TYPES)
            )
        extra = set(spec) - _KEYS[kind]
        if extra:
            raise SpaceError(
                f"{where}: parameter {name!r} ({kind}) has unknown keys {sorted(extra)}; "
                f"allowed: {sorted(_KEYS[kind])}"
            )
        if kind == "constant":
            if "value" not in spec:
                raise SpaceError(f"{where}: constant parameter {name!r} needs a value")
            out[name] = {"type": kind, "value": spec["value"]}
            continue
        when = _condition(name, spec.get("when"), out, where)
        if kind == "normal":
            out[name] = _normal(name, spec, where) | when
            continue
        if kind in ("categorical", "grid"):
            key = "choices" if kind == "categorical" else "values"
            choices = spec.get(key)
            if not isinstance(choices, (list, tuple)) or not choices:
                raise SpaceError(f"{where}: parameter {name!r} needs a non-empty list of {key}")
            for choice in choices:
                if not isinstance(choice, _SCALAR):
                    raise SpaceError(
                        f"{where}: parameter {name!r}: {choice!r} must be None, a bool, "
                        "a number or a string"
                    )
            out[name] = {"type": kind, key: list(choices), **when}
            continue
        integer = kind == "int"
        for key in ("low", "high"):
            if key not in spec:
                raise SpaceError(f"{where}: parameter {name!r} ({kind}) needs {key!r}")
        low = _number(name, "low", spec["low"], integer)
        high = _number(name, "high", spec["high"], integer)
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise SpaceError(f"{where}: parameter {name!r}: log must be true or false")
        step = spec.get("step")
        q = spec.get("q")
        if q is not None:
            q = _number(name, "q", q, integer)
            if q <= 0:
                raise SpaceError(f"{where}: parameter {name!r}: q must be positive")
            if not log:
                step, q = step or q, None  # quantising a uniform range is Optuna's step
        if step is not None:
            step = _number(name, "step", step, integer)
            if step <= 0:
                raise SpaceError(f"{where}: parameter {name!r}: step must be positive")
            if log:
                raise SpaceError(f"{where}: parameter {name!r}: use either log or step, not both")
        if low > high:
            raise SpaceError(
                f"{where}: parameter {name!r} has low {low!r} > high {high!r}; swap them"
            )
        if log and low <= 0:
            raise SpaceError(
                f"{where}: parameter {name!r} is log-scaled, so low must be > 0 (got {low!r})"
            )
        out[name] = {"type": kind, "low": low, "high": high, "log": log}
        if step is not None:
            out[name]["step"] = step
        if q is not None:
            out[name]["q"] = q
        out[name].update(when)
    if is_grid(out):
        sampled = [n for n, p in out.items() if p["type"] in ("float", "int", "normal")]
        if sampled:
            raise SpaceError(
                f"{where}: a grid search enumerates values, so {', '.join(sampled)} must be "
                "listed too: give it as {type: grid, values: [...]}"
            )
    return out


def _normal(name: str, spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    for key in ("mu", "sigma"):
        if key not in spec:
            raise SpaceError(f"{where}: parameter {name!r} (normal) needs {key!r}")
    mu, sigma = _number(name, "mu", spec["mu"], False), _number(name, "sigma", spec["sigma"], False)
    if sigma <= 0:
        raise SpaceError(f"{where}: parameter {name!r}: sigma must be positive")
    out: dict[str, Any] = {"type": "normal", "mu": mu, "sigma": sigma}
    out["log"] = bool(spec.get("log", False))
    if spec.get("q") is not None:
        out["q"] = _number(name, "q", spec["q"], False)
    return out


def _condition(name: str, when: Any, earlier: Space, where: str) -> dict[str, dict[str, list[Any]]]:
    if when is None:
        return {}
    if not isinstance(when, Mapping) or not when:
        raise SpaceError(
            f"{where}: parameter {name!r}: when must map earlier parameters to values, "
            "e.g. when: {optimizer: sgd}"
        )
    condition: dict[str, list[Any]] = {}
    for other, accepted in when.items():
        if other not in earlier:
            raise SpaceError(
                f"{where}: parameter {name!r} depends on {other!r}, which is not defined "
                "before it; list the parameters it depends on first"
            )
        condition[str(other)] = (
            list(accepted) if isinstance(accepted, (list, tuple)) else [accepted]
        )
    return {"when": condition}


def is_grid(space: Mapping[str, Any]) -> bool:
    """True when the space asks for a grid search (it has a ``grid`` parameter)."""
    return any(p.get("type") == "grid" for p in space.values())


def grid_of(space: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The values of every enumerated parameter (grid and categorical) of a grid search."""
    return {
        n: list(p.get("values", p.get("choices", [])))
        for n, p in space.items()
        if p["type"] in ("grid", "categorical")
    }


def load_yaml(text: str) -> Any:
    """Parse YAML as YAML 1.2 reads numbers and booleans (``1e-4`` is a float, ``yes`` a
    string), which PyYAML's YAML 1.1 rules do not."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        key: [(tag, regex) for tag, regex in resolvers if tag not in _RESOLVED]
        for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list("tTfF"),
    )
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:int",
        re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
        list("-+0123456789"),
    )
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        list("-+.0123456789"),
    )
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


_RESOLVED = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}


_MISSING = object()


def suggest(trial: Any, space: Space) -> dict[str, Any]:
    """Sample every parameter of ``space`` from an Optuna trial; return the values."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        kind = spec["type"]
        when = spec.get("when")
        if when and any(params.get(k, _MISSING) not in v for k, v in when.items()):
            continue  # conditional, and its condition does not hold
        if kind == "constant":
            params[name] = spec["value"]
        elif kind in ("categorical", "grid"):
            params[name] = trial.suggest_categorical(name, spec.get("choices", spec.get("values")))
        elif kind == "int":
            params[name] = trial.suggest_int(
                name, spec["low"], spec["high"], step=spec.get("step", 1), log=spec["log"]
            )
        elif kind == "normal":
            # Optuna has no normal prior: sample the quantile, map it through the inverse CDF
            quantile = trial.suggest_float(f"{name}:quantile", 1e-9, 1 - 1e-9)
            value = NormalDist(spec["mu"], spec["sigma"]).inv_cdf(quantile)
            params[name] = math.exp(value) if spec["log"] else value
        else:
            params[name] = trial.suggest_float(
                name, spec["low"], spec["high"], step=spec.get("step"), log=spec["log"]
            )
        if "q" in spec:  # W&B's quantised log and normal distributions
            params[name] = _quantise(params[name], spec["q"], kind == "int")
    return params


def _quantise(value: float, q: float, integer: bool) -> float:
    rounded = round(value / q) * q
    return int(rounded) if integer else rounded


def nest(params: Mapping[str, Any]) -> dict[str, Any]:
    """``{"opt.lr": 0.1}`` -> ``{"opt": {"lr": 0.1}}`` (W&B's nested parameters)."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        *outer, last = name.split(".")
        node = out
        for part in outer:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def example_values(space: Space) -> dict[str, Any]:
    """One value per parameter, of the type the space produces (to type-check a notebook)."""
    values: dict[str, Any] = {}
    for name, spec in space.items():
        if spec["type"] == "constant":
            values[name] = spec["value"]
        elif spec["type"] in ("categorical", "grid"):
            values[name] = next(iter(spec.get("choices") or spec["values"]))
        elif spec["type"] == "int":
            values[name] = int(spec["low"])
        elif spec["type"] == "normal":
            values[name] = float(spec["mu"])
        else:
            values[name] = float(spec["low"])
    return values
