"""Routes between registry versions on a real server: weights, sticky users, shadow, live
alias moves with no failed request, automatic rollback, and ``nbops rollout``."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from nbops.registry import alias_history, model_aliases, set_alias
from nbops.serve import (
    predictions,
    read_rollout,
    rollout_history,
    serve,
    set_rollout,
)
from tests.serve.conftest import Store, call, pd_request

pytestmark = pytest.mark.slow


def _versions(url: str, body: Any, n: int, headers: Any = None, threads: int = 8) -> list[Any]:
    def one(i: int) -> Any:
        status, out, _got = call(url, body, headers=headers(i) if headers else None)
        return status, (out.get("model_version") if isinstance(out, dict) else None), i

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(n)))


def test_weighted_routes_split_traffic(models: Store) -> None:
    with serve("iris", routes="production=80,candidate=20", store=models.path) as server:
        results = _versions(
            f"{server.url}/v2/models/iris/infer", pd_request(models.X.iloc[:1]), 1000
        )
    assert all(status == 200 for status, _, _ in results)
    shares = Counter(v for _, v, _ in results)
    assert set(shares) == {"1", "2"}
    assert 0.15 <= shares["2"] / 1000 <= 0.25, shares


def test_sticky_header_keeps_each_user_on_one_version(models: Store) -> None:
    with serve(
        "iris", routes="production=70,candidate=30", sticky_header="X-User-Id", store=models.path
    ) as server:
        results = _versions(
            f"{server.url}/v2/models/iris/infer",
            pd_request(models.X.iloc[:1]),
            1000,
            headers=lambda i: {"X-User-Id": f"user-{i % 250}"},
        )
    seen: dict[int, set[str]] = {}
    for status, version, i in results:
        assert status == 200
        seen.setdefault(i % 250, set()).add(version)
    assert all(len(v) == 1 for v in seen.values()), "a user saw two versions"
    candidate_users = sum(1 for v in seen.values() if v == {"2"})
    assert 0.18 <= candidate_users / 250 <= 0.42, candidate_users


def test_shadow_gets_a_copy_and_answers_are_logged(models: Store, tmp_path: Any) -> None:
    logs = tmp_path / "preds"
    with serve(
        "iris@production", shadow="candidate", store=models.path, log_folder=str(logs)
    ) as server:
        ids = []
        for i in range(10):
            status, out, _ = call(
                f"{server.url}/v2/models/iris/infer", pd_request(models.X.iloc[i * 10 : i * 10 + 3])
            )
            assert status == 200 and out["model_version"] == "1"
            ids.append(out["id"])
        status, metrics, _ = call(f"{server.url}/metrics")
    primary = predictions("iris", folder=logs, role="primary", labels=False)
    shadow = predictions("iris", folder=logs, role="shadow", labels=False)
    assert sorted(set(primary.request_id)) == sorted(ids) == sorted(set(shadow.request_id))
    assert set(primary.version) == {1} and set(shadow.version) == {2}
    assert len(primary) == len(shadow) == 30
    assert 'route="shadow"' in metrics


def test_alias_move_under_load_fails_no_request(models: Store) -> None:
    body = pd_request(models.X.iloc[:4])
    results: list[tuple[int, str]] = []
    stop = threading.Event()
    with serve("iris@production", store=models.path, poll_interval=0.2) as server:
        url = f"{server.url}/v2/models/iris/infer"

        def load() -> None:
            while not stop.is_set():
                status, out, _ = call(url, body)
                results.append((status, out.get("model_version") if status == 200 else out))

        workers = [threading.Thread(target=load) for _ in range(4)]
        for w in workers:
            w.start()
        try:
            time.sleep(1.0)
            set_alias("iris", 2, "production", reason="switch under load", store=models.path)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(v == "2" for _, v in results[-20:]):
                time.sleep(0.1)
            time.sleep(1.0)
        finally:
            stop.set()
            for w in workers:
                w.join(30)
            set_alias("iris", 1, "production", reason="restore", store=models.path)
    assert results and all(status == 200 for status, _ in results), [
        r for r in results if r[0] != 200
    ][:3]
    versions = [v for _, v in results]
    assert "1" in versions and "2" in versions
    assert versions[-10:] == ["2"] * 10  # switched for good


def test_automatic_rollback_of_a_failing_canary(models: Store) -> None:
    with serve(
        "iris",
        routes="production=50,3=50",
        store=models.path,
        poll_interval=0.2,
        rollback_error_rate=0.2,
        rollback_min_requests=10,
        rollback_window=30,
    ) as server:
        url = f"{server.url}/v2/models/iris/infer"
        body = pd_request(models.X.iloc[:1])
        statuses = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, _out, _ = call(url, body)
            statuses.append(status)
            if len(statuses) > 40 and statuses[-20:] == [200] * 20:
                break
        after = [call(url, body)[1]["model_version"] for _ in range(20)]
    assert 500 in statuses and after == ["1"] * 20
    state = read_rollout("iris", models.path)
    assert state is not None and [str(r) for r in state.routes] == ["production=100"]
    event = rollout_history("iris", models.path)[-1]
    assert event.action == "auto-rollback" and "error rate" in (event.reason or "")
    assert event.evidence["target"] == "3" and event.evidence["errors"] >= 1
    assert event.evidence["requests"] >= 10


def test_route_changes_reach_a_running_server_under_load(models: Store) -> None:
    body = pd_request(models.X.iloc[:2])
    results: list[tuple[int, Any]] = []
    stop = threading.Event()
    with serve("iris@production", store=models.path, poll_interval=0.1) as server:
        url = f"{server.url}/v2/models/iris/infer"

        def load() -> None:
            while not stop.is_set():
                status, out, _ = call(url, body)
                results.append((status, out.get("model_version") if status == 200 else out))

        workers = [threading.Thread(target=load) for _ in range(4)]
        for w in workers:
            w.start()
        try:
            time.sleep(0.5)
            # version 2 is not loaded yet: traffic moves only once it is
            set_rollout("iris", "production=0,2=100", reason="all to v2", store=models.path)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(v == "2" for _, v in results[-10:]):
                time.sleep(0.05)
            time.sleep(0.5)
        finally:
            stop.set()
            for w in workers:
                w.join(30)
            set_rollout("iris", "production=100", reason="back", store=models.path)
    assert all(status == 200 for status, _ in results), [r for r in results if r[0] != 200][:3]
    assert results[-1][1] == "2" and "1" in {v for _, v in results}


def test_rollout_cli_records_who_when_why(cli: Any) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from nbops.registry import log_model

    X, y = load_iris(return_X_y=True)
    for c in (0.1, 1.0):
        log_model(LogisticRegression(C=c, max_iter=300).fit(X, y), "flowers")
    set_alias("flowers", 1, "production")
    set_alias("flowers", 2, "candidate")
    result = cli(
        "rollout",
        "set",
        "flowers",
        "--route",
        "production=90,candidate=10",
        "--reason",
        "canary 10%",
    )
    assert result.exit_code == 0, result.stderr
    assert str(read_rollout("flowers").routes[1]) == "candidate=10"
    assert cli("rollout", "set", "flowers", "--route", "production=90,nope=10").exit_code == 1
    assert "no alias 'nope'" in cli("rollout", "set", "flowers", "--route", "nope=1").stderr
    assert cli("rollout", "rollback", "flowers").exit_code == 0
    assert [str(r) for r in read_rollout("flowers").routes] == ["production=100"]
    assert cli("rollout", "promote", "flowers", "--reason", "beats v1").exit_code == 0
    assert model_aliases("flowers")["production"] == 2
    assert alias_history("flowers", "production")[-1].reason == "beats v1"
    assert cli("rollout", "rollback", "flowers").exit_code == 0  # no canary: alias goes back
    assert model_aliases("flowers")["production"] == 1
    status = cli("rollout", "status", "flowers")
    assert status.exit_code == 0
    for action in ("set", "rollback", "promote"):
        assert action in status.output
    assert "canary 10%" in status.output
    doc = json.loads(cli("rollout", "status", "flowers", "--json").output)
    assert doc["aliases"] == {"candidate": 2, "production": 1}
    assert doc["rollout"]["routes"] == [{"target": "production", "weight": 100.0}]
    assert [e["action"] for e in doc["history"]][-1] == "rollback"
    events = rollout_history("flowers")
    assert [e.action for e in events] == ["set", "rollback", "promote", "rollback"]
    assert all(e.by and e.at for e in events)


def test_automatic_rollback_on_p99_latency(models: Store) -> None:
    with serve(
        "iris",
        routes="production=50,candidate=50",
        store=models.path,
        poll_interval=0.2,
        rollback_p99=1e-6,
        rollback_min_requests=5,
    ) as server:
        url = f"{server.url}/v2/models/iris/infer"
        body = pd_request(models.X.iloc[:1])
        deadline = time.monotonic() + 60
        versions: list[str] = []
        while time.monotonic() < deadline:
            status, out, _ = call(url, body)
            assert status == 200  # a slow canary still answers; it is only rolled back
            versions.append(out["model_version"])
            if len(versions) > 20 and versions[-15:] == ["1"] * 15:
                break
    assert "2" in versions and versions[-15:] == ["1"] * 15
    event = rollout_history("iris", models.path)[-1]
    assert event.action == "auto-rollback" and "p99" in (event.reason or "")
    assert event.evidence["target"] == "candidate" and event.evidence["p99_seconds"] > 1e-6
    set_rollout("iris", "production=100", reason="test cleanup", store=models.path)
