"""A registered model with a recorded training run, shared by the build tests."""

from __future__ import annotations

from pathlib import Path

import pytest

import nbops


@pytest.fixture
def model(isolated_env: Path) -> str:
    """iris, trained in a tracked run that logged its training table; v1 at production."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from nbops.registry import set_alias

    X, y = load_iris(return_X_y=True, as_frame=True)
    with nbops.init(project="ship", name="train", capture=True) as run:
        train = X.assign(target=y)
        nbops.log_dataset(train, name="iris-train")
        nbops.log_model(LogisticRegression(max_iter=500).fit(X, y), "iris", run=run)
    set_alias("iris", 1, "production", force=True, reason="test")
    return "iris@production"
