"""Media files (images, tables, histograms) as W&B media objects in a history row."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

#: The media kinds the mirror turns into W&B objects.
MEDIA_KINDS = ("image", "table", "histogram", "array")


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


def to_wandb(wandb: Any, media: MediaFile) -> Any:
    """``media`` as a ``wandb.Image``, ``wandb.Table`` or ``wandb.Histogram``, or None when the
    file cannot be shown that way (an array of more than two dimensions)."""
    if media.kind == "image":  # the blob has no file extension for wandb to go by: open it
        from PIL import Image as PILImage

        with PILImage.open(media.path) as image:
            image.load()
            return wandb.Image(image, caption=media.caption)
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


def with_media(wandb: Any, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with every :class:`MediaFile` replaced by its W&B object (or left out when
    it cannot be converted; the store keeps it either way)."""
    if not any(isinstance(v, MediaFile) for v in values.values()):
        return values
    row: dict[str, Any] = {}
    for key, value in values.items():
        if not isinstance(value, MediaFile):
            row[key] = value
            continue
        try:
            converted = to_wandb(wandb, value)
        except Exception as exc:  # noqa: BLE001 - one bad file must not lose the row's metrics
            logger.warning("media %r not mirrored to W&B: %s: %s", key, type(exc).__name__, exc)
            continue
        if converted is not None:
            row[key] = converted
    return row
