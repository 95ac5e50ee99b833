"""Search spaces: valid definitions are normalised, invalid ones say what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

import nbops
from nbops.errors import InvalidValueError
from nbops.sweeps import SpaceError, SweepError, SweepStorageError, load_space

GOOD = {
    "lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
    "depth": {"type": "int", "low": 2, "high": 12},
    "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
}


def test_valid_space_from_dict_and_yaml(tmp_path: Path) -> None:
    space = load_space(GOOD)
    assert space["depth"] == {"type": "int", "low": 2, "high": 12, "log": False}
    path = tmp_path / "space.yaml"
    path.write_text(
        "lr: {type: float, low: 0.0001, high: 0.1, log: true}\n"
        "depth: {type: int, low: 2, high: 12}\n"
        "criterion: {type: categorical, choices: [gini, entropy]}\n"
    )
    assert load_space(path) == space


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"type": "float", "low": 1.0, "high": 0.5}, "low 1.0 > high 0.5"),
        ({"type": "number", "low": 0, "high": 1}, "unknown type 'number'"),
        ({"type": "categorical", "choices": []}, "non-empty list of choices"),
        ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "low must be > 0"),
        ({"type": "int", "low": 1.5, "high": 3}, "low must be an integer"),
        ({"type": "float", "low": 0, "high": 1, "lo": 3}, "unknown keys ['lo']"),
    ],
)
def test_invalid_space(definition: dict[str, object], message: str) -> None:
    with pytest.raises(SpaceError, match=r".*") as info:
        load_space({"p": definition})
    assert message in str(info.value)
    assert "'p'" in str(info.value)


def test_invalid_space_rejected_before_any_trial() -> None:
    with pytest.raises(SpaceError, match="low 3 > high 1"):
        nbops.sweep(
            lambda p: 0.0,
            space={"x": {"type": "int", "low": 3, "high": 1}},
            n_trials=1,
            direction="maximize",
        )


def test_bad_arguments() -> None:
    with pytest.raises(SweepError, match="n_trials"):
        nbops.sweep(lambda t: 0.0)
    with pytest.raises(SweepError, match="direction"):
        nbops.sweep(lambda t: 0.0, n_trials=1, direction="up")
    with pytest.raises(InvalidValueError, match="invalid sweep name"):
        nbops.sweep(lambda t: 0.0, n_trials=1, study_name="../escape", direction="maximize")


def test_unreachable_storage_fails_fast() -> None:
    import socket
    import time

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.perf_counter()
    with pytest.raises(SweepStorageError, match="cannot reach the sweep storage") as info:
        nbops.sweep(
            lambda t: 0.0,
            n_trials=1,
            storage=f"postgresql://me:hunter2@127.0.0.1:{port}/db",
            direction="maximize",
        )
    assert time.perf_counter() - started < 30  # the connect timeout bounds it (hang bound)
    assert "hunter2" not in str(info.value)
    assert "me:***@" in str(info.value)
