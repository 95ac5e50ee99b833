"""Signatures recorded at registration, input validation naming the column, nbops predict."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression

import nbops
from nbops.registry import Signature, SignatureError, get_model, log_model, validate_input


@pytest.fixture
def iris_frame() -> pd.DataFrame:
    frame = load_iris(as_frame=True).frame
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    return frame


def _register(frame: pd.DataFrame) -> LogisticRegression:
    X, y = frame.drop(columns="target"), frame["target"]
    with nbops.init(project="sig"):
        nbops.log_dataset(frame, name="iris-train")
        model = LogisticRegression(max_iter=500).fit(X, y)
        nbops.log_model(model, "iris")
    return model


def test_the_signature_comes_from_the_training_data_in_the_lineage(
    iris_frame: pd.DataFrame,
) -> None:
    _register(iris_frame)
    signature = get_model("iris").signature
    assert isinstance(signature, Signature)
    assert signature.columns == ("sepal_length", "sepal_width", "petal_length", "petal_width")
    assert {c.dtype for c in signature.inputs} == {"float64"}
    assert signature.width == 4 and signature.output == "class"
    assert signature.classes == (0, 1, 2)


def test_an_input_example_gives_the_signature_and_arrays_keep_a_width() -> None:
    X = np.random.default_rng(0).normal(size=(50, 3))
    model = RandomForestRegressor(n_estimators=3).fit(X, X[:, 0])
    version = log_model(model, "reg", input_example=pd.DataFrame(X, columns=["a", "b", "c"]))
    assert version.signature is not None and version.signature.columns == ("a", "b", "c")
    assert version.signature.output == "number"
    bare = log_model(model, "reg-array")
    assert bare.signature is not None and bare.signature.width == 3 and bare.signature.inputs == ()
    with pytest.raises(SignatureError, match="input has 2 columns; the model takes 3"):
        nbops.predict("reg-array", X[:, :2])


def test_validation_names_the_column(iris_frame: pd.DataFrame) -> None:
    model = _register(iris_frame)
    rows = iris_frame.drop(columns="target").head(5)
    with pytest.raises(SignatureError, match="missing column 'petal_width'") as info:
        nbops.predict("iris", rows.drop(columns="petal_width"))
    assert info.value.column == "petal_width"
    bad = rows.assign(sepal_width=["a", "b", "c", "d", "e"])
    with pytest.raises(
        SignatureError,
        match=r"column 'sepal_width' has type \w+ \(string\); the model was trained on float64",
    ) as info:
        nbops.predict("iris", bad)
    assert info.value.column == "sepal_width"
    # extra columns are dropped and the order restored; integer columns are numbers too
    shuffled = rows[list(reversed(rows.columns))].assign(extra=1)
    assert list(nbops.predict("iris", shuffled)) == list(model.predict(rows))
    signature = get_model("iris").signature
    assert signature is not None
    assert list(validate_input(signature, rows.astype({"sepal_length": "int64"})).columns) == list(
        rows.columns
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_cli_predict_scores_a_file_in_batches(
    iris_frame: pd.DataFrame, cli: Any, tmp_path: Path, suffix: str
) -> None:
    model = _register(iris_frame)
    source = tmp_path / f"in{suffix}"
    rows = iris_frame.drop(columns="target")
    if suffix == ".csv":
        rows.to_csv(source, index=False)
    else:
        rows.to_parquet(source)
    out = tmp_path / "out.parquet"
    result = cli("predict", "iris", str(source), "-o", str(out), "--batch-size", "40")
    assert result.exit_code == 0, result.stderr
    assert "wrote 150 predictions" in result.stderr
    if suffix == ".parquet":
        assert "scored 40 / 150 rows (27%)" in result.stderr
    scored = pd.read_parquet(out)
    assert list(scored["prediction"]) == list(model.predict(rows))
    assert len(scored) == 150 and list(scored.columns)[:4] == list(rows.columns)

    broken = tmp_path / f"broken{suffix}"
    if suffix == ".csv":
        rows.drop(columns="petal_length").to_csv(broken, index=False)
    else:
        rows.drop(columns="petal_length").to_parquet(broken)
    failed = cli("predict", "iris", str(broken), "-o", str(tmp_path / "x.csv"))
    assert (
        failed.exit_code == 1 and "Error: input is missing column 'petal_length'" in failed.stderr
    )
    assert "Traceback" not in failed.stderr and not (tmp_path / "x.csv").exists()
    missing = cli("predict", "iris", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "y.csv"))
    assert missing.exit_code == 1 and "does not exist" in missing.stderr
    assert sys.modules.get("nbops") is not None


def test_columns_recorded_without_a_type_accept_any_type(iris_frame: pd.DataFrame) -> None:
    """A model fitted on a DataFrame but registered with no input example or training data
    knows its column names only: every typed input must still be accepted."""
    X, y = iris_frame.drop(columns="target"), iris_frame["target"]
    model = LogisticRegression(max_iter=500).fit(X, y)
    version = log_model(model, "iris-bare")
    assert version.signature is not None
    assert {c.dtype for c in version.signature.inputs} == {"unknown"}
    checked = validate_input(version.signature, X.head(3))
    assert list(checked.columns) == list(X.columns)
    assert list(nbops.predict("iris-bare", X.head(3))) == list(model.predict(X.head(3)))
