"""What a worker needs to run trials of a sweep: a picklable, storable description."""

from __future__ import annotations

import dataclasses
import importlib
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nbops.sweeps._errors import SweepError

SPEC_ATTR = "nbops.spec"
KINDS = ("trial", "params", "notebook")


@dataclass(frozen=True)
class SweepSpec:
    """A sweep as its workers see it.

    ``kind`` is ``trial`` (a callable taking an Optuna trial), ``params`` (a callable taking a
    dict sampled from ``space``) or ``notebook`` (``target`` is its absolute path). Callables
    are named by ``target`` (``module:function``) when importable, else carried pickled in
    ``payload`` (cloudpickle, so functions defined in a notebook work on this machine).
    """

    study_name: str
    storage: str
    kind: str
    target: str | None = None
    payload: bytes | None = None
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
    budgeted: bool = True
    deadline: float | None = None

    @property
    def multi_objective(self) -> bool:
        return len(self.directions) > 1

    def to_attrs(self) -> dict[str, Any]:
        """The JSON part stored in the study, so ``nbops sweep worker`` can join from anywhere."""
        return {
            "kind": self.kind,
            "target": self.target,
            "space": dict(self.space) if self.space is not None else None,
            "metrics": list(self.metrics),
            "directions": list(self.directions),
            "project": self.project,
            "kernel_name": self.kernel_name,
            "trial_timeout": self.trial_timeout,
            "heartbeat_interval": self.heartbeat_interval,
            "grace_period": self.grace_period,
            "budgeted": self.budgeted,
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
            kernel_name=attrs.get("kernel_name"),
            trial_timeout=attrs.get("trial_timeout"),
            heartbeat_interval=attrs.get("heartbeat_interval"),
            grace_period=attrs.get("grace_period"),
            budgeted=bool(attrs.get("budgeted", True)),
        )

    def replace(self, **changes: Any) -> SweepSpec:
        return dataclasses.replace(self, **changes)


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
