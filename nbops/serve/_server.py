"""Starting the server: in the foreground (``nbops serve``) or as a child process (``serve``)."""

from __future__ import annotations

import atexit
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from nbops.deps import require
from nbops.serve._config import CONFIG_ENV, PARENT_ENV, ServeConfig, check_models, model_specs
from nbops.serve._errors import ServeError

logger = logging.getLogger(__name__)
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def app_from_env() -> Any:
    """The app of the configuration in ``$NBOPS_SERVE_CONFIG`` (a uvicorn factory)."""
    from nbops.serve import _pool
    from nbops.serve._app import create_app

    _pool.SERVING_PROCESS = True

    return create_app(ServeConfig.from_json(os.environ[CONFIG_ENV]))


def run(config: ServeConfig) -> None:
    """Serve in this process until interrupted (uvicorn, one or more worker processes).

    The process is the server's: scikit-learn models load without skops' import of every
    scikit-learn module (its own default trust list; nbops checks types itself).
    """
    from nbops.serve import _pool

    uvicorn = require("uvicorn", feature="nbops serve")
    _pool.SERVING_PROCESS = True

    if config.host not in _LOOPBACK:
        logger.warning("serving on %s: reachable from other machines", config.host)
    options: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "log_level": "warning",
        "access_log": False,
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": max(1, int(config.timeout)),
    }
    if config.workers > 1:
        os.environ[CONFIG_ENV] = config.to_json()
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="nbops-metrics-")
        uvicorn.run(
            "nbops.serve._server:app_from_env", factory=True, workers=config.workers, **options
        )
        return
    from nbops.serve._app import create_app

    uvicorn.run(create_app(config), **options)


def check_port(host: str, port: int) -> None:
    """Raise :class:`ServeError` when something already listens on ``host:port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ServeError(
                f"cannot listen on {host}:{port} ({exc.strerror}); pick another with --port"
            ) from None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Server:
    """A model server running as a child process; stop it with :meth:`stop` (or ``with``)."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def logs(self) -> str:
        """What the server wrote to its log so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until ``/v2/health/ready`` answers 200; raise with the log if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise ServeError(f"the server exited while starting:\n{_tail(self.logs())}")
            try:
                with urllib.request.urlopen(f"{self.url}/v2/health/ready", timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise ServeError(f"the server was not ready within {timeout:g} s:\n{_tail(self.logs())}")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (gracefully: in-flight requests are answered), then kill if needed."""
        if self.running():
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running() else "stopped"
        return f"<nbops Server {self.url} pid={self.pid} {state}>"

    def _repr_html_(self) -> str:
        from html import escape

        state = "running" if self.running() else "stopped"
        url = escape(self.url)
        return (
            f"<div class='nbops-server'>nbops server <a href='{url}/v2' target='_blank'>{url}</a>"
            f" (pid {self.pid}, {state}); metrics at <code>{url}/metrics</code>, "
            "stop with <code>.stop()</code></div>"
        )


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


def serve(
    *models: str,
    host: str = "127.0.0.1",
    port: int = 0,
    workers: int = 1,
    routes: list[str] | str | None = None,
    shadow: list[str] | str | None = None,
    sticky_header: str | None = None,
    token_env: str | None = None,
    store: str | os.PathLike[str] | None = None,
    start_timeout: float = 120.0,
    **options: Any,
) -> Server:
    """Serve registered models over the Open Inference Protocol from a child process.

    Args:
        models: ``NAME``, ``NAME@ALIAS`` or ``NAME:VERSION`` of each model to serve.
        host: The address to listen on; loopback unless you mean otherwise.
        port: The port; 0 picks a free one.
        workers: Server processes (metrics are merged across them).
        routes: ``"production=90,candidate=10"`` (or ``"NAME:..."`` with several models).
        shadow: A target that receives a copy of every request; its answers are only logged.
        sticky_header: A request header (e.g. ``X-User-Id``) whose value always picks the same
            route.
        token_env: The environment variable holding the bearer token clients must send.
        store: The store holding the models (default: the current one).
        options: Other :class:`ServeConfig` fields: ``max_batch_size``, ``max_latency``
            (seconds), ``timeout``, ``max_body_bytes``, ``poll_interval``, ``log_sample``,
            ``log_folder``, ``rollback_error_rate``, ``rollback_p99``, ``rollback_window``,
            ``rollback_min_requests``.

    Returns:
        A :class:`Server` with ``.url`` and ``.stop()``, once every model is loaded.
    """
    from nbops.store import open_store, store_env

    specs = model_specs(
        list(models),
        [routes] if isinstance(routes, str) else routes,
        [shadow] if isinstance(shadow, str) else shadow,
    )
    unknown = set(options) - set(ServeConfig.__dataclass_fields__)
    if unknown:
        raise ServeError(f"unknown serve option(s): {', '.join(sorted(unknown))}")
    opened = open_store(store)
    check_models(specs, opened)
    if token_env and not os.environ.get(token_env):
        raise ServeError(f"token_env={token_env!r}: the environment variable is not set")
    chosen = port or free_port(host)
    config = ServeConfig(
        models=specs,
        host=host,
        port=chosen,
        workers=workers,
        store=opened.url,  # any backend: the server opens the same store, not a folder
        token_env=token_env,
        sticky_header=sticky_header,
        **options,
    )
    log_dir = Path(tempfile.mkdtemp(prefix="nbops-serve-"))
    log_path = log_dir / "server.log"
    env = {**os.environ, **store_env(opened)}
    env[CONFIG_ENV] = config.to_json()
    env[PARENT_ENV] = str(os.getpid())
    if workers > 1:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(log_dir / "metrics")
        (log_dir / "metrics").mkdir()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "nbops.serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    shown = f"[{host}]" if ":" in host else host
    server = Server(process, f"http://{shown}:{chosen}", log_path)
    atexit.register(server.stop)
    server.wait_ready(start_timeout)
    return server
