"""``nbops init``: a pipeline project to start from (spec, notebook, CI workflow)."""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path

from nbops.errors import NbopsError
from nbops.fileio import write_atomic

_CI_FILES = {
    "github": ("github-actions.yml", ".github/workflows/nbops.yml"),
    "gitlab": ("gitlab-ci.yml", ".gitlab-ci.yml"),
}

_CELLS = [
    (
        "markdown",
        "# Analysis\n\nA stage of the nbops pipeline. The next cell, tagged `parameters`, "
        "holds the defaults; `nbops.yaml` overrides them.",
    ),
    ("parameters", "n_samples = 200\nseed = 0"),
    (
        "code",
        "import json\nimport random\nfrom pathlib import Path\n\nimport nbops\n\n"
        "rng = random.Random(seed)\nvalues = [rng.gauss(1.0, 0.5) for _ in range(n_samples)]\n"
        "mean_value = sum(values) / len(values)\n"
        'nbops.log({"mean_value": mean_value})  # gates in nbops.yaml read logged metrics',
    ),
    (
        "code",
        'Path("results").mkdir(exist_ok=True)\n'
        'Path("results/summary.json").write_text(json.dumps({"mean": mean_value}))',
    ),
]


def _template(name: str) -> str:
    return resources.files("nbops.pipeline").joinpath("templates").joinpath(name).read_text("utf-8")


def _notebook() -> str:
    cells = []
    for i, (kind, source) in enumerate(_CELLS):
        cell: dict[str, object] = {
            "cell_type": "markdown" if kind == "markdown" else "code",
            "id": f"cell-{i}",
            "metadata": {},
            "source": source,
        }
        if kind != "markdown":
            cell.update(outputs=[], execution_count=None)
        if kind == "parameters":
            cell["metadata"] = {"tags": ["parameters"]}
        cells.append(cell)
    return (
        json.dumps(
            {
                "nbformat": 4,
                "nbformat_minor": 5,
                "cells": cells,
                "metadata": {
                    "kernelspec": {
                        "name": "python3",
                        "display_name": "Python 3",
                        "language": "python",
                    }
                },
            },
            indent=1,
        )
        + "\n"
    )


#: import name -> distribution name, where they differ or need an nbops extra
_DISTRIBUTIONS = {
    "sklearn": "scikit-learn",
    "skops": "nbops[cards]",
    "jinja2": "nbops[cards]",
    "optuna": "nbops[sweeps]",
    "scipy": "nbops[monitor]",
    "pyarrow": "nbops[monitor]",
    "yaml": "pyyaml",
    "PIL": "pillow",
    "cv2": "opencv-python",
}
#: already installed with nbops itself
_WITH_NBOPS = {"nbops", "IPython", "ipykernel", "nbformat", "papermill", "pandas", "wandb"}


def notebook_requirements(notebook_json: str) -> list[str]:
    """Distributions a notebook imports, beyond the standard library and what nbops brings."""
    import ast

    found: set[str] = set()
    for cell in json.loads(notebook_json).get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    third_party = sorted(found - set(sys.stdlib_module_names) - _WITH_NBOPS)
    return sorted({_DISTRIBUTIONS.get(name, name) for name in third_party})


def default_nbops_requirement() -> str:
    """``nbops==<the running version>``."""
    from nbops._version import __version__

    return f"nbops=={__version__}"


def _requirements(nbops_from: str, notebooks: list[str]) -> str:
    extras = sorted({r for nb in notebooks for r in notebook_requirements(nb)})
    extra_names = sorted({r[len("nbops[") : -1] for r in extras if r.startswith("nbops[")})
    line = nbops_from
    if extra_names and "[" not in line and not line.endswith(".whl") and "@" not in line:
        name, sep, version = line.partition("==")
        line = f"{name}[{','.join(extra_names)}]{sep}{version}"
    others = [r for r in extras if not r.startswith("nbops[")]
    return (
        "# What the pipeline needs (written by `nbops init`); CI installs from this file.\n"
        "# Where nbops comes from is the next line; change it to what your team uses:\n"
        "#   a package index:  nbops==X.Y.Z  (with extras: nbops[cards]==X.Y.Z)\n"
        "#   a wheel:          ./wheels/nbops-X.Y.Z-py3-none-any.whl\n"
        "#   a git URL:        nbops @ git+https://github.com/OWNER/nbops@vX.Y.Z\n"
        f"{line}\n" + "".join(f"{r}\n" for r in others)
    )


def _gitignore(outs: list[str], commit_outs: bool) -> str:
    lines = [
        "# nbops' local store (runs, cached objects, executed notebooks) and W&B's offline files",
        ".nbops/",
        "wandb/",
        ".ipynb_checkpoints/",
        "__pycache__/",
        "# nbops.lock is committed: it records what each stage last ran with",
    ]
    if not commit_outs:
        lines.append("# the pipeline's outs: rebuilt by `nbops run`, or fetched by `nbops pull`")
        lines += [f"/{out}" for out in outs]
    return "\n".join(lines) + "\n"


def scaffold(
    directory: Path,
    *,
    ci: str = "github",
    force: bool = False,
    nbops_from: str | None = None,
    commit_outs: bool = False,
) -> list[Path]:
    """Write ``nbops.yaml``, ``notebooks/analysis.ipynb``, ``requirements.txt``, ``.gitignore``
    and a CI workflow; return the paths.

    ``nbops_from`` is the requirement line CI installs nbops from (default: this version from
    a package index). The pipeline's outs go in ``.gitignore`` unless ``commit_outs``.
    Refuses to overwrite existing files (listing them) unless ``force``.
    """
    from nbops.pipeline._spec import parse_spec
    from nbops.pipeline._yaml import yaml_load

    spec_text = _template("nbops.yaml")
    notebook = _notebook()
    outs = [o for s in parse_spec(yaml_load(spec_text), directory).stages.values() for o in s.outs]
    files: dict[Path, str] = {
        directory / "nbops.yaml": spec_text,
        directory / "notebooks" / "analysis.ipynb": notebook,
        directory / "requirements.txt": _requirements(
            nbops_from or default_nbops_requirement(), [notebook]
        ),
        directory / ".gitignore": _gitignore(outs, commit_outs),
    }
    for kind in ("github", "gitlab") if ci == "both" else () if ci == "none" else (ci,):
        template, target = _CI_FILES[kind]
        files[directory / target] = _template(template)
    existing = [str(p) for p in files if p.exists()]
    if existing and not force:
        raise NbopsError(f"refusing to overwrite {', '.join(existing)}; use --force to replace")
    for path, text in files.items():
        write_atomic(path, text)
    return list(files)
