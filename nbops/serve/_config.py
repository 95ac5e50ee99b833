"""Server options, passed from ``nbops.serve`` / ``nbops serve`` to the server process."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from nbops.serve._errors import ServeError
from nbops.serve._rollout import Route, parse_routes, parse_target

CONFIG_ENV = "NBOPS_SERVE_CONFIG"
#: The pid of the process that started a server; the server stops when it is gone.
PARENT_ENV = "NBOPS_SERVE_PARENT"
#: Default rows per model call. A call has a fixed cost worth a few hundred rows of a tree
#: ensemble's work (a 100-tree forest: ~3 ms for 1 row, ~10 ms for 1,024), so 1,024 rows pay it
#: a few times per thousand rows while one call stays within a few single-row calls.
MAX_BATCH_ROWS = 1024
#: Default wait for a batch to fill, in seconds (only once requests arrive together).
MAX_LATENCY = 0.002


@dataclass(frozen=True)
class ModelSpec:
    """One served model: its name, routes between targets, and an optional shadow target."""

    name: str
    routes: tuple[Route, ...]
    shadow: str | None = None
    given_routes: bool = False


@dataclass(frozen=True)
class ServeConfig:
    """Everything the server process needs (no secret values: only the token's variable)."""

    models: tuple[ModelSpec, ...]
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    store: str | None = None
    token_env: str | None = None
    sticky_header: str | None = None
    max_body_bytes: int = 16 * 1024 * 1024
    timeout: float = 30.0
    max_batch_size: int = MAX_BATCH_ROWS
    max_latency: float = MAX_LATENCY
    poll_interval: float = 2.0
    log_sample: float = 1.0
    log_folder: str | None = None
    rollback_error_rate: float | None = None
    rollback_p99: float | None = None
    rollback_window: float = 60.0
    rollback_min_requests: int = 20
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        doc = json.loads(text)
        models = tuple(
            ModelSpec(
                m["name"],
                tuple(Route(r["target"], float(r["weight"])) for r in m["routes"]),
                m.get("shadow"),
                bool(m.get("given_routes")),
            )
            for m in doc.pop("models")
        )
        return cls(models=models, **doc)


def model_specs(
    refs: list[str], routes: list[str] | None = None, shadows: list[str] | None = None
) -> tuple[ModelSpec, ...]:
    """Models to serve from ``NAME[@ALIAS|:VERSION]`` references and ``--route``/``--shadow``.

    ``routes`` and ``shadows`` apply to the only model, or name it: ``NAME:production=90,...``.
    """
    from nbops.registry import parse_model_ref

    if not refs:
        raise ServeError("give at least one model to serve, e.g. `nbops serve digits@production`")
    specs: dict[str, ModelSpec] = {}
    for text in refs:
        ref = parse_model_ref(text)
        if ref.name in specs:
            raise ServeError(
                f"model {ref.name!r} is given twice; split traffic between its versions with "
                f"--route {ref.name}:production=90,candidate=10"
            )
        target = str(ref.version) if ref.version is not None else ref.alias or "latest"
        specs[ref.name] = ModelSpec(ref.name, (Route(target, 100.0),))
    for spec_text in routes or []:
        name, value = _which(spec_text, specs, "--route")
        specs[name] = replace(specs[name], routes=parse_routes(value), given_routes=True)
    for spec_text in shadows or []:
        name, value = _which(spec_text, specs, "--shadow")
        specs[name] = replace(specs[name], shadow=parse_target(value), given_routes=True)
    return tuple(specs.values())


def check_models(specs: tuple[ModelSpec, ...], store: Any = None) -> None:
    """Resolve every route and shadow target now, so a wrong reference fails before starting.

    Raises:
        NotFoundError: A model, version or alias does not exist.
    """
    from nbops.registry import get_model

    for spec in specs:
        targets = [r.target for r in spec.routes] + ([spec.shadow] if spec.shadow else [])
        for target in targets:
            sep = ":" if target.isdigit() else "@"
            get_model(f"{spec.name}{sep}{target}", store=store)


def _which(text: str, specs: dict[str, ModelSpec], option: str) -> tuple[str, str]:
    head, sep, tail = text.partition(":")
    if sep and head in specs:
        return head, tail
    if len(specs) == 1:
        return next(iter(specs)), text
    raise ServeError(f"{option} {text!r}: several models are served; name one as MODEL:{text}")
