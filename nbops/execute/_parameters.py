"""A notebook's declared parameters (its cell tagged ``parameters``) and its code hash.

Standard library only (``json`` and ``ast``): pipelines check parameters and hash notebooks on
every ``nbops run``, including runs where everything is cached.
"""

from __future__ import annotations

import ast
import difflib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nbops import hashing
from nbops.errors import NbopsError
from nbops.redact import is_secret_name

PARAMETERS_TAG = "parameters"


class NotebookError(NbopsError):
    """A notebook cannot be read, or has no ``parameters`` cell where one is needed."""


class ParameterError(NbopsError, ValueError):
    """Parameters given to a notebook do not match what its ``parameters`` cell declares."""

    def __init__(self, notebook: str, problems: list[str]) -> None:
        self.notebook = notebook
        self.problems = problems
        super().__init__(f"{notebook}: " + "; ".join(problems))


@dataclass(frozen=True)
class Parameter:
    """One name assigned in the ``parameters`` cell."""

    name: str
    default: Any
    type_name: str  # int, float, str, bool, list, dict, none, or "expression" (not a literal)
    source: str


def read_notebook(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the notebook's JSON; raise :class:`NotebookError` saying what is wrong."""
    try:
        with open(path, encoding="utf-8") as fh:
            nb = json.load(fh)
    except FileNotFoundError:
        raise NotebookError(f"notebook {os.fspath(path)} does not exist") from None
    except (OSError, ValueError) as exc:
        raise NotebookError(f"cannot read notebook {os.fspath(path)}: {exc}") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{os.fspath(path)} is not a Jupyter notebook (nbformat 4)")
    return nb


def _source(cell: Mapping[str, Any]) -> str:
    raw = cell.get("source", "")
    return "".join(raw) if isinstance(raw, list) else str(raw)


def code_sources(nb: Mapping[str, Any]) -> list[str]:
    """Return the source of every code cell, in order."""
    return [_source(c) for c in nb["cells"] if c.get("cell_type") == "code"]


def code_hash(nb: Mapping[str, Any]) -> str:
    """Hash the code cells only (:func:`nbops.hashing.code_hash`): outputs, metadata, markdown
    and execution counts do not count."""
    return hashing.code_hash(code_sources(nb))


def kernelspec_name(nb: Mapping[str, Any], default: str = "python3") -> str:
    """The kernel named in the notebook's metadata, or ``default``."""
    spec = (nb.get("metadata") or {}).get("kernelspec") or {}
    return str(spec.get("name") or default)


def parameters_source(nb: Mapping[str, Any]) -> str | None:
    """Return the source of the first code cell tagged ``parameters``, or None."""
    for cell in nb["cells"]:
        tags = (cell.get("metadata") or {}).get("tags") or []
        if cell.get("cell_type") == "code" and PARAMETERS_TAG in tags:
            return _source(cell)
    return None


def _type_name(value: Any) -> str:
    if value is None:
        return "none"
    return type(value).__name__


def declared_parameters(path: str | os.PathLike[str]) -> dict[str, Parameter]:
    """Return the parameters declared in the notebook's ``parameters`` cell.

    Raises:
        NotebookError: The notebook is unreadable, has no cell tagged ``parameters``, or that
            cell is not valid Python.
    """
    nb = read_notebook(path)
    source = parameters_source(nb)
    if source is None:
        raise NotebookError(
            f"{os.fspath(path)} has no cell tagged 'parameters': add the tag to the cell that "
            "assigns the defaults (JupyterLab: Property Inspector > Cell Tags)"
        )
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise NotebookError(
            f"the parameters cell of {os.fspath(path)} is not valid Python: {exc}"
        ) from None
    found: dict[str, Parameter] = {}
    for node in tree.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for target in targets:
            if isinstance(target, ast.Name) and value is not None:
                text = ast.get_source_segment(source, value) or ""
                try:
                    default = ast.literal_eval(value)
                    type_name = _type_name(default)
                except ValueError:
                    default, type_name = None, "expression"
                found[target.id] = Parameter(target.id, default, type_name, text)
    return found


def _compatible(declared: Parameter, value: Any) -> bool:
    if declared.type_name in ("none", "expression"):
        return True
    if declared.type_name == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if declared.type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if declared.type_name == "list":
        return isinstance(value, (list, tuple))
    return _type_name(value) == declared.type_name


def check_parameters(
    path: str | os.PathLike[str],
    given: Mapping[str, Any],
    declared: Mapping[str, Parameter] | None = None,
) -> dict[str, Parameter]:
    """Refuse undeclared names and values whose type differs from the declared default.

    papermill only logs unknown names and runs with the defaults; nbops refuses, naming the
    closest declared name. Returns the declared parameters.
    """
    params = dict(declared) if declared is not None else declared_parameters(path)
    problems: list[str] = []
    for name, value in given.items():
        spec = params.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, list(params), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(sorted(params)) or "none"
            problems.append(
                f"parameter {name!r} is not declared in the parameters cell{hint}; "
                f"declared: {known}"
            )
        elif not _compatible(spec, value):
            problems.append(
                f"parameter {name!r} is declared as {spec.type_name} "
                f"({spec.source}) but was given {_type_name(value)}"
                + ("" if is_secret_name(name) else f" {value!r}")
            )
    if problems:
        raise ParameterError(os.fspath(path), problems)
    return params
