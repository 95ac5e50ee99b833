"""Autologging of scikit-learn, XGBoost and LightGBM into the active run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

import nbops
from nbops.tracking import autolog_enabled
from tests.conftest import subprocess_env


@pytest.fixture
def autologging() -> Iterator[None]:
    nbops.autolog()
    yield
    nbops.autolog(disable=True)


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    return x, y


def test_pipeline_in_grid_search_is_logged_once(autologging: None, data: tuple) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = data
    pipeline = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())])
    search = GridSearchCV(pipeline, {"clf__C": [0.1, 1.0, 10.0]}, cv=3)
    with nbops.init(project="p", capture=False, system_metrics=False) as run:
        search.fit(x, y)
    stored = nbops.get_run(run.id)
    params = stored.params
    assert params["GridSearchCV.class"] == "sklearn.model_selection._search.GridSearchCV"
    assert params["GridSearchCV.cv"] == 3
    assert params["GridSearchCV.estimator__clf__C"] == 1.0
    assert params["GridSearchCV.best.clf__C"] == search.best_params_["clf__C"]
    # The inner pipeline, scaler and classifier fits (3 folds x 3 values + refit) are not logged.
    assert not [k for k in params if k.startswith(("Pipeline.", "LogisticRegression."))]
    history = stored.history()
    assert len(history) == 1
    assert history["GridSearchCV.best_score"][0] == pytest.approx(search.best_score_)
    assert history["GridSearchCV.training_score"][0] == pytest.approx(search.score(x, y))
    assert history["GridSearchCV.fit_time_s"][0] > 0
    table = stored.artifacts["GridSearchCV.cv_results"]
    assert table.type == "table"
    frame = pd.read_csv(table.path)
    assert len(frame) == 3
    assert list(frame["param_clf__C"]) == [0.1, 1.0, 10.0]


def test_second_run_and_fits_outside_runs_do_not_leak(autologging: None, data: tuple) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    x, y = data
    LogisticRegression().fit(x, y)  # no run: nothing recorded, nothing held for later
    with nbops.init(project="p", capture=False, system_metrics=False) as first:
        LogisticRegression(C=0.5).fit(x, y)
    with nbops.init(project="p", capture=False, system_metrics=False) as second:
        DecisionTreeClassifier(max_depth=2).fit(x, y)
    one, two = nbops.get_run(first.id), nbops.get_run(second.id)
    assert one.params["LogisticRegression.C"] == 0.5
    assert not [k for k in one.params if k.startswith("DecisionTree")]
    assert two.params["DecisionTreeClassifier.max_depth"] == 2
    assert not [k for k in two.params if k.startswith("LogisticRegression")]
    assert 0.5 < two.history()["DecisionTreeClassifier.training_score"][0] <= 1.0
    # Fitting after the run ended logs nothing and raises nothing.
    LogisticRegression(C=9.0).fit(x, y)
    assert nbops.get_run(second.id).params == two.params


def test_disable_restores_every_patched_function() -> None:
    import lightgbm
    import sklearn.linear_model
    import xgboost
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    before = {
        "lr": sklearn.linear_model.LogisticRegression.__dict__["fit"],
        "pipe": Pipeline.__dict__["fit"],
        "grid": GridSearchCV.fit,
        "xgb": xgboost.train,
        "xgb_training": xgboost.training.train,
        "xgb_sklearn": xgboost.sklearn.train,
        "lgb": lightgbm.train,
        "lgb_sklearn": lightgbm.sklearn.train,
    }
    nbops.autolog()
    nbops.autolog()  # twice: nothing is wrapped twice
    assert autolog_enabled()
    assert Pipeline.__dict__["fit"] is not before["pipe"]
    assert Pipeline.__dict__["fit"].__wrapped__ is before["pipe"]
    assert xgboost.sklearn.train.__wrapped__ is before["xgb_sklearn"]
    nbops.autolog(disable=True)
    assert not autolog_enabled()
    after = {
        "lr": sklearn.linear_model.LogisticRegression.__dict__["fit"],
        "pipe": Pipeline.__dict__["fit"],
        "grid": GridSearchCV.fit,
        "xgb": xgboost.train,
        "xgb_training": xgboost.training.train,
        "xgb_sklearn": xgboost.sklearn.train,
        "lgb": lightgbm.train,
        "lgb_sklearn": lightgbm.sklearn.train,
    }
    assert after == before


def test_nothing_is_patched_at_import() -> None:
    code = (
        "import nbops, nbops.tracking, sklearn.linear_model as lm\n"
        "assert not getattr(lm.LogisticRegression.fit, '__nbops_autolog__', False)\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_xgboost_and_lightgbm_log_each_iteration(autologging: None, data: tuple) -> None:
    import lightgbm
    import xgboost

    x, y = data
    with nbops.init(project="p", capture=False, system_metrics=False) as run:
        train = xgboost.DMatrix(x, label=y)
        xgboost.train(
            {"objective": "binary:logistic", "eval_metric": "logloss"},
            train,
            num_boost_round=4,
            evals=[(train, "train")],
        )
    history = nbops.get_run(run.id).history()
    assert history["xgboost.train-logloss"].notna().sum() == 4
    assert history["xgboost.train-logloss"].is_monotonic_decreasing

    with nbops.init(project="p", capture=False, system_metrics=False) as run:
        model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1)
        model.fit(x, y, eval_X=(x,), eval_y=(y,))
    stored = nbops.get_run(run.id)
    history = stored.history()
    assert history["lightgbm.valid_0-binary_logloss"].notna().sum() == 5
    assert stored.params["LGBMClassifier.n_estimators"] == 5  # the sklearn wrapper, once
    assert history["LGBMClassifier.training_score"].notna().sum() == 1


def test_boosters_inside_a_search_are_not_logged(autologging: None, data: tuple) -> None:
    import xgboost
    from sklearn.model_selection import GridSearchCV

    x, y = data
    search = GridSearchCV(xgboost.XGBClassifier(n_estimators=3), {"max_depth": [1, 2]}, cv=2)
    with nbops.init(project="p", capture=False, system_metrics=False) as run:
        search.fit(x, y, eval_set=[(x, y)], verbose=False)
    history = nbops.get_run(run.id).history()
    assert not [c for c in history.columns if c.startswith("xgboost.")]
    assert len(history) == 1


def test_track_magic_turns_autolog_on(ipython: object, data: tuple) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = data
    shell = ipython
    shell.run_line_magic("load_ext", "nbops")  # type: ignore[attr-defined]
    try:
        shell.run_line_magic("nbops", "track --autolog --project p")  # type: ignore[attr-defined]
        assert autolog_enabled()
        LogisticRegression(C=3.0).fit(x, y)
        run = nbops.active_run()
        assert run is not None
        run.finish()
        assert nbops.get_run(run.id).params["LogisticRegression.C"] == 3.0
    finally:
        nbops.autolog(disable=True)
