"""The monitoring around a model image: a Compose stack with Prometheus and Grafana, alert rules
(with their unit tests), and a dashboard."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nbops.build._context import PORT, BuildContext
from nbops.fileio import write_atomic

#: How far the share of a predicted class may move from its share on the training data.
SHIFT_TOLERANCE = 0.15
_RATE = "rate(nbops_serve_predicted_class_total[{w}])"


def training_class_shares(model_ref: str, store: Any) -> dict[str, float]:
    """Shares of each class the model predicts on its training data (recorded in its lineage).

    The reference for the prediction-shift alert: what the served distribution should look like.
    Empty when the model is not a classifier or no training table with its input columns is in
    the store.
    """
    from nbops.data import load_dataset
    from nbops.errors import NbopsError
    from nbops.registry import get_model, load_model

    version = get_model(model_ref, store=store)
    if version.signature is None or not version.signature.columns:
        return {}
    model = load_model(version.ref, store=store)
    if not hasattr(model, "classes_"):
        return {}
    columns = list(version.signature.columns)
    for entry in version.lineage.get("datasets") or []:
        try:
            frame = load_dataset(f"{entry['name']}@{entry['hash']}", store=store)
        except (NbopsError, KeyError, ValueError, OSError):
            continue
        if not set(columns) <= set(getattr(frame, "columns", ())):
            continue
        predicted = model.predict(frame[columns])
        values, counts = _counts(predicted)
        total = float(sum(counts))
        return {str(v): round(c / total, 6) for v, c in zip(values, counts, strict=True)}
    return {}


def _counts(predicted: Any) -> tuple[list[Any], list[int]]:
    import numpy as np

    values, counts = np.unique(np.asarray(predicted), return_counts=True)
    return values.tolist(), [int(c) for c in counts]


def _shift_summary(name: str) -> str:
    return (
        f"{name}'s predicted classes moved more than {SHIFT_TOLERANCE:.0%} from their share "
        "on the training data"
    )


def alert_rules(model: str, shares: Mapping[str, float]) -> dict[str, Any]:
    """The server's rules (errors, latency, rollbacks), no traffic, and prediction shift."""
    import yaml

    from nbops.serve import ALERT_RULES

    rules = yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))
    name = model.partition(":")[0]
    group: list[dict[str, Any]] = [
        {
            "alert": "NbopsModelNoTraffic",
            "expr": f'sum(rate(nbops_serve_requests_total{{model="{name}"}}[15m])) == 0',
            "for": "30m",
            "labels": {"severity": "ticket"},
            "annotations": {"summary": f"{name} has answered no request for 30 minutes"},
        }
    ]
    if shares:
        for cls, share in sorted(shares.items()):
            group.append(
                {
                    "record": "nbops:training_class_share",
                    "expr": f"vector({share})",
                    "labels": {"model": name, "class": cls},
                }
            )
        served = (
            f"sum by (model, class) ({_RATE.format(w='1h')}) / on (model) group_left "
            f"sum by (model) ({_RATE.format(w='1h')})"
        )
        group.append({"record": "nbops:served_class_share:rate1h", "expr": served})
        group.append(
            {
                "alert": "NbopsPredictionShift",
                "expr": (
                    f'max by (model) (abs(nbops:served_class_share:rate1h{{model="{name}"}} - '
                    "on (model, class) nbops:training_class_share)) > "
                    f"{SHIFT_TOLERANCE}"
                ),
                "for": "30m",
                "labels": {"severity": "ticket"},
                "annotations": {"summary": _shift_summary(name)},
            }
        )
    rules["groups"].append({"name": f"nbops-model-{name}", "rules": group})
    return dict(rules)


def rule_tests(model: str, shares: Mapping[str, float]) -> dict[str, Any]:
    """``promtool test rules`` cases: errors page, silence is flagged, a shift is caught."""
    name = model.partition(":")[0]
    labels = f'model="{name}",version="1",route="default"'
    tests: list[dict[str, Any]] = [
        {
            "interval": "1m",
            "input_series": [
                {
                    "series": f'nbops_serve_requests_total{{{labels},code="200"}}',
                    "values": "0+60x20",
                },
                {
                    "series": f'nbops_serve_errors_total{{{labels},kind="model"}}',
                    "values": "0+30x20",
                },
            ],
            "alert_rule_test": [
                {
                    "eval_time": "15m",
                    "alertname": "NbopsModelErrorRateHigh",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "page",
                                "model": name,
                                "version": "1",
                                "route": "default",
                            },
                            "exp_annotations": {
                                "summary": f"{name} version 1 (default) fails 50% of requests"
                            },
                        }
                    ],
                }
            ],
        },
        {
            "interval": "1m",
            "input_series": [
                {
                    "series": f'nbops_serve_requests_total{{{labels},code="200"}}',
                    "values": "100x60",
                },
            ],
            "alert_rule_test": [
                {
                    "eval_time": "50m",
                    "alertname": "NbopsModelNoTraffic",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "ticket"},
                            "exp_annotations": {
                                "summary": f"{name} has answered no request for 30 minutes"
                            },
                        }
                    ],
                },
            ],
        },
    ]
    if len(shares) >= 2:
        ordered = sorted(shares)
        # every prediction goes to one class: far from the training shares
        series = [
            {
                "series": f'nbops_serve_predicted_class_total{{model="{name}",version="1",'
                f'class="{cls}"}}',
                "values": ("0+100x120" if cls == ordered[0] else "0x120"),
            }
            for cls in ordered
        ]
        tests.append(
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": "100m",
                        "alertname": "NbopsPredictionShift",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "ticket", "model": name},
                                "exp_annotations": {"summary": _shift_summary(name)},
                            }
                        ],
                    },
                ],
            }
        )
    return {"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": tests}


def dashboard(model: str) -> dict[str, Any]:
    """The Grafana dashboard: traffic, errors, latency by version, canary vs production."""
    name = model.partition(":")[0]
    sel = f'model="{name}"'
    requests = f"sum by (version) (rate(nbops_serve_requests_total{{{sel}}}[5m]))"
    queries = [
        (
            "Request rate by version",
            f"sum by (version) (rate(nbops_serve_requests_total{{{sel}}}[5m]))",
            "reqps",
        ),
        (
            "Error rate by version",
            # "or 0 * requests": a version with no error yet shows 0, not "No data"
            f'(sum by (version) (rate(nbops_serve_errors_total{{{sel},kind!="input"}}[5m])) '
            f"or 0 * {requests}) / {requests}",
            "percentunit",
        ),
        (
            "p50 latency by version",
            f"histogram_quantile(0.5, sum by (version, le) "
            f"(rate(nbops_serve_request_duration_seconds_bucket{{{sel}}}[5m])))",
            "s",
        ),
        (
            "p99 latency by version",
            f"histogram_quantile(0.99, sum by (version, le) "
            f"(rate(nbops_serve_request_duration_seconds_bucket{{{sel}}}[5m])))",
            "s",
        ),
        (
            "Predicted classes",
            f"sum by (class) (rate(nbops_serve_predicted_class_total{{{sel}}}[5m]))",
            "reqps",
        ),
        (
            "Canary vs production (requests by route)",
            f"sum by (route) (rate(nbops_serve_requests_total{{{sel}}}[5m]))",
            "reqps",
        ),
    ]
    panels = []
    for i, (title, expr, unit) in enumerate(queries):
        panels.append(
            {
                "id": i + 1,
                "type": "timeseries",
                "title": title,
                "datasource": {"type": "prometheus", "uid": "prometheus"},
                "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [{"refId": "A", "expr": expr, "legendFormat": "__auto"}],
            }
        )
    return {
        "uid": f"nbops-{name}"[:40],
        "title": f"nbops: {name}",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "tags": ["nbops"],
        "panels": panels,
    }


def prometheus_config(targets: list[str]) -> dict[str, Any]:
    """Prometheus scraping the server(s), with the alert rules loaded."""
    return {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [
            {"job_name": "nbops-serve", "static_configs": [{"targets": targets}]},
        ],
    }


def write_monitoring(context: BuildContext, shares: Mapping[str, float]) -> list[Path]:
    """Write ``compose.yaml`` and ``monitoring/`` (Prometheus, rules, tests, Grafana)."""
    import yaml

    root = context.path / "monitoring"
    name = context.model.partition(":")[0]
    files = {
        root / "prometheus" / "prometheus.yml": yaml.safe_dump(
            prometheus_config([f"model:{PORT}"]), sort_keys=False
        ),
        root / "prometheus" / "alerts.yml": yaml.safe_dump(
            alert_rules(context.model, shares), sort_keys=False, width=1000
        ),
        root / "prometheus" / "alerts_test.yml": yaml.safe_dump(
            rule_tests(context.model, shares), sort_keys=False, width=1000
        ),
        root / "grafana" / "provisioning" / "datasources" / "prometheus.yml": yaml.safe_dump(
            {
                "apiVersion": 1,
                "datasources": [
                    {
                        "name": "Prometheus",
                        "uid": "prometheus",
                        "type": "prometheus",
                        "access": "proxy",
                        "url": "http://prometheus:9090",
                        "isDefault": True,
                    }
                ],
            },
            sort_keys=False,
        ),
        root / "grafana" / "provisioning" / "dashboards" / "nbops.yml": yaml.safe_dump(
            {
                "apiVersion": 1,
                "providers": [
                    {
                        "name": "nbops",
                        "type": "file",
                        "options": {"path": "/var/lib/grafana/dashboards"},
                    }
                ],
            },
            sort_keys=False,
        ),
        root / "grafana" / "dashboards" / f"{name}.json": json.dumps(
            dashboard(context.model), indent=2
        ),
    }
    compose = {
        "name": f"nbops-{name}",
        "services": {
            "model": {
                "image": context.image,
                "build": {"context": "."},
                "ports": [f"127.0.0.1:{PORT}:{PORT}"],
                "read_only": True,
                "tmpfs": ["/tmp"],  # noqa: S108 - in the container
                "restart": "unless-stopped",
            },
            "prometheus": {
                "image": "prom/prometheus:v2.53.0",
                "command": ["--config.file=/etc/prometheus/prometheus.yml"],
                "volumes": ["./monitoring/prometheus:/etc/prometheus:ro"],
                "ports": ["127.0.0.1:9090:9090"],
                "depends_on": ["model"],
            },
            "grafana": {
                "image": "grafana/grafana:11.1.0",
                "volumes": [
                    "./monitoring/grafana/provisioning:/etc/grafana/provisioning:ro",
                    "./monitoring/grafana/dashboards:/var/lib/grafana/dashboards:ro",
                ],
                "ports": ["127.0.0.1:3000:3000"],
                "depends_on": ["prometheus"],
            },
        },
    }
    files[context.path / "compose.yaml"] = yaml.safe_dump(compose, sort_keys=False)
    for path, text in files.items():
        write_atomic(path, text)
    return list(files)
