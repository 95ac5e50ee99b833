"""Inputs drift cannot compare fail with a message that says what to do, never a silent pass."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import nbops
from nbops.monitor import DriftInputError


@pytest.fixture
def ref() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=100), "c": rng.choice(["a", "b"], 100)})


def test_mismatched_schemas(ref: pd.DataFrame) -> None:
    cur = ref.rename(columns={"x": "x2"})
    with pytest.raises(DriftInputError, match=r"only in reference: 'x'; only in current: 'x2'.*"):
        nbops.drift(ref, cur)
    assert nbops.drift(ref, cur, columns=["c"]).columns["c"].name == "c"


def test_unknown_columns(ref: pd.DataFrame) -> None:
    with pytest.raises(DriftInputError, match=r"unknown column\(s\) 'nope' in the reference"):
        nbops.drift(ref, ref, columns=["x", "nope"])
    with pytest.raises(DriftInputError, match="columns is empty"):
        nbops.drift(ref, ref, columns=[])


@pytest.mark.parametrize("which", ["reference", "current"])
def test_empty_frames(ref: pd.DataFrame, which: str) -> None:
    empty = ref.iloc[:0]
    args = (empty, ref) if which == "reference" else (ref, empty)
    with pytest.raises(DriftInputError, match=f"the {which} data is empty"):
        nbops.drift(*args)
    with pytest.raises(DriftInputError, match="empty"):
        nbops.drift(pd.DataFrame(), pd.DataFrame())


@pytest.mark.parametrize("which", ["reference", "current"])
def test_all_missing_column(ref: pd.DataFrame, which: str) -> None:
    bad = ref.copy()
    bad["x"] = np.nan
    args = (bad, ref) if which == "reference" else (ref, bad)
    with pytest.raises(DriftInputError, match=f"'x' has no values in the {which} data"):
        nbops.drift(*args)
    bad = ref.copy()
    bad["x"] = np.inf  # not NaN, but no finite value either
    with pytest.raises(DriftInputError, match="no finite values"):
        nbops.drift(ref, bad)


def test_type_changed(ref: pd.DataFrame) -> None:
    cur = ref.copy()
    cur["x"] = cur["x"].astype(str)
    with pytest.raises(DriftInputError, match=r"'x' changed type: numeric \(float64\)"):
        nbops.drift(ref, cur)


def test_unsupported_dtype_and_non_frames(ref: pd.DataFrame) -> None:
    frame = ref.assign(t=pd.Timestamp("2024-01-01"))
    assert nbops.drift(frame, frame).excluded == ["t"]  # a timestamp is left out by default
    with pytest.raises(DriftInputError, match=r"'t' has dtype datetime64.*leave it out"):
        nbops.drift(frame, frame, columns=["x", "t"])
    with pytest.raises(DriftInputError, match="reference must be a pandas DataFrame"):
        nbops.drift(ref.to_numpy(), ref)  # type: ignore[arg-type]
    dup = pd.concat([ref, ref[["x"]]], axis=1)
    with pytest.raises(DriftInputError, match="duplicate column names: x"):
        nbops.drift(dup, dup)


def test_error_is_an_nbops_error(ref: pd.DataFrame) -> None:
    assert issubclass(DriftInputError, nbops.NbopsError)
    assert issubclass(DriftInputError, ValueError)
