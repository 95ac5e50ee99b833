"""The image really built and run with podman: a base image made locally from Debian (no
registry is reachable here), a wheelhouse build with no network, then the container answers a V2
inference like the model itself, its HEALTHCHECK is healthy and its process is not root.

The Debian root filesystem is made once and cached outside the repository (``NBOPS_CI_CACHE``,
default ``/var/cache/nbops-ci``); podman's storage is a temporary folder per test module.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nbops.build import UID
from tests.serve.conftest import call, pd_request

pytestmark = [pytest.mark.slow, pytest.mark.podman]

BASE = "localhost/bookworm-py:base"
MMDEBSTRAP = [
    "mmdebstrap",
    "--variant=minbase",
    "--include=python3,python3-venv,python3-pip,ca-certificates",
    "bookworm",
]
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
"""
Podman = Callable[..., subprocess.CompletedProcess[str]]


def _tool(name: str) -> str:
    found = shutil.which(name)
    assert found, (
        f"{name} is missing: apt-get install podman buildah mmdebstrap runc fuse-overlayfs "
        "slirp4netns uidmap containernetworking-plugins (see .ci/run)"
    )
    return found


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """podman with the settings this machine needs (runc, ulimits, overlay storage in a temp
    folder); fails, not skips, when podman cannot run a container."""
    root = tmp_path_factory.mktemp("podman")
    (root / "containers.conf").write_text(CONTAINERS_CONF)
    (root / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{root / "graph"}"\n'
        f'runroot = "{root / "run"}"\n'
    )
    exe = _tool("podman")

    def run(
        *args: str, timeout: float = 900, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [exe, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        assert not check or done.returncode == 0, (args, done.stdout + done.stderr)
        return done

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONTAINERS_CONF", str(root / "containers.conf"))
        mp.setenv("CONTAINERS_STORAGE_CONF", str(root / "storage.conf"))
        run("info")
        yield run
        run("rm", "--all", "--force", check=False)
        run("rmi", "--all", "--force", check=False)


def _rootfs() -> Path:
    """The Debian minbase root filesystem with Python, made once per mmdebstrap command."""
    cache = Path(os.environ.get("NBOPS_CI_CACHE", "/var/cache/nbops-ci"))
    key = hashlib.sha256(" ".join(MMDEBSTRAP).encode()).hexdigest()[:12]
    tar = cache / f"bookworm-py-{key}.tar"
    if not tar.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        part = tar.with_name(tar.name + ".part")
        part.unlink(missing_ok=True)
        _tool("mmdebstrap")
        done = subprocess.run(
            [*MMDEBSTRAP, str(part)], capture_output=True, text=True, timeout=1800, check=False
        )
        assert done.returncode == 0, done.stderr[-3000:]
        part.replace(tar)
    return tar


@pytest.fixture(scope="module")
def base_image(podman: Podman) -> str:
    """``localhost/bookworm-py:base``, imported from the cached root filesystem."""
    podman("import", str(_rootfs()), BASE)
    return BASE


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(podman: Podman, name: str, url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if call(url, timeout=5)[0] == 200:
                return
        except OSError:  # not listening yet
            pass
        state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
        assert state == "running", podman("logs", name, check=False).stderr[-3000:]
        time.sleep(0.5)
    pytest.fail("the container was not ready within 120 s: " + podman("logs", name).stderr[-3000:])


def test_the_image_serves_the_model_healthy_and_not_as_root(
    model: str, podman: Podman, base_image: str, cli: Any, tmp_path: Path
) -> None:
    from sklearn.datasets import load_iris

    from nbops.registry import get_model, load_model

    tag = f"localhost/nbops-test-iris:{uuid.uuid4().hex[:8]}"
    done = cli(
        "build",
        model,
        "-o",
        str(tmp_path / "ctx"),
        "--wheelhouse",
        "--base",
        base_image,
        "--image",
        tag,
    )
    assert done.exit_code == 0, done.stderr
    assert f"Built image {tag}" in done.output
    image = json.loads(podman("image", "inspect", tag).stdout)[0]
    assert image["Labels"]["io.nbops.model.sha256"] == get_model(model).digest
    assert image["Config"]["User"] == str(UID)
    healthcheck = image.get("Healthcheck") or image["Config"]["Healthcheck"]  # docker format
    assert "/v2/health/ready" in " ".join(healthcheck["Test"])

    port = _free_port()
    name = f"nbops-test-{uuid.uuid4().hex[:8]}"
    # read-only root filesystem, as the Kubernetes manifests run it
    podman("run", "-d", "--read-only", "--name", name, "-p", f"127.0.0.1:{port}:8080", tag)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(podman, name, f"{url}/v2/health/ready")
        X, _ = load_iris(return_X_y=True, as_frame=True)
        frame = X.iloc[::10]
        status, out, _ = call(f"{url}/v2/models/iris/infer", pd_request(frame))
        assert status == 200, out
        assert out["model_name"] == "iris" and out["model_version"] == "1"
        assert out["outputs"][0]["data"] == load_model(model).predict(frame).tolist()

        health = podman("healthcheck", "run", name, check=False)
        assert health.returncode == 0, health.stdout + health.stderr
        inspect = json.loads(podman("inspect", name).stdout)[0]
        state = inspect["State"].get("Health") or inspect["State"]["Healthcheck"]
        assert state["Status"] == "healthy", state

        assert podman("exec", name, "id", "-u").stdout.strip() == str(UID)
        top = podman("top", name, "user", "comm").stdout.splitlines()[1:]
        assert top and all(line.split()[0] not in ("root", "0") for line in top), top
    finally:
        podman("rm", "--force", name, check=False)
