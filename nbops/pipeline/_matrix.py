"""``foreach`` and ``matrix`` stages: one notebook over a list or a product of values.

``foreach: {lr: [0.1, 0.01]}`` makes the stages ``train@lr=0.1`` and ``train@lr=0.01``;
``matrix: {lr: [...], depth: [...]}`` makes one per combination (``train@depth=4,lr=0.1``,
keys sorted). Each gets the values as parameters, ``${lr}`` replaced in its deps, outs and
string params, and is cached on its own. ``nbops run train`` runs them all.

``-p train.lr=0.05`` on an axis pins it: the run addresses the stage(s) with that value, which
are the existing ``train@lr=0.05`` or, for a value not listed, a stage of that name made the
same way (its outs filled with the new value), never an old stage running with another value.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _fill(value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: _show(values.get(m.group(1), m.group(0))), value)
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, Mapping):
        return {k: _fill(v, values) for k, v in value.items()}
    return value


def axes_of(body: Any) -> set[str]:
    """The axis names of a foreach/matrix stage body (empty for a plain stage)."""
    if not isinstance(body, Mapping):
        return set()
    axes = body.get("foreach", body.get("matrix"))
    return {str(k) for k in axes} if isinstance(axes, Mapping) else set()


def split_pins(
    groups: Mapping[str, Any], overrides: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Split ``-p`` overrides into axis pins (``{group: {axis: value}}``) and the rest."""
    pins: dict[str, dict[str, Any]] = {}
    rest: dict[str, dict[str, Any]] = {}
    for name, values in overrides.items():
        axes = axes_of(groups.get(name)) if "@" not in name else set()
        for key, value in values.items():
            (pins if key in axes else rest).setdefault(name, {})[key] = value
    return pins, rest


def expand(
    name: str, body: Any, problems: list[str], pin: Mapping[str, Any] | None = None
) -> list[tuple[str, Any]]:
    """``[(stage name, stage body)]``: the stage itself, or one per value combination, plus
    the combinations ``pin`` (``{axis: value}``) adds when a value is not listed."""
    members = _expand(name, body, problems)
    if not pin or not members:
        return members
    key = "foreach" if "foreach" in body else "matrix"
    pinned = {**body, key: {**body[key], **{k: [v] for k, v in pin.items()}}}
    have = {n for n, _ in members}
    return members + [m for m in _expand(name, pinned, problems) if m[0] not in have]


def pinned_members(name: str, body: Any, pin: Mapping[str, Any]) -> list[str]:
    """The names of the stages of group ``name`` that ``pin`` addresses."""
    key = "foreach" if "foreach" in body else "matrix"
    pinned = {**body, key: {**body[key], **{k: [v] for k, v in pin.items()}}}
    return [n for n, _ in _expand(name, pinned, [])]


def _expand(name: str, body: Any, problems: list[str]) -> list[tuple[str, Any]]:
    if not isinstance(body, Mapping) or not ({"foreach", "matrix"} & set(body)):
        return [(name, body)]
    if "foreach" in body and "matrix" in body:
        problems.append(f"stage {name!r}: use foreach or matrix, not both")
        return []
    key = "foreach" if "foreach" in body else "matrix"
    axes = body[key]
    if (
        not isinstance(axes, Mapping)
        or not axes
        or (key == "foreach" and len(axes) != 1)
        or not all(isinstance(v, list) and v for v in axes.values())
    ):
        shape = "{param: [v1, v2]}" if key == "foreach" else "{param: [...], other: [...]}"
        problems.append(f"stage {name!r}: {key} must be a mapping {shape} of non-empty lists")
        return []
    keys = sorted(str(k) for k in axes)
    rest = {k: v for k, v in body.items() if k != key}
    expanded = []
    for combo in itertools.product(*(axes[k] for k in keys)):
        values = dict(zip(keys, combo, strict=True))
        label = ",".join(f"{k}={_show(v)}" for k, v in values.items())
        stage_body = {
            k: _fill(v, values) if k in ("deps", "outs", "params") else v for k, v in rest.items()
        }
        params = stage_body.get("params")
        stage_body["params"] = {**(params if isinstance(params, Mapping) else {}), **values}
        expanded.append((f"{name}@{label}", stage_body))
    return expanded


def group_of(stage: str) -> str:
    """``train@lr=0.1`` -> ``train``."""
    return stage.split("@", 1)[0]
