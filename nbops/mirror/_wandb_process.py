"""wandb's process-wide state, run ids, artifacts and run-folder files, as the mirror needs them."""

from __future__ import annotations

import logging
import os
import re
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

from nbops.fileio import write_atomic
from nbops.mirror._offline_file import exit_record_written
from nbops.redact import scrub_text, secret_values

logger = logging.getLogger(__name__)

_ARTIFACT_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]+")
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def fresh_id(run_id: str) -> str:
    """A W&B id for ``run_id``'s copy when wandb keeps ``run_id`` reserved in this process."""
    return f"{run_id}-{''.join(secrets.choice(_B36) for _ in range(4))}"


def log_artifact(
    run: Any, path: str | os.PathLike[str], name: str, type_: str, file_name: str | None = None
) -> None:
    """Log a file or folder as a W&B artifact (name made W&B-safe; ``file_name`` inside it)."""
    import wandb

    artifact = wandb.Artifact(_ARTIFACT_NAME_BAD.sub("-", name).strip("-") or "artifact", type_)
    if Path(path).is_dir():
        artifact.add_dir(str(path))
    else:
        artifact.add_file(str(path), name=file_name or Path(path).name)
    run.log_artifact(artifact)


def interpreter_exiting() -> bool:
    """True while Python runs its exit hooks (a kernel shutting down, a script ending)."""
    return bool(getattr(threading, "_SHUTTING_DOWN", False)) or sys.is_finalizing()


def mirror_settings(wandb: Any, commit: str | None, remote: str | None, **extra: Any) -> Any:
    """The ``wandb.Settings`` of every W&B run nbops starts: silent, and no secrets in wandb's
    files (no command line, environment-derived metadata, git probing, code or system stats;
    nbops hands over its own scrubbed git ``commit`` and ``remote``)."""
    return wandb.Settings(
        silent=True,
        console="off",
        x_disable_meta=True,
        x_disable_stats=True,
        x_disable_machine_info=True,
        disable_git=True,
        disable_code=True,
        save_code=False,
        x_save_requirements=False,
        git_commit=commit,
        git_remote_url=remote,
        **extra,
    )


def go_offline_process_wide(wandb: Any) -> None:
    """Switch wandb's process-wide settings offline (and its telemetry exporter off)."""
    try:
        wandb.setup(settings=wandb.Settings(mode="offline", silent=True))
    except Exception:
        logger.debug("could not switch wandb's process settings offline", exc_info=True)
    turn_off_wandb_telemetry()


def turn_off_wandb_telemetry() -> None:
    """Turn wandb's own usage telemetry (OpenTelemetry export to the W&B server) off.

    Called before the mirror's first ``wandb.init``: each online start builds an exporter that
    nothing can reach afterwards, which posts wandb's exception texts (not redacted by nbops)
    and, at exit, keeps a process alive flushing to a server that fails or hangs.
    """
    try:
        from wandb.analytics.opentelemetry import opentelemetry_proxy

        opentelemetry_proxy.disable()
        proxy = opentelemetry_proxy._singleton_telemetry_proxy
        if proxy is not None:
            proxy.shutdown(timeout_millis=100)
    except Exception:  # older or newer wandb without this module: nothing to stop
        logger.debug("could not turn wandb telemetry off", exc_info=True)


def end_wandb_service_within(seconds: float) -> None:
    """Make wandb's service process (``wandb-core``) end within ``seconds`` from now.

    At exit wandb waits, without a bound, for wandb-core to finish what it holds; with an online
    start still retrying against a server that fails or hangs, that is 30 s or more. The mirror
    calls this only when it gives up, at exit, on a copy whose online start had not finished
    (the store records the copy as partial; ``nbops sync --offline`` rebuilds it).
    """
    import subprocess

    setup = sys.modules.get("wandb.sdk.wandb_setup")
    connection = getattr(getattr(setup, "_singleton", None), "_connection", None)
    process = getattr(getattr(connection, "_proc", None), "_process", None)
    if not isinstance(process, subprocess.Popen):
        return

    def watch() -> None:
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            logger.debug("ending wandb-core (pid %s): it outlived the exit wait", process.pid)
            process.kill()

    threading.Thread(target=watch, name="nbops-wandb-core-end", daemon=True).start()


def wait_until_written(run_dir: str, timeout: float = 15.0) -> bool:
    """Wait until the offline ``.wandb`` file holds the run's exit record.

    ``run.finish()`` can return while wandb-core is still writing the file (seen under load);
    the offline file is the only copy, so "finished" must mean "on disk". Only the file's last
    blocks are read, so the check stays cheap for long histories.
    """
    deadline = time.monotonic() + min(timeout, 1.0 if interpreter_exiting() else timeout)
    while True:
        if exit_record_written(run_dir):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def silence_wandb_terminal(wandb: Any) -> None:
    """Stop wandb's login from printing "Loaded credentials ..." into the notebook cell.

    wandb's login reads the process-wide setup settings, not the run's, so this makes wandb
    silent for the whole process (nbops owns wandb's output in a notebook anyway).
    """
    try:
        wandb.setup(settings=wandb.Settings(silent=True))
    except Exception:  # losing this only costs one line of output
        logger.debug("could not silence wandb terminal output", exc_info=True)


def scrub_run_dir(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Replace secret environment values in a wandb run directory's text files.

    The binary ``.wandb`` file is only checked (it is CRC-framed); a hit is logged.

    Returns:
        The files that contained a secret.
    """
    secrets = secret_values()
    if not secrets:
        return []
    hits: list[Path] = []
    for path in Path(run_dir).rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if not any(s.encode() in data for s in secrets):
            continue
        hits.append(path)
        if path.suffix == ".wandb":
            logger.warning("%s contains a secret environment value; do not sync it", path)
            continue
        text = data.decode("utf-8", errors="surrogateescape")
        write_atomic(path, scrub_text(text, secrets).encode("utf-8", errors="surrogateescape"))
    return hits
