"""Autologging: scikit-learn fits, and XGBoost/LightGBM training, recorded into the active run.

Nothing is patched until :func:`autolog` is called, and ``autolog(disable=True)`` puts every
patched function back. A fit is recorded only while a run is active and running, into that run,
and only at the outermost fit (a Pipeline fitted inside a GridSearchCV is the search's business).
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from nbops.tracking._active import active_run
from nbops.tracking._run import Run

logger = logging.getLogger(__name__)

#: Methods of scikit-learn estimators that are wrapped.
_FIT_METHODS = ("fit",)

_lock = threading.Lock()
#: Every patch in place: (owner, attribute) -> the original value, in patching order.
_patches: dict[tuple[Any, str], Any] = {}
_local = threading.local()


def autolog(
    disable: bool = False, *, sklearn: bool = True, xgboost: bool = True, lightgbm: bool = True
) -> None:
    """Record model training into the active run from now on (or stop, with ``disable=True``).

    For each scikit-learn estimator fitted while a run is active (the outermost fit only):
    parameters ``<Class>.<param>`` from ``get_params()`` and ``<Class>.class``, metrics
    ``<Class>.fit_time_s`` and ``<Class>.training_score`` (``score`` on the training data, when
    the estimator has one); for a ``*SearchCV`` also ``<Class>.best.<param>``,
    ``<Class>.best_score`` and the table artifact ``<Class>.cv_results``. XGBoost and LightGBM
    training (``train`` and their scikit-learn wrappers) log each iteration's evaluation results
    as ``xgboost.<data>-<metric>`` / ``lightgbm.<data>-<metric>``. Fits outside a run are not
    recorded. Calling it again patches estimator classes imported since.

    Args:
        disable: Restore every patched function and stop recording.
        sklearn: Patch scikit-learn estimators (when scikit-learn is installed).
        xgboost: Patch XGBoost training (when installed).
        lightgbm: Patch LightGBM training (when installed).
    """
    with _lock:
        if disable:
            _restore_all()
            return
        if sklearn and _importable("sklearn"):
            for cls in _estimator_classes():
                for method in _FIT_METHODS:
                    if inspect.isfunction(vars(cls).get(method)):
                        _patch(cls, method, _wrap_fit)
        if xgboost and _importable("xgboost"):
            import xgboost as xgb

            for owner in (xgb, xgb.training, getattr(xgb, "sklearn", None)):
                if owner is not None and hasattr(owner, "train"):
                    _patch(owner, "train", _wrap_xgboost_train)
        if lightgbm and _importable("lightgbm"):
            import lightgbm as lgb

            for owner in (lgb, lgb.engine, getattr(lgb, "sklearn", None)):
                if owner is not None and hasattr(owner, "train"):
                    _patch(owner, "train", _wrap_lightgbm_train)


def autolog_enabled() -> bool:
    """True while :func:`autolog` has functions patched."""
    return bool(_patches)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _estimator_classes() -> Iterator[type]:
    """Every public scikit-learn estimator, and every subclass of ``BaseEstimator`` imported."""
    from sklearn.base import BaseEstimator
    from sklearn.utils import all_estimators

    seen: set[type] = set()
    stack: list[type] = [cls for _, cls in all_estimators()] + [BaseEstimator]
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        yield cls
        stack.extend(cls.__subclasses__())


def _patch(owner: Any, name: str, wrapper: Callable[[Any], Any]) -> None:
    key = (owner, name)
    if key in _patches:
        return
    original = getattr(owner, name) if not isinstance(owner, type) else vars(owner)[name]
    if getattr(original, "__nbops_autolog__", False):
        return
    patched = wrapper(original)
    patched.__nbops_autolog__ = True
    _patches[key] = original
    setattr(owner, name, patched)


def _restore_all() -> None:
    for (owner, name), original in reversed(list(_patches.items())):
        setattr(owner, name, original)
    _patches.clear()


# --- scikit-learn ------------------------------------------------------------------------------
def _recording_run() -> Run | None:
    run = active_run()
    return run if run is not None and not run.finished else None


def _wrap_fit(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        run = None if getattr(_local, "outer", None) is not None else _recording_run()
        if run is None:  # nested in a recorded fit, or no run: just fit
            return original(self, *args, **kwargs)
        _local.outer = self
        try:
            began = time.perf_counter()
            result = original(self, *args, **kwargs)
            elapsed = time.perf_counter() - began
            try:
                _record_fit(run, self, args, kwargs, elapsed)
            except Exception:
                logger.warning("nbops autolog could not record %r", type(self), exc_info=True)
        finally:
            _local.outer = None
        return result

    return fit


def _record_fit(
    run: Run, estimator: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], elapsed: float
) -> None:
    if run.finished:
        return
    cls = type(estimator)
    name = cls.__name__
    params: dict[str, Any] = {f"{name}.class": f"{cls.__module__}.{cls.__qualname__}"}
    params.update({f"{name}.{k}": v for k, v in estimator.get_params(deep=True).items()})
    metrics: dict[str, float] = {f"{name}.fit_time_s": elapsed}
    best = getattr(estimator, "best_params_", None)
    if isinstance(best, Mapping):
        params.update({f"{name}.best.{k}": v for k, v in best.items()})
        score = getattr(estimator, "best_score_", None)
        if isinstance(score, (int, float)):
            metrics[f"{name}.best_score"] = float(score)
    training = _training_score(estimator, args, kwargs)
    if training is not None:
        metrics[f"{name}.training_score"] = training
    run.log_params(params)
    run.log(metrics)
    results = getattr(estimator, "cv_results_", None)
    if isinstance(results, Mapping):
        import pandas as pd

        run.log_table(f"{name}.cv_results", pd.DataFrame(dict(results)))


def _training_score(
    estimator: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> float | None:
    score = getattr(estimator, "score", None)
    x = args[0] if args else kwargs.get("X")
    y = args[1] if len(args) > 1 else kwargs.get("y")
    if not callable(score) or x is None:
        return None
    try:
        value = score(x) if y is None else score(x, y)
        return float(value)
    except Exception:
        logger.debug("nbops autolog: no training score for %r", type(estimator), exc_info=True)
        return None


# --- XGBoost and LightGBM ----------------------------------------------------------------------
def _booster_run() -> Run | None:
    """The run to log iterations into: None inside a recorded fit of another estimator (a
    boosted model fitted by a search is the search's business)."""
    outer = getattr(_local, "outer", None)
    if outer is not None and type(outer).__module__.split(".")[0] not in ("xgboost", "lightgbm"):
        return None
    return _recording_run()


def _wrap_xgboost_train(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def train(*args: Any, **kwargs: Any) -> Any:
        run = _booster_run() if getattr(_local, "booster_depth", 0) == 0 else None
        if run is None:
            return original(*args, **kwargs)
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or ()), _xgboost_callback(run)]
        return _nested(original, args, kwargs)

    return train


def _xgboost_callback(run: Run) -> Any:
    from xgboost.callback import TrainingCallback

    class NbopsCallback(TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            values = {
                f"xgboost.{data}-{metric}": float(_last(history))
                for data, metrics in evals_log.items()
                for metric, history in metrics.items()
            }
            if values and not run.finished:
                run.log(values)
            return False

    return NbopsCallback()


def _last(history: Any) -> Any:
    value = history[-1]
    return value[0] if isinstance(value, tuple) else value  # (mean, std) under xgboost.cv


def _wrap_lightgbm_train(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def train(*args: Any, **kwargs: Any) -> Any:
        run = _booster_run() if getattr(_local, "booster_depth", 0) == 0 else None
        if run is None:
            return original(*args, **kwargs)

        def record(env: Any) -> None:
            values = {
                f"lightgbm.{item[0]}-{item[1]}": float(item[2])
                for item in env.evaluation_result_list or ()
            }
            if values and not run.finished:
                run.log(values)

        record.order = 30  # type: ignore[attr-defined]  # after LightGBM's own callbacks
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or ()), record]
        return _nested(original, args, kwargs)

    return train


def _nested(original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call a booster's ``train`` so that trainings inside it are not recorded twice."""
    _local.booster_depth = getattr(_local, "booster_depth", 0) + 1
    try:
        return original(*args, **kwargs)
    finally:
        _local.booster_depth -= 1
