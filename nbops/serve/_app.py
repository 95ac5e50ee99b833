"""The Open Inference Protocol (V2) REST API on Starlette.

Health endpoints are open; everything else needs the bearer token when one is configured.
Clients get short JSON errors (``{"error": ...}``) that name the offending field but never a
path, a class or a secret; model failures are logged on the server with the request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from nbops._version import __version__
from nbops.deps import require
from nbops.serve._codec import decode_request, encode_output, model_input
from nbops.serve._config import ServeConfig
from nbops.serve._errors import RequestError, ServeError
from nbops.serve._metrics import Metrics
from nbops.serve._pool import Pool, ServedModel
from nbops.serve._predlog import PredictionLog

logger = logging.getLogger(__name__)
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_OUTPUTS = ("predict", "predict_proba")
_TIMEOUT = getattr(asyncio, "timeout", None)


class _State:
    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.pool = Pool(config, self.metrics)
        token = None
        if config.token_env:
            token = os.environ.get(config.token_env)
            if not token:
                raise ServeError(
                    f"--token-env {config.token_env}: the variable is not set or empty"
                )
        self.token = token.encode() if token else None
        folder = config.log_folder
        if folder is None:
            from nbops.serve._reader import predictions_folder

            folder = str(predictions_folder(config.store))
        self.log = PredictionLog(
            folder,  # type: ignore[arg-type]
            sample=config.log_sample,
            on_drop=lambda model, rows: self.metrics.log_dropped.labels(model).inc(rows),
        )
        self.sticky = config.sticky_header.lower() if config.sticky_header else None


def create_app(config: ServeConfig) -> Any:
    """The ASGI application serving ``config``'s models."""
    require("starlette", feature="nbops serve")
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    state = _State(config)

    def error(status: int, message: str, rid: str | None = None, **extra: Any) -> Any:
        body: dict[str, Any] = {"error": message, **extra}
        headers = {}
        if rid:
            body["request_id"] = rid
            headers["X-Request-Id"] = rid
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(body, status_code=status, headers=headers)

    def authorized(request: Request) -> bool:
        if state.token is None:
            return True
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        return hmac.compare_digest(
            value.strip().encode() if scheme.lower() == "bearer" else b"", state.token
        )

    async def read_body(request: Request) -> bytes:
        limit = config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestError(f"the body is larger than {limit} bytes", status=413, field="body")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(
                    f"the body is larger than {limit} bytes", status=413, field="body"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def served_or_404(name: str) -> ServedModel:
        served = state.pool.models.get(name)
        if served is None:
            raise RequestError("model not found", status=404, field="model")
        return served

    async def live(request: Request) -> Any:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Any:
        return JSONResponse(
            {"ready": state.pool.ready}, status_code=200 if state.pool.ready else 503
        )

    async def server_metadata(request: Request) -> Any:
        if not authorized(request):
            return error(401, "missing or wrong bearer token")
        return JSONResponse(
            {"name": "nbops", "version": __version__, "extensions": ["binary_tensor_data"]}
        )

    def _entry(request: Request) -> tuple[ServedModel, Any]:
        served = served_or_404(request.path_params["name"])
        wanted = request.path_params.get("version")
        if wanted is None:
            return served, served.entry_for(served.routes[0].target)
        if not wanted.isdigit() or int(wanted) not in served.entries:
            raise RequestError("model version not found", status=404, field="version")
        return served, served.entries[int(wanted)]

    async def model_ready(request: Request) -> Any:
        if not authorized(request):
            return error(401, "missing or wrong bearer token")
        try:
            served, entry = _entry(request)
        except RequestError as exc:
            return error(exc.status, str(exc))
        return JSONResponse({"name": served.name, "version": str(entry.version), "ready": True})

    async def model_metadata(request: Request) -> Any:
        if not authorized(request):
            return error(401, "missing or wrong bearer token")
        try:
            served, entry = _entry(request)
        except RequestError as exc:
            return error(exc.status, str(exc))
        return JSONResponse(
            {
                "name": served.name,
                "versions": [str(v) for v in sorted(served.entries)],
                "platform": "nbops",
                "inputs": entry.schema.metadata_inputs(),
                "outputs": entry.schema.metadata_outputs(),
                "parameters": {
                    "version": str(entry.version),
                    "routes": {r.target: r.weight for r in served.routes},
                    "content_type": "pd" if entry.schema.named else "np",
                },
            }
        )

    async def infer(request: Request) -> Any:
        header_id = request.headers.get("x-request-id")
        rid = header_id if header_id and _SAFE_ID.fullmatch(header_id) else uuid.uuid4().hex
        if not authorized(request):
            return error(401, "missing or wrong bearer token", rid)
        where: dict[str, str] = {}
        try:
            if _TIMEOUT is not None:  # Python 3.11+: no extra task per request
                async with _TIMEOUT(config.timeout):
                    return await _infer(request, rid, where)
            return await asyncio.wait_for(_infer(request, rid, where), config.timeout)
        except asyncio.TimeoutError:
            name = request.path_params["name"]
            if name in state.pool.models:
                version, target = where.get("version", ""), where.get("target", "")
                state.metrics.errors.labels(name, version, target, "timeout").inc()
                state.metrics.requests.labels(name, version, target, "504").inc()
                if target:
                    state.pool.models[name].record(target, True, config.timeout)
            return error(504, f"no answer within {config.timeout:g} s", rid)
        except RequestError as exc:
            return error(exc.status, str(exc), rid, field=exc.field)

    async def _infer(request: Request, rid: str, where: dict[str, str]) -> Any:
        served = served_or_404(request.path_params["name"])
        body = await read_body(request)
        decoded = decode_request(body, request.headers.get("inference-header-content-length"))
        if decoded.request_id and _SAFE_ID.fullmatch(decoded.request_id):
            rid = decoded.request_id
        for i, name in enumerate(decoded.outputs):
            if name not in _OUTPUTS:
                raise RequestError(
                    f"unknown output {name!r}; this model returns {', '.join(_OUTPUTS)}",
                    field=f"outputs[{i}].name",
                )
        wanted = request.path_params.get("version")
        if wanted is not None:
            if not wanted.isdigit() or int(wanted) not in served.entries:
                raise RequestError("model version not found", status=404, field="version")
            target, entry = wanted, served.entries[int(wanted)]
        else:
            key = request.headers.get(state.sticky) if state.sticky else None
            target = served.pick(key)
            entry = served.entry_for(target)
        version = str(entry.version)
        where.update(version=version, target=target)
        if "predict_proba" in decoded.outputs and not hasattr(entry.model, "predict_proba"):
            raise RequestError("this model has no predict_proba output", field="outputs")
        start = time.perf_counter()
        try:
            X, frame = model_input(entry.schema, decoded.inputs)
        except RequestError:
            state.metrics.errors.labels(served.name, version, target, "input").inc()
            state.metrics.requests.labels(served.name, version, target, "400").inc()
            raise
        gauge = state.metrics.in_flight.labels(served.name)
        gauge.inc()
        try:
            result = await entry.batcher.submit(X, len(frame), frozenset(decoded.outputs))
        except Exception:
            logger.exception("model %s version %s failed on request %s", served.name, version, rid)
            state.metrics.errors.labels(served.name, version, target, "model").inc()
            state.metrics.requests.labels(served.name, version, target, "500").inc()
            served.record(target, True, time.perf_counter() - start)
            return error(
                500, "the model failed on this request; the server log has the details", rid
            )
        finally:
            gauge.dec()
        latency = time.perf_counter() - start
        served.record(target, False, latency)
        state.metrics.latency.labels(served.name, version, target).observe(latency)
        state.metrics.requests.labels(served.name, version, target, "200").inc()
        state.metrics.observe_predictions(
            served.name, version, entry.schema.output, result["predict"]
        )
        if state.log.wants():
            state.log.record(
                served.name,
                request_id=rid,
                version=entry.version,
                route=target,
                role="primary",
                inputs=frame,
                predictions=result["predict"],
                latency=latency,
            )
        if served.shadow and wanted is None and served.shadow in served.resolved:
            shadow = served.entry_for(served.shadow)
            if shadow is not entry:
                asyncio.get_running_loop().create_task(
                    _shadow(served, shadow, X, frame, rid, result["predict"])
                )
        names = decoded.outputs or ["predict"]
        answer = {
            "model_name": served.name,
            "model_version": version,
            "id": decoded.request_id or rid,
            "parameters": {"request_id": rid, "route": target},
            "outputs": [encode_output(n, result[n]) for n in names],
        }
        return Response(
            json.dumps(answer, separators=(",", ":")),
            media_type="application/json",
            headers={"X-Request-Id": rid, "X-Model-Version": version, "X-Model-Route": target},
        )

    async def _shadow(
        served: ServedModel, entry: Any, X: Any, frame: Any, rid: str, answer: Any
    ) -> None:
        import numpy as np

        start = time.perf_counter()
        version = str(entry.version)
        try:
            result = await entry.batcher.submit(X, len(frame))
        except Exception:
            logger.exception("shadow %s version %s failed on request %s", served.name, version, rid)
            state.metrics.errors.labels(served.name, version, "shadow", "model").inc()
            return
        latency = time.perf_counter() - start
        state.metrics.latency.labels(served.name, version, "shadow").observe(latency)
        state.metrics.requests.labels(served.name, version, "shadow", "200").inc()
        differ = int(np.sum(np.asarray(result["predict"]) != np.asarray(answer)))
        if differ:
            state.metrics.shadow_disagreements.labels(served.name, version).inc(differ)
        state.log.record(
            served.name,
            request_id=rid,
            version=entry.version,
            route="shadow",
            role="shadow",
            inputs=frame,
            predictions=result["predict"],
            latency=latency,
        )

    async def feedback(request: Request) -> Any:
        header_id = request.headers.get("x-request-id")
        rid = header_id if header_id and _SAFE_ID.fullmatch(header_id) else uuid.uuid4().hex
        if not authorized(request):
            return error(401, "missing or wrong bearer token", rid)
        try:
            served = served_or_404(request.path_params["name"])
            body = await read_body(request)
            try:
                doc = json.loads(body)
            except ValueError as exc:
                raise RequestError(f"the body is not valid JSON ({exc})", field="body") from None
            if not isinstance(doc, dict):
                raise RequestError("the body must be a JSON object", field="body")
            target = doc.get("request_id")
            if not isinstance(target, str) or not _SAFE_ID.fullmatch(target):
                raise RequestError(
                    "'request_id' must be the id of an answered request", field="request_id"
                )
            if "labels" in doc:
                labels = doc["labels"]
                if not isinstance(labels, list) or not labels:
                    raise RequestError("'labels' must be a non-empty list", field="labels")
            elif "label" in doc:
                labels = [doc["label"]]
            else:
                raise RequestError(
                    "give 'label' (one row) or 'labels' (one per row)", field="label"
                )
            if any(isinstance(v, (dict, list)) for v in labels):
                raise RequestError("labels must be numbers or strings", field="labels")
        except RequestError as exc:
            return error(exc.status, str(exc), rid, field=exc.field)
        state.log.feedback(served.name, target, labels)
        return JSONResponse({"request_id": target, "rows": len(labels)}, status_code=202)

    async def metrics(request: Request) -> Any:
        if not authorized(request):
            return error(401, "missing or wrong bearer token")
        data, content_type = state.metrics.exposition()
        return Response(data, headers={"Content-Type": content_type})

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await state.pool.start()
        task = asyncio.get_running_loop().create_task(_refresher())
        try:
            yield
        finally:
            task.cancel()
            state.log.close()

    async def _refresher() -> None:
        while True:
            await asyncio.sleep(config.poll_interval)
            try:
                await state.pool.guard()
                await state.pool.refresh()
            except Exception:
                logger.exception("refreshing the served models failed; keeping the current ones")

    model = "/v2/models/{name}"
    version = "/v2/models/{name}/versions/{version}"
    routes = [
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
        Route(f"{model}/ready", model_ready),
        Route(f"{version}/ready", model_ready),
        Route(model, model_metadata),
        Route(version, model_metadata),
        Route(f"{model}/infer", infer, methods=["POST"]),
        Route(f"{version}/infer", infer, methods=["POST"]),
        Route(f"{model}/feedback", feedback, methods=["POST"]),
        Route("/metrics", metrics),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
