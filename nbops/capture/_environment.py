"""The machine and Python environment a run executes in."""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from typing import Any

from nbops.redact import redact, scrub_text, secret_values

logger = logging.getLogger(__name__)

#: Seconds ``nvidia-smi`` may take before it is killed.
NVIDIA_SMI_TIMEOUT = 3.0

_GPU_QUERY = ["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
_UNITS = {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def environment() -> dict[str, Any]:
    """Describe the interpreter, OS, CPU, memory and GPUs of this process. Never raises.

    Returns:
        A dict with ``python`` (``version``, ``implementation``, ``executable``), ``platform``
        (``system``, ``release``, ``machine``, ``platform``), ``hostname``, ``cpu`` (``count``,
        ``model`` or None), ``memory_total_bytes`` (or None), ``gpu`` (one dict per GPU with
        ``name``, ``memory_total``, ``memory_total_bytes``, ``driver_version``; empty when there
        is none) and ``gpu_error`` (why ``gpu`` is empty, or None).
    """
    gpus, gpu_error = _gpus()
    env = {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "platform": platform.platform(),
        },
        "hostname": socket.gethostname(),
        "cpu": {"count": os.cpu_count(), "model": _cpu_model()},
        "memory_total_bytes": _memory_total(),
        "gpu": gpus,
        "gpu_error": gpu_error,
    }
    return dict(redact(env))


def installed_packages() -> dict[str, str]:
    """Return ``{normalized distribution name: version}`` for every installed package, sorted.

    Names are normalized as in PEP 503 (``Foo_Bar`` -> ``foo-bar``). When a distribution is
    installed twice on ``sys.path``, the one found first (the one Python imports) wins.
    """
    import importlib.metadata  # ~20 ms, so only when asked

    secrets = secret_values()
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        try:
            name = dist.metadata["Name"]
            version = dist.version
        except Exception:  # a broken .dist-info must not break the capture
            logger.debug("skipping unreadable distribution at %s", dist, exc_info=True)
            continue
        if not name:
            continue
        key = re.sub(r"[-_.]+", "-", name).lower()
        found.setdefault(key, scrub_text(str(version), secrets))
    return dict(sorted(found.items()))


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() in ("model name", "Model", "Hardware", "cpu model"):
                    return value.strip() or None
    except OSError:
        pass
    return None


def _memory_total() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _gpus() -> tuple[list[dict[str, Any]], str | None]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return [], "nvidia-smi not found on PATH (no NVIDIA GPU or driver)"
    try:
        proc = subprocess.run(
            [exe, *_GPU_QUERY],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=NVIDIA_SMI_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [], f"nvidia-smi timed out after {NVIDIA_SMI_TIMEOUT:g} s"
    except OSError as exc:
        return [], f"nvidia-smi could not start: {exc}"
    out = proc.stdout.decode("utf-8", errors="replace")
    if proc.returncode != 0:
        err = (proc.stderr.decode("utf-8", errors="replace") or out).strip()
        return [], f"nvidia-smi exited with {proc.returncode}: {err[:200]}"
    return parse_nvidia_smi(out), None


def parse_nvidia_smi(text: str) -> list[dict[str, Any]]:
    """Parse ``nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader``."""
    gpus = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.rsplit(",", 2)]
        if len(fields) != 3:
            continue
        name, memory, driver = fields
        gpus.append(
            {
                "name": name,
                "memory_total": memory,
                "memory_total_bytes": _parse_size(memory),
                "driver_version": driver,
            }
        )
    return gpus


def _parse_size(text: str) -> int | None:
    match = re.fullmatch(r"([\d.]+)\s*([KMG]i?B)", text.strip(), re.IGNORECASE)
    if not match:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
