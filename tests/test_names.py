"""One name rule for artifacts, datasets, models, aliases, sweeps and pipeline stages."""

from __future__ import annotations

import pytest

import nbops
from nbops.errors import InvalidValueError
from nbops.names import check_name
from nbops.pipeline import load_spec

BAD = ["", "../escape", "a/b", "a\\b", ".hidden", "-x", "a b", "abc\n", "é", "x" * 129]


@pytest.mark.parametrize("name", BAD)
def test_bad_names_are_refused_everywhere(name: str) -> None:
    with pytest.raises(InvalidValueError, match="invalid sweep name"):
        check_name(name, "sweep name")
    with pytest.raises(InvalidValueError, match="invalid stage name"):
        check_name(name, "stage name", dots=False)


def test_a_sweep_name_with_a_trailing_newline_is_refused() -> None:
    # The sweeps' own validator matched with `$`, which accepts a trailing newline.
    with pytest.raises(InvalidValueError, match="invalid sweep name"):
        nbops.sweep(
            lambda t: 0.0, n_trials=1, direction="maximize", study_name="abc\n", panel=False
        )


def test_good_names_pass_and_stage_names_have_no_dots() -> None:
    for name in ["a", "A1", "9lives", "model.v2", "x_y-z", "x" * 128]:
        assert check_name(name) == name
    assert check_name("train-2", dots=False) == "train-2"
    with pytest.raises(InvalidValueError, match="'_' and '-'"):
        check_name("train.v2", "stage name", dots=False)


def test_pipeline_stage_names_use_the_shared_rule(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    (root / "nbops.yaml").write_text(
        "stages:\n  bad.stage:\n    notebook: a.ipynb\n  'a b':\n    notebook: b.ipynb\n"
    )
    with pytest.raises(nbops.NbopsError) as caught:
        load_spec(root)
    assert "invalid stage name 'bad.stage'" in str(caught.value)
    assert "invalid stage name 'a b'" in str(caught.value)
