"""Errors raised by drift and model-drift checks."""

from __future__ import annotations

from nbops.errors import NbopsError


class DriftInputError(NbopsError, ValueError):
    """The data given to a drift check cannot be compared (schema, dtype, emptiness, options)."""


class DriftWarning(UserWarning):
    """A drift check ran but its result means little (e.g. too few rows on one side)."""
