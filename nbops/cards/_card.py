"""``nbops.card(model_ref)``: a model card built from what the model's run tracked."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from nbops.cards._config import CardConfig, load_card_config
from nbops.cards._evidence import front_matter, gather
from nbops.cards._render import project_root, render_html, render_markdown
from nbops.config import find_project_root
from nbops.fileio import write_atomic
from nbops.registry import ModelVersion, get_model
from nbops.store import RunStore, open_store


class ModelCard:
    """A model card: README-style Markdown with Hugging Face front matter, and an HTML page.

    Both are rendered from one context (:attr:`context`) gathered from the registry and the
    model's run. In :attr:`markdown` plots are inline ``data:`` URIs; :meth:`save` writes them
    as files beside the card instead (``<card stem>_files/``), which Git hosts and the Hugging
    Face Hub display. The HTML page is self-contained.
    """

    def __init__(
        self, version: ModelVersion, context: dict[str, Any], root: Path | None = None
    ) -> None:
        self.version = version
        self.context = context
        self._root = root
        self.metadata: dict[str, Any] = front_matter(context)

    def _markdown(self, image_src: Mapping[str, str]) -> str:
        images = [
            {**image, "src": image_src[image["filename"]]} for image in self.context["images"]
        ]
        return render_markdown({**self.context, "images": images}, self.metadata, self._root)

    @cached_property
    def markdown(self) -> str:
        """The card as Markdown with YAML front matter; plots as ``data:`` URIs."""
        return self._markdown({i["filename"]: i["data_uri"] for i in self.context["images"]})

    @cached_property
    def html(self) -> str:
        """The card as a self-contained HTML page; every value is escaped."""
        return render_html(self.context, self.metadata, self._root)

    def save(
        self,
        path: str | os.PathLike[str] = "model_card.md",
        html: str | os.PathLike[str] | None = None,
    ) -> Path:
        """Write the Markdown card (plots into ``<stem>_files/`` beside it) and, optionally,
        the HTML page; return the Markdown path."""
        target = Path(path)
        sources: dict[str, str] = {}
        if self.context["images"]:
            folder = target.parent / f"{target.stem}_files"
            for image in self.context["images"]:
                write_atomic(folder / image["filename"], image["data"])
                sources[image["filename"]] = f"{folder.name}/{image['filename']}"
        write_atomic(target, self._markdown(sources))
        if html is not None:
            write_atomic(html, self.html)
        return target

    def __repr__(self) -> str:
        return f"<nbops.ModelCard {self.version.ref}>"

    def _repr_markdown_(self) -> str:
        return self.markdown

    def _repr_html_(self) -> str:
        return self.html


def card(
    model_ref: str,
    *,
    store: RunStore | str | os.PathLike[str] | None = None,
    config: CardConfig | None = None,
    root: str | os.PathLike[str] | None = None,
) -> ModelCard:
    """Build the card of a registered model: ``"name"`` (latest), ``"name:3"`` or
    ``"name@production"``.

    Args:
        model_ref: The model version.
        store: The store; default ``$NBOPS_HOME`` or ``<project root>/.nbops``.
        config: The human parts; default the ``card:`` section of ``<root>/nbops.yaml``.
        root: The project folder whose ``nbops.yaml`` and ``templates/`` apply; default the
            project root of the working directory.
    """
    target = open_store(store)
    version = get_model(model_ref, store=target)
    folder = project_root(root) or find_project_root()
    settings = config if config is not None else load_card_config(folder)
    return ModelCard(version, gather(version, target, settings, folder), folder)


def write_pipeline_card(
    root: str | os.PathLike[str],
    model_ref: str | None = None,
    *,
    store: RunStore | str | os.PathLike[str] | None = None,
) -> tuple[Path, Path | None] | None:
    """Write the card configured by ``pipeline.card`` in ``<root>/nbops.yaml``.

    ``model_ref`` overrides the configured model (``nbops monitor`` passes ``NAME@ALIAS``).
    Returns the Markdown and HTML paths, or None when no card is configured.
    """
    import yaml

    base = Path(root)
    spec = yaml.safe_load((base / "nbops.yaml").read_text(encoding="utf-8")) or {}
    options = (spec.get("pipeline") or {}).get("card") or {}
    if not options:
        return None
    output = base / str(options.get("output") or "model_card.md")
    html = base / str(options["html"]) if options.get("html") else None
    ref = model_ref or str(options["model"])
    card(ref, root=base, store=store).save(output, html=html)
    return output, html
