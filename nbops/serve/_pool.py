"""The served models: loaded versions, routes between them, and live switches.

Each model has routes (targets with weights), an optional shadow and, per target, the version it
resolves to. A refresher re-resolves aliases and rollout changes; a new version is loaded and
warmed before traffic moves to it (blue-green), and the old one is retired only once its
in-flight requests are answered.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from nbops.serve._batcher import Batcher
from nbops.serve._config import ServeConfig
from nbops.serve._gate import import_pandas, predicting
from nbops.serve._metrics import Metrics
from nbops.serve._rollout import Rollout, Route, read_rollout, rollout_dir, set_rollout
from nbops.serve._schema import Schema, schema_of

logger = logging.getLogger(__name__)
#: Set in processes that only serve (``run``): skops models then load without skops' scan of
#: every scikit-learn module, pandas deferred until something needs it and SciPy's docstrings
#: left unparsed (see ``nbops.registry.import_skops_for_serving``).
SERVING_PROCESS = False


@dataclass
class Entry:
    """One loaded model version."""

    name: str
    version: int
    model: Any
    schema: Schema
    batcher: Batcher
    load_seconds: float

    def predict(self, X: Any, outputs: frozenset[str]) -> dict[str, Any]:
        with predicting():
            result = {"predict": self.model.predict(X)}
            if "predict_proba" in outputs:
                result["predict_proba"] = self.model.predict_proba(X)
        return result


@dataclass
class _Window:
    """Outcomes (time, failed, latency) of one route target's recent requests."""

    events: deque[tuple[float, bool, float]] = field(default_factory=lambda: deque(maxlen=20000))


class ServedModel:
    """Routes and loaded versions of one model name."""

    def __init__(self, name: str, routes: tuple[Route, ...], shadow: str | None) -> None:
        self.name = name
        self.routes = routes
        self.shadow = shadow
        self.resolved: dict[str, int] = {}
        self.entries: dict[int, Entry] = {}
        self.rollout_mtime: int | None = None
        self.windows: dict[str, _Window] = {}
        self._cumulative = _cumulative(routes)

    def set_routes(self, routes: tuple[Route, ...], shadow: str | None) -> None:
        self.routes, self.shadow = routes, shadow
        self._cumulative = _cumulative(routes)

    def pick(self, key: str | None) -> str:
        """The target of one request: by weight, the same one for the same sticky key."""
        if len(self.routes) == 1:
            return self.routes[0].target
        if key is None:
            point = random.random()
        else:
            digest = hashlib.sha256(f"{self.name}\0{key}".encode()).digest()
            point = int.from_bytes(digest[:8], "big") / 2**64
        for target, edge in self._cumulative:
            if point < edge:
                return target
        return self._cumulative[-1][0]

    def entry_for(self, target: str) -> Entry:
        return self.entries[self.resolved[target]]

    def record(self, target: str, failed: bool, latency: float) -> None:
        self.windows.setdefault(target, _Window()).events.append(
            (time.monotonic(), failed, latency)
        )


def _cumulative(routes: tuple[Route, ...]) -> list[tuple[str, float]]:
    total = sum(r.weight for r in routes)
    out, acc = [], 0.0
    for r in routes:
        if r.weight <= 0:
            continue
        acc += r.weight / total
        out.append((r.target, acc))
    return out


class Pool:
    """Every served model of one server process."""

    def __init__(self, config: ServeConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.models: dict[str, ServedModel] = {}
        self.ready = False
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Load every model's targets; ready once all are loaded."""
        for spec in self.config.models:
            served = ServedModel(spec.name, spec.routes, spec.shadow)
            if spec.given_routes:  # routes from the command line win until the rollout changes
                served.rollout_mtime = await asyncio.to_thread(self._rollout_mtime, spec.name)
            self.models[spec.name] = served
        await self.refresh()
        self.ready = True

    def _rollout_mtime(self, name: str) -> int | None:
        try:
            return (rollout_dir(name, self.config.store) / "rollout.json").stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def _changed_rollout(self, served: ServedModel) -> tuple[int, Rollout] | None:
        """The recorded rollout when it changed since ``served`` last applied it."""
        mtime = self._rollout_mtime(served.name)
        if mtime is None or mtime == served.rollout_mtime:
            return None
        state = read_rollout(served.name, self.config.store)
        return None if state is None else (mtime, state)

    async def refresh(self) -> None:
        """Re-read rollouts and aliases; load new versions, then switch, then retire old ones.

        Routes and versions switch together once everything they need is loaded, so a request
        never picks a target that has no loaded version.
        """
        async with self._lock:
            for spec in self.config.models:
                served = self.models[spec.name]
                change = await asyncio.to_thread(self._changed_rollout, served)
                routes, shadow = (
                    (change[1].routes, change[1].shadow)
                    if change
                    else (served.routes, served.shadow)
                )
                targets = [r.target for r in routes] + ([shadow] if shadow else [])
                entries = dict(served.entries)
                resolved: dict[str, int] = {}
                for target in targets:
                    version = await asyncio.to_thread(self._resolve, served.name, target)
                    if version not in entries:
                        entries[version] = await asyncio.to_thread(self._load, served.name, version)
                    resolved[target] = version
                # the switch: no await from here on
                served.entries = entries
                served.resolved = resolved
                if change:
                    served.rollout_mtime = change[0]
                    served.set_routes(routes, shadow)
                    logger.info("model %s: routes %s", served.name, ", ".join(map(str, routes)))
                live = set(resolved.values())
                for version in [v for v in entries if v not in live]:
                    old = entries[version]
                    served.entries = {v: e for v, e in served.entries.items() if v != version}
                    logger.info("model %s: retiring version %d", served.name, version)
                    asyncio.get_running_loop().create_task(old.batcher.drain())

    def _resolve(self, name: str, target: str) -> int:
        from nbops.registry import get_model

        if target.isdigit():
            return int(target)
        return get_model(f"{name}@{target}", store=self.config.store).version

    def _load(self, name: str, version: int) -> Entry:
        from nbops.registry import get_model, import_skops_for_serving, load_model

        start = time.perf_counter()
        record = get_model(f"{name}:{version}", store=self.config.store)
        if SERVING_PROCESS and record.format == "skops":
            import_skops_for_serving()
        model = load_model(record.ref, store=self.config.store)
        schema = schema_of(record, model)
        entry = Entry(name, version, model, schema, None, 0.0)  # type: ignore[arg-type]
        label = str(version)
        entry.batcher = Batcher(
            entry.predict,
            max_batch_size=self.config.max_batch_size,
            max_latency=self.config.max_latency,
            on_batch=lambda rows: self.metrics.batch_size.labels(name, label).observe(rows),
        )
        _warm(model, schema)
        entry.load_seconds = time.perf_counter() - start
        self.metrics.load_seconds.labels(name, label).set(entry.load_seconds)
        logger.info("model %s: loaded version %d in %.2f s", name, version, entry.load_seconds)
        return entry

    async def guard(self) -> None:
        """Roll canaries back when their error rate or p99 latency is over the limits."""
        cfg = self.config
        if cfg.rollback_error_rate is None and cfg.rollback_p99 is None:
            return
        now = time.monotonic()
        for served in self.models.values():
            for route in served.routes[1:]:
                window = served.windows.get(route.target)
                if window is None:
                    continue
                recent = [e for e in window.events if now - e[0] <= cfg.rollback_window]
                if len(recent) < cfg.rollback_min_requests:
                    continue
                failed = sum(1 for e in recent if e[1])
                latencies = sorted(e[2] for e in recent)
                p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
                rate = failed / len(recent)
                reasons = []
                if cfg.rollback_error_rate is not None and rate > cfg.rollback_error_rate:
                    reasons.append(f"error rate {rate:.1%} > {cfg.rollback_error_rate:.1%}")
                if cfg.rollback_p99 is not None and p99 > cfg.rollback_p99:
                    reasons.append(f"p99 {p99 * 1000:.0f} ms > {cfg.rollback_p99 * 1000:.0f} ms")
                if reasons:
                    await self._auto_rollback(served, route.target, reasons, rate, p99, recent)
                    break

    async def _auto_rollback(
        self,
        served: ServedModel,
        target: str,
        reasons: list[str],
        rate: float,
        p99: float,
        recent: list[tuple[float, bool, float]],
    ) -> None:
        evidence = {
            "target": target,
            "version": served.resolved.get(target),
            "window_seconds": self.config.rollback_window,
            "requests": len(recent),
            "errors": sum(1 for e in recent if e[1]),
            "error_rate": rate,
            "p99_seconds": p99,
        }
        reason = f"automatic rollback of {target}: " + "; ".join(reasons)
        logger.warning("model %s: %s", served.name, reason)
        primary = served.routes[0]
        served.set_routes((Route(primary.target, 100.0),), None)
        served.windows.pop(target, None)
        self.metrics.rollbacks.labels(served.name).inc()
        try:
            await asyncio.to_thread(
                set_rollout,
                served.name,
                served.routes,
                reason=reason,
                evidence=evidence,
                action="auto-rollback",
                store=self.config.store,
            )
        except Exception:
            logger.exception("model %s: cannot record the automatic rollback", served.name)
        await self.refresh()


def _warm(model: Any, schema: Schema) -> None:
    """One prediction on a zero row, so the first request pays no lazy initialisation."""
    if not schema.columns or any(c.datatype == "BYTES" for c in schema.columns):
        return
    import numpy as np

    row = np.zeros((1, len(schema.columns)))
    try:
        X = import_pandas().DataFrame(row, columns=schema.names) if schema.named else row
        with predicting(first=True):  # the first call may import pandas: no other runs beside it
            model.predict(X)
    except Exception:  # warming is best effort; real requests report real errors
        logger.debug("warm-up prediction failed", exc_info=True)
