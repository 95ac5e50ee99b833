"""``nbops build``: an image build context, manifests and monitoring for a registered model."""

from __future__ import annotations

import argparse


def cmd_build(args: argparse.Namespace) -> int:
    from nbops.build import DEFAULT_BASE, build

    result = build(
        args.model,
        args.output or f"build-{args.model.replace('@', '-').replace(':', '-')}",
        image=args.image,
        base=args.base or DEFAULT_BASE,
        wheelhouse=args.wheelhouse,
        k8s=args.k8s,
        compose=args.compose,
        canary_percent=args.canary_percent,
        build_now=args.image is not None,
    )
    ctx = result.context
    print(f"Build context for {ctx.model} (sha256 {ctx.digest[:12]}) in {ctx.path}")
    print(
        f"  requirements.lock: {len(ctx.packages)} packages, {ctx.recorded} at the versions "
        "the model's run recorded"
    )
    if result.manifests:
        print(f"  Kubernetes: {ctx.path / 'k8s'} (kustomize base + canary overlay), KServe:")
        print(f"    {ctx.path / 'kserve' / 'inferenceservice.yaml'}")
    if result.monitoring:
        print(f"  Monitoring: {ctx.path / 'compose.yaml'} and {ctx.path / 'monitoring'}")
    if result.image:
        print(f"Built image {result.image}")
    else:
        print(f"Build it with: podman build --format docker -t {ctx.image} {ctx.path}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``nbops build``."""
    p = sub.add_parser(
        "build",
        help="a container image context (and manifests) serving a registered model",
        description="Write a build context serving MODEL_REF with `nbops serve`: a Dockerfile, "
        "the model (hash-checked), the packages its run recorded, and an entrypoint. --image "
        "also builds it with podman, buildah or docker.",
    )
    p.add_argument("model", metavar="MODEL_REF", help="NAME, NAME@ALIAS or NAME:VERSION")
    p.add_argument("-o", "--output", metavar="DIR", help="an empty or new folder")
    p.add_argument("--image", metavar="NAME:TAG", help="build the image now, with this name")
    p.add_argument("--base", default=None, help="base image (default: a slim Debian Python)")
    p.add_argument(
        "--wheelhouse", action="store_true", help="download wheels first: build with no network"
    )
    p.add_argument("--k8s", action="store_true", help="add Kubernetes and KServe manifests")
    p.add_argument(
        "--compose", action="store_true", help="add Compose with Prometheus, alerts and Grafana"
    )
    p.add_argument(
        "--canary-percent", type=int, default=10, help="KServe canaryTrafficPercent (default 10)"
    )
    p.set_defaults(func=cmd_build)
