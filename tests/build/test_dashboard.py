"""The generated monitoring against the real thing: Debian's Prometheus, loaded with the
generated alert rules, scrapes a real ``nbops serve`` splitting traffic between production and a
canary; every dashboard query and every rule evaluates without a PromQL error."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from nbops.build import build, prometheus_config
from nbops.serve import serve
from tests.serve.conftest import call, pd_request

pytestmark = [pytest.mark.slow, pytest.mark.prometheus]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _query(port: int, expr: str) -> dict[str, Any]:
    status, out, _ = call(f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(expr)}")
    assert status == 200 and out["status"] == "success", (expr, out)
    return dict(out["data"])


def _until(what: str, check: Any, prom: subprocess.Popen[bytes], limit: float = 90) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            found = check()
        except OSError:  # Prometheus not listening yet
            found = None
        if found:
            return found
        assert prom.poll() is None, prom.stderr.read() if prom.stderr else ""
        time.sleep(0.5)
    pytest.fail(f"Prometheus did not show {what} within {limit} s")


def test_every_dashboard_query_and_rule_runs_on_a_real_prometheus(
    model: str, tmp_path: Path
) -> None:
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    from nbops.registry import log_model, set_alias

    X, y = load_iris(return_X_y=True, as_frame=True)
    log_model(DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y), "iris")  # v2
    set_alias("iris", 2, "candidate")
    ctx = build(model, tmp_path / "ctx", compose=True).context
    prom_dir = ctx.path / "monitoring" / "prometheus"
    panels = json.loads((ctx.path / "monitoring/grafana/dashboards/iris.json").read_text())[
        "panels"
    ]
    tool = shutil.which("prometheus")
    assert tool, "prometheus is missing: apt-get install --no-install-recommends prometheus"

    with serve("iris", routes="production=50,candidate=50", store=None) as server:
        config = prometheus_config([server.url.removeprefix("http://")])
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        (prom_dir / "test-prometheus.yml").write_text(yaml.safe_dump(config))
        port = _free_port()
        prom = subprocess.Popen(
            [
                tool,
                f"--config.file={prom_dir / 'test-prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _until("the server up", lambda: _query(port, "up == 1")["result"], prom)
            # traffic while Prometheus scrapes each second, so that rates are not 0 (or 0/0)
            url = f"{server.url}/v2/models/iris/infer"
            for i in range(30):
                assert call(url, pd_request(X.iloc[i * 5 : i * 5 + 3]))[0] == 200
                time.sleep(0.1)
            bad = pd_request(X.iloc[:1])
            bad["inputs"].pop()
            assert call(url, bad)[0] == 400
            first = panels[0]["targets"][0]["expr"]

            def both_versions_busy() -> bool:
                found = _query(port, first)["result"]
                return len(found) == 2 and all(float(r["value"][1]) > 0 for r in found)

            _until("both versions' request rates", both_versions_busy, prom)
            for panel in panels:
                for target in panel["targets"]:
                    data = _query(port, target["expr"])
                    assert data["resultType"] == "vector", (panel["title"], data)
                    assert data["result"], (panel["title"], target["expr"])
                    values = [float(r["value"][1]) for r in data["result"]]
                    assert all(v == v and v >= 0 for v in values), (panel["title"], values)
            by_version = _query(port, panels[0]["targets"][0]["expr"])["result"]
            assert {r["metric"]["version"] for r in by_version} == {"1", "2"}
            errors = next(p for p in panels if p["title"].startswith("Error rate"))
            error_rates = _query(port, errors["targets"][0]["expr"])["result"]
            # no model error yet (the bad request is the client's): 0 per version, not no data
            assert {r["metric"]["version"]: r["value"][1] for r in error_rates} == {
                "1": "0",
                "2": "0",
            }
            canary = next(p for p in panels if p["title"].startswith("Canary"))
            by_route = _query(port, canary["targets"][0]["expr"])["result"]
            assert {r["metric"]["route"] for r in by_route} == {"production", "candidate"}

            def rules_evaluated() -> list[dict[str, Any]]:
                status, out, _ = call(f"http://127.0.0.1:{port}/api/v1/rules")
                rules = [r for g in out["data"]["groups"] for r in g["rules"]]
                done = all(not r["lastEvaluation"].startswith("0001") for r in rules)
                return rules if status == 200 and rules and done else []

            rules = _until("every rule evaluated", rules_evaluated, prom)
            bad_rules = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
            assert not bad_rules
            names = {r["name"] for r in rules}
            assert {"NbopsPredictionShift", "nbops:served_class_share:rate1h"} <= names
            shares = _query(port, "nbops:served_class_share:rate1h")["result"]
            assert sum(float(r["value"][1]) for r in shares) == pytest.approx(1.0)
        finally:
            prom.terminate()
            prom.wait(30)
