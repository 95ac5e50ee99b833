"""Search spaces given as data: a dict or a YAML file of ``name: {type, low, high, ...}``.

Example::

    {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
     "depth": {"type": "int", "low": 2, "high": 12},
     "criterion": {"type": "categorical", "choices": ["gini", "entropy"]}}
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nbops.sweeps._errors import SpaceError

TYPES = ("float", "int", "categorical")
_KEYS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}

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
            data = yaml.safe_load(text)
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
        if not isinstance(name, str) or not name.isidentifier():
            raise SpaceError(f"{where}: parameter name {name!r} is not a valid Python identifier")
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
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, (list, tuple)) or not choices:
                raise SpaceError(f"{where}: parameter {name!r} needs a non-empty list of choices")
            for choice in choices:
                if choice is not None and not isinstance(choice, (bool, int, float, str)):
                    raise SpaceError(
                        f"{where}: parameter {name!r}: choice {choice!r} must be None, a bool, "
                        "a number or a string"
                    )
            out[name] = {"type": kind, "choices": list(choices)}
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
    return out


def suggest(trial: Any, space: Space) -> dict[str, Any]:
    """Sample every parameter of ``space`` from an Optuna trial; return the values."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        kind = spec["type"]
        if kind == "categorical":
            params[name] = trial.suggest_categorical(name, spec["choices"])
        elif kind == "int":
            params[name] = trial.suggest_int(
                name, spec["low"], spec["high"], step=spec.get("step", 1), log=spec["log"]
            )
        else:
            params[name] = trial.suggest_float(
                name, spec["low"], spec["high"], step=spec.get("step"), log=spec["log"]
            )
    return params


def example_values(space: Space) -> dict[str, Any]:
    """One value per parameter, of the type the space produces (to type-check a notebook)."""
    values: dict[str, Any] = {}
    for name, spec in space.items():
        if spec["type"] == "categorical":
            values[name] = spec["choices"][0]
        elif spec["type"] == "int":
            values[name] = int(spec["low"])
        else:
            values[name] = float(spec["low"])
    return values
