"""environment() and installed_packages()."""

from __future__ import annotations

import importlib.metadata
import os
import stat
import sys
from pathlib import Path

import pytest

from nbops.capture import _environment, environment, installed_packages


def test_environment_keys_are_present_and_sensible() -> None:
    env = environment()
    assert env["python"]["executable"] == sys.executable
    assert env["python"]["version"].startswith(f"{sys.version_info[0]}.{sys.version_info[1]}.")
    assert env["python"]["implementation"]
    assert set(env["platform"]) == {"system", "release", "machine", "platform"}
    assert env["hostname"]
    assert env["cpu"]["count"] == os.cpu_count()
    assert "model" in env["cpu"]
    assert env["memory_total_bytes"] is None or env["memory_total_bytes"] > 2**20
    assert isinstance(env["gpu"], list)
    if not env["gpu"]:
        assert env["gpu_error"]


def write_fake_nvidia_smi(bin_dir: Path, body: str) -> None:
    bin_dir.mkdir()
    script = bin_dir / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_gpus_from_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_fake_nvidia_smi(
        tmp_path / "bin",
        "echo 'NVIDIA A100-SXM4-80GB, 81920 MiB, 550.54.15'\necho 'Tesla T4, 15360 MiB, 550.54.15'",
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    env = environment()
    assert env["gpu_error"] is None
    assert env["gpu"] == [
        {
            "name": "NVIDIA A100-SXM4-80GB",
            "memory_total": "81920 MiB",
            "memory_total_bytes": 81920 * 2**20,
            "driver_version": "550.54.15",
        },
        {
            "name": "Tesla T4",
            "memory_total": "15360 MiB",
            "memory_total_bytes": 15360 * 2**20,
            "driver_version": "550.54.15",
        },
    ]


def test_nvidia_smi_failure_and_hang_become_reasons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_fake_nvidia_smi(tmp_path / "bin", "echo 'NVIDIA-SMI has failed' >&2; exit 9")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    env = environment()
    assert env["gpu"] == []
    assert "exited with 9" in env["gpu_error"]

    write_fake_nvidia_smi(tmp_path / "bin2", "sleep 30")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin2'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(_environment, "NVIDIA_SMI_TIMEOUT", 0.3)
    env = environment()
    assert env["gpu"] == []
    assert "timed out" in env["gpu_error"]


def test_installed_packages() -> None:
    packages = installed_packages()
    assert packages["pytest"] == importlib.metadata.version("pytest")
    assert list(packages) == sorted(packages)
    assert all(name == name.lower() and "_" not in name for name in packages)
    assert "jupyter-client" in packages  # distribution jupyter_client, normalized
