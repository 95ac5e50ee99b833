"""``foreach`` and ``matrix`` stages: one notebook over values, each a stage of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbops.errors import NbopsError
from nbops.pipeline import SpecError, load_spec, read_lock, run_pipeline
from tests.pipeline.conftest import STAMP, executions, write_notebook, write_spec


def _spec(root: Path, lrs: list[float], key: str = "matrix") -> None:
    axes = {"lr": lrs, "depth": [2]} if key == "matrix" else {"lr": lrs}
    write_spec(
        root,
        {
            "stages": {
                "train": {
                    "notebook": "t.ipynb",
                    "params": {"name": "m-${lr}"},
                    key: axes,
                    "outs": ["models/${name}-${lr}.txt"],
                },
                "report": {"notebook": "r.ipynb", "deps": ["models"], "after": []},
            }
        },
    )


def _notebooks(root: Path) -> None:
    write_notebook(
        root / "t.ipynb",
        "lr = 0.1\ndepth = 1\nname = ''",
        STAMP.format(name="train"),
        "Path('models').mkdir(exist_ok=True)\n"
        "Path('models', f'{name}-{lr}.txt').write_text(str(lr * depth))",
    )
    write_notebook(root / "r.ipynb", "", STAMP.format(name="report"))


def test_matrix_expands_to_stages_named_by_their_values(isolated_env: Path) -> None:
    _notebooks(isolated_env)
    _spec(isolated_env, [0.1, 0.01])
    spec = load_spec(isolated_env)
    assert list(spec.stages) == ["train@depth=2,lr=0.1", "train@depth=2,lr=0.01", "report"]
    first = spec.stages["train@depth=2,lr=0.1"]
    assert first.params == {"name": "m-0.1", "lr": 0.1, "depth": 2}
    assert first.outs == ("models/${name}-0.1.txt",)


@pytest.mark.kernel
def test_foreach_stages_are_cached_separately_and_addressable(isolated_env: Path) -> None:
    root = isolated_env
    _notebooks(root)
    write_spec(
        root,
        {
            "stages": {
                "train": {
                    "notebook": "t.ipynb",
                    "foreach": {"lr": [0.5, 0.25]},
                    "outs": ["models/${lr}.txt"],
                    "params": {"name": "x"},
                }
            }
        },
    )
    write_notebook(
        root / "t.ipynb",
        "lr = 0.1\nname = ''",
        STAMP.format(name="train"),
        "Path('models').mkdir(exist_ok=True)\nPath('models', f'{lr}.txt').write_text(str(lr))",
    )
    ran = run_pipeline(root, report=lambda _line: None)
    assert [s.name for s in ran.stages] == ["train@lr=0.5", "train@lr=0.25"]
    assert (root / "models" / "0.25.txt").read_text() == "0.25"
    assert set(read_lock(root)) == {"train@lr=0.5", "train@lr=0.25"}
    one = run_pipeline(root, ["train@lr=0.5"], force=True, report=lambda _line: None)
    assert [s.name for s in one.stages] == ["train@lr=0.5"]
    group = run_pipeline(root, ["train"], report=lambda _line: None)
    assert {s.outcome for s in group.stages} == {"cached"} and len(group.stages) == 2
    # a new value: only its stage runs
    spec = (root / "nbops.yaml").read_text().replace("- 0.25", "- 0.25\n      - 0.125")
    (root / "nbops.yaml").write_text(spec)
    more = run_pipeline(root, report=lambda _line: None)
    assert {s.name: s.outcome for s in more.stages} == {
        "train@lr=0.5": "cached",
        "train@lr=0.25": "cached",
        "train@lr=0.125": "ran",
    }
    assert executions(root) == {"train": 4}
    # an override of the group applies to each of its stages
    named = run_pipeline(
        root, ["train"], overrides={"train": {"name": "y"}}, report=lambda _l: None
    )
    assert {s.outcome for s in named.stages} == {"ran"} and len(named.stages) == 3


def test_matrix_mistakes_are_reported(isolated_env: Path) -> None:
    _notebooks(isolated_env)
    write_spec(
        isolated_env,
        {
            "stages": {
                "a": {"notebook": "t.ipynb", "foreach": {"lr": [1], "depth": [2]}},
                "b": {"notebook": "t.ipynb", "matrix": {"lr": []}},
                "c@x": {"notebook": "t.ipynb"},
            }
        },
    )
    with pytest.raises(SpecError) as info:
        load_spec(isolated_env)
    text = str(info.value)
    assert "stage 'a': foreach must be a mapping" in text
    assert "stage 'b': matrix must be a mapping" in text
    assert "'@' is reserved" in text


@pytest.mark.kernel
def test_p_on_an_axis_addresses_the_stage_of_that_value(isolated_env: Path) -> None:
    root = isolated_env
    write_notebook(
        root / "t.ipynb",
        "lr = 0.1\ndepth = 1",
        STAMP.format(name="train"),
        "Path('models').mkdir(exist_ok=True)\n"
        "Path('models', f'{depth}-{lr}.txt').write_text(str(lr * depth))",
    )
    write_spec(
        root,
        {
            "stages": {
                "train": {
                    "notebook": "t.ipynb",
                    "matrix": {"lr": [0.5, 0.25], "depth": [2, 3]},
                    "outs": ["models/${depth}-${lr}.txt"],
                }
            }
        },
    )
    quiet = lambda _line: None  # noqa: E731
    # a listed value selects its stages (one per other axis value), named as in the spec
    picked = run_pipeline(root, overrides={"train": {"lr": 0.25}}, report=quiet)
    assert [s.name for s in picked.stages] == ["train@depth=2,lr=0.25", "train@depth=3,lr=0.25"]
    assert sorted(p.name for p in (root / "models").iterdir()) == ["2-0.25.txt", "3-0.25.txt"]
    # an unlisted value makes the stage it names, its out filled with that value
    new = run_pipeline(root, overrides={"train": {"lr": 0.125, "depth": 2}}, report=quiet)
    assert [(s.name, s.outcome) for s in new.stages] == [("train@depth=2,lr=0.125", "ran")]
    assert (root / "models" / "2-0.125.txt").read_text() == "0.25"
    assert "train@depth=2,lr=0.125" in read_lock(root)
    assert "train@depth=2,lr=0.25" in read_lock(root)  # the others' entries stay
    assert executions(root) == {"train": 3}
    # the group as target with a pin: the same stage, now cached
    again = run_pipeline(root, ["train"], overrides={"train": {"lr": 0.125}}, report=quiet)
    assert [(s.name, s.outcome) for s in again.stages] == [
        ("train@depth=2,lr=0.125", "cached"),
        ("train@depth=3,lr=0.125", "ran"),
    ]
    with pytest.raises(NbopsError, match=r"addresses train@depth=2,lr=0\.5"):
        run_pipeline(root, ["train@depth=3,lr=0.25"], overrides={"train": {"lr": 0.5, "depth": 2}})
