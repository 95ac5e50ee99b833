"""System metrics sampled while a run is active: CPU, memory, disk, network and NVIDIA GPUs.

Read from ``/proc`` (Linux) and ``nvidia-smi``, without extra dependencies. A value the platform
does not offer is left out rather than faked. Keys start with ``system/``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

#: Seconds between two samples unless ``nbops.init(system_metrics=...)`` says otherwise.
DEFAULT_INTERVAL = 10.0
#: Prefix of every system metric key.
PREFIX = "system/"
#: Longest time ``finish`` waits for the sampler thread to stop.
STOP_TIMEOUT = 0.01

_MB = 1024.0 * 1024.0
_PROC = Path("/proc")
_GPU_FIELDS = (
    ("utilization.gpu", "utilization_percent"),
    ("memory.used", "memory_used_mb"),
    ("memory.total", "memory_total_mb"),
    ("temperature.gpu", "temperature_c"),
    ("power.draw", "power_w"),
)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _host_cpu_times(proc: Path) -> tuple[float, float] | None:
    """Return (busy, total) jiffies of the host from ``/proc/stat``."""
    text = _read(proc / "stat")
    if not text or not text.startswith("cpu "):
        return None
    fields = [float(x) for x in text.split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user time
    return total - idle, total


def _meminfo(proc: Path) -> dict[str, float]:
    text = _read(proc / "meminfo") or ""
    values: dict[str, float] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            values[name] = float(parts[0]) * 1024.0  # kB
    return values


def _disk_bytes(proc: Path) -> tuple[float, float] | None:
    """Return bytes (read, written) by whole block devices since boot, from ``/proc/diskstats``."""
    text = _read(proc / "diskstats")
    if text is None:
        return None
    disks = {p.name for p in Path("/sys/block").glob("*")} if Path("/sys/block").is_dir() else None
    read = written = 0.0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 10:
            continue
        name = parts[2]
        if name.startswith(("loop", "ram", "zram")) or (disks is not None and name not in disks):
            continue
        read += float(parts[5]) * 512.0
        written += float(parts[9]) * 512.0
    return read, written


def _net_bytes(proc: Path) -> tuple[float, float] | None:
    """Return bytes (sent, received) on every interface but loopback, from ``/proc/net/dev``."""
    text = _read(proc / "net" / "dev")
    if text is None:
        return None
    sent = received = 0.0
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if name.strip() == "lo" or len(parts) < 9:
            continue
        received += float(parts[0])
        sent += float(parts[8])
    return sent, received


def _process_rss(proc: Path) -> float | None:
    text = _read(proc / "self" / "statm")
    if not text:
        return None
    return float(text.split()[1]) * os.sysconf("SC_PAGE_SIZE")


def gpu_metrics(executable: str, timeout: float = 5.0) -> dict[str, float]:
    """Query every NVIDIA GPU through ``nvidia-smi``; return ``system/gpu.N.*`` values.

    Fields a GPU reports as unsupported (``[N/A]``) are left out.
    """
    query = ",".join(["index", *(field for field, _ in _GPU_FIELDS)])
    result = subprocess.run(
        [executable, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise OSError(f"nvidia-smi exited with {result.returncode}: {result.stderr.strip()[:200]}")
    values: dict[str, float] = {}
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(_GPU_FIELDS) + 1 or not cells[0].isdigit():
            continue
        index = cells[0]
        for (_, name), cell in zip(_GPU_FIELDS, cells[1:], strict=True):
            try:
                values[f"{PREFIX}gpu.{index}.{name}"] = float(cell)
            except ValueError:  # "[N/A]", "[Not Supported]"
                continue
        used = values.get(f"{PREFIX}gpu.{index}.memory_used_mb")
        total = values.get(f"{PREFIX}gpu.{index}.memory_total_mb")
        if used is not None and total:
            values[f"{PREFIX}gpu.{index}.memory_percent"] = 100.0 * used / total
    return values


class SystemProbe:
    """Reads one sample at a time; rates and I/O counts are relative to the previous sample or
    to the probe's creation.

    Args:
        disk_path: The filesystem whose usage is reported (``system/disk_percent``).
        proc: The ``/proc`` folder (tests point it elsewhere).
        nvidia_smi: The ``nvidia-smi`` executable; default: found on ``PATH`` (None: no GPUs).
    """

    def __init__(
        self,
        disk_path: str | os.PathLike[str] = ".",
        *,
        proc: Path = _PROC,
        nvidia_smi: str | None = "",
    ) -> None:
        self._proc = proc
        self._disk_path = os.fspath(disk_path)
        self._nvidia_smi = shutil.which("nvidia-smi") if nvidia_smi == "" else nvidia_smi
        self._gpu_warned = False
        self._wall = time.monotonic()
        self._cpu = _host_cpu_times(proc)
        times = os.times()
        self._process_cpu = times.user + times.system
        self._disk0 = _disk_bytes(proc)
        self._net0 = _net_bytes(proc)

    def sample(self) -> dict[str, float]:
        """Return the current values, keyed ``system/...``."""
        values: dict[str, float] = {}
        now = time.monotonic()
        elapsed = now - self._wall
        times = os.times()
        process_cpu = times.user + times.system
        if elapsed > 0:
            values["process_cpu_percent"] = 100.0 * (process_cpu - self._process_cpu) / elapsed
        self._wall, self._process_cpu = now, process_cpu
        cpu = _host_cpu_times(self._proc)
        if cpu is not None and self._cpu is not None and cpu[1] > self._cpu[1]:
            busy, total = cpu[0] - self._cpu[0], cpu[1] - self._cpu[1]
            values["cpu_percent"] = 100.0 * busy / total
        self._cpu = cpu
        rss = _process_rss(self._proc)
        if rss is not None:
            values["process_rss_mb"] = rss / _MB
        memory = _meminfo(self._proc)
        total_mem, available = memory.get("MemTotal"), memory.get("MemAvailable")
        if total_mem and available is not None:
            values["memory_used_mb"] = (total_mem - available) / _MB
            values["memory_available_mb"] = available / _MB
            values["memory_percent"] = 100.0 * (total_mem - available) / total_mem
        disk = _disk_bytes(self._proc)
        if disk is not None and self._disk0 is not None:
            values["disk_read_mb"] = (disk[0] - self._disk0[0]) / _MB
            values["disk_write_mb"] = (disk[1] - self._disk0[1]) / _MB
        try:
            usage = shutil.disk_usage(self._disk_path)
            values["disk_percent"] = 100.0 * usage.used / usage.total
        except OSError:
            pass
        net = _net_bytes(self._proc)
        if net is not None and self._net0 is not None:
            values["network_sent_mb"] = (net[0] - self._net0[0]) / _MB
            values["network_recv_mb"] = (net[1] - self._net0[1]) / _MB
        result = {PREFIX + key: value for key, value in values.items()}
        if self._nvidia_smi is not None:
            try:
                result.update(gpu_metrics(self._nvidia_smi))
            except (OSError, subprocess.SubprocessError) as exc:
                if not self._gpu_warned:
                    self._gpu_warned = True
                    logger.warning("nbops could not read GPU metrics from nvidia-smi: %s", exc)
        return result


class SystemSampler:
    """Calls ``sink(values)`` with a sample of ``make_probe()`` every ``interval`` seconds, on a
    daemon thread, until :meth:`stop`.

    ``stop`` returns within :data:`STOP_TIMEOUT` seconds even when a sample is under way (a
    sample that completes later is handed to ``sink``, which must drop it once the run ended).
    """

    def __init__(
        self,
        sink: Callable[[dict[str, float]], None],
        interval: float = DEFAULT_INTERVAL,
        make_probe: Callable[[], SystemProbe] = SystemProbe,
    ) -> None:
        self.interval = interval
        self._sink = sink
        self._make_probe = make_probe
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="nbops-system", daemon=True)

    def start(self) -> None:
        """Start sampling (the first sample comes after one interval)."""
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Ask the thread to stop and wait at most ``timeout`` seconds for it."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _loop(self) -> None:
        try:
            probe = (
                self._make_probe()
            )  # on this thread: its first /proc reads cost the caller nothing
        except Exception:
            logger.warning("nbops cannot sample system metrics", exc_info=True)
            return
        while not self._stop.wait(self.interval):
            try:
                values = probe.sample()
            except Exception:
                logger.warning("nbops system metrics sample failed", exc_info=True)
                continue
            if self._stop.is_set():
                return
            if values:
                self._sink(values)
