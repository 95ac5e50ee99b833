"""Errors raised by sweeps. Each says what to do next."""

from __future__ import annotations

from nbops.errors import InvalidValueError, NbopsError


class SweepError(NbopsError):
    """A sweep cannot be started, joined or read."""


class SpaceError(InvalidValueError):
    """A search space is invalid (unknown type, low > high, empty choices, log with low <= 0)."""


class SweepStorageError(SweepError):
    """The study storage cannot be opened or reached."""


class SweepNameError(SweepStorageError, InvalidValueError):
    """A sweep name breaks the naming rule (it names files)."""

    def __init__(self, message: str, name: object) -> None:
        super().__init__(message)
        self.name = name


class SweepInterrupted(KeyboardInterrupt):
    """Raised inside a worker when the sweep is stopped (Stop button, ``Sweep.stop()``, Ctrl-C)."""


class TrialFailed(SweepError):
    """One trial failed (its notebook raised, or never logged the metric); the sweep goes on."""


class MetricMissing(TrialFailed):
    """The objective never produced the sweep's metric: every trial would fail the same way,
    so the sweep stops after the first one and says which metrics were logged."""
