"""Shipping a registered model: an image built from its recorded environment, Kubernetes and
KServe manifests, and the monitoring around it (Prometheus rules, Grafana, Compose)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.build._context import (
    DEFAULT_BASE,
    PORT,
    UID,
    BuildContext,
    BuildError,
    NoContainerToolError,
    base_python,
    build_context,
    build_image,
    container_tool,
    dependency_closure,
)
from nbops.build._kubernetes import inference_service, write_kubernetes
from nbops.build._monitoring import (
    alert_rules,
    dashboard,
    prometheus_config,
    rule_tests,
    training_class_shares,
    write_monitoring,
)

__all__ = [
    "DEFAULT_BASE",
    "PORT",
    "UID",
    "BuildContext",
    "BuildError",
    "BuildResult",
    "NoContainerToolError",
    "alert_rules",
    "base_python",
    "build",
    "build_context",
    "build_image",
    "container_tool",
    "dashboard",
    "dependency_closure",
    "inference_service",
    "prometheus_config",
    "rule_tests",
    "training_class_shares",
    "write_kubernetes",
    "write_monitoring",
]


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build` made: the context, and the image when one was built."""

    context: BuildContext
    image: str | None
    manifests: tuple[Path, ...] = ()
    monitoring: tuple[Path, ...] = ()


def build(
    ref: str,
    out: str | os.PathLike[str],
    *,
    image: str | None = None,
    base: str = DEFAULT_BASE,
    wheelhouse: bool = False,
    k8s: bool = False,
    compose: bool = False,
    canary_percent: int = 10,
    build_now: bool = False,
    store: Any = None,
) -> BuildResult:
    """Write the build context of model ``ref`` (and manifests, monitoring); build it if asked.

    Args:
        ref: The registered model (``NAME``, ``NAME@ALIAS`` or ``NAME:VERSION``).
        out: An empty or new folder for the context.
        image: ``NAME:TAG`` of the image (default: the model's ``NAME:VERSION``).
        base: The base image.
        wheelhouse: Download every wheel first, so the image builds with no network.
        k8s: Add a kustomize base, a canary overlay and a KServe ``InferenceService``.
        compose: Add ``compose.yaml`` with Prometheus, alert rules and a Grafana dashboard.
        canary_percent: The KServe ``canaryTrafficPercent`` of this version.
        build_now: Build the image with podman, buildah or docker.
        store: The store, or its folder.
    """
    from nbops.store import open_store

    if not 0 <= canary_percent <= 100:
        raise BuildError(f"canary percent {canary_percent} is not between 0 and 100")
    # find the container tool first: saying "none installed" after minutes of downloads loses time
    tool = container_tool() if build_now else None
    target = open_store(store)
    context = build_context(ref, out, image=image, base=base, wheelhouse=wheelhouse, store=target)
    manifests = tuple(write_kubernetes(context, canary_percent=canary_percent)) if k8s else ()
    monitoring: tuple[Path, ...] = ()
    if compose:
        shares = training_class_shares(context.model, target)
        monitoring = tuple(write_monitoring(context, shares))
    built = None
    if tool:
        try:
            built = build_image(context, tool=tool, network=not wheelhouse)
        except BuildError as exc:  # the context stays: say where, and how to build it again
            name = Path(tool).name
            again = "docker build" if name == "docker" else f"{name} build --format docker"
            raise BuildError(
                f"{exc}; the build context is kept in {context.path}: fix the cause, then run "
                f"`{again} -t {context.image} {context.path}`",
                step=exc.step,
                output=exc.output,
            ) from exc
    return BuildResult(context, built, manifests, monitoring)
