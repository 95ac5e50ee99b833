"""``nbops init``: a pipeline project to start from (spec, notebook, CI workflow)."""

from __future__ import annotations

import json
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


def scaffold(directory: Path, *, ci: str = "github", force: bool = False) -> list[Path]:
    """Write ``nbops.yaml``, ``notebooks/analysis.ipynb`` and a CI workflow; return the paths.

    Refuses to overwrite existing files (listing them) unless ``force``.
    """
    files: dict[Path, str] = {
        directory / "nbops.yaml": _template("nbops.yaml"),
        directory / "notebooks" / "analysis.ipynb": _notebook(),
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
