"""HTML for a :class:`DriftReport`: a summary, one row per column, inline SVG overlays.

No template engine and no plotting library: the SVG is built by hand, and every string that comes
from the data (column names, category labels) goes through :func:`html.escape`.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbops.monitor._report import ColumnDrift, DriftReport, Overlay

REF_COLOR = "#4c78a8"
CUR_COLOR = "#f58518"
PLOT_W, PLOT_H = 260, 72

_CSS = """
.nbops-drift{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;
font-size:13px;color:#222;max-width:1100px}
.nbops-drift h2{font-size:18px;margin:4px 0 6px}
.nbops-drift .summary{margin:0 0 10px;padding:8px 10px;border-radius:4px;background:#f4f6f8}
.nbops-drift .badge{display:inline-block;padding:1px 7px;border-radius:10px;font-weight:600;
font-size:12px;color:#fff}
.nbops-drift .yes{background:#c0392b}.nbops-drift .no{background:#2e7d32}
.nbops-drift table{border-collapse:collapse;width:100%}
.nbops-drift th{text-align:left;font-weight:600;border-bottom:2px solid #ccc;padding:4px 6px;
white-space:nowrap}
.nbops-drift td{border-bottom:1px solid #e3e3e3;padding:4px 6px;vertical-align:middle}
.nbops-drift td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.nbops-drift td.name{font-weight:600;word-break:break-all;max-width:180px}
.nbops-drift tr.drift td{background:#fdf1f0}
.nbops-drift .small{color:#666;font-size:11px}
.nbops-drift .legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;
vertical-align:middle}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "&ndash;"
    if value != 0 and abs(value) < 10 ** (-digits):
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def _p(value: float) -> str:
    return "&lt;1e-300" if value < 1e-300 else (f"{value:.2e}" if value < 1e-3 else f"{value:.3f}")


def _extras(report: DriftReport) -> str:
    """Roles left out, target/prediction drift, the domain classifier and warnings (escaped)."""
    parts = []
    if report.excluded:
        parts.append("Left out (IDs, timestamps): " + html.escape(", ".join(report.excluded)) + ".")
    for label, col in (("Target", report.target_drift), ("Prediction", report.prediction_drift)):
        if col is not None:
            state = "drifted" if col.drifted else "did not drift"
            parts.append(f"{label} {html.escape(col.name)} {state}.")
    if report.domain:
        auc = float(report.domain["auc"])
        told = "can" if report.domain.get("drifted") else "cannot"
        parts.append(
            f"Domain classifier: a model {told} tell current from reference rows "
            f"(AUC {auc:.3f}, threshold {float(report.domain['threshold']):g})."
        )
    parts += [f"<b>Warning:</b> {html.escape(w)}" for w in report.warnings]
    return "".join(f'<br><span class="small">{p}</span>' for p in parts)


def render_fragment(report: DriftReport) -> str:
    """The report as an HTML fragment (notebook output)."""
    t = report.thresholds
    if report.drifted:
        verdict = '<span class="badge yes">dataset drifted</span>'
    elif report.drifted_columns:
        verdict = '<span class="badge no">dataset below the drift share</span>'
    else:
        verdict = '<span class="badge no">no drift</span>'

    summary = (
        f'<div class="summary">{verdict} &nbsp;<b>{len(report.drifted_columns)}</b> of '
        f"<b>{len(report.features)}</b> columns drifted (share {report.share:.2f}; the dataset "
        f"drifts at {t.share:.2f}). Reference {report.n_reference:,} rows, current "
        f"{report.n_current:,} rows.<br>"
        f'<span class="small">A column drifts when its test has p &lt; {t.alpha:g} and an effect '
        f"is material: PSI &gt; {t.psi:g}, Wasserstein/std &gt; {t.wasserstein:g} (numeric), "
        f"TVD &gt; {t.tvd:g} (categorical); or its missing rate moves by more than "
        f"{t.missing:g}; or new categories hold more than {t.new_category:g} of the rows.</span>"
        + _extras(report)
        + f'<div class="legend small"><span style="background:{REF_COLOR}"></span>reference'
        f'<span style="background:{CUR_COLOR}"></span>current</div></div>'
    )
    head = (
        "<tr><th>column</th><th>type</th><th>drift</th><th>test</th><th>p-value</th>"
        "<th>PSI</th><th>effect</th><th>missing ref &rarr; cur</th><th>distribution</th></tr>"
    )
    rows = "".join(_row(col) for col in report.columns.values())
    return (
        f'<div class="nbops-drift"><style>{_CSS}</style>{summary}'
        f"<table><thead>{head}</thead><tbody>{rows}</tbody></table></div>"
    )


def render_page(report: DriftReport, title: str) -> str:
    """The report as a standalone HTML page."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title></head><body>"
        f'<div class="nbops-drift"><h2>{_e(title)}</h2></div>'
        f"{render_fragment(report)}</body></html>\n"
    )


def _row(col: ColumnDrift) -> str:
    badge = (
        f'<span class="badge yes">{_e(", ".join(col.reasons))}</span>'
        if col.drifted
        else '<span class="badge no">no</span>'
    )
    if col.kind == "numeric":
        effect = f"W/std {_num(col.wasserstein)}"
        test = f"KS D={_num(col.statistic)}"
    else:
        effect = f"TVD {_num(col.tvd)}"
        test = f"&chi;&sup2;={col.statistic:.4g}"
        if col.new_categories:
            listed = ", ".join(col.new_categories[:5])
            more = len(col.new_categories) > 5
            effect += (
                f'<br><span class="small">new: {_e(listed)}{", &hellip;" if more else ""} '
                f"({(col.new_share or 0) * 100:.1f}%)</span>"
            )
    plot = _numeric_svg(col) if col.kind == "numeric" else _categorical_svg(col.overlay)
    return (
        f'<tr class="{"drift" if col.drifted else ""}">'
        f'<td class="name">{_e(col.name)}</td><td>{_e(col.kind)}</td><td>{badge}</td>'
        f'<td class="num">{test}</td><td class="num">{_p(col.p_value)}</td>'
        f'<td class="num">{_num(col.psi)}</td><td class="num">{effect}</td>'
        f'<td class="num">{col.missing_reference:.1%} &rarr; {col.missing_current:.1%}</td>'
        f"<td>{plot}</td></tr>"
    )


def _svg(body: str, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{PLOT_W}" height="{PLOT_H + 14}" '
        f'viewBox="0 0 {PLOT_W} {PLOT_H + 14}" role="img" aria-label="{_e(label)}">'
        f'<line x1="0" y1="{PLOT_H}" x2="{PLOT_W}" y2="{PLOT_H}" stroke="#999" '
        f'stroke-width="1"/>{body}</svg>'
    )


def _tick(value: float) -> str:
    if value == 0 or (1e-3 <= abs(value) < 1e5):
        return f"{value:.4g}"
    return f"{value:.2e}"


def _numeric_svg(col: ColumnDrift) -> str:
    ov = col.overlay
    if not ov.reference:
        return ""
    top = max(max(ov.reference), max(ov.current)) or 1.0
    n = len(ov.reference)
    step = PLOT_W / n

    def path(shares: tuple[float, ...]) -> str:
        points = [f"0,{PLOT_H}"]
        for i, share in enumerate(shares):
            y = PLOT_H - (PLOT_H - 4) * share / top
            points.append(f"{i * step:.1f},{y:.1f} {(i + 1) * step:.1f},{y:.1f}")
        points.append(f"{PLOT_W},{PLOT_H}")
        return " ".join(points)

    lo, hi = ov.edges[0], ov.edges[-1]
    if lo % 1 == 0.5 and hi - lo == len(ov.reference):  # one bar per integer value
        lo, hi = lo + 0.5, hi - 0.5
    body = (
        f'<polygon points="{path(ov.reference)}" fill="{REF_COLOR}" fill-opacity="0.45" '
        f'stroke="{REF_COLOR}" stroke-width="1"/>'
        f'<polygon points="{path(ov.current)}" fill="{CUR_COLOR}" fill-opacity="0.35" '
        f'stroke="{CUR_COLOR}" stroke-width="1.2"/>'
        f'<text x="0" y="{PLOT_H + 12}" font-size="10" fill="#666">{_e(_tick(lo))}</text>'
        f'<text x="{PLOT_W}" y="{PLOT_H + 12}" font-size="10" fill="#666" text-anchor="end">'
        f"{_e(_tick(hi))}</text>"
    )
    return _svg(body, f"distribution of {col.name}: reference and current")


def _categorical_svg(ov: Overlay) -> str:
    if not ov.reference:
        return ""
    top = max(max(ov.reference), max(ov.current)) or 1.0
    n = len(ov.labels)
    slot = PLOT_W / n
    bar = max(1.0, slot * 0.4)
    parts = []
    for i, (label, r, c) in enumerate(zip(ov.labels, ov.reference, ov.current, strict=True)):
        x = i * slot + slot * 0.1
        for j, (share, color) in enumerate(((r, REF_COLOR), (c, CUR_COLOR))):
            h = (PLOT_H - 4) * share / top
            parts.append(
                f'<rect x="{x + j * bar:.1f}" y="{PLOT_H - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{color}"><title>{_e(label)} '
                f"({'reference' if j == 0 else 'current'}): {share:.1%}"
                f"</title></rect>"
            )
        if slot >= 30:
            short = (
                label if len(label) <= math.floor(slot / 6) else label[: int(slot / 6) - 1] + "…"
            )
            parts.append(
                f'<text x="{i * slot + slot / 2:.1f}" y="{PLOT_H + 12}" font-size="9" '
                f'fill="#666" text-anchor="middle">{_e(short)}</text>'
            )
    return _svg("".join(parts), "category shares: reference and current")
