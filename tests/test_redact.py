from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nbops.redact import (
    REDACTED,
    SecretRules,
    configure_secrets,
    is_secret_name,
    redact,
    scrub_text,
    secret_rules,
    secret_values,
    word_parts,
)


@pytest.fixture(autouse=True)
def project_rules() -> Iterator[None]:
    configure_secrets(None)
    yield
    configure_secrets(None)


@pytest.mark.parametrize(
    "name",
    [
        "WANDB_API_KEY",
        "api_key",
        "apiKey",
        "API_TOKEN",
        "APIToken",
        "GITHUB_TOKEN",
        "db_password",
        "db-password",
        "secret",
        "client_secret",
        "aws_secret_access_key",
        "AWS_SECRET_ACCESS_KEY",
        "PGPASSWORD",
        "private_key",
        "auth",
        "SESSION_ID",
        "KEY",
        "my_key",
        "GH_PAT",
        "refresh_token",
        "cookie",
        "sentry_dsn",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "lr",
        "monkey",
        "keyboard_layout",
        "key_size",
        "path",
        "n_estimators",
        "patience",
        "max_tokens",
        "n_tokens",
        "tokenizer",
        "tokenizer_name",
        "author",
        "authors",
        "oauth_scope",
        "secretary",
        "session_length",
        "PWD",
    ],
)
def test_ordinary_names(name: str) -> None:
    assert not is_secret_name(name)


def test_word_parts_split_snake_kebab_and_camel_case() -> None:
    assert word_parts("awsSecret_ACCESS-key") == ("aws", "secret", "access", "key")
    assert word_parts("HTTPServerToken2") == ("http", "server", "token", "2")


def test_the_project_extends_and_relaxes_the_rules(isolated_env: Path) -> None:
    (isolated_env / "nbops.yaml").write_text(
        "secrets:\n"
        "  words: [ssn]\n"
        "  ignore_words: [auth]\n"
        "  names: [customer_email]\n"
        "  allow: [sort_key]\n"
    )
    assert is_secret_name("patient_ssn") and is_secret_name("Customer_Email")
    assert not is_secret_name("auth") and not is_secret_name("sort_key")
    assert is_secret_name("api_key") and is_secret_name("db_password")  # defaults still hold
    assert redact({"patient_ssn": "123", "auth": "basic"}, []) == {
        "patient_ssn": REDACTED,
        "auth": "basic",
    }


def test_the_rules_follow_edits_of_the_configuration(isolated_env: Path) -> None:
    config = isolated_env / "nbops.yaml"
    assert not is_secret_name("pin_code")
    config.write_text("secrets:\n  words: [pin]\n")
    assert is_secret_name("pin_code")
    config.write_text("stages: {}\n")
    import os

    os.utime(config, (1, 1))  # a different mtime even on a coarse clock
    assert not is_secret_name("pin_code")


def test_a_broken_section_keeps_the_defaults(
    isolated_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (isolated_env / "nbops.yaml").write_text("secrets:\n  words: 3\n")
    assert secret_rules() == SecretRules()
    assert "secrets.words" in caplog.text and "list of strings" in caplog.text


def test_rules_set_in_code_win() -> None:
    configure_secrets(SecretRules().extended(allow=["api_key"]))
    assert not is_secret_name("api_key") and is_secret_name("token")


def test_secret_values_come_from_secret_named_variables_only() -> None:
    env = {
        "MY_TOKEN": "abcdef123",
        "SHORT_TOKEN": "abc",
        "HOME": "/root/secret-home",
        "MAX_TOKENS": "4096000",
    }
    assert secret_values(env) == ["abcdef123"]


def test_redact_masks_keys_and_scrubs_values_recursively() -> None:
    data = {
        "password": "hunter22",
        "nested": {"token": 1, "url": "x?t=abcdef123"},
        "list": ["abcdef123", 3],
        "lr": 0.1,
        "max_tokens": 512,
        "author": "ada",
    }
    assert redact(data, ["abcdef123"]) == {
        "password": REDACTED,
        "nested": {"token": REDACTED, "url": f"x?t={REDACTED}"},
        "list": [REDACTED, 3],
        "lr": 0.1,
        "max_tokens": 512,
        "author": "ada",
    }


def test_scrub_text_uses_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_SECRET", "s3cr3t-value")
    assert scrub_text("connect with s3cr3t-value now") == f"connect with {REDACTED} now"


def test_secret_values_follow_every_change_of_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nbops.redact import secret_values

    first = "tok-0123456789abcdef"
    monkeypatch.delenv("NBOPS_TEST_API_TOKEN", raising=False)
    assert first not in secret_values()
    secret_values()  # answered from the cache now
    monkeypatch.setenv("NBOPS_TEST_API_TOKEN", first)
    assert first in secret_values()
    second = "tok-fedcba9876543210"
    monkeypatch.setenv("NBOPS_TEST_API_TOKEN", second)  # same variables, a new value
    assert second in secret_values() and first not in secret_values()
    monkeypatch.delenv("NBOPS_TEST_API_TOKEN")
    assert second not in secret_values()
    assert secret_values({"MY_PASSWORD": "hunter2-hunter2"}) == ["hunter2-hunter2"]
