"""How model objects become bytes and back.

scikit-learn models are saved with skops, XGBoost and LightGBM models in their own native formats,
anything else with pickle only on request. Every file is loaded back once before it is registered.
"""

from __future__ import annotations

import importlib
import pickle
import sys
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError, UnsafeModelError
from nbops.registry._trust import untrusted

#: The formats a model version can have, and the library ``nbops.load_model`` needs for each.
FORMATS = {
    "skops": "skops",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "pickle": None,
}


class PickleWarning(UserWarning):
    """A model is saved or loaded with pickle, which can run arbitrary code when loaded."""


class ModelRoundTripError(NbopsError):
    """A model saved without error could not be loaded back, so it is not registered."""

    def __init__(self, model_class: str, fmt: str, problem: str) -> None:
        self.model_class = model_class
        self.format = fmt
        self.problem = problem
        super().__init__(
            f"this {model_class} saves as {fmt} but cannot be loaded back ({problem}), so it was "
            "not registered; replace lambdas and locally defined functions or classes with "
            "module-level ones that can be imported"
        )


@dataclass(frozen=True)
class Serialized:
    """A model as bytes, the format, and the types its file needs beyond skops' defaults."""

    data: bytes
    format: str
    trusted_types: tuple[str, ...]


def class_path(obj: Any) -> str:
    """``module.QualifiedName`` of an object's class."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _root_module(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


def is_sklearn_model(obj: Any) -> bool:
    """True for scikit-learn estimators (and pipelines), including subclasses of its base."""
    if _root_module(obj) == "sklearn":
        return True
    base = sys.modules.get("sklearn.base")
    return base is not None and isinstance(obj, base.BaseEstimator)


def native_format(obj: Any) -> str | None:
    """``xgboost`` or ``lightgbm`` for models those libraries save natively, else None."""
    root = _root_module(obj)
    if root == "xgboost":
        xgb = sys.modules["xgboost"]
        if isinstance(obj, (xgb.Booster, xgb.XGBModel)):
            return "xgboost"
    if root == "lightgbm" and isinstance(obj, sys.modules["lightgbm"].Booster):
        return "lightgbm"
    return None


def library_of(model_class: str, fmt: str) -> str:
    """The Hugging Face ``library_name`` of a model version."""
    if fmt in ("xgboost", "lightgbm"):
        return fmt
    root = model_class.split(".")[0]
    return {"xgboost": "xgboost", "lightgbm": "lightgbm"}.get(root, "sklearn")


def task_of(obj: Any) -> str | None:
    """The Hugging Face task of a model: tabular classification or regression."""
    if is_sklearn_model(obj):
        from sklearn.base import is_classifier, is_regressor

        if is_classifier(obj):
            return "tabular-classification"
        if is_regressor(obj):
            return "tabular-regression"
    return None


def serialize(model: Any, *, allow_pickle: bool) -> Serialized:
    """Turn a model into bytes and check they load back.

    Raises:
        UnsafeModelError: The model is neither scikit-learn, XGBoost nor LightGBM (or skops
            cannot save it) and ``allow_pickle`` is False.
        ModelRoundTripError: The bytes cannot be loaded back (a lambda inside a pipeline).
    """
    native = native_format(model)
    if native is not None:
        blob = Serialized(_save_native(model, native), native, ())
        _load_native(blob.data, native, class_path(model))
        return blob
    problem = f"{class_path(model)} is not a scikit-learn, XGBoost or LightGBM model"
    if is_sklearn_model(model):
        import skops.io as sio

        try:
            data = sio.dumps(model)
        except Exception as exc:  # noqa: BLE001 - skops refuses objects it cannot represent
            problem = f"skops cannot save this {class_path(model)} ({exc})"
        else:
            needed = tuple(sorted(sio.get_untrusted_types(data=data)))
            try:
                sio.loads(data, trusted=list(needed))  # our own bytes: trust what they name
            except Exception as exc:  # noqa: BLE001 - any failure means it cannot be loaded
                raise ModelRoundTripError(class_path(model), "skops", str(exc)) from None
            extra = untrusted(needed)
            if extra:
                warnings.warn(
                    f"this {class_path(model)} needs types outside nbops' allow-list "
                    f"({', '.join(extra)}); loading it will need load_model(..., trusted=[...])",
                    UserWarning,
                    stacklevel=3,
                )
            return Serialized(data, "skops", needed)
    if not allow_pickle:
        raise UnsafeModelError(
            f"{problem}: nbops saves models with skops or their library's native format, which "
            "load without running arbitrary code. To save it with pickle anyway, pass "
            "allow_pickle=True (and only load it where you trust the store)"
        )
    warnings.warn(
        f"{problem}; saving it with pickle: loading it can run arbitrary code",
        PickleWarning,
        stacklevel=3,
    )
    data = pickle.dumps(model, protocol=5)
    try:
        pickle.loads(data)  # noqa: S301 - our own bytes, just produced
    except Exception as exc:  # noqa: BLE001 - any failure means it cannot be loaded
        raise ModelRoundTripError(class_path(model), "pickle", str(exc)) from None
    return Serialized(data, "pickle", ())


def deserialize(
    data: bytes,
    fmt: str,
    *,
    ref: str,
    model_class: str,
    allow_pickle: bool,
    trusted: Iterable[str] = (),
) -> Any:
    """Load a model's bytes (already checked against their recorded hash).

    A skops file may only construct skops' default types, the allow-list of
    :mod:`nbops.registry._trust` and the types in ``trusted``; a pickle file loads only with
    ``allow_pickle``.
    """
    if fmt == "skops":
        import skops.io as sio

        needed = sorted(sio.get_untrusted_types(data=data))
        refused = untrusted(needed, trusted)
        if refused:
            raise UnsafeModelError(
                f"refusing to load model {ref}: its file needs types nbops does not trust "
                f"({', '.join(refused)}); if you trust where this model came from, pass "
                f"trusted={refused!r} to load_model"
            )
        return sio.loads(data, trusted=needed or None)
    if fmt in ("xgboost", "lightgbm"):
        return _load_native(data, fmt, model_class)
    if fmt == "pickle":
        if not allow_pickle:
            raise UnsafeModelError(
                f"model {ref} was saved with pickle, which can run arbitrary code when loaded; "
                "pass allow_pickle=True if you trust this store"
            )
        warnings.warn(f"loading model {ref} with pickle", PickleWarning, stacklevel=3)
        return pickle.loads(data)  # noqa: S301 - explicit opt-in above, hash verified by caller
    raise UnsafeModelError(f"model {ref} has an unknown format {fmt!r}")


def _save_native(model: Any, fmt: str) -> bytes:
    if fmt == "lightgbm":
        return str(model.model_to_string()).encode("utf-8")
    with tempfile.TemporaryDirectory(prefix="nbops-model-") as tmp:
        path = Path(tmp) / "model.json"
        model.save_model(str(path))
        return path.read_bytes()


def _load_native(data: bytes, fmt: str, model_class: str) -> Any:
    """Load an XGBoost/LightGBM file into the class it was saved from (within that library)."""
    module_name, _, qualname = model_class.rpartition(".")
    if module_name.split(".")[0] != fmt:
        raise UnsafeModelError(f"a {fmt} model file cannot be loaded as {model_class}")
    try:
        cls = getattr(importlib.import_module(module_name), qualname)
    except (ImportError, AttributeError) as exc:
        raise UnsafeModelError(
            f"cannot load a {fmt} model: {exc}; install {fmt} to load it"
        ) from None
    if fmt == "lightgbm":
        return cls(model_str=data.decode("utf-8"))
    model = cls()
    with tempfile.TemporaryDirectory(prefix="nbops-model-") as tmp:
        path = Path(tmp) / "model.json"
        path.write_bytes(data)
        model.load_model(str(path))
    return model
