"""XGBoost and LightGBM models are saved in their own formats, not pickle, and load back."""

from __future__ import annotations

import warnings

import lightgbm as lgb
import numpy as np
import xgboost as xgb
from sklearn.datasets import load_iris

from nbops.registry import load_model, log_model


def test_xgboost_models_use_the_native_format() -> None:
    X, y = load_iris(return_X_y=True)
    model = xgb.XGBClassifier(n_estimators=3, max_depth=2).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no PickleWarning, no allow-list warning
        version = log_model(model, "xgb")
    assert version.format == "xgboost" and version.model_class == "xgboost.sklearn.XGBClassifier"
    loaded = load_model("xgb")
    assert isinstance(loaded, xgb.XGBClassifier)
    assert np.array_equal(loaded.predict(X), model.predict(X))
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(X, label=y), num_boost_round=2)
    assert log_model(booster, "xgb-booster").format == "xgboost"
    assert np.allclose(
        load_model("xgb-booster").predict(xgb.DMatrix(X)), booster.predict(xgb.DMatrix(X))
    )


def test_lightgbm_models_load_without_pickle() -> None:
    X, y = load_iris(return_X_y=True)
    params = {"objective": "multiclass", "num_class": 3, "verbose": -1}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=3)
    version = log_model(booster, "lgb")
    assert version.format == "lightgbm"
    assert np.allclose(load_model("lgb").predict(X), booster.predict(X))
    wrapped = lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        version = log_model(wrapped, "lgb-clf")
    assert version.format == "skops" and version.untrusted_types == ()
    assert np.array_equal(load_model("lgb-clf").predict(X), wrapped.predict(X))
