"""Kubernetes manifests for a model image: a kustomize base (Deployment, Service, HPA, PDB), a
canary overlay, and a KServe ``InferenceService`` whose canary is one field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbops.build._context import PORT, UID, BuildContext
from nbops.fileio import write_atomic


def _dns(name: str) -> str:
    """A DNS-1123 label from a model name (``digits_forest`` -> ``digits-forest``)."""
    label = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    return label[:50] or "model"


def _yaml(docs: list[dict[str, Any]]) -> str:
    import yaml

    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False)


def _probe(path: str, delay: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "initialDelaySeconds": delay,
        "periodSeconds": 10,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }


def base_manifests(context: BuildContext, name: str, model: str) -> list[dict[str, Any]]:
    """Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget of the server."""
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "model-server"}
    model_name, _, version = model.partition(":")
    container = {
        "name": "server",
        "image": context.image,
        "ports": [{"name": "http", "containerPort": PORT}],
        "readinessProbe": _probe("/v2/health/ready", 5),
        "livenessProbe": _probe("/v2/health/live", 30),
        "startupProbe": {**_probe("/v2/health/ready", 5), "failureThreshold": 30},
        "resources": {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - in the pod
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {
                    "labels": {**labels, "nbops.io/model-version": version},
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(PORT),
                        "prometheus.io/path": "/metrics",
                        "nbops.io/model": model_name,
                        "nbops.io/model-sha256": context.digest,
                    },
                },
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "automountServiceAccountToken": False,
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "selector": labels,
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
        },
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "labels": labels},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}},
    }
    return [deployment, service, hpa, pdb]


def inference_service(context: BuildContext, name: str, canary_percent: int) -> dict[str, Any]:
    """A KServe ``InferenceService`` running the image as a custom predictor (V2 protocol)."""
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "annotations": {"serving.kserve.io/enable-prometheus-scraping": "true"},
        },
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "maxReplicas": 5,
                "canaryTrafficPercent": canary_percent,
                "containers": [
                    {
                        "name": "kserve-container",
                        "image": context.image,
                        "ports": [{"containerPort": PORT, "protocol": "TCP"}],
                        "env": [{"name": "PROTOCOL", "value": "v2"}],
                        "resources": {
                            "requests": {"cpu": "250m", "memory": "512Mi"},
                            "limits": {"cpu": "1", "memory": "1Gi"},
                        },
                    }
                ],
            }
        },
    }


def write_kubernetes(context: BuildContext, *, canary_percent: int = 10) -> list[Path]:
    """Write ``k8s/base``, ``k8s/overlays/canary`` and ``kserve/inferenceservice.yaml``."""
    import yaml

    name = _dns(context.model.partition(":")[0])
    root = context.path / "k8s"
    written = []
    docs = base_manifests(context, name, context.model)
    base = root / "base"
    for doc in docs:
        target = base / f"{doc['kind'].lower()}.yaml"
        write_atomic(target, _yaml([doc]))
        written.append(target)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [f"{d['kind'].lower()}.yaml" for d in docs],
        "images": [
            {
                "name": context.image.rpartition(":")[0] or context.image,
                "newTag": context.image.rpartition(":")[2] or "latest",
            }
        ],
    }
    write_atomic(base / "kustomization.yaml", yaml.safe_dump(kustomization, sort_keys=False))
    written.append(base / "kustomization.yaml")
    canary = root / "overlays" / "canary"
    overlay = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../../base"],
        "nameSuffix": "-canary",
        "labels": [{"pairs": {"nbops.io/track": "canary"}, "includeSelectors": True}],
        "patches": [
            {
                "target": {"kind": "Deployment"},
                "patch": "- op: replace\n  path: /spec/replicas\n  value: 1\n",
            }
        ],
    }
    write_atomic(canary / "kustomization.yaml", yaml.safe_dump(overlay, sort_keys=False))
    written.append(canary / "kustomization.yaml")
    isvc = context.path / "kserve" / "inferenceservice.yaml"
    write_atomic(isvc, _yaml([inference_service(context, name, canary_percent)]))
    written.append(isvc)
    return written
