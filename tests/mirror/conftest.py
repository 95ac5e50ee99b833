"""Hermetic W&B environment: every wandb file goes under tmp_path, no key, offline by default."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

_WANDB_VARS = (
    "WANDB_API_KEY",
    "WANDB_MODE",
    "WANDB_BASE_URL",
    "WANDB_DIR",
    "WANDB_SILENT",
    "NBOPS_WANDB",
    "WANDB_ENTITY",
    "WANDB_PROJECT",
    "WANDB_RUN_ID",
)


@pytest.fixture
def wandb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point wandb's dirs, netrc and HOME into ``tmp_path``; return the run directory root."""
    for name in _WANDB_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(home / ".netrc"))
    for var, sub in (
        ("WANDB_CONFIG_DIR", "config"),
        ("WANDB_CACHE_DIR", "cache"),
        ("WANDB_DATA_DIR", "data"),
    ):
        monkeypatch.setenv(var, str(tmp_path / sub))
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("WANDB_DIR", str(runs))
    return runs


@pytest.fixture
def closed_port_url() -> str:
    """A localhost URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
