"""One run as an HTML page: its fields, metric curves and logged media, every value escaped.

Images are inline ``<img>`` data URIs from the object store, tables escaped HTML tables cut at a
row limit, histograms small inline SVG bar charts.
"""

from __future__ import annotations

import base64
import json
import logging
from html import escape
from typing import TYPE_CHECKING, Any

from nbops.tracking._compare import Comparison, _svg

if TYPE_CHECKING:
    from nbops.tracking._query import Artifact, StoredRun

logger = logging.getLogger(__name__)

#: Table rows shown per logged table (the rest is counted, not shown).
TABLE_ROWS = 20
#: Steps shown per media key (the last ones).
MEDIA_STEPS = 10
#: Images above this size are named, not embedded.
IMAGE_MAX_BYTES = 5 * 1024 * 1024

_STYLE = """<style>
.nbops-run-page table {border-collapse: collapse; margin: 0.4em 0; font-size: 90%}
.nbops-run-page th, .nbops-run-page td {border: 1px solid #ddd; padding: 2px 6px; text-align: left}
.nbops-run-page figure {display: inline-block; margin: 4px 8px 4px 0; vertical-align: top}
.nbops-run-page img {max-width: 480px; image-rendering: pixelated; border: 1px solid #ddd}
</style>"""


def run_html(run: StoredRun, *, rows: int = TABLE_ROWS, steps: int = MEDIA_STEPS) -> str:
    """``run`` as an HTML fragment: fields, parameters, summary, curves, media, artifacts."""
    record = run.record
    fields = [
        ("run", record.id),
        ("name", record.name),
        ("project", record.project),
        ("status", record.status),
        ("tags", ", ".join(record.tags)),
        ("notes", run.notes),
    ]
    parts = [_STYLE, "<div class='nbops-run-page'>", f"<h1>{escape(record.name)}</h1>"]
    parts.append(_pairs(fields))
    if run.params:
        parts += ["<h2>Parameters</h2>", _pairs(sorted(run.params.items()))]
    if run.summary:
        parts += ["<h2>Summary</h2>", _pairs(sorted(run.summary.items()))]
    comparison = Comparison([run])
    if comparison.metrics:
        parts.append("<h2>Metrics</h2><div class='nbops-charts'>")
        for title, figure in comparison.figures().items():
            parts.append(f"<figure title='{escape(title, quote=True)}'>{_svg(figure)}</figure>")
        parts.append("</div>")
    media = _media_by_key(run)
    if media:
        parts.append("<h2>Media</h2>")
        for key, items in media.items():
            parts.append(f"<h3>{escape(key)}</h3><div class='nbops-media'>")
            for step, artifact in items[-steps:]:
                parts.append(_media_html(key, step, artifact, rows))
            if len(items) > steps:
                parts.append(f"<p>{len(items) - steps} earlier step(s) not shown</p>")
            parts.append("</div>")
    plain = [a for a in run.artifacts.values() if "media" not in a.record.metadata]
    if plain:
        parts.append("<h2>Artifacts</h2><table><tr><th>name</th><th>type</th><th>bytes</th>")
        parts.append("<th>sha256</th></tr>")
        for artifact in plain:
            r = artifact.record
            parts.append(
                f"<tr><td>{escape(r.name)}:v{r.version}</td><td>{escape(r.type)}</td>"
                f"<td>{r.size}</td><td>{escape(r.digest[:12])}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</div>")
    return "".join(parts)


def _pairs(items: Any) -> str:
    rows = "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(_text(v))}</td></tr>" for k, v in items
    )
    return f"<table>{rows}</table>"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def _media_by_key(run: StoredRun) -> dict[str, list[tuple[int, Artifact]]]:
    return {key: run.media(key) for key in run.media_keys()}


def _media_html(key: str, step: int, artifact: Artifact, rows: int) -> str:
    details = artifact.record.metadata
    kind = details.get("media")
    caption = f"step {step}" + (f": {details['caption']}" if details.get("caption") else "")
    try:
        if kind == "image":
            body = _image(key, artifact)
        elif kind == "table":
            body = _table(artifact, rows, index=bool(details.get("index")))
        elif kind == "array":
            body = _array(artifact, rows)
        elif kind == "histogram":
            body = _histogram(key, artifact)
        else:
            body = f"<p>{escape(str(kind))} file of {artifact.record.size} bytes</p>"
    except Exception as exc:  # noqa: BLE001 - one unreadable file must not lose the page
        logger.warning("cannot show media %r at step %d: %s", key, step, exc)
        body = f"<p>cannot show this file ({escape(type(exc).__name__)})</p>"
    return (
        f"<figure class='nbops-{escape(str(kind), quote=True)}'>{body}"
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _image(key: str, artifact: Artifact) -> str:
    if artifact.record.size > IMAGE_MAX_BYTES:
        return f"<p>image of {artifact.record.size} bytes, not embedded</p>"
    data = base64.b64encode(artifact.path.read_bytes()).decode("ascii")
    return f"<img src='data:image/png;base64,{data}' alt='{escape(key, quote=True)}'>"


def _table(artifact: Artifact, rows: int, *, index: bool) -> str:
    import pandas as pd

    frame = pd.read_csv(artifact.path, index_col=0 if index else None)
    return _frame_html(frame, rows, index=index)


def _array(artifact: Artifact, rows: int) -> str:
    import numpy as np
    import pandas as pd

    array = np.load(artifact.path, allow_pickle=False)
    if array.ndim > 2:
        return f"<p>array of shape {escape(str(array.shape))}</p>"
    return _frame_html(pd.DataFrame(array.reshape(len(array), -1)), rows, index=False)


def _frame_html(frame: Any, rows: int, *, index: bool) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    if index:
        head = f"<th>{escape(str(frame.index.name or ''))}</th>" + head
    body = []
    shown = frame.head(rows)
    for label, values in zip(shown.index, shown.itertuples(index=False), strict=True):
        cells = "".join(f"<td>{escape(_text(v))}</td>" for v in values)
        if index:
            cells = f"<th>{escape(str(label))}</th>" + cells
        body.append(f"<tr>{cells}</tr>")
    more = len(frame) - rows
    note = f"<p>{more} more row(s) of {len(frame)}</p>" if more > 0 else ""
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{note}"


def _histogram(key: str, artifact: Artifact) -> str:
    """A small SVG bar chart with the value range on the x axis and the largest count."""
    doc = json.loads(artifact.path.read_text())
    counts = [int(c) for c in doc["counts"]]
    edges = [float(e) for e in doc["bins"]]
    width, height, base = 240, 100, 84
    top = max(counts) or 1
    bar = width / len(counts)
    bars = "".join(
        f"<rect x='{i * bar:.2f}' y='{base - c / top * (base - 4):.2f}' width='{bar * 0.9:.2f}' "
        f"height='{c / top * (base - 4):.2f}' fill='#4c72b0'><title>"
        f"{edges[i]:.4g} to {edges[i + 1]:.4g}: {c}</title></rect>"
        for i, c in enumerate(counts)
    )
    labels = (
        f"<text x='0' y='{height - 2}' font-size='10'>{edges[0]:.4g}</text>"
        f"<text x='{width}' y='{height - 2}' font-size='10' text-anchor='end'>{edges[-1]:.4g}"
        f"</text><text x='{width}' y='10' font-size='10' text-anchor='end'>max {top}</text>"
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"role='img' aria-label='{escape(key, quote=True)}'>{bars}"
        f"<line x1='0' y1='{base}' x2='{width}' y2='{base}' stroke='#333'/>{labels}</svg>"
    )
