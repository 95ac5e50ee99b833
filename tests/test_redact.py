from __future__ import annotations

import pytest

from nbops.redact import REDACTED, is_secret_name, redact, scrub_text, secret_values


@pytest.mark.parametrize(
    "name",
    [
        "WANDB_API_KEY",
        "api_key",
        "GITHUB_TOKEN",
        "db-password",
        "AWS_SECRET_ACCESS_KEY",
        "PGPASSWORD",
        "private_key",
        "auth",
        "SESSION_ID",
        "KEY",
        "my_key",
        "GH_PAT",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["lr", "monkey", "keyboard_layout", "path", "n_estimators", "patience"]
)
def test_ordinary_names(name: str) -> None:
    assert not is_secret_name(name)


def test_secret_values_come_from_secret_named_variables_only() -> None:
    env = {"MY_TOKEN": "abcdef123", "SHORT_TOKEN": "abc", "HOME": "/root/secret-home"}
    assert secret_values(env) == ["abcdef123"]


def test_redact_masks_keys_and_scrubs_values_recursively() -> None:
    data = {
        "password": "hunter22",
        "nested": {"token": 1, "url": "x?t=abcdef123"},
        "list": ["abcdef123", 3],
        "lr": 0.1,
    }
    assert redact(data, ["abcdef123"]) == {
        "password": REDACTED,
        "nested": {"token": REDACTED, "url": f"x?t={REDACTED}"},
        "list": [REDACTED, 3],
        "lr": 0.1,
    }


def test_scrub_text_uses_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_SECRET", "s3cr3t-value")
    assert scrub_text("connect with s3cr3t-value now") == f"connect with {REDACTED} now"
