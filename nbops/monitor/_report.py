"""Drift results as records: thresholds, one record per column, and the dataset-level report.

Standard library only, so a saved report can be loaded back (``DriftReport.from_json``) without
numpy or pandas.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from nbops.monitor._errors import DriftInputError

logger = logging.getLogger(__name__)

SCHEMA = "nbops.drift/1"


@dataclass(frozen=True)
class DriftThresholds:
    """When a column, and the dataset, count as drifted.

    A column drifts when its distribution test is significant (``p < alpha``) **and** an effect
    size is large enough: PSI above ``psi``, or (numeric) the Wasserstein distance divided by the
    reference standard deviation above ``wasserstein``, or (categorical) the total variation
    distance between category shares above ``tvd``. Its missing-value rate drifts when the
    two-proportion test is significant and the rates differ by more than ``missing``; new
    categories (absent from the reference) drift when they hold more than ``new_category`` of the
    current rows. The dataset drifts when at least ``share`` of the compared columns drift.

    Attributes:
        alpha: Significance level of every test (KS, chi-square, two-proportion).
        psi: Population stability index above which a distribution change is material.
        wasserstein: Normalised Wasserstein distance (in reference standard deviations).
        tvd: Total variation distance between category shares (0.05 = five points moved).
        missing: Absolute change of the missing-value rate.
        new_category: Share of current rows in categories the reference never had.
        share: Fraction of drifted columns at which the dataset counts as drifted.
        bins: Number of reference-quantile bins for the numeric PSI.
    """

    alpha: float = 0.001
    psi: float = 0.1
    wasserstein: float = 0.05
    tvd: float = 0.03
    missing: float = 0.02
    new_category: float = 0.01
    share: float = 0.5
    bins: int = 10

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise DriftInputError(f"threshold {f.name!r} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise DriftInputError(f"threshold {f.name!r} must be finite and >= 0, got {value}")
        if not 0 < self.alpha < 1:
            raise DriftInputError(f"threshold 'alpha' must be between 0 and 1, got {self.alpha}")
        if not 0 < self.share <= 1:
            raise DriftInputError(f"threshold 'share' must be in (0, 1], got {self.share}")
        if not isinstance(self.bins, int) or self.bins < 2:
            raise DriftInputError(f"threshold 'bins' must be an integer >= 2, got {self.bins!r}")

    @classmethod
    def coerce(cls, value: DriftThresholds | Mapping[str, float] | None) -> DriftThresholds:
        """Return thresholds from ``None`` (defaults), an instance, or a dict of overrides."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise DriftInputError(
                f"thresholds must be a DriftThresholds or a dict, got {type(value).__name__}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise DriftInputError(
                f"unknown threshold(s) {', '.join(map(repr, unknown))}; "
                f"valid names: {', '.join(sorted(known))}"
            )
        overrides: dict[str, Any] = dict(value)
        return dataclasses.replace(cls(), **overrides)

    def to_dict(self) -> dict[str, float]:
        """The thresholds as a plain dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Overlay:
    """Reference and current shares per bin or category, for the distribution plot.

    Numeric: ``edges`` holds ``len(reference) + 1`` bin edges and ``labels`` is empty.
    Categorical: ``labels`` names each bar (the most frequent categories, then ``(other)`` and
    ``(new)`` when present) and ``edges`` is empty.
    """

    reference: tuple[float, ...]
    current: tuple[float, ...]
    edges: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class ColumnDrift:
    """The comparison of one column.

    Attributes:
        name: Column name.
        kind: ``"numeric"`` or ``"categorical"``.
        drifted: The column's verdict.
        reasons: Why it drifted (``"distribution"``, ``"missing rate"``, ``"new categories"``).
        test: ``"ks"`` (two-sample Kolmogorov-Smirnov) or ``"chi2"`` (chi-square homogeneity).
        statistic: The test statistic (KS D, or chi-square).
        p_value: The test's p-value.
        psi: Population stability index.
        wasserstein: Wasserstein distance / reference standard deviation (numeric only).
        tvd: Total variation distance of category shares (categorical only).
        missing_reference: Missing-value rate in the reference.
        missing_current: Missing-value rate in the current data.
        missing_p_value: Two-proportion test of the missing rates.
        n_reference: Non-missing reference values.
        n_current: Non-missing current values.
        new_categories: Current categories absent from the reference (the 20 most frequent).
        new_share: Share of non-missing current values in new categories (categorical only).
        overlay: Shares per bin or category for the distribution plot.
    """

    name: str
    kind: str
    drifted: bool
    reasons: tuple[str, ...]
    test: str
    statistic: float
    p_value: float
    psi: float
    wasserstein: float | None
    tvd: float | None
    missing_reference: float
    missing_current: float
    missing_p_value: float
    n_reference: int
    n_current: int
    new_categories: tuple[str, ...] = ()
    new_share: float | None = None
    overlay: Overlay = field(default_factory=lambda: Overlay((), ()))

    @property
    def effect(self) -> float:
        """The distribution effect size shown first: normalised Wasserstein or TVD."""
        value = self.wasserstein if self.kind == "numeric" else self.tvd
        return float(value or 0.0)

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        data = dataclasses.asdict(self)
        data["reasons"] = list(self.reasons)
        data["new_categories"] = list(self.new_categories)
        data["overlay"] = {k: list(v) for k, v in data["overlay"].items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnDrift:
        """Rebuild a record written by :meth:`to_dict`."""
        values = dict(data)
        overlay = {k: tuple(v) for k, v in dict(values.pop("overlay", {})).items()}
        values["reasons"] = tuple(values.get("reasons", ()))
        values["new_categories"] = tuple(values.get("new_categories", ()))
        return cls(**values, overlay=Overlay(**overlay))


@dataclass(frozen=True)
class DriftReport:
    """Column-by-column drift between a reference and a current table.

    Attributes:
        columns: One :class:`ColumnDrift` per compared column, in order (``report.columns[name]``).
        thresholds: The thresholds the verdicts used.
        n_reference: Rows in the reference table.
        n_current: Rows in the current table.
        seconds: Time the comparison took.
    """

    columns: Mapping[str, ColumnDrift]
    thresholds: DriftThresholds
    n_reference: int
    n_current: int
    seconds: float = 0.0
    roles: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    domain: Mapping[str, Any] | None = None

    @property
    def features(self) -> list[str]:
        """Compared columns that count towards the verdict (not target or prediction)."""
        return [n for n in self.columns if self.roles.get(n) not in ("target", "prediction")]

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the feature columns that drifted."""
        return [name for name in self.features if self.columns[name].drifted]

    @property
    def excluded(self) -> list[str]:
        """Columns left out of the comparison by their role (IDs, timestamps)."""
        return [n for n, r in self.roles.items() if r in ("id", "datetime")]

    @property
    def target_drift(self) -> ColumnDrift | None:
        """The drift of the target column, when one was compared."""
        return self._role("target")

    @property
    def prediction_drift(self) -> ColumnDrift | None:
        """The drift of the prediction column, when one was compared."""
        return self._role("prediction")

    def _role(self, role: str) -> ColumnDrift | None:
        for name, found in self.roles.items():
            if found == role and name in self.columns:
                return self.columns[name]
        return None

    @property
    def share(self) -> float:
        """Fraction of compared feature columns that drifted."""
        features = self.features
        return len(self.drifted_columns) / len(features) if features else 0.0

    @property
    def drifted(self) -> bool:
        """Dataset-level verdict: at least ``thresholds.share`` of the features drifted."""
        return bool(self.features) and self.share >= self.thresholds.share

    def __repr__(self) -> str:
        verdict = "DRIFT" if self.drifted else "no drift"
        return (
            f"<DriftReport {verdict}: {len(self.drifted_columns)}/{len(self.columns)} columns "
            f"drifted (share {self.share:.2f}, threshold {self.thresholds.share:.2f})>"
        )

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (schema ``nbops.drift/1``)."""
        return {
            "schema": SCHEMA,
            "drifted": self.drifted,
            "share": self.share,
            "drifted_columns": self.drifted_columns,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "seconds": self.seconds,
            "thresholds": self.thresholds.to_dict(),
            "columns": [col.to_dict() for col in self.columns.values()],
            "roles": dict(self.roles),
            "excluded": self.excluded,
            "warnings": list(self.warnings),
            "domain": dict(self.domain) if self.domain else None,
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as a JSON string (strict JSON: no NaN or infinity)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReport:
        """Rebuild a report written by :meth:`to_dict`."""
        if data.get("schema") != SCHEMA:
            raise DriftInputError(
                f"not an nbops drift report (schema {data.get('schema')!r}, expected {SCHEMA!r})"
            )
        cols = [ColumnDrift.from_dict(c) for c in data["columns"]]
        return cls(
            columns={c.name: c for c in cols},
            thresholds=DriftThresholds(**data["thresholds"]),
            n_reference=int(data["n_reference"]),
            n_current=int(data["n_current"]),
            seconds=float(data.get("seconds", 0.0)),
            roles=dict(data.get("roles") or {}),
            warnings=tuple(data.get("warnings") or ()),
            domain=data.get("domain"),
        )

    @classmethod
    def from_json(cls, text: str) -> DriftReport:
        """Rebuild a report from :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))

    def to_html(self, title: str = "Data drift") -> str:
        """A standalone HTML page: summary, per-column table and distribution overlays."""
        from nbops.monitor._html import render_page

        return render_page(self, title)

    def _repr_html_(self) -> str:
        from nbops.monitor._html import render_fragment

        return render_fragment(self)

    def save_html(self, path: str | os.PathLike[str], title: str = "Data drift") -> Path:
        """Write :meth:`to_html` to ``path`` atomically; return the path."""
        from nbops.fileio import write_atomic

        target = write_atomic(path, self.to_html(title))
        logger.info("drift report written to %s", target)
        return target
