"""The build context of a model image: Dockerfile, the model in a one-model store, a lock of
the packages it was validated with, the nbops wheel, and (optionally) a wheelhouse."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops._version import __version__
from nbops.errors import NbopsError
from nbops.fileio import write_atomic

#: Port the server listens on inside the container.
PORT = 8080
#: The non-root user the server runs as.
UID = 10001
#: Default base image (a slim Debian Python, overridable with ``--base``).
DEFAULT_BASE = "python:3.11-slim-bookworm"
#: Packages a model of each format needs at load time, beyond nbops' own.
FORMAT_PACKAGES = {
    "skops": ("scikit-learn", "skops"),
    "pickle": ("scikit-learn",),
    "xgboost": ("xgboost",),
    "lightgbm": ("lightgbm",),
}


class BuildError(NbopsError):
    """A build context or image cannot be made; the message says what to do.

    Attributes:
        step: What was being done (e.g. ``podman build``), when a command failed.
        output: The last lines the failed command printed.
    """

    def __init__(self, message: str, *, step: str = "", output: str = "") -> None:
        super().__init__(message)
        self.step = step
        self.output = output


class NoContainerToolError(BuildError):
    """``--image`` was asked for but none of podman, buildah or docker is on ``PATH``.

    Attributes:
        searched: The tools looked for, in order.
    """

    def __init__(self, searched: tuple[str, ...]) -> None:
        super().__init__(
            f"no container tool found on PATH (looked for {', '.join(searched)}): install one "
            "(Debian: apt-get install podman) or leave out --image and build the written "
            "context yourself (podman build --format docker -t IMAGE DIR)",
            step="finding a container tool",
        )
        self.searched = searched


@dataclass(frozen=True)
class BuildContext:
    """What :func:`build_context` wrote.

    Attributes:
        path: The context folder.
        model: ``NAME:VERSION`` of the model it serves.
        digest: sha256 of the model file.
        image: The image name and tag it is labelled for.
        packages: The pinned packages (name to version) of ``requirements.lock``.
        recorded: How many pins came from the model's run (the rest are what serving adds).
        files: Every file written, relative to ``path``.
    """

    path: Path
    model: str
    digest: str
    image: str
    packages: Mapping[str, str]
    recorded: int
    files: tuple[str, ...] = field(default_factory=tuple)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed() -> dict[str, importlib.metadata.Distribution]:
    found: dict[str, importlib.metadata.Distribution] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(_normalize(name), dist)
    return found


def dependency_closure(roots: Iterable[str]) -> dict[str, str]:
    """Installed distributions ``roots`` need, transitively (extras named in a root included),
    with their installed versions. Markers are evaluated for this interpreter."""
    from packaging.requirements import InvalidRequirement, Requirement

    installed = _installed()
    todo = [Requirement(r) for r in roots]
    seen: dict[str, str] = {}
    while todo:
        req = todo.pop()
        name = _normalize(req.name)
        dist = installed.get(name)
        if dist is None or (name in seen and not req.extras):
            continue
        seen[name] = dist.version
        for line in dist.requires or []:
            try:
                child = Requirement(line)
            except InvalidRequirement:
                continue
            if child.marker is not None:
                wanted = [{"extra": e} for e in (req.extras or {""})]
                if not any(child.marker.evaluate(env) for env in wanted):
                    continue
            if _normalize(child.name) not in seen or child.extras:
                todo.append(child)
    seen.pop("nbops", None)  # installed from its own wheel
    return dict(sorted(seen.items()))


def pinned_packages(version: Any, store: Any) -> tuple[dict[str, str], int]:
    """The lock: what serving this model needs, at the versions its run recorded where it
    recorded them (else as installed here). Returns the pins and how many were recorded."""
    roots = ["nbops[serve]", *FORMAT_PACKAGES.get(version.format, ())]
    closure = dependency_closure(roots)
    recorded: dict[str, str] = {}
    if version.run_id:
        try:
            recorded = dict(store.get_metadata(version.run_id).get("packages") or {})
        except NbopsError:
            recorded = {}
    pins = {}
    used = 0
    for name, here in closure.items():
        then = recorded.get(name)
        if then and then != "[redacted]":
            pins[name] = then
            used += 1
        else:
            pins[name] = here
    return pins, used


def _project_source() -> Path:
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise BuildError(
            "nbops is not installed from its source tree, so its wheel cannot be built into the "
            "image; install nbops from a checkout (pip install -e .) and build again"
        )
    return root


def _run(cmd: list[str], what: str, timeout: float = 1800) -> None:
    # pip builds in an isolated environment: the caller's import path must not leak into it
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
    if done.returncode != 0:
        tail = "\n".join((done.stderr + done.stdout).strip().splitlines()[-5:])
        raise BuildError(f"{what} failed: " + tail.replace("\n", " / "), step=what, output=tail)


def base_python(base: str) -> str | None:
    """``X.Y`` when the base image's tag names its Python (``python:3.12-slim``), else None."""
    found = re.match(r"^(?:.+/)?python:(\d+\.\d+)", base)
    return found.group(1) if found else None


def _python_version_args(base: str) -> list[str]:
    """pip download's target Python: the base's when its tag says, else this interpreter's."""
    wanted = base_python(base)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    return ["--python-version", wanted] if wanted and wanted != here else []


def _write_store(target: Path, version: Any, source: Any) -> None:
    """A store holding only this model version (and its aliases), for the image."""
    from nbops.store import open_store

    store = open_store(target)
    try:
        digest, _ = store.blobs.put_file(source.blobs.path_of(version.digest))
        if digest != version.digest:
            raise BuildError(
                f"the stored file of {version.ref} no longer has its recorded sha256 "
                f"{version.digest[:12]}; it was changed on disk: register the model again"
            )
        fields = dict(source.models.get_version(version.name, version.version) or {})
        store.models.add_version(fields, version=version.version)
        for alias in version.aliases:
            store.models.move_alias(version.name, alias, version.version, "nbops build", None)
    finally:
        store.close()


DOCKERFILE = """\
# syntax=docker/dockerfile:1
# Serves {model} (sha256 {digest_short}) with `nbops serve` over the Open Inference Protocol.
# Written by `nbops build`; the packages are those the model was validated with.
ARG BASE={base}

FROM ${{BASE}} AS build
WORKDIR /build
COPY requirements.lock ./
COPY wheels/ ./wheels/
RUN python3 -m venv /opt/venv \\
 && /opt/venv/bin/pip install --no-cache-dir {index} --find-links ./wheels -r requirements.lock \\
 && /opt/venv/bin/pip install --no-cache-dir --no-index --no-deps ./wheels/nbops-*.whl

FROM ${{BASE}}
LABEL org.opencontainers.image.title="{name}" \\
      org.opencontainers.image.description="nbops model server for {model}" \\
      org.opencontainers.image.version="{version}" \\
      org.opencontainers.image.revision="{commit}" \\
      org.opencontainers.image.source="{source}" \\
      io.nbops.model.name="{name}" \\
      io.nbops.model.version="{version}" \\
      io.nbops.model.sha256="{digest}" \\
      io.nbops.version="{nbops_version}"
RUN useradd --system --uid {uid} --no-create-home --shell /usr/sbin/nologin nbops
COPY --from=build /opt/venv /opt/venv
COPY store/ /app/store/
COPY entrypoint.sh /app/entrypoint.sh
ENV PATH=/opt/venv/bin:$PATH \\
    NBOPS_HOME=/tmp/nbops-store \\
    NBOPS_WANDB=disabled \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1
USER {uid}
EXPOSE {port}
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \\
  CMD ["/opt/venv/bin/python", "-c", \\
       "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/v2/health/ready', timeout=2)"]
ENTRYPOINT ["/app/entrypoint.sh"]
"""  # noqa: E501 - a Dockerfile line

ENTRYPOINT = """\
#!/bin/sh
# The root filesystem may be read-only: serve from a writable copy of the model's store.
set -eu
rm -rf "$NBOPS_HOME" && cp -r /app/store "$NBOPS_HOME"
exec nbops serve {model} --host 0.0.0.0 --port {port} "$@"
"""

DOCKERIGNORE = "**/__pycache__\n**/*.pyc\n.git\n"


def build_context(
    ref: str,
    out: str | os.PathLike[str],
    *,
    image: str | None = None,
    base: str = DEFAULT_BASE,
    wheelhouse: bool = False,
    store: Any = None,
) -> BuildContext:
    """Write the build context of the image serving model ``ref`` into ``out``.

    Args:
        ref: ``NAME``, ``NAME@ALIAS`` or ``NAME:VERSION`` (resolved to one version now).
        out: The folder to write (must be empty or absent).
        image: ``NAME:TAG`` for the labels (default ``NAME:VERSION`` of the model).
        base: The base image of both stages.
        wheelhouse: Download every wheel now, so the image builds with no network.
        store: The store, or its folder.
    """
    from nbops.registry import get_model
    from nbops.store import open_store

    source = open_store(store)
    version = get_model(ref, store=source)
    path = Path(out)
    if path.exists() and any(path.iterdir()):
        raise BuildError(f"{path} is not empty; give a new folder with -o")
    (path / "wheels").mkdir(parents=True, exist_ok=True)
    _write_store(path / "store", version, source)
    pins, recorded = pinned_packages(version, source)
    lock = [f"# {version.ref}: packages pinned to what its run recorded ({recorded} of them)"]
    lock += [f"{name}=={ver}" for name, ver in pins.items()]
    write_atomic(path / "requirements.lock", "\n".join(lock) + "\n")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(path / "wheels"),
            str(_project_source()),
        ],
        "building the nbops wheel",
    )
    if wheelhouse:
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--only-binary=:all:",
                *_python_version_args(base),
                "-d",
                str(path / "wheels"),
                "-r",
                str(path / "requirements.lock"),
            ],
            "downloading the wheelhouse (pip download)",
        )
    git = version.lineage.get("git") or {}
    tag = image or f"{version.name}:{version.version}"
    text = DOCKERFILE.format(
        model=version.ref,
        name=version.name,
        version=version.version,
        digest=version.digest,
        digest_short=version.digest[:12],
        commit=git.get("commit") or "unknown",
        source=git.get("remote") or "unknown",
        nbops_version=__version__,
        base=base,
        uid=UID,
        port=PORT,
        index="--no-index" if wheelhouse else "",
    ).replace("pip install --no-cache-dir  --find-links", "pip install --no-cache-dir --find-links")
    write_atomic(path / "Dockerfile", text)
    write_atomic(path / "entrypoint.sh", ENTRYPOINT.format(model=version.ref, port=PORT))
    os.chmod(path / "entrypoint.sh", 0o755)  # noqa: S103 - run by the image's user
    write_atomic(path / ".dockerignore", DOCKERIGNORE)
    files = tuple(sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()))
    return BuildContext(path, version.ref, version.digest, tag, pins, recorded, files)


def container_tool() -> str:
    """The first of podman, buildah or docker on PATH."""
    tools = ("podman", "buildah", "docker")
    for tool in tools:
        found = shutil.which(tool)
        if found:
            return found
    raise NoContainerToolError(tools)


def build_image(context: BuildContext, *, tool: str | None = None, network: bool = True) -> str:
    """Build the image of ``context`` with podman, buildah or docker; return its name."""
    exe = tool or container_tool()
    cmd = [exe, "build" if not exe.endswith("buildah") else "bud"]
    if not exe.endswith("docker"):
        cmd += ["--format", "docker"]  # OCI images drop HEALTHCHECK
    if not network:
        cmd += ["--network", "none"]
    cmd += ["-t", context.image, str(context.path)]
    _run(cmd, f"{Path(exe).name} build")
    return context.image
