"""Loopback W&B servers that fail in the ways real ones do, and one that accepts
``wandb sync`` (:func:`fake_wandb`), each on a thread of the test."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: The failure modes, as ids for parametrised tests.
FAILURES = ("refuse", "silent", "http401", "http500", "hang-post")
#: Answers nbops' viewer probe, then fails every other request with HTTP 500.
PROBE_ONLY = "probe-only"
#: Answers nbops' viewer probe, then never answers any other request.
PROBE_THEN_HANG = "probe-then-hang"


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    status = 500
    release = threading.Event()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        return

    def _answer(self, status: int) -> None:
        body = b'{"errors": [{"message": "test server"}]}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(200 if self.server.status == 0 else self.server.status)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        viewer = b"query Viewer { viewer { id } }" in body
        if self.server.status == -2 and not viewer:  # probe-then-hang
            self.server.release.wait(120)
            return
        if self.server.status in (-1, -2):  # probe-only, or the probe of probe-then-hang
            body = b'{"data": {"viewer": {"id": "u"}}}'
            self.send_response(200 if viewer else 500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.server.status == 0:  # hang: answer nothing until the test ends
            self.server.release.wait(120)
            return
        self._answer(self.server.status)


@contextmanager
def failing_server(kind: str) -> Iterator[str]:
    """Yield the URL of a loopback server failing as ``kind`` (one of :data:`FAILURES`).

    ``refuse``: nothing listens. ``silent``: the port accepts connections (kernel backlog) but
    nothing ever answers. ``http401`` / ``http500``: every request gets that status.
    ``hang-post``: GET answers 200, POST never answers. ``probe-only``: see :data:`PROBE_ONLY`;
    ``probe-then-hang``: see :data:`PROBE_THEN_HANG`.
    """
    if kind == "refuse":
        yield f"http://127.0.0.1:{closed_port()}"
        return
    if kind == "silent":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen(16)
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        return
    server = _Server(("127.0.0.1", 0), _Handler)
    server.status = {
        "http401": 401,
        "http500": 500,
        "hang-post": 0,
        PROBE_ONLY: -1,
        PROBE_THEN_HANG: -2,
    }[kind]
    server.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, name=f"test-{kind}", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


class _SyncedRun:
    """What the fake server received for one run."""

    def __init__(self) -> None:
        self.config: dict[str, object] = {}
        self.history: dict[int, dict[str, object]] = {}  # by line offset: retries overwrite
        self.summary: dict[str, object] = {}
        self.files: set[str] = set()
        self.upserts: list[dict[str, object]] = []
        self.exitcode: int | None = None
        self.complete = False


class FakeWandb(ThreadingHTTPServer):
    """A loopback W&B server good enough for ``wandb sync``: the GraphQL mutations it sends
    (``UpsertBucket``, ``CreateRunFiles``), the file uploads they point to, and the file
    stream (history lines, summary, exit code). :attr:`runs` holds what arrived, by run id."""

    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FakeWandbHandler)
        self.runs: dict[str, _SyncedRun] = {}
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def run(self, run_id: str) -> _SyncedRun:
        with self.lock:
            return self.runs.setdefault(run_id, _SyncedRun())


class _FakeWandbHandler(BaseHTTPRequestHandler):
    server: FakeWandb
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def _json(self, doc: object) -> None:
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        self._json({})

    def do_PUT(self) -> None:  # an upload URL handed out by CreateRunFiles
        self._body()
        parts = self.path.strip("/").split("/", 2)
        if len(parts) == 3 and parts[0] == "upload":
            self.server.run(parts[1]).files.add(parts[2])
        self._json({})

    def do_POST(self) -> None:
        body = self._body()
        if self.path.startswith("/graphql"):
            self._graphql(json.loads(body))
        elif self.path.endswith("/file_stream"):
            self._file_stream(self.path.split("/")[-2], json.loads(body))
        else:  # wandb-core's own telemetry and anything else: accepted, ignored
            self._json({})

    def _graphql(self, doc: dict[str, Any]) -> None:
        query = doc.get("query", "")
        variables = doc.get("variables") or {}
        data: dict[str, Any] = {}
        if "upsertBucket" in query:
            name = variables.get("name")
            run = self.server.run(str(name))
            with self.server.lock:
                run.upserts.append(variables)
                if variables.get("config"):
                    config = json.loads(variables["config"])
                    run.config.update({k: v.get("value") for k, v in config.items()})
            bucket = {
                "id": f"bucket-{name}",
                "name": name,
                "displayName": variables.get("displayName"),
                "description": None,
                "config": "{}",
                "sweepName": None,
                "historyLineCount": 0,
                "project": {
                    "id": "project",
                    "name": variables.get("project"),
                    "entity": {"id": "entity", "name": "tester"},
                },
            }
            data = {"upsertBucket": {"bucket": bucket, "inserted": True}}
        elif "createRunFiles" in query:
            run_id = variables["run"]
            files = [
                {"name": f, "uploadUrl": f"{self.server.url}/upload/{run_id}/{f}"}
                for f in variables["files"]
            ]
            data = {
                "createRunFiles": {"runID": f"bucket-{run_id}", "uploadHeaders": [], "files": files}
            }
        self._json({"data": data})

    def _file_stream(self, run_id: str, doc: dict[str, Any]) -> None:
        run = self.server.run(run_id)
        with self.server.lock:
            for name, chunk in (doc.get("files") or {}).items():
                lines = [json.loads(line) for line in chunk.get("content", [])]
                if name == "wandb-history.jsonl":
                    for i, row in enumerate(lines):
                        run.history[chunk.get("offset", 0) + i] = row
                elif name == "wandb-summary.json" and lines:
                    run.summary = lines[-1]
            if doc.get("complete"):
                run.complete = True
                run.exitcode = doc.get("exitcode")
        self._json({"exitcode": None, "limits": {}})


@contextmanager
def fake_wandb() -> Iterator[FakeWandb]:
    """Serve a :class:`FakeWandb` on a loopback port for the ``with`` block."""
    server = FakeWandb()
    thread = threading.Thread(target=server.serve_forever, name="test-fake-wandb", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
