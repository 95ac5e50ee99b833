"""Loopback W&B servers that fail in the ways real ones do, each on a thread of the test."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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
