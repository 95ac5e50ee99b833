"""Rendering a card's context with Jinja2: Markdown (escaped by filters) and HTML (autoescape)."""

from __future__ import annotations

import functools
import html
import json
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.config import find_project_root
from nbops.deps import require

if TYPE_CHECKING:  # jinja2, markupsafe and yaml load when a card is rendered
    import jinja2
    from markupsafe import Markup

MARKDOWN_TEMPLATE = "model_card.md.j2"
HTML_TEMPLATE = "model_card.html.j2"
PACKAGED_TEMPLATES = Path(__file__).parent / "templates"
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_cell(value: Any) -> Markup:
    """Escape a value for a Markdown table cell: HTML, Markdown punctuation, ``|`` and newlines."""
    text = "" if value is None else str(value)
    text = _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))
    from markupsafe import Markup

    return Markup(html.escape(text, quote=False))  # noqa: S704 - escaped just above


def number(value: Any) -> str:
    """A metric value exactly as logged: the shortest text that reads back as the same float."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return repr(value) if isinstance(value, float) else str(value)


def as_text(value: Any) -> str:
    """A parameter value as text: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def stats_text(stats: dict[str, Any]) -> str:
    """Per-column statistics in one short line (4 significant digits)."""
    parts = []
    for key, value in stats.items():
        if key == "nulls" or value is None:
            continue
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        parts.append(f"{key.replace('_', ' ')} {shown}")
    return ", ".join(parts) or "-"


def paragraphs(value: Any) -> Markup:
    """Text written by people (nbops.yaml) as HTML: Markdown rendered with raw HTML escaped
    (mistune), or escaped paragraphs when mistune is not installed."""
    from markupsafe import Markup

    text = str(value)
    try:
        import mistune
    except ImportError:
        blocks = [b.strip() for b in re.split(r"\n\s*\n", text) if b.strip()]
        return Markup("".join(f"<p>{html.escape(b)}</p>".replace("\n", "<br>") for b in blocks))  # noqa: S704
    return Markup(mistune.create_markdown(escape=True)(text))  # noqa: S704 - raw HTML escaped


def _md_finalize(value: Any) -> Any:
    from markupsafe import Markup

    if isinstance(value, Markup):
        return value
    return "" if value is None else html.escape(str(value), quote=False)


def _loader(root: Path) -> jinja2.BaseLoader:
    import jinja2

    override = root / "templates"
    return jinja2.ChoiceLoader(
        [jinja2.FileSystemLoader(str(override)), jinja2.FileSystemLoader(str(PACKAGED_TEMPLATES))]
    )


@functools.lru_cache(maxsize=8)
def environments(root: Path) -> tuple[jinja2.Environment, jinja2.Environment]:
    """The Markdown and HTML environments; ``<root>/templates/`` overrides packaged templates."""
    jinja2 = require("jinja2", feature="model cards")

    common: dict[str, Any] = {
        "loader": _loader(root),
        "undefined": jinja2.StrictUndefined,
        "keep_trailing_newline": True,
    }
    markdown = jinja2.Environment(autoescape=False, finalize=_md_finalize, **common)
    markdown.filters.update(cell=md_cell, num=number, value=as_text, stats=stats_text)
    page = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True, **common)
    page.filters.update(
        cell=lambda v: v, num=number, value=as_text, stats=stats_text, paragraphs=paragraphs
    )
    return markdown, page


def render_front_matter(metadata: dict[str, Any]) -> str:
    """The YAML front matter block (``---`` lines included)."""
    import yaml

    body = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return f"---\n{body}---\n"


def render_markdown(context: dict[str, Any], metadata: dict[str, Any], root: Path | None) -> str:
    """Front matter, then the Markdown template rendered with ``context``."""
    template = environments(root or find_project_root())[0].get_template(MARKDOWN_TEMPLATE)
    body = template.render(**context, metadata=metadata)
    return render_front_matter(metadata) + "\n" + re.sub(r"\n{3,}", "\n\n", body).lstrip("\n")


def render_html(context: dict[str, Any], metadata: dict[str, Any], root: Path | None) -> str:
    """The HTML template rendered with ``context`` (every value escaped)."""
    return (
        environments(root or find_project_root())[1]
        .get_template(HTML_TEMPLATE)
        .render(**context, metadata=metadata)
    )


def project_root(root: str | os.PathLike[str] | None) -> Path | None:
    """The folder whose ``templates/`` and ``nbops.yaml`` apply (None: the project root)."""
    return None if root is None else Path(root).resolve()
