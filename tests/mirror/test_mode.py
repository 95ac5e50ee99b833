from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nbops.errors import InvalidValueError, NbopsError
from nbops.mirror import resolve_mode


@pytest.mark.parametrize(
    ("explicit", "env", "expected"),
    [
        ("disabled", {"NBOPS_WANDB": "online", "WANDB_API_KEY": "k" * 40}, "disabled"),
        ("ONLINE", {}, "online"),
        (None, {"NBOPS_WANDB": "offline", "WANDB_MODE": "online"}, "offline"),
        (None, {"NBOPS_WANDB": "disabled", "WANDB_API_KEY": "k" * 40}, "disabled"),
        (None, {"WANDB_MODE": "dryrun", "WANDB_API_KEY": "k" * 40}, "offline"),
        (None, {"WANDB_MODE": "run"}, "online"),
        (None, {"WANDB_MODE": "disabled"}, "disabled"),
        (None, {"NBOPS_WANDB": "", "WANDB_MODE": "offline"}, "offline"),
        (None, {}, "offline"),
        (None, {"WANDB_API_KEY": "k" * 40}, "online"),
        ("", {"WANDB_API_KEY": "k" * 40}, "online"),
    ],
)
def test_resolve_mode_table(
    explicit: str | None, env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    env = {"NETRC": str(tmp_path / "missing-netrc"), **env}
    assert resolve_mode(explicit, env) == expected


@pytest.mark.parametrize(
    ("host_line", "base_url", "expected"),
    [
        ("machine api.wandb.ai login user password " + "p" * 40, None, "online"),
        ("machine other.example login user password " + "p" * 40, None, "offline"),
        (
            "machine wandb.corp.example login user password x",
            "https://wandb.corp.example",
            "online",
        ),
        ("machine api.wandb.ai login user password x", "https://wandb.corp.example", "offline"),
    ],
)
def test_netrc_key_makes_online(
    tmp_path: Path, host_line: str, base_url: str | None, expected: str
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(host_line + "\n")
    netrc.chmod(0o600)
    env = {"NETRC": str(netrc)}
    if base_url:
        env["WANDB_BASE_URL"] = base_url
    assert resolve_mode(None, env) == expected


@pytest.mark.parametrize(
    ("explicit", "env"),
    [("sometimes", {}), (None, {"NBOPS_WANDB": "yes"}), (None, {"WANDB_MODE": "cloud"})],
)
def test_invalid_mode_names_choices(explicit: str | None, env: dict[str, str]) -> None:
    with pytest.raises(InvalidValueError, match="online, offline, disabled") as info:
        resolve_mode(explicit, env)
    assert isinstance(info.value, NbopsError)


def test_import_does_not_import_wandb() -> None:
    code = "import sys, nbops.mirror; assert 'wandb' not in sys.modules, 'wandb imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
