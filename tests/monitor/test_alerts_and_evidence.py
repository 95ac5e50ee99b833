"""Alerts (retries, backoff, signatures) and the promotion evidence (significance, overlap)."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nbops.monitor import SIGNATURE_HEADER, bootstrap_p, mcnemar_p, send_alert
from nbops.monitor._compare import compare, overlap


class _Flaky(http.server.BaseHTTPRequestHandler):
    failures = 0
    status = 500
    bodies: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Flaky.bodies.append((dict(self.headers.items()), body))
        if _Flaky.failures > 0:
            _Flaky.failures -= 1
            self.send_response(_Flaky.status)
        else:
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Flaky.bodies, _Flaky.failures, _Flaky.status = [], 0, 500
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_alerts_retry_with_backoff_and_are_signed(flaky: str) -> None:
    _Flaky.failures = 2
    waits: list[float] = []
    delivery = send_alert(flaky, {"event": "kept"}, secret="k", retries=3, sleep=waits.append)
    assert delivery.delivered and delivery.attempts == 3
    assert waits == [0.5, 1.0]
    headers, body = _Flaky.bodies[-1]
    assert headers[SIGNATURE_HEADER] == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert headers["X-Nbops-Event"] == "kept"


def test_alerts_give_up_and_say_why(flaky: str) -> None:
    _Flaky.failures = 10
    delivery = send_alert(flaky, {"event": "drift"}, retries=2, sleep=lambda _s: None)
    assert not delivery.delivered and delivery.attempts == 3 and delivery.error == "HTTP 500"
    assert SIGNATURE_HEADER not in _Flaky.bodies[-1][0]  # no secret, no signature
    _Flaky.bodies, _Flaky.failures, _Flaky.status = [], 10, 403
    refused = send_alert(flaky, {"event": "drift"}, retries=2, sleep=lambda _s: None)
    assert refused.attempts == 1 and refused.error == "HTTP 403"  # a refusal is not retried
    closed = send_alert("http://127.0.0.1:9/", {"event": "x"}, retries=1, sleep=lambda _s: None)
    assert closed.attempts == 2 and closed.error is not None


def test_mcnemar_needs_enough_disagreements() -> None:
    right = np.ones(100, dtype=bool)
    assert mcnemar_p(right, right) == 1.0
    prod = np.array([True] * 90 + [False] * 10)
    assert mcnemar_p(prod, np.ones(100, dtype=bool)) < 0.01  # 10 fixed, none broken
    assert mcnemar_p(prod, np.array([True] * 89 + [False] * 8 + [True] * 3)) > 0.05


def test_a_small_gain_on_a_small_holdout_is_not_evidence() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 40)
    production = labels.copy()
    production[:8] = 1 - production[:8]
    challenger = labels.copy()
    challenger[1:8] = 1 - challenger[1:8]  # one more right out of 40
    result = compare(
        labels,
        production,
        challenger,
        metric_name="accuracy",
        metric=lambda y, p: float(np.mean(y == p)),
        higher=True,
        min_improvement=0.0,
        level=0.05,
    )
    assert result.gain > 0 and result.test == "mcnemar" and not result.wins
    mae = compare(
        np.arange(200.0),
        np.arange(200.0) + 3,
        np.arange(200.0) + 1,
        metric_name="mae",
        metric=lambda y, p: float(np.mean(np.abs(y - p))),
        higher=False,
        min_improvement=0.5,
        level=0.05,
    )
    assert mae.test == "bootstrap" and mae.wins and mae.gain == pytest.approx(2.0)
    assert bootstrap_p(np.zeros(10), np.zeros(10), np.zeros(10), lambda y, p: 0.0, True) == 1.0


def test_overlap_counts_shared_rows_across_dtypes() -> None:
    training = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "t": [0, 1, 0]})
    holdout = pd.DataFrame({"a": [3.0, 4.0], "b": ["z", "w"], "t": [0, 1]})
    assert overlap(holdout, training) == 1
    assert overlap(holdout.iloc[1:], training) == 0
