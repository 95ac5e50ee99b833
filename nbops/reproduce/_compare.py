"""Comparing a re-run with the original: metrics within tolerance, artifacts and cell outputs."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nbops.errors import InvalidValueError
from nbops.tracking import SYSTEM_PREFIX

#: Relative tolerance for float metrics when none is given for the key.
DEFAULT_REL_TOLERANCE = 1e-9

# Volatile text in outputs, replaced before comparing (as nbval's sanitisers do).
_SANITIZERS = [
    (re.compile(r"0x[0-9a-fA-F]{6,}"), "0xADDRESS"),
    (
        re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:?\d{2}|Z)?"),
        "DATETIME",
    ),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "UUID"),
    (re.compile(r"\b\d+(\.\d+)?\s?(ms|µs|us|ns|s|sec|seconds)\b"), "DURATION"),
    (re.compile(r"\brun [0-9a-z]{8,}\b"), "run RUNID"),
    (re.compile(r"/tmp/[^\s'\"]+"), "TMPPATH"),  # noqa: S108 - a pattern, not a file
]


def parse_tolerances(items: Sequence[str]) -> dict[str, float]:
    """Parse ``KEY=REL`` items (``accuracy=0.01``) into relative tolerances by metric key."""
    found: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            rel = float(value)
        except ValueError:
            rel = -1.0
        if not sep or not key or not math.isfinite(rel) or rel < 0:
            raise InvalidValueError(
                f"invalid tolerance {item!r}: give METRIC=REL with REL a relative tolerance "
                "such as accuracy=0.01"
            )
        found[key] = rel
    return found


@dataclass(frozen=True)
class MetricDiff:
    """One metric of the original run against the reproduction."""

    key: str
    original: float | None
    reproduced: float | None
    tolerance: float
    exact: bool
    within: bool
    history_matches: bool | None = None

    def describe(self) -> str:
        """One line for a report."""
        if self.reproduced is None:
            return f"{self.key}: {self.original} originally, never logged by the re-run"
        if self.original is None:
            return f"{self.key}: new in the re-run ({self.reproduced})"
        verb = "equal" if self.exact else ("within tolerance" if self.within else "differs")
        return f"{self.key}: {self.original!r} -> {self.reproduced!r} ({verb})"


def _equal(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _close(a: float, b: float, rel: float) -> bool:
    if _equal(a, b):
        return True
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        return False
    return abs(a - b) <= rel * max(abs(a), abs(b))


def compare_metrics(
    original: Mapping[str, float],
    reproduced: Mapping[str, float],
    *,
    tolerances: Mapping[str, float] | None = None,
    original_history: Mapping[str, Sequence[tuple[int, float]]] | None = None,
    reproduced_history: Mapping[str, Sequence[tuple[int, float]]] | None = None,
) -> list[MetricDiff]:
    """Compare every metric the original logged.

    Integers must be equal unless a tolerance is given for the key; floats may differ by
    :data:`DEFAULT_REL_TOLERANCE` relatively (or the key's tolerance). When both runs have a
    history of the key, every step is compared with the same tolerance. System metrics
    (``system/...``, sampled by time from the machine) are not results and are left out.
    """
    tolerances = dict(tolerances or {})
    diffs = []
    keys = set(original) | set(reproduced)
    for key in sorted(k for k in keys if not k.startswith(SYSTEM_PREFIX)):
        a, b = original.get(key), reproduced.get(key)
        integral = a is not None and float(a).is_integer() and key not in tolerances
        rel = tolerances.get(key, 0.0 if integral else DEFAULT_REL_TOLERANCE)
        if a is None or b is None:
            diffs.append(MetricDiff(key, a, b, rel, exact=False, within=a is None))
            continue
        history = None
        ha = (original_history or {}).get(key)
        hb = (reproduced_history or {}).get(key)
        if ha and hb:
            history = len(ha) == len(hb) and all(
                sa == sb and _close(va, vb, rel) for (sa, va), (sb, vb) in zip(ha, hb, strict=True)
            )
        within = _close(a, b, rel) and history is not False
        diffs.append(
            MetricDiff(key, a, b, rel, _equal(a, b) and history is not False, within, history)
        )
    return diffs


@dataclass(frozen=True)
class ArtifactDiff:
    """An artifact of the original run against the reproduction's artifact of the same name."""

    name: str
    original: str | None
    reproduced: str | None

    @property
    def same(self) -> bool:
        """Whether both have the same content hash."""
        return self.original == self.reproduced


def compare_artifacts(
    original: Mapping[str, str], reproduced: Mapping[str, str]
) -> list[ArtifactDiff]:
    """Compare artifacts by name and content hash (only those the original logged)."""
    return [ArtifactDiff(n, original[n], reproduced.get(n)) for n in sorted(original)]


@dataclass(frozen=True)
class OutputDiff:
    """The first code cell whose outputs differ between the original and the re-run."""

    cell: int
    original: str
    reproduced: str


def sanitize(text: str) -> str:
    """Drop nbops' own status lines; replace addresses, timestamps, UUIDs, durations, temp paths."""
    text = "".join(
        line for line in text.splitlines(keepends=True) if not line.startswith("nbops: ")
    )
    for pattern, repl in _SANITIZERS:
        text = pattern.sub(repl, text)
    return text


def _outputs(cell: Mapping[str, Any]) -> list[str]:
    found = []
    for out in cell.get("outputs") or []:
        kind = out.get("output_type")
        if kind == "stream":
            if out.get("name") == "stderr":
                continue  # warnings and logs: not part of the result
            found.append(sanitize("".join(out.get("text") or "")))
        elif kind in ("execute_result", "display_data"):
            data = out.get("data") or {}
            for mime in sorted(data):
                value = data[mime]
                if mime.startswith("image/"):
                    raw = value if isinstance(value, str) else "".join(value)
                    found.append(f"{mime} sha256:{hashlib.sha256(raw.encode()).hexdigest()[:16]}")
                elif mime == "text/plain":
                    found.append(sanitize(value if isinstance(value, str) else "".join(value)))
        elif kind == "error":
            found.append(f"{out.get('ename')}: {sanitize(str(out.get('evalue')))}")
    return found


def _code_cells(text: str) -> list[Mapping[str, Any]]:
    nb = json.loads(text)
    return [
        c
        for c in nb.get("cells", [])
        if c.get("cell_type") == "code"
        and "injected-parameters" not in (c.get("metadata", {}).get("tags") or [])
    ]


def _is_nbops_magic(cell: Mapping[str, Any]) -> bool:
    source = cell.get("source") or ""
    text = source if isinstance(source, str) else "".join(source)
    return any(line.lstrip().startswith("%nbops") for line in text.splitlines())


def compare_outputs(original_text: str, reproduced_text: str) -> OutputDiff | None:
    """The first code cell whose sanitised outputs differ, or None when all match."""
    try:
        left, right = _code_cells(original_text), _code_cells(reproduced_text)
    except ValueError:
        return None
    for index, (a, b) in enumerate(zip(left, right, strict=False)):
        if _is_nbops_magic(a):
            continue  # nbops' own report of the run, not a result of the notebook
        oa, ob = _outputs(a), _outputs(b)
        if oa != ob:
            return OutputDiff(index + 1, "\n".join(oa)[:500], "\n".join(ob)[:500])
    return None
