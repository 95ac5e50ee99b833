"""Every spec error is found before anything runs, and names the stage and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nbops.errors import NbopsError
from nbops.pipeline import SpecError, load_spec, parse_overrides, validate
from nbops.pipeline._graph import StageGraph, render
from tests.pipeline.conftest import write_notebook, write_spec


def problems(root: Path, overrides: dict[str, Any] | None = None) -> list[str]:
    with pytest.raises(SpecError) as info:
        validate(load_spec(root), overrides)
    return info.value.problems


@pytest.fixture
def project(isolated_env: Path) -> Path:
    write_notebook(isolated_env / "a.ipynb", "lr = 0.1\nname = 'x'\nlayers = [1, 2]", "pass")
    write_notebook(isolated_env / "noparams.ipynb", None, "pass")
    return isolated_env


def test_missing_spec_says_how_to_create_one(isolated_env: Path) -> None:
    with pytest.raises(SpecError, match="nbops init"):
        load_spec(isolated_env)


def test_unknown_keys_with_suggestions(project: Path) -> None:
    write_spec(project, {"stage": {}, "stages": {"a": {"notebook": "a.ipynb", "parms": {}}}})
    with pytest.raises(SpecError) as info:
        load_spec(project)
    text = str(info.value)
    assert "unknown top-level key 'stage' (did you mean 'stages'?)" in text
    assert "stage 'a': unknown key 'parms' (did you mean 'params'?)" in text


def test_missing_notebook_and_bad_values(project: Path) -> None:
    write_spec(
        project,
        {
            "stages": {
                "a": {"notebook": "nope.ipynb"},
                "b": {"notebook": "a.ipynb", "timeout": -1, "gates": {"acc": "at least 0.9"}},
                "c": {"notebook": "a.ipynb", "outs": ["../outside"]},
            }
        },
    )
    with pytest.raises(SpecError) as info:
        validate(load_spec(project))
    text = str(info.value)
    assert "stage 'b': timeout must be a positive number" in text
    assert "stage 'b': gate acc: 'at least 0.9' is not a condition" in text
    assert "stage 'c': outs path '../outside' must be relative" in text


def test_notebook_missing_on_disk(project: Path) -> None:
    write_spec(project, {"stages": {"a": {"notebook": "nope.ipynb"}}})
    assert problems(project) == ["stage 'a': notebook nope.ipynb does not exist"]


def test_cycle(project: Path) -> None:
    write_spec(
        project,
        {
            "stages": {
                "a": {"notebook": "a.ipynb", "deps": ["y"], "outs": ["x"]},
                "b": {"notebook": "a.ipynb", "deps": ["x"], "outs": ["y"]},
            }
        },
    )
    [problem] = problems(project)
    assert problem.startswith("the stages form a cycle: ")
    assert "a -> b -> a" in problem or "b -> a -> b" in problem


def test_two_writers_of_one_output(project: Path) -> None:
    write_spec(
        project,
        {
            "stages": {
                "a": {"notebook": "a.ipynb", "outs": ["data"]},
                "b": {"notebook": "a.ipynb", "outs": ["data/x.csv"]},
            }
        },
    )
    [problem] = problems(project)
    assert "stages 'a' and 'b' both write" in problem


def test_no_parameters_cell(project: Path) -> None:
    write_spec(project, {"stages": {"a": {"notebook": "noparams.ipynb", "params": {"x": 1}}}})
    [problem] = problems(project)
    assert "stage 'a'" in problem and "no cell tagged 'parameters'" in problem


def test_undeclared_parameter_and_wrong_type(project: Path) -> None:
    write_spec(
        project,
        {
            "stages": {
                "a": {"notebook": "a.ipynb", "params": {"lrr": 0.2, "name": 3, "layers": [4]}}
            }
        },
    )
    found = problems(project)
    assert any("'lrr' is not declared" in p and "did you mean 'lr'" in p for p in found)
    assert any("'name' is declared as str" in p and "given int 3" in p for p in found)
    assert len(found) == 2  # a list for a list is fine


def test_int_for_float_is_accepted_and_override_checked(project: Path) -> None:
    write_spec(project, {"stages": {"a": {"notebook": "a.ipynb", "params": {"lr": 1}}}})
    validate(load_spec(project))
    found = problems(project, parse_overrides(["a.lr=fast", "z.k=1"]))
    assert any("there is no stage 'z'" in p for p in found)
    assert any("'lr' is declared as float" in p for p in found)


def test_missing_dep_nobody_writes(project: Path) -> None:
    write_spec(project, {"stages": {"a": {"notebook": "a.ipynb", "deps": ["raw.csv"]}}})
    assert problems(project) == ["stage 'a': dep 'raw.csv' does not exist and no stage writes it"]


def test_overrides_parse() -> None:
    assert parse_overrides(["train.depth=6", "train.name=abc", "p.f=0.5", "p.l=[1, 2]"]) == {
        "train": {"depth": 6, "name": "abc"},
        "p": {"f": 0.5, "l": [1, 2]},
    }
    with pytest.raises(NbopsError, match=r"STAGE\.KEY=VALUE"):
        parse_overrides(["depth=6"])


def test_graph_order_and_drawings(project: Path) -> None:
    write_spec(
        project,
        {
            "stages": {
                "report": {"notebook": "a.ipynb", "deps": ["b.txt"]},
                "make": {"notebook": "a.ipynb", "outs": ["data"]},
                "use": {"notebook": "a.ipynb", "deps": ["data/part.csv"], "outs": ["b.txt"]},
                "extra": {"notebook": "a.ipynb", "after": ["make"]},
            }
        },
    )
    spec = load_spec(project)
    graph = validate(spec)
    assert isinstance(graph, StageGraph)
    assert graph.topological() == ["make", "use", "report", "extra"]
    assert graph.upstream["use"] == ("make",)
    assert sorted(graph.downstream("make")) == ["extra", "report", "use"]
    assert graph.closure(["report"]) == {"report", "use", "make"}
    assert "make --> use" in render(graph, spec.stages, "mermaid")
    assert '"use" -> "report";' in render(graph, spec.stages, "dot")
    assert "report (a.ipynb)  <- use" in render(graph, spec.stages, "text")


def test_yaml_1_2_numbers_in_the_spec_and_overrides(project: Path) -> None:
    (project / "nbops.yaml").write_text(
        "stages:\n  a:\n    notebook: a.ipynb\n    params:\n      lr: 1e-3\n"
    )
    assert load_spec(project).stages["a"].params == {"lr": 0.001}
    validate(load_spec(project))  # a float for the float parameter: no problem
    assert parse_overrides(["a.lr=1e-3", "a.n=-2E+2", "a.s=1_000", "a.t=v1e3"]) == {
        "a": {"lr": 0.001, "n": -200.0, "s": 1000, "t": "v1e3"}
    }


def test_every_problem_at_once(project: Path) -> None:
    write_spec(
        project,
        {
            "stages": {
                "a": {"notebook": "a.ipynb", "parms": {}, "deps": ["x"], "outs": ["x"]},
                "b": {"notebook": "nope.ipynb", "timeout": -1},
                "c": {"notebook": "a.ipynb", "params": {"lrr": 1.0}, "deps": ["orphan.csv"]},
            }
        },
    )
    found = problems_loose(project)
    assert any("unknown key 'parms'" in p for p in found)  # shape
    assert any("timeout must be a positive number" in p for p in found)  # shape
    assert any("stage 'a': dep 'x' is its own out 'x'" in p for p in found)  # semantic
    assert any("'lrr' is not declared" in p for p in found)  # semantic
    assert any("dep 'orphan.csv' does not exist" in p for p in found)  # semantic


def problems_loose(root: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        validate(load_spec(root, strict=False))
    return info.value.problems


def test_a_stage_defined_twice_is_an_error(project: Path) -> None:
    (project / "nbops.yaml").write_text(
        "stages:\n  a:\n    notebook: a.ipynb\n  a:\n    notebook: noparams.ipynb\n"
    )
    with pytest.raises(SpecError, match=r"'a' is defined twice \(lines 2 and 4\)"):
        load_spec(project)


def test_a_kernel_that_is_not_installed_is_found_before_anything_runs(project: Path) -> None:
    from nbops.pipeline import run_pipeline

    write_spec(
        project,
        {
            "stages": {
                "a": {"notebook": "a.ipynb", "kernel": "python-nope", "outs": ["o"]},
                "r": {"notebook": "a.ipynb", "kernel": "ir", "outs": ["p"]},
            }
        },
    )
    with pytest.raises(SpecError) as info:
        run_pipeline(project, report=lambda _line: None)
    text = str(info.value)
    assert "the Jupyter kernel 'python-nope' is not installed" in text
    assert "python -m ipykernel install --user --name python-nope" in text
    assert "IRkernel::installspec()" in text
    assert not (project / ".nbops" / "executed").exists()


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("params.yaml", "train:\n  lr: 1e-3\n  depth: 4\nother: {x: 1}\n"),
        ("params.json", '{"train": {"lr": 0.001, "depth": 4}, "other": {"x": 1}}'),
        ("params.toml", "[train]\nlr = 0.001\ndepth = 4\n[other]\nx = 1\n"),
    ],
)
def test_params_from_a_file_are_tracked_per_key(isolated_env: Path, name: str, text: str) -> None:
    from nbops.pipeline._hashing import HashCache
    from nbops.pipeline._secrets import Sealer
    from nbops.pipeline._status import fingerprint, input_reasons

    root = isolated_env
    write_notebook(root / "t.ipynb", "lr = 0.1\ndepth = 2", "pass")
    (root / name).write_text(text)
    write_spec(
        root,
        {
            "stages": {
                "t": {
                    "notebook": "t.ipynb",
                    "params": {"file": name, "keys": ["train.lr", "train.depth"]},
                }
            }
        },
    )
    spec = load_spec(root)
    validate(spec)
    assert spec.stages["t"].params == {"lr": 0.001, "depth": 4}
    assert spec.stages["t"].params_file == name
    from nbops.pipeline._lock import LockEntry

    cache = HashCache(root / "hc.json")
    fp = fingerprint(spec, spec.stages["t"], {}, cache)
    entry = LockEntry(
        notebook="t.ipynb", code=fp.code, params=dict(fp.params), deps={}, outs={}, kernel="python3"
    )
    (root / name).write_text(
        text.replace("x = 1", "x = 2").replace('"x": 1', '"x": 2').replace("x: 1", "x: 2")
    )
    fp = fingerprint(load_spec(root), spec.stages["t"], {}, cache)
    assert input_reasons(fp, entry, Sealer(b"k")) == []  # a key the stage does not use
    (root / name).write_text(text.replace("depth = 4", "depth = 5").replace(": 4", ": 5"))
    changed = load_spec(root)
    fp = fingerprint(changed, changed.stages["t"], {}, cache)
    assert input_reasons(fp, entry, Sealer(b"k")) == ["param depth changed: 4 -> 5"]


def test_params_file_problems_are_reported(project: Path) -> None:
    (project / "p.yaml").write_text("train: {lr: 0.1}\n")
    write_spec(
        project,
        {
            "stages": {
                "a": {"notebook": "a.ipynb", "params": {"file": "p.yaml", "keys": ["train.nope"]}},
                "b": {"notebook": "a.ipynb", "params": {"file": "missing.yaml", "keys": ["x"]}},
            }
        },
    )
    found = problems_loose(project)
    assert "stage 'a': params file p.yaml has no key 'train.nope'" in found
    assert "stage 'b': params file missing.yaml does not exist" in found
