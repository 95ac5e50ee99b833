"""Errors raised by drift and model-drift checks."""

from __future__ import annotations

from nbops.errors import NbopsError


class DriftInputError(NbopsError, ValueError):
    """The data given to a drift check cannot be compared (schema, dtype, emptiness, options)."""
