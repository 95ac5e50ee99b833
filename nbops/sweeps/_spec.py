"""What a worker needs to run trials of a sweep: a picklable, storable description."""

from __future__ import annotations

import base64
import dataclasses
import importlib
import io
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nbops.sweeps._errors import SweepError

SPEC_ATTR = "nbops.spec"
KINDS = ("trial", "params", "notebook")


@dataclass(frozen=True)
class SweepSpec:
    """A sweep as its workers see it; the whole of it is stored with the study.

    ``kind`` is ``trial`` (a callable taking an Optuna trial), ``params`` (a callable taking a
    dict sampled from ``space``) or ``notebook`` (``target`` is its absolute path). Callables
    are named by ``target`` (``module:function``) when importable, else carried pickled in
    ``payload`` (cloudpickle, so functions defined in a notebook work on this machine).
    ``sampler``/``pruner`` are pickled Optuna objects; ``seed`` seeds each trial's sampling
    (from the slot it took) so workers draw distinct, reproducible parameters; ``grid_size``
    caps the budget of a grid search; ``deadline`` is the end of ``timeout`` (epoch seconds,
    the same on every machine whatever its timezone).
    """

    study_name: str
    storage: str
    kind: str
    target: str | None = None
    payload: bytes | None = field(default=None, repr=False)
    space: Mapping[str, Any] | None = None
    metrics: tuple[str, ...] = ()
    directions: tuple[str, ...] = ("maximize",)
    project: str | None = None
    wandb: str | None = None
    kernel_name: str | None = None
    trial_timeout: float | None = None
    heartbeat_interval: int | None = None
    grace_period: int | None = None
    sampler: bytes | None = field(default=None, repr=False)
    pruner: bytes | None = field(default=None, repr=False)
    deadline: float | None = None
    seed: int | None = None
    grid_size: int | None = None
    method: str | None = None
    trusted: bool = field(default=True, repr=False, compare=False)  # False: read from a study

    @property
    def multi_objective(self) -> bool:
        return len(self.directions) > 1

    def to_attrs(self) -> dict[str, Any]:
        """The JSON form stored in the study, so ``nbops sweep worker`` can join from anywhere."""
        return {
            "kind": self.kind,
            "target": self.target,
            "space": dict(self.space) if self.space is not None else None,
            "metrics": list(self.metrics),
            "directions": list(self.directions),
            "project": self.project,
            "wandb": self.wandb,
            "kernel_name": self.kernel_name,
            "trial_timeout": self.trial_timeout,
            "heartbeat_interval": self.heartbeat_interval,
            "grace_period": self.grace_period,
            "sampler": _b64(self.sampler),
            "pruner": _b64(self.pruner),
            "deadline": self.deadline,
            "seed": self.seed,
            "grid_size": self.grid_size,
            "method": self.method,
        }

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], study_name: str, storage: str) -> SweepSpec:
        """Rebuild the spec of a running sweep from its study's user attributes."""
        if attrs.get("kind") not in KINDS:
            raise SweepError(
                f"study {study_name!r} was not created by nbops.sweep (no objective recorded); "
                "join it with Optuna directly"
            )
        if attrs["kind"] != "notebook" and not attrs.get("target"):
            raise SweepError(
                f"sweep {study_name!r} optimises a function defined in a notebook or script, "
                "which workers on other machines cannot import; start the sweep with an "
                "importable module:function or a notebook path"
            )
        return cls(
            study_name=study_name,
            storage=storage,
            kind=attrs["kind"],
            target=attrs.get("target"),
            space=attrs.get("space"),
            metrics=tuple(attrs.get("metrics") or ()),
            directions=tuple(attrs.get("directions") or ("maximize",)),
            project=attrs.get("project"),
            wandb=attrs.get("wandb"),
            kernel_name=attrs.get("kernel_name"),
            trial_timeout=attrs.get("trial_timeout"),
            heartbeat_interval=attrs.get("heartbeat_interval"),
            grace_period=attrs.get("grace_period"),
            sampler=_unb64(attrs.get("sampler")),
            pruner=_unb64(attrs.get("pruner")),
            deadline=attrs.get("deadline"),
            seed=attrs.get("seed"),
            grid_size=attrs.get("grid_size"),
            method=attrs.get("method"),
            trusted=False,
        )

    def replace(self, **changes: Any) -> SweepSpec:
        return dataclasses.replace(self, **changes)

    def load_sampler(self) -> Any:
        return self._load(self.sampler)

    def load_pruner(self) -> Any:
        return self._load(self.pruner)

    def _load(self, data: bytes | None) -> Any:
        if data is None:
            return None
        if self.trusted:  # this sweep's own spec file
            return pickle.loads(data)  # noqa: S301
        return loads_optuna(data)


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode("ascii") if data is not None else None


def _unb64(text: Any) -> bytes | None:
    return base64.b64decode(text) if isinstance(text, str) else None


_SAFE_MODULES = ("optuna", "numpy", "scipy", "builtins", "collections", "copyreg", "functools")


class _OptunaUnpickler(pickle.Unpickler):
    """Unpickles samplers and pruners only: no class outside Optuna, NumPy and the builtins."""

    def find_class(self, module: str, name: str) -> Any:
        root = module.split(".", 1)[0]
        if root not in _SAFE_MODULES or (root == "builtins" and name in _UNSAFE_BUILTINS):
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a sampler or pruner")
        return super().find_class(module, name)


_UNSAFE_BUILTINS = {"eval", "exec", "compile", "open", "__import__", "getattr", "input"}


def loads_optuna(data: bytes) -> Any:
    """Unpickle a sampler or pruner stored with a study (restricted to Optuna's classes)."""
    try:
        return _OptunaUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, AttributeError, ImportError, EOFError) as exc:
        raise SweepError(
            f"cannot read the sampler or pruner stored with this sweep ({exc}); samplers and "
            "pruners must be Optuna's own to be shared through the storage"
        ) from None


def callable_target(fn: Callable[..., Any]) -> str | None:
    """Return ``module:qualname`` when ``fn`` can be imported back by that name, else None."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if obj is fn else None


def import_target(target: str) -> Callable[..., Any]:
    """Import ``module:function`` (``module.function`` is accepted too)."""
    module, sep, name = target.partition(":")
    if not sep:
        module, _, name = target.rpartition(".")
    if not module or not name:
        raise SweepError(f"cannot import {target!r}: write it as module:function")
    try:
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except ImportError as exc:
        raise SweepError(
            f"cannot import module {module!r} for objective {target!r}: {exc}; run from the "
            "folder that holds it or add it to PYTHONPATH"
        ) from None
    except AttributeError:
        raise SweepError(f"module {module!r} has no attribute {name!r}") from None
    if not callable(obj):
        raise SweepError(f"objective {target!r} is not callable")
    return obj  # type: ignore[no-any-return]


def dumps_callable(fn: Callable[..., Any]) -> bytes:
    """Pickle a callable by value when needed (cloudpickle), for worker processes."""
    try:
        import cloudpickle

        return cloudpickle.dumps(fn)  # type: ignore[no-any-return]
    except ImportError:
        pass
    try:
        return pickle.dumps(fn)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise SweepError(
            f"cannot send objective {fn!r} to worker processes ({exc}); define it in an "
            "importable module, install cloudpickle, or use jobs=1"
        ) from None


def load_callable(spec: SweepSpec) -> Callable[..., Any]:
    if spec.target:
        return import_target(spec.target)
    if spec.payload is None:
        raise SweepError("the sweep spec names no objective")
    return pickle.loads(spec.payload)  # type: ignore[no-any-return]  # noqa: S301 - written by this sweep
