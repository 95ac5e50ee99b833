"""Media logged with ``log``: images, tables, histograms and matplotlib figures.

Each is written to a file and stored as a content-addressed artifact named after its key and
step (``<key>.step<N>``), with the key, step and kind in the artifact's metadata.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.errors import InvalidValueError

if TYPE_CHECKING:
    from nbops.mirror import MediaFile
    from nbops.store import ArtifactRecord


class Media:
    """Something ``log`` stores as a file rather than a number."""

    kind = "media"
    suffix = ".bin"

    def write(self, key: str, path: Path) -> None:
        """Write the file for ``key`` at ``path``."""
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class Image(Media):
    """An image: a numpy array (H x W, or H x W x 1/3/4; floats in [0, 1] or integers in
    [0, 255]), a PIL image, or the path of an image file. Stored as PNG."""

    data: Any
    caption: str | None = None
    kind = "image"
    suffix = ".png"

    def write(self, key: str, path: Path) -> None:
        from PIL import Image as PILImage

        data = self.data
        if isinstance(data, (str, Path)):
            try:
                with PILImage.open(data) as opened:
                    opened.save(path, format="PNG")
            except OSError as exc:
                raise InvalidValueError(f"image {key!r}: cannot read {data} ({exc})") from None
            return
        if isinstance(data, PILImage.Image):
            data.save(path, format="PNG")
            return
        PILImage.fromarray(_pixels(key, data)).save(path, format="PNG")


@dataclass(frozen=True, eq=False)
class Table(Media):
    """A pandas DataFrame (or anything ``pandas.DataFrame()`` accepts). Stored as CSV."""

    data: Any
    kind = "table"
    suffix = ".csv"

    def write(self, key: str, path: Path) -> None:
        import pandas as pd

        frame = self.data if isinstance(self.data, pd.DataFrame) else pd.DataFrame(self.data)
        if frame.empty:
            raise InvalidValueError(f"table {key!r} is empty: log a table with rows and columns")
        frame.to_csv(path, index=False)


@dataclass(frozen=True, eq=False)
class Histogram(Media):
    """The distribution of numbers (``bins`` equal bins). Stored as JSON: bin edges, counts."""

    values: Any
    bins: int = 64
    kind = "histogram"
    suffix = ".json"

    def write(self, key: str, path: Path) -> None:
        import numpy as np

        try:
            values = np.asarray(self.values, dtype=float).ravel()
        except (TypeError, ValueError):
            raise InvalidValueError(f"histogram {key!r}: values must be numbers") from None
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise InvalidValueError(f"histogram {key!r} has no finite values")
        counts, edges = np.histogram(values, bins=self.bins)
        path.write_text(json.dumps({"bins": edges.tolist(), "counts": counts.tolist()}))


@dataclass(frozen=True, eq=False)
class Figure(Media):
    """A matplotlib figure, stored as PNG."""

    figure: Any
    kind = "image"
    suffix = ".png"

    def write(self, key: str, path: Path) -> None:
        self.figure.savefig(path, format="png", bbox_inches="tight")


def as_media(key: str, value: Any) -> Media | None:
    """``value`` as media when it is some (numpy arrays: 1-D a histogram, 2-D/3-D an image;
    matplotlib figures; pandas DataFrames and Series: a table), else None (a number, or
    something ``log`` refuses)."""
    if isinstance(value, Media):
        return value
    kind = type(value)
    module = kind.__module__.split(".")[0]
    if module == "matplotlib" and hasattr(value, "savefig"):
        return Figure(value)
    if module == "numpy" and kind.__name__ == "ndarray" and value.ndim >= 1:
        if value.ndim == 1:
            return Histogram(value)
        return Image(value)
    if module == "PIL" and hasattr(value, "save"):
        return Image(value)
    if module == "pandas" and kind.__name__ in ("DataFrame", "Series"):
        return Table(value.to_frame() if kind.__name__ == "Series" else value)
    return None


def mirror_media(record: ArtifactRecord, path: Path) -> MediaFile:
    """The W&B mirror's reference to the media artifact ``record`` stored at ``path``."""
    from nbops.mirror import MediaFile

    details = record.metadata
    return MediaFile(
        kind=str(details.get("media", record.type)),
        path=str(path),
        caption=details.get("caption"),
        index=bool(details.get("index", False)),
    )


def media_name(key: str, step: int) -> str:
    """The artifact name of the media logged under ``key`` at ``step``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("._-") or "media"
    return f"{stem[:100]}.step{step}"


def _pixels(key: str, data: Any) -> Any:
    import numpy as np

    array = np.asarray(data)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InvalidValueError(
            f"image {key!r} has shape {array.shape}: give H x W (grey), H x W x 3 (RGB) or "
            "H x W x 4 (RGBA); log other arrays with nbops.Histogram or log_table()"
        )
    if array.size == 0:
        raise InvalidValueError(f"image {key!r} is empty (shape {array.shape})")
    if array.dtype == np.bool_:
        return (array * 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise InvalidValueError(
                f"image {key!r}: float pixels must be finite and in [0, 1]; scale them, or "
                "give integers in [0, 255]"
            )
        return (array * 255).round().astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        if array.min() < 0 or array.max() > 255:
            raise InvalidValueError(f"image {key!r}: integer pixels must be in [0, 255]")
        return array.astype(np.uint8)
    raise InvalidValueError(f"image {key!r}: pixels of type {array.dtype} are not supported")
