"""Upload offline W&B runs once a key and a server are available."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from nbops.errors import MirrorError
from nbops.mirror._mode import api_key_configured, base_url
from nbops.mirror._offline_file import find_offline_runs
from nbops.mirror._probe import check_server
from nbops.redact import scrub_text, secret_values

logger = logging.getLogger(__name__)

_PROBE_TIMEOUT = 10.0


class NoApiKeyError(MirrorError):
    """Offline runs wait to be uploaded but no W&B API key is configured."""

    def __init__(self, waiting: list[Path], wandb_dir: Path) -> None:
        self.waiting = waiting
        self.wandb_dir = wandb_dir
        super().__init__(
            f"no W&B API key is configured, so {len(waiting)} offline run(s) in {wandb_dir} "
            "stay offline; run `wandb login` or set WANDB_API_KEY, then sync again"
        )


class ServerUnreachableError(MirrorError):
    """The W&B server could not be reached; offline runs stay offline."""

    def __init__(self, url: str, waiting: list[Path], wandb_dir: Path, detail: str = "") -> None:
        self.url = url
        self.waiting = waiting
        self.wandb_dir = wandb_dir
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"the W&B server {url} could not be reached{extra}; {len(waiting)} offline run(s) "
            f"in {wandb_dir} stay offline; check the network or WANDB_BASE_URL and sync again"
        )


class ServerRejectedError(MirrorError):
    """The W&B server answered with an error (wrong key, server error); runs stay offline."""

    def __init__(
        self, url: str, status: int, detail: str, waiting: list[Path], wandb_dir: Path
    ) -> None:
        self.url = url
        self.status = status
        self.waiting = waiting
        self.wandb_dir = wandb_dir
        advice = (
            "check the key (`wandb login --relogin` or WANDB_API_KEY)"
            if status in (401, 403)
            else "try again later"
        )
        super().__init__(
            f"the W&B server {url} answered {detail}; {len(waiting)} offline run(s) in "
            f"{wandb_dir} stay offline; {advice}, then run `nbops sync` again"
        )


class SyncFailedError(MirrorError):
    """``wandb sync`` ran but did not upload every run."""


@dataclass(frozen=True)
class SyncReport:
    """What :func:`sync` did.

    Attributes:
        wandb_dir: The ``wandb/`` folder looked at.
        synced: Runs uploaded by this call.
        already_synced: Runs uploaded earlier.
    """

    wandb_dir: Path
    synced: tuple[Path, ...] = ()
    already_synced: tuple[Path, ...] = ()

    @property
    def nothing_to_sync(self) -> bool:
        """True when there was no offline run waiting."""
        return not self.synced

    def __str__(self) -> str:
        if self.nothing_to_sync:
            return f"nothing to sync in {self.wandb_dir} ({len(self.already_synced)} synced before)"
        return f"synced {len(self.synced)} offline run(s) from {self.wandb_dir}"


def is_synced(run_dir: Path) -> bool:
    """Return True when ``wandb sync`` has marked the run as uploaded."""
    return any(run_dir.glob("run-*.wandb.synced"))


def sync(wandb_dir: str | os.PathLike[str], *, timeout: float = 60.0) -> SyncReport:
    """Upload the offline runs under ``wandb_dir`` that were not uploaded yet.

    Asks the server first (bounded by ``timeout``, at most 10 s), then runs
    ``python -m wandb sync`` with stdin closed, bounded by ``timeout`` seconds.

    Raises:
        NoApiKeyError: No key in ``WANDB_API_KEY`` or the netrc file.
        ServerUnreachableError: The server gave no answer, or the upload timed out.
        ServerRejectedError: The server answered with an HTTP error (401, 500, ...).
        SyncFailedError: ``wandb sync`` failed for another reason.
    """
    root = Path(wandb_dir)
    runs = find_offline_runs(root)
    folder = runs[0].parent if runs else root
    done = [r for r in runs if is_synced(r)]
    waiting = [r for r in runs if not is_synced(r)]
    if not waiting:
        return SyncReport(wandb_dir=folder, already_synced=tuple(done))
    if not api_key_configured():
        raise NoApiKeyError(waiting, folder)
    url = base_url()
    check = check_server(url, timeout=min(timeout, _PROBE_TIMEOUT))
    if not check.answered:
        raise ServerUnreachableError(url, waiting, folder, check.detail)
    if not check.ok:
        raise ServerRejectedError(url, check.status or 0, check.detail, waiting, folder)
    command = [sys.executable, "-m", "wandb", "sync", *map(str, waiting)]
    try:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ServerUnreachableError(
            url, waiting, folder, f"the upload did not finish within {timeout:g} s"
        ) from exc
    output = scrub_text(result.stdout + result.stderr, secret_values())
    logger.debug("wandb sync output:\n%s", output)
    synced = tuple(r for r in waiting if is_synced(r))
    if result.returncode != 0 or len(synced) < len(waiting):
        tail = "\n".join(output.strip().splitlines()[-5:])
        raise SyncFailedError(
            f"wandb sync uploaded {len(synced)} of {len(waiting)} offline run(s) in {folder} "
            f"(exit code {result.returncode}); the rest stay offline. wandb said:\n{tail}"
        )
    return SyncReport(wandb_dir=folder, synced=synced, already_synced=tuple(done))
