"""How model objects become bytes and back: skops for scikit-learn, pickle only on request."""

from __future__ import annotations

import pickle
import sys
import warnings
from dataclasses import dataclass
from typing import Any

from nbops.deps import require
from nbops.errors import UnsafeModelError


class PickleWarning(UserWarning):
    """A model is saved or loaded with pickle, which can run arbitrary code when loaded."""


@dataclass(frozen=True)
class Serialized:
    """A model as bytes, the format, and the types its file needs trusted at load time."""

    data: bytes
    format: str
    trusted_types: tuple[str, ...]


def class_path(obj: Any) -> str:
    """``module.QualifiedName`` of an object's class."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def is_sklearn_model(obj: Any) -> bool:
    """True for scikit-learn estimators (and pipelines), including subclasses of its base."""
    if type(obj).__module__.split(".")[0] == "sklearn":
        return True
    base = sys.modules.get("sklearn.base")
    return base is not None and isinstance(obj, base.BaseEstimator)


def task_of(obj: Any) -> str | None:
    """The Hugging Face task of a scikit-learn model: tabular classification or regression."""
    if not is_sklearn_model(obj):
        return None
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(obj):
        return "tabular-classification"
    if is_regressor(obj):
        return "tabular-regression"
    return None


def serialize(model: Any, *, allow_pickle: bool) -> Serialized:
    """Turn a model into bytes: skops for scikit-learn models, pickle only with ``allow_pickle``.

    Raises:
        UnsafeModelError: The model is not a scikit-learn model (or skops cannot save it) and
            ``allow_pickle`` is False.
    """
    problem = f"{class_path(model)} is not a scikit-learn model"
    if is_sklearn_model(model):
        sio = require("skops.io", feature="saving a scikit-learn model")
        try:
            data = sio.dumps(model)
            return Serialized(data, "skops", tuple(sorted(sio.get_untrusted_types(data=data))))
        except Exception as exc:  # noqa: BLE001 - skops refuses unsafe objects with many types
            problem = f"skops cannot save this {class_path(model)} ({exc})"
    if not allow_pickle:
        raise UnsafeModelError(
            f"{problem}: nbops saves models with skops, which loads without running arbitrary "
            "code. To save it with pickle anyway, pass allow_pickle=True (and only load it "
            "where you trust the store)"
        )
    warnings.warn(
        f"{problem}; saving it with pickle: loading it can run arbitrary code",
        PickleWarning,
        stacklevel=3,
    )
    return Serialized(pickle.dumps(model, protocol=5), "pickle", ())


def deserialize(
    data: bytes, fmt: str, trusted_types: tuple[str, ...], *, ref: str, allow_pickle: bool
) -> Any:
    """Load a model's bytes (already checked against their recorded hash).

    A skops file may only need the types recorded when it was saved; a pickle file loads only
    with ``allow_pickle``.
    """
    if fmt == "skops":
        sio = require("skops.io", feature="loading a scikit-learn model")

        needed = set(sio.get_untrusted_types(data=data))
        unexpected = sorted(needed - set(trusted_types))
        if unexpected:
            raise UnsafeModelError(
                f"refusing to load model {ref}: its file needs types that were not recorded when "
                f"it was saved ({', '.join(unexpected)})"
            )
        return sio.loads(data, trusted=sorted(needed) or None)
    if fmt == "pickle":
        if not allow_pickle:
            raise UnsafeModelError(
                f"model {ref} was saved with pickle, which can run arbitrary code when loaded; "
                "pass allow_pickle=True if you trust this store"
            )
        warnings.warn(f"loading model {ref} with pickle", PickleWarning, stacklevel=3)
        return pickle.loads(data)  # noqa: S301 - explicit opt-in above, hash verified by caller
    raise UnsafeModelError(f"model {ref} has an unknown format {fmt!r}")
