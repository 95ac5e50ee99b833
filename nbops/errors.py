"""Errors raised by nbops. Every error says what to do next."""

from __future__ import annotations


class NbopsError(Exception):
    """Root of every error nbops raises on purpose."""


class StoreError(NbopsError):
    """The run store cannot be opened, read or written."""


class RunNotFoundError(NbopsError):
    """No run with the given id (or unique id prefix) exists in the store."""

    def __init__(self, run_id: str, store_path: str) -> None:
        self.run_id = run_id
        self.store_path = store_path
        super().__init__(
            f"no run {run_id!r} in the store at {store_path}; "
            "list runs with `nbops runs list` (set NBOPS_HOME to use another store)"
        )


class AmbiguousRunIdError(NbopsError):
    """A run id prefix matches several runs."""

    def __init__(self, prefix: str, matches: list[str]) -> None:
        self.prefix = prefix
        self.matches = matches
        shown = ", ".join(matches[:5])
        super().__init__(
            f"run id prefix {prefix!r} matches {len(matches)} runs ({shown}); give more characters"
        )


class NoActiveRunError(NbopsError):
    """A module-level shortcut was called while no run is active."""

    def __init__(self, action: str, cause: str | None = None) -> None:
        self.cause = cause
        hint = f" ({cause})" if cause else "; start one with nbops.init() or %nbops track"
        super().__init__(f"cannot {action}: no active run{hint}")


class RunFinishedError(NbopsError):
    """A finished run was written to."""

    def __init__(self, run_id: str, action: str) -> None:
        self.run_id = run_id
        super().__init__(
            f"cannot {action}: run {run_id} is finished; start a new run with nbops.init()"
        )


class InvalidValueError(NbopsError, ValueError):
    """A metric, parameter, name or option has a value nbops cannot accept."""


class ArtifactError(NbopsError):
    """An artifact cannot be logged or restored."""


class MirrorError(NbopsError):
    """The Weights & Biases mirror cannot read or upload runs."""


class NotFoundError(NbopsError, LookupError):
    """A dataset, model, version or alias asked for does not exist."""


class ModelIntegrityError(NbopsError):
    """A stored model file no longer has the hash recorded when it was registered."""

    def __init__(self, ref: str, path: str, expected: str, actual: str) -> None:
        self.ref = ref
        self.path = path
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"refusing to load model {ref}: its file {path} has sha256 {actual[:16]}..., but "
            f"{expected[:16]}... was recorded at registration; the file was modified or "
            "corrupted. Register the model again from its source run"
        )


class UnsafeModelError(NbopsError):
    """Loading or saving a model would run code nbops cannot vouch for (pickle, unknown types)."""


class DataIntegrityError(NbopsError):
    """A stored dataset blob no longer has the hash recorded when it was logged."""


class MissingDependencyError(NbopsError, ImportError):
    """An optional package a feature needs is not installed; says which extra brings it."""

    def __init__(self, module: str, package: str, extra: str, feature: str | None = None) -> None:
        self.module = module
        self.package = package
        self.extra = extra
        self.feature = feature
        needed_by = f" ({feature} needs it)" if feature else ""
        super().__init__(
            f'{package} is not installed{needed_by}; install it with: pip install "nbops[{extra}]"',
            name=module,
        )


class MetricValueError(InvalidValueError):
    """A logged metric value is not a number nbops can store (text, an object, too large)."""

    def __init__(self, key: str, value_type: str, message: str) -> None:
        self.key = key
        self.value_type = value_type
        super().__init__(message)
