"""``/metrics``: promtool accepts it, a real Prometheus scrapes it, workers' values are merged,
and the shipped alert rules pass promtool's unit tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from nbops.serve import ALERT_RULES, serve
from nbops.serve._server import free_port
from tests.serve.conftest import Store, call, pd_request

pytestmark = [pytest.mark.slow, pytest.mark.prometheus]


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: apt-get install --no-install-recommends prometheus"
    return path


def _promtool_check(text: str) -> None:
    done = subprocess.run(
        [_tool("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _value(text: str, prefix: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def test_metrics_cover_requests_latency_batches_and_predictions(models: Store) -> None:
    with serve("iris@production", store=models.path) as server:
        url = f"{server.url}/v2/models/iris/infer"
        for i in range(5):
            assert call(url, pd_request(models.X.iloc[i * 30 : i * 30 + 4]))[0] == 200
        bad = pd_request(models.X.iloc[:1])
        bad["inputs"].pop()
        assert call(url, bad)[0] == 400
        status, text, headers = call(f"{server.url}/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    _promtool_check(text)
    assert (
        _value(
            text,
            'nbops_serve_requests_total{code="200",model="iris",route="production",version="1"}',
        )
        == 5
    )
    assert _value(text, 'nbops_serve_errors_total{kind="input"') == 1
    assert _value(text, "nbops_serve_request_duration_seconds_count") == 5
    assert _value(text, "nbops_serve_batch_rows_sum") == 20
    assert _value(text, "nbops_serve_predicted_class_total") == 20
    assert 'nbops_serve_predicted_class_total{class="2"' in text
    assert _value(text, 'nbops_serve_model_load_seconds{model="iris",version="1"}') > 0
    assert "nbops_serve_in_flight_requests" in text


def test_workers_share_metrics(models: Store) -> None:
    with serve("iris@production", store=models.path, workers=2) as server:
        url = f"{server.url}/v2/models/iris/infer"
        for _ in range(12):
            assert call(url, pd_request(models.X.iloc[:1]))[0] == 200
        _, text, _ = call(f"{server.url}/metrics")
    _promtool_check(text)
    assert _value(text, "nbops_serve_requests_total") == 12


def test_prometheus_scrapes_the_server(models: Store, tmp_path: Path) -> None:
    with serve("iris@production", store=models.path) as server:
        for _ in range(7):
            assert (
                call(f"{server.url}/v2/models/iris/infer", pd_request(models.X.iloc[:2]))[0] == 200
            )
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: [{json.dumps(str(ALERT_RULES))}]\n"
            "scrape_configs:\n"
            "  - job_name: nbops\n"
            f"    static_configs: [{{targets: ['{server.url.removeprefix('http://')}']}}]\n"
        )
        prom = subprocess.Popen(
            [
                _tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            query = urllib.parse.quote('sum(nbops_serve_requests_total{model="iris",code="200"})')
            found: Any = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    status, out, _ = call(f"http://127.0.0.1:{port}/api/v1/query?query={query}")
                except OSError:  # not listening yet
                    status = 0
                if status == 200 and out["data"]["result"]:
                    found = out["data"]["result"][0]["value"][1]
                    break
                assert prom.poll() is None, prom.stderr.read() if prom.stderr else ""
                time.sleep(0.5)
            assert found == "7"
            status, out, _ = call(f"http://127.0.0.1:{port}/api/v1/rules")
            names = [r["name"] for g in out["data"]["groups"] for r in g["rules"]]
            assert "NbopsModelErrorRateHigh" in names
        finally:
            prom.terminate()
            prom.wait(30)


def test_alert_rules_pass_promtool(tmp_path: Path) -> None:
    assert (
        subprocess.run(
            [_tool("promtool"), "check", "rules", str(ALERT_RULES)], capture_output=True, timeout=60
        ).returncode
        == 0
    )
    tests = tmp_path / "rules_test.yml"
    canary = 'model="iris",version="3",route="candidate"'
    prod = 'model="iris",version="1",route="production"'
    tests.write_text(f"""
rule_files: [{json.dumps(str(ALERT_RULES))}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'nbops_serve_requests_total{{{canary},code="200"}}'
        values: '0+90x20'
      - series: 'nbops_serve_requests_total{{{canary},code="500"}}'
        values: '0+10x20'
      - series: 'nbops_serve_errors_total{{{canary},kind="model"}}'
        values: '0+10x20'
      - series: 'nbops_serve_requests_total{{{prod},code="200"}}'
        values: '0+100x20'
      - series: 'nbops_serve_errors_total{{{prod},kind="input"}}'
        values: '0+10x20'
      - series: 'nbops_serve_prediction_log_dropped_rows_total{{model="iris"}}'
        values: '0x10 0+50x10'
    alert_rule_test:
      - eval_time: 15m
        alertname: NbopsModelErrorRateHigh
        exp_alerts:
          - exp_labels: {{severity: page, model: iris, version: "3", route: candidate}}
            exp_annotations:
              summary: "iris version 3 (candidate) fails 10% of requests"
      - eval_time: 9m
        alertname: NbopsPredictionLogDropping
        exp_alerts: []
      - eval_time: 15m
        alertname: NbopsPredictionLogDropping
        exp_alerts:
          - exp_labels: {{severity: ticket, model: iris}}
            exp_annotations:
              summary: "the prediction log of iris dropped 200 rows in 10 minutes: drift and \\
                live accuracy see less traffic (lower --log-sample or log to a faster disk)"
""")
    done = subprocess.run(
        [_tool("promtool"), "test", "rules", str(tests)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_concurrent_requests_are_batched_end_to_end(models: Store) -> None:
    from concurrent.futures import ThreadPoolExecutor

    body = {
        "inputs": [{"name": "input-0", "shape": [1, 64], "datatype": "FP64", "data": [0.0] * 64}]
    }
    with serve("digits", store=models.path, max_latency=0.01) as server:
        url = f"{server.url}/v2/models/digits/infer"
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda _: call(url, body)[0], range(160)))
        _, text, _ = call(f"{server.url}/metrics")
    assert statuses == [200] * 160
    calls = _value(text, 'nbops_serve_batch_rows_count{model="digits"')
    rows = _value(text, 'nbops_serve_batch_rows_sum{model="digits"')
    assert rows == 160 and calls < 160, (calls, rows)  # some calls answered several requests
