"""Rollout state of a served model: weighted routes, shadow, and their history.

The routes of model ``NAME`` live in ``<store>/serve/NAME/rollout.json`` (written atomically);
every change is appended to ``history.jsonl`` with who, when, why and, for automatic rollbacks,
the evidence. Running servers pick up changes without a restart.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nbops.errors import NotFoundError
from nbops.fileio import write_atomic
from nbops.names import check_name
from nbops.serve._errors import RolloutError


@dataclass(frozen=True)
class Route:
    """A share of traffic for one target: an alias (``production``) or a version (``3``)."""

    target: str
    weight: float

    def __str__(self) -> str:
        return f"{self.target}={self.weight:g}"


@dataclass(frozen=True)
class Rollout:
    """How a model's traffic is split. The first route is the primary, the others canaries."""

    model: str
    routes: tuple[Route, ...]
    shadow: str | None = None
    updated_at: float = 0.0
    updated_by: str = ""
    reason: str | None = None

    @property
    def primary(self) -> str:
        return self.routes[0].target

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["routes"] = [asdict(r) for r in self.routes]
        return doc


@dataclass(frozen=True)
class RolloutEvent:
    """One recorded change: ``action`` is set, promote, rollback or auto-rollback."""

    model: str
    action: str
    routes: tuple[Route, ...]
    shadow: str | None
    at: float
    by: str
    reason: str | None
    evidence: dict[str, Any] = field(default_factory=dict)


def parse_target(text: str) -> str:
    """Check a route target: a version number or an alias name."""
    target = text.strip()
    if target.lower().startswith("v") and target[1:].isdigit():
        target = target[1:]
    check_name(target, "route target")
    return target


def parse_routes(spec: str) -> tuple[Route, ...]:
    """Parse ``production=90,candidate=10`` (a lone ``production`` means all traffic)."""
    routes: list[Route] = []
    for part in spec.split(","):
        if not part.strip():
            continue
        name, sep, weight = part.partition("=")
        try:
            value = float(weight) if sep else 100.0
        except ValueError:
            raise RolloutError(
                f"route {part.strip()!r}: the weight must be a number, as in production=90"
            ) from None
        if value < 0 or value != value:
            raise RolloutError(f"route {part.strip()!r}: the weight must be >= 0")
        routes.append(Route(parse_target(name), value))
    if not routes or sum(r.weight for r in routes) <= 0:
        raise RolloutError(f"routes {spec!r} give no traffic to any target; e.g. production=100")
    if len({r.target for r in routes}) != len(routes):
        raise RolloutError(f"routes {spec!r} name a target twice")
    return tuple(routes)


def rollout_dir(model: str, store: Any = None) -> Path:
    """``<store>/serve/MODEL``."""
    from nbops.store import open_store

    return open_store(store).path / "serve" / check_name(model, "model name")


def read_rollout(model: str, store: Any = None) -> Rollout | None:
    """The recorded routes of ``model``, or None when none were set."""
    path = rollout_dir(model, store) / "rollout.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RolloutError(f"cannot read the rollout of {model!r} ({exc}); set it again") from None
    return Rollout(
        model=doc["model"],
        routes=tuple(Route(r["target"], float(r["weight"])) for r in doc["routes"]),
        shadow=doc.get("shadow"),
        updated_at=float(doc.get("updated_at") or 0.0),
        updated_by=str(doc.get("updated_by") or ""),
        reason=doc.get("reason"),
    )


def rollout_history(model: str, store: Any = None) -> list[RolloutEvent]:
    """Every recorded rollout change of ``model``, oldest first."""
    path = rollout_dir(model, store) / "history.jsonl"
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        doc = json.loads(line)
        doc["routes"] = tuple(Route(r["target"], float(r["weight"])) for r in doc["routes"])
        events.append(RolloutEvent(**doc))
    return events


def set_rollout(
    model: str,
    routes: tuple[Route, ...] | str,
    *,
    shadow: str | None = None,
    reason: str | None = None,
    action: str = "set",
    evidence: dict[str, Any] | None = None,
    store: Any = None,
) -> Rollout:
    """Record new routes for ``model`` (checked against the registry) and their history."""
    from nbops.registry import model_aliases, model_versions

    parsed = parse_routes(routes) if isinstance(routes, str) else tuple(routes)
    if not parsed:
        raise RolloutError("give at least one route, e.g. production=100")
    versions = {v.version for v in model_versions(model, store=store)}
    if not versions:
        raise NotFoundError(
            f"no model {model!r} is registered; list models with `nbops models list`"
        )
    aliases = model_aliases(model, store=store)
    for target in [r.target for r in parsed] + ([shadow] if shadow else []):
        if target.isdigit() and int(target) not in versions:
            raise RolloutError(f"model {model!r} has no version {target}")
        if not target.isdigit() and target not in aliases and target != "latest":
            raise RolloutError(
                f"model {model!r} has no alias {target!r}; set it with "
                f"`nbops models alias {model} VERSION {target}`"
            )
    state = Rollout(model, parsed, shadow, time.time(), current_user(), reason)
    folder = rollout_dir(model, store)
    write_atomic(folder / "rollout.json", json.dumps(state.to_dict(), indent=2))
    event = RolloutEvent(
        model, action, parsed, shadow, state.updated_at, state.updated_by, reason, evidence or {}
    )
    _append(folder / "history.jsonl", event)
    return state


def promote(
    model: str,
    *,
    source: str = "candidate",
    alias: str = "production",
    reason: str | None = None,
    store: Any = None,
) -> Rollout:
    """Point ``alias`` at the version ``source`` serves, and send all traffic to ``alias``.

    The alias move is recorded like any other (who, when, why); so is the route change.
    """
    from nbops.registry import get_model, set_alias

    target = parse_target(source)
    version = (
        int(target) if target.isdigit() else get_model(f"{model}@{target}", store=store).version
    )
    why = reason or f"promoted {target} (version {version}) to {alias}"
    set_alias(model, version, alias, reason=why, store=store)
    return set_rollout(model, ((Route(alias, 100.0)),), reason=why, action="promote", store=store)


def rollback(
    model: str,
    *,
    reason: str | None = None,
    evidence: dict[str, Any] | None = None,
    action: str = "rollback",
    store: Any = None,
) -> Rollout:
    """Undo the last rollout step of ``model``.

    With canaries or a shadow, all traffic goes back to the primary route. Without any (after a
    promotion), the primary alias moves back to the version it pointed at before.
    """
    from nbops.registry import alias_history, set_alias

    state = read_rollout(model, store)
    if state is not None and (len(state.routes) > 1 or state.shadow):
        why = reason or f"rolled back to {state.primary}"
        return set_rollout(
            model,
            (Route(state.primary, 100.0),),
            reason=why,
            action=action,
            evidence=evidence,
            store=store,
        )
    primary = state.primary if state is not None else "production"
    if primary.isdigit():
        raise RolloutError(f"{model!r} serves version {primary} only; there is nothing to undo")
    moves = alias_history(model, primary, store=store)
    if not moves or moves[-1].previous is None:
        raise RolloutError(
            f"{model}@{primary} was never moved from another version; nothing to roll back to"
        )
    previous = moves[-1].previous
    why = reason or f"rolled {primary} back from version {moves[-1].version} to {previous}"
    set_alias(model, previous, primary, reason=why, store=store)
    return set_rollout(
        model, (Route(primary, 100.0),), reason=why, action=action, evidence=evidence, store=store
    )


def current_user() -> str:
    """The user name recorded with rollout changes."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def _append(path: Path, event: RolloutEvent) -> None:
    doc = asdict(event)
    doc["routes"] = [asdict(r) for r in event.routes]
    line = (json.dumps(doc, sort_keys=True, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
