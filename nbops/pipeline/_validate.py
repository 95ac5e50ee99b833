"""Everything checked before a pipeline runs: notebooks, parameters, the graph, outputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nbops.execute import (
    NotebookError,
    ParameterError,
    check_parameters,
    declared_parameters,
    kernelspec_name,
    read_notebook,
)
from nbops.pipeline._graph import StageGraph, _covers
from nbops.pipeline._spec import PipelineSpec, SpecError, Stage


def effective_params(stage: Stage, overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The stage's params with ``-p STAGE.KEY=VALUE`` overrides applied."""
    return {**stage.params, **overrides.get(stage.name, {})}


def validate(
    spec: PipelineSpec,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    kernels: bool = False,
) -> StageGraph:
    """Check the whole spec; raise one :class:`SpecError` listing every problem: its shape
    (kept by ``load_spec(strict=False)``), notebooks, parameters, the graph, and with
    ``kernels`` whether every stage's Jupyter kernel is installed."""
    overrides = overrides or {}
    problems: list[str] = list(spec.problems)
    for name in overrides:
        if name not in spec.stages:
            problems.append(f"-p {name}.…: there is no stage {name!r}")
    outs: dict[str, str] = {}
    for stage in spec.stages.values():
        for dep in stage.deps:
            own = [o for o in stage.outs if _covers(o, dep) or _covers(dep, o)]
            if own:
                problems.append(
                    f"stage {stage.name!r}: dep {dep!r} is its own out {own[0]!r}; a stage "
                    "cannot read what it writes (remove it from deps, or split the stage)"
                )
        for unknown in [a for a in stage.after if a not in spec.stages]:
            problems.append(f"stage {stage.name!r}: after names unknown stage {unknown!r}")
        for out in stage.outs:
            for other_out, other in outs.items():
                if _covers(out, other_out) or _covers(other_out, out):
                    problems.append(
                        f"stages {other!r} and {stage.name!r} both write {out!r}"
                        + ("" if out == other_out else f" (and {other_out!r})")
                        + "; each output must have one writer"
                    )
            outs[out] = stage.name
        notebook = spec.root / stage.notebook
        if not notebook.is_file():
            problems.append(f"stage {stage.name!r}: notebook {stage.notebook} does not exist")
            continue
        params = effective_params(stage, overrides)
        try:
            declared = declared_parameters(notebook) if params else None
            if params:
                check_parameters(notebook, params, declared)
        except NotebookError as exc:
            problems.append(f"stage {stage.name!r}: {exc}")
        except ParameterError as exc:
            problems += [f"stage {stage.name!r}: {p}" for p in exc.problems]
    writers = set(outs)
    for stage in spec.stages.values():
        for dep in stage.deps:
            produced = any(_covers(o, dep) or _covers(dep, o) for o in writers)
            if not produced and not (spec.root / dep).exists():
                problems.append(
                    f"stage {stage.name!r}: dep {dep!r} does not exist and no stage writes it"
                )
    graph = StageGraph.build(spec)
    cycle = graph.find_cycle()
    if cycle:
        problems.append(
            "the stages form a cycle: "
            + " -> ".join(cycle)
            + "; a stage cannot need its own outputs"
        )
    if kernels:
        problems += missing_kernels(spec)
    if problems:
        raise SpecError(str(spec.path), problems)
    return graph


def _kernel_hint(name: str) -> str:
    lowered = name.lower()
    if lowered in ("ir", "r") or lowered.startswith("ir"):
        return "in R: install.packages('IRkernel'); IRkernel::installspec()"
    if "julia" in lowered:
        return 'in Julia: using Pkg; Pkg.add("IJulia")'
    if "python" in lowered or lowered.startswith("py"):
        return (
            "in the environment the notebook needs: python -m pip install ipykernel && "
            f"python -m ipykernel install --user --name {name}"
        )
    return f"install the Jupyter kernel {name!r}, or set the stage's kernel: to an installed one"


def missing_kernels(spec: PipelineSpec) -> list[str]:
    """One problem per stage whose kernel is not installed, each with a hint for that kernel."""
    from jupyter_client.kernelspec import KernelSpecManager

    from nbops.pipeline._status import DEFAULT_KERNEL

    installed = set(KernelSpecManager().find_kernel_specs())
    problems = []
    for stage in spec.stages.values():
        try:
            kernel = stage.kernel or kernelspec_name(
                read_notebook(spec.root / stage.notebook), DEFAULT_KERNEL
            )
        except NotebookError:
            continue  # reported as a notebook problem
        if kernel not in installed:
            problems.append(
                f"stage {stage.name!r}: the Jupyter kernel {kernel!r} is not installed "
                f"(installed: {', '.join(sorted(installed)) or 'none'}); {_kernel_hint(kernel)}"
            )
    return problems
