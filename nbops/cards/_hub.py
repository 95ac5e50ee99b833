"""Hugging Face Hub conventions for a card's front matter: license ids, metric ids, no HTML."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

#: License identifiers the Hub accepts in ``license:`` (anything else becomes ``other``).
HUB_LICENSES = frozenset(
    {
        "apache-2.0",
        "mit",
        "openrail",
        "bigscience-openrail-m",
        "creativeml-openrail-m",
        "bigscience-bloom-rail-1.0",
        "bigcode-openrail-m",
        "afl-3.0",
        "artistic-2.0",
        "bsl-1.0",
        "bsd",
        "bsd-2-clause",
        "bsd-3-clause",
        "bsd-3-clause-clear",
        "c-uda",
        "cc",
        "cc0-1.0",
        "cc-by-2.0",
        "cc-by-2.5",
        "cc-by-3.0",
        "cc-by-4.0",
        "cc-by-sa-3.0",
        "cc-by-sa-4.0",
        "cc-by-nc-2.0",
        "cc-by-nc-3.0",
        "cc-by-nc-4.0",
        "cc-by-nd-4.0",
        "cc-by-nc-nd-3.0",
        "cc-by-nc-nd-4.0",
        "cc-by-nc-sa-2.0",
        "cc-by-nc-sa-3.0",
        "cc-by-nc-sa-4.0",
        "cdla-sharing-1.0",
        "cdla-permissive-1.0",
        "cdla-permissive-2.0",
        "wtfpl",
        "ecl-2.0",
        "epl-1.0",
        "epl-2.0",
        "etalab-2.0",
        "eupl-1.1",
        "eupl-1.2",
        "agpl-3.0",
        "gfdl",
        "gpl",
        "gpl-2.0",
        "gpl-3.0",
        "lgpl",
        "lgpl-2.1",
        "lgpl-3.0",
        "isc",
        "h-research",
        "intel-research",
        "lppl-1.3c",
        "ms-pl",
        "apple-ascl",
        "apple-amlr",
        "mpl-2.0",
        "odc-by",
        "odbl",
        "openmdw-1.0",
        "openrail++",
        "osl-3.0",
        "postgresql",
        "ofl-1.1",
        "ncsa",
        "unlicense",
        "zlib",
        "pddl",
        "lgpl-lr",
        "deepfloyd-if-license",
        "fair-noncommercial-research-license",
        "llama2",
        "llama3",
        "llama3.1",
        "llama3.2",
        "llama3.3",
        "llama4",
        "gemma",
        "unknown",
        "other",
    }
)
#: Metric names mapped to the Hub's evaluate metric ids, by prefix (``f1_macro`` -> ``f1``).
_METRIC_IDS = (
    ("accuracy", "accuracy"),
    ("acc", "accuracy"),
    ("balanced_accuracy", "accuracy"),
    ("f1", "f1"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("roc_auc", "roc_auc"),
    ("auc", "roc_auc"),
    ("mae", "mae"),
    ("mean_absolute_error", "mae"),
    ("mse", "mse"),
    ("mean_squared_error", "mse"),
    ("rmse", "rmse"),
    ("r2", "r_squared"),
    ("r_squared", "r_squared"),
    ("matthews", "matthews_correlation"),
    ("mcc", "matthews_correlation"),
    ("perplexity", "perplexity"),
    ("bleu", "bleu"),
    ("rouge", "rouge"),
    ("wer", "wer"),
    ("exact_match", "exact_match"),
)
_TAG = re.compile(r"<[^>]*>")


def metric_id(name: str) -> str:
    """The Hub metric id of a metric name, or the name itself when none fits."""
    key = name.lower()
    for prefix, hub in sorted(_METRIC_IDS, key=lambda p: -len(p[0])):
        if key == prefix or key.startswith(prefix + "_"):
            return hub
    return name


def license_fields(value: str | None) -> dict[str, str]:
    """``{"license": id}`` for a Hub license id, else ``other`` with ``license_name``."""
    if not value:
        return {}
    lowered = _TAG.sub("", value).strip().lower()
    if lowered in HUB_LICENSES:
        return {"license": lowered}
    slug = re.sub(r"[^a-z0-9.+-]+", "-", lowered).strip("-") or "custom"
    return {"license": "other", "license_name": slug}


def plain(value: Any) -> Any:
    """Front matter values without raw HTML: tags removed and ``<``/``>``/``&`` escaped."""
    if isinstance(value, str):
        return html.escape(_TAG.sub("", value), quote=False)
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def rounded(value: float, digits: int = 4) -> float:
    """A metric for display: ``digits`` significant digits."""
    return float(f"{value:.{digits}g}")
