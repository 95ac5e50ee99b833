"""Reproduction: re-run a tracked result from its record and say exactly what differs and why."""

from __future__ import annotations

from nbops.reproduce._api import REPRODUCES_KEY, VERDICTS, Reproduction, reproduce
from nbops.reproduce._bundle import (
    BUNDLE_FORMAT,
    environment_text,
    export_bundle,
    requirements_text,
    write_environment,
)
from nbops.reproduce._compare import (
    DEFAULT_REL_TOLERANCE,
    ArtifactDiff,
    MetricDiff,
    OutputDiff,
    compare_metrics,
    compare_outputs,
    parse_tolerances,
)
from nbops.reproduce._recipe import DatasetPin, Recipe, ReproduceError, read_recipe
from nbops.reproduce._workspace import Check, PackageChange

__all__ = [
    "BUNDLE_FORMAT",
    "DEFAULT_REL_TOLERANCE",
    "REPRODUCES_KEY",
    "VERDICTS",
    "ArtifactDiff",
    "Check",
    "DatasetPin",
    "MetricDiff",
    "OutputDiff",
    "PackageChange",
    "Recipe",
    "ReproduceError",
    "Reproduction",
    "compare_metrics",
    "compare_outputs",
    "environment_text",
    "export_bundle",
    "parse_tolerances",
    "read_recipe",
    "reproduce",
    "requirements_text",
    "write_environment",
]
