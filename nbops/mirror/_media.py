"""Media files (images, tables, histograms) as W&B media objects in a history row."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: The media kinds the mirror turns into W&B objects.
MEDIA_KINDS = ("image", "table", "histogram", "array")

_links_lock = threading.Lock()
_links: list[Path] = []  # the folder for .png links to blobs, made on first use


@dataclass(frozen=True)
class MediaFile:
    """A media file nbops stored, to be logged in a W&B history row.

    Attributes:
        kind: ``image`` (PNG), ``table`` (CSV), ``histogram`` (JSON with ``bins`` and
            ``counts``) or ``array`` (``.npy`` of at most two dimensions).
        path: The file (nbops passes its content-addressed blob, which never changes).
        caption: An image's caption.
        index: For ``table``: whether the CSV's first column is the row index.
    """

    kind: str
    path: str
    caption: str | None = None
    index: bool = False


def to_wandb(wandb: Any, media: MediaFile, links: list[Path]) -> Any:
    """``media`` as a ``wandb.Image``, ``wandb.Table`` or ``wandb.Histogram``, or None when the
    file cannot be shown that way (an array of more than two dimensions).

    An image blob has no file extension for wandb to go by: it gets a ``.png`` hard link (a
    copy where links fail), appended to ``links`` for the caller to remove once logged. wandb
    then copies the PNG as it is instead of decoding and encoding it again.
    """
    if media.kind == "image":
        link = _png_link(media.path)
        links.append(link)
        return wandb.Image(str(link), caption=media.caption)
    if media.kind == "histogram":
        with open(media.path, encoding="utf-8") as handle:
            doc = json.load(handle)
        return wandb.Histogram(np_histogram=(doc["counts"], doc["bins"]))
    if media.kind == "table":
        import pandas as pd

        frame = pd.read_csv(media.path, index_col=0 if media.index else None)
        if media.index:
            frame = frame.reset_index()
        return wandb.Table(dataframe=frame)
    if media.kind == "array":
        import numpy as np

        array = np.load(media.path, allow_pickle=False)
        if array.ndim > 2:
            return None
        rows = array.reshape(-1, 1) if array.ndim < 2 else array
        return wandb.Table(columns=[str(i) for i in range(rows.shape[1])], data=rows.tolist())
    return None


@contextmanager
def media_row(wandb: Any, values: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``values`` with every :class:`MediaFile` replaced by its W&B object (or left out when
    it cannot be converted; the store keeps it either way), for one ``run.log`` call in the
    ``with`` block; the temporary links made for images are removed after it."""
    if not any(isinstance(v, MediaFile) for v in values.values()):
        yield values
        return
    links: list[Path] = []
    row: dict[str, Any] = {}
    try:
        for key, value in values.items():
            if not isinstance(value, MediaFile):
                row[key] = value
                continue
            try:
                converted = to_wandb(wandb, value, links)
            except Exception as exc:  # noqa: BLE001 - one bad file must not lose the row
                logger.warning("media %r not mirrored to W&B: %s: %s", key, type(exc).__name__, exc)
                continue
            if converted is not None:
                row[key] = converted
        yield row
    finally:
        for link in links:
            link.unlink(missing_ok=True)


def _png_link(path: str) -> Path:
    with _links_lock:
        if not _links:
            _links.append(Path(tempfile.mkdtemp(prefix="nbops-wandb-media-")))
        folder = _links[0]
    link = folder / f"{uuid.uuid4().hex}.png"
    try:
        os.link(path, link)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(path, link)
    return link
