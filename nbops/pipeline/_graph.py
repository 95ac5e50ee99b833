"""The stage graph: edges from outs to deps (and ``after``), order, and drawings of it."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nbops.pipeline._spec import PipelineSpec, Stage


def _covers(out: str, path: str) -> bool:
    """True when ``path`` is ``out`` or lies inside the folder ``out``."""
    return path == out or path.startswith(out + "/")


@dataclass(frozen=True)
class StageGraph:
    """``upstream[s]``: the stages ``s`` needs, in spec order."""

    order: tuple[str, ...]
    upstream: Mapping[str, tuple[str, ...]]

    @classmethod
    def build(cls, spec: PipelineSpec) -> StageGraph:
        """Derive edges; raises nothing (see :func:`find_cycle` and validation)."""
        writers = {out: s.name for s in spec.stages.values() for out in s.outs}
        upstream: dict[str, tuple[str, ...]] = {}
        for stage in spec.stages.values():
            needs = [
                writers[o]
                for dep in stage.deps
                for o in writers
                if _covers(o, dep) or _covers(dep, o)
            ]
            needs += [a for a in stage.after if a in spec.stages]
            upstream[stage.name] = tuple(dict.fromkeys(n for n in needs if n != stage.name))
        return cls(order=tuple(spec.stages), upstream=upstream)

    def downstream(self, name: str) -> list[str]:
        """Stages that need ``name``, directly or not."""
        found: list[str] = []
        frontier = [name]
        while frontier:
            current = frontier.pop()
            for stage, needs in self.upstream.items():
                if current in needs and stage not in found:
                    found.append(stage)
                    frontier.append(stage)
        return found

    def closure(self, targets: Iterable[str]) -> set[str]:
        """``targets`` and everything they need."""
        found: set[str] = set()
        frontier = list(targets)
        while frontier:
            current = frontier.pop()
            if current not in found:
                found.add(current)
                frontier.extend(self.upstream.get(current, ()))
        return found

    def find_cycle(self) -> list[str] | None:
        """Return one cycle as ``[a, b, ..., a]``, or None."""
        state: dict[str, int] = {}
        path: list[str] = []

        def visit(node: str) -> list[str] | None:
            state[node] = 1
            path.append(node)
            for up in self.upstream.get(node, ()):
                if state.get(up) == 1:
                    return [*path[path.index(up) :], up]
                if up not in state and (cycle := visit(up)):
                    return cycle
            state[node] = 2
            path.pop()
            return None

        for node in self.order:
            if node not in state and (cycle := visit(node)):
                return list(reversed(cycle))
        return None

    def topological(self, only: set[str] | None = None) -> list[str]:
        """Stages in an order where each comes after what it needs; among the stages ready at
        once, the one written first in ``nbops.yaml`` goes first."""
        wanted = [s for s in self.order if only is None or s in only]
        position = {name: i for i, name in enumerate(wanted)}
        waiting = {s: {u for u in self.upstream[s] if u in position} for s in wanted}
        ready = [position[s] for s in wanted if not waiting[s]]
        heapq.heapify(ready)
        done: list[str] = []
        while ready:
            stage = wanted[heapq.heappop(ready)]
            done.append(stage)
            for other in wanted:
                if stage in waiting[other]:
                    waiting[other].discard(stage)
                    if not waiting[other]:
                        heapq.heappush(ready, position[other])
        if len(done) < len(wanted):
            raise ValueError("the stage graph has a cycle")
        return done


def render(graph: StageGraph, stages: Mapping[str, Stage], fmt: str = "text") -> str:
    """Draw the graph as indented text, Mermaid (``flowchart LR``) or Graphviz dot."""
    edges = [(up, s) for s in graph.order for up in graph.upstream[s]]
    if fmt == "mermaid":
        lines = ["flowchart LR"]
        lines += [f'    {s}["{s}<br/>{stages[s].notebook}"]' for s in graph.order]
        lines += [f"    {a} --> {b}" for a, b in edges]
        return "\n".join(lines)
    if fmt == "dot":
        lines = ["digraph pipeline {", "    rankdir=LR;", "    node [shape=box];"]
        lines += [f'    "{s}" [label="{s}\\n{stages[s].notebook}"];' for s in graph.order]
        lines += [f'    "{a}" -> "{b}";' for a, b in edges]
        return "\n".join([*lines, "}"])
    lines = []
    for s in graph.topological():
        needs = graph.upstream[s]
        arrow = f"  <- {', '.join(needs)}" if needs else ""
        lines.append(f"{s} ({stages[s].notebook}){arrow}")
    return "\n".join(lines)
