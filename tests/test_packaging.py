"""Packaging: one version, environment.yml equal to the ``dev`` extra, the files a user expects."""

from __future__ import annotations

import re
import sys
from typing import Any

import yaml

from tests.conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - mypy brings tomli on 3.10
    import tomli as tomllib

#: conda-forge names of packages PyPI names differently.
_CONDA_NAMES = {"psycopg2": "psycopg2-binary"}
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?\s*(.*?)\s*$")


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _parse(requirement: str) -> tuple[str, list[str], str]:
    match = _REQUIREMENT.match(requirement)
    assert match, f"cannot read requirement {requirement!r}"
    name = re.sub(r"[-_.]+", "-", match[1]).lower()
    extras = [e.strip() for e in (match[2] or "").split(",") if e.strip()]
    return name, extras, match[3].replace(" ", "")


def _dev_requirements() -> dict[str, str]:
    """Every package ``pip install -e ".[dev]"`` asks for: core, the extras dev names, dev's own."""
    project = _pyproject()["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    wanted: dict[str, str] = {}

    def add(requirements: list[str]) -> None:
        for requirement in requirements:
            name, names, spec = _parse(requirement)
            if name == "nbops":
                for extra in names:
                    add(extras[extra])
                continue
            assert wanted.get(name, spec) == spec, f"{name} is pinned twice: {spec}, {wanted[name]}"
            wanted[name] = spec

    add(project["dependencies"])
    add(extras["dev"])
    return wanted


def _environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    listed: dict[str, str] = {}
    for entry in env["dependencies"]:
        entries = entry["pip"] if isinstance(entry, dict) else [entry]
        for requirement in entries:
            if requirement.startswith("-e") or requirement.split(">")[0] in {"python", "pip"}:
                continue
            name, _, spec = _parse(requirement)
            if not isinstance(entry, dict):
                name = _CONDA_NAMES.get(name, name)
            assert name not in listed, f"environment.yml lists {name} twice"
            listed[name] = spec
    return listed


def test_environment_yml_is_exactly_the_dev_extra() -> None:
    assert _environment_requirements() == _dev_requirements()


def test_environment_yml_asks_for_the_python_pyproject_supports() -> None:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python == "python" + _pyproject()["project"]["requires-python"]


def test_the_version_has_one_source() -> None:
    import nbops
    from nbops._version import __version__

    project = _pyproject()
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "nbops._version.__version__"}
    assert nbops.__version__ == __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]\d+|rc\d+|\.dev\d+)?", __version__)


def test_postgres_driver_is_its_own_extra() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    assert [_parse(r)[0] for r in extras["postgres"]] == ["psycopg2-binary"]
    for name, requirements in extras.items():
        if name != "postgres":
            assert "psycopg2-binary" not in {_parse(r)[0] for r in requirements}


def test_license_changelog_contributing_and_pre_commit_exist() -> None:
    assert "Apache License" in (REPO / "LICENSE").read_text()
    assert "Version 2.0" in (REPO / "LICENSE").read_text()
    assert _pyproject()["project"]["license"] == "Apache-2.0"
    assert "## [Unreleased]" in (REPO / "CHANGELOG.md").read_text()
    assert "--strict-markers" in (REPO / "CONTRIBUTING.md").read_text()
    hooks = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    ids = {hook["id"] for repo in hooks["repos"] for hook in repo["hooks"]}
    assert {"ruff", "ruff-format", "mypy"} <= ids


def test_pytest_rejects_unknown_markers_and_hides_no_whole_warning_category() -> None:
    options = _pyproject()["tool"]["pytest"]["ini_options"]
    assert "--strict-markers" in options["addopts"]
    for rule in options.get("filterwarnings", []):
        action, *fields = rule.split(":")
        if action == "ignore":
            # action:message:category:module — an ignore names the third-party module warning.
            assert len(fields) >= 3 and fields[2], f"{rule!r} must name the warning's module"
            assert not fields[2].startswith("nbops"), f"{rule!r} hides nbops's own warnings"


def test_mypy_is_strict_and_ruff_refuses_blind_excepts() -> None:
    tool = _pyproject()["tool"]
    assert tool["mypy"]["strict"] is True
    assert "BLE" in tool["ruff"]["lint"]["select"]


def test_a_deprecation_at_an_nbops_call_site_fails_the_tests() -> None:
    import warnings

    import pytest

    with pytest.raises(FutureWarning, match="deprecated"):
        warnings.warn_explicit(
            "Trial.suggest_uniform is deprecated", FutureWarning, "x.py", 1, module="nbops.sweeps"
        )
