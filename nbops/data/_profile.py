"""Content hashes, schemas and per-column statistics of tabular data."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.deps import require
from nbops.errors import InvalidValueError, NbopsError

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

#: File suffixes profiled as tables (schema, rows, statistics), and the largest file profiled.
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
PROFILE_MAX_BYTES = 512 * 1024 * 1024


def frame_hash(frame: pd.DataFrame) -> str:
    """Return a sha256 of a DataFrame's contents: column names, dtypes, index and every value.

    Two frames with equal values, columns, dtypes and index hash alike however they were made.
    """
    import pandas as pd

    sha = hashlib.sha256()
    header = {
        "columns": [str(c) for c in frame.columns],
        "dtypes": [str(t) for t in frame.dtypes],
        "index": [str(n) for n in frame.index.names],
        "rows": len(frame),
    }
    sha.update(json.dumps(header, sort_keys=True).encode())
    try:
        rows = pd.util.hash_pandas_object(frame, index=True)
    except TypeError:  # unhashable cells (lists, dicts): hash their text instead
        rows = pd.util.hash_pandas_object(frame.astype(str), index=True)
    sha.update(rows.to_numpy().tobytes())
    return sha.hexdigest()


def _number(value: Any) -> float | int | None:
    try:
        number = value.item() if hasattr(value, "item") else value
    except (TypeError, ValueError):
        return None
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        return None
    return number if math.isfinite(number) else None


def column_stats(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per column: dtype, nulls, and min/max/mean/std (numbers), share true (booleans),
    min/max (datetimes) or the number of distinct values (anything else)."""
    import pandas as pd
    from pandas.api import types

    stats: dict[str, dict[str, Any]] = {}
    for name in frame.columns:
        col = frame[name]
        entry: dict[str, Any] = {"dtype": str(col.dtype), "nulls": int(col.isna().sum())}
        if types.is_bool_dtype(col.dtype):
            entry["true_fraction"] = _number(col.mean()) if len(col) else None
        elif types.is_numeric_dtype(col.dtype):
            # min and max separately: aggregated with the mean they would turn into floats
            entry["min"] = _number(col.min())
            entry["max"] = _number(col.max())
            entry["mean"] = _number(col.mean())
            entry["std"] = _number(col.std())
        elif types.is_datetime64_any_dtype(col.dtype):
            low, high = col.min(), col.max()
            entry["min"] = None if pd.isna(low) else str(low)
            entry["max"] = None if pd.isna(high) else str(high)
        else:
            try:
                entry["unique"] = int(col.nunique())
            except TypeError:
                entry["unique"] = int(col.astype(str).nunique())
        stats[str(name)] = entry
    return stats


def profile_frame(frame: pd.DataFrame) -> dict[str, Any]:
    """Return ``{"schema": {column: dtype}, "rows": n, "stats": {...}}``."""
    return {
        "schema": {str(c): str(t) for c, t in frame.dtypes.items()},
        "rows": len(frame),
        "stats": column_stats(frame),
    }


_READERS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".zip")


class TableReadError(InvalidValueError):
    """A file cannot be read as a table (missing, unknown format, unparsable)."""


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV, TSV (optionally compressed) or Parquet file into a DataFrame.

    Raises:
        TableReadError: The file is missing, its format is unknown, or it does not parse.
    """
    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise TableReadError(f"no such file: {path}")
    suffixes = [s.lower() for s in file.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes = suffixes[:-1]
    kind = _READERS.get(suffixes[-1] if suffixes else "")
    if kind is None:
        raise TableReadError(f"cannot tell the format of {path}: use a .csv, .tsv or .parquet file")
    if kind == "parquet":
        require("pyarrow", feature=f"reading {path}")
    try:
        if kind == "parquet":
            return pd.read_parquet(file)
        frame = pd.read_csv(file, sep="\t" if kind == "tsv" else ",", low_memory=False)
        return parse_dates(frame)
    except ImportError as exc:
        raise TableReadError(
            f"reading {path} needs pyarrow: pip install 'nbops[monitor]' ({exc})"
        ) from exc
    except (ValueError, OSError) as exc:  # pandas parser errors are ValueErrors
        raise TableReadError(f"cannot read {path}: {exc}") from exc


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?")


def parse_dates(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn text columns whose every value is an ISO date or timestamp into datetimes."""
    import pandas as pd
    from pandas.api import types

    for name in frame.columns:
        col = frame[name]
        if types.is_numeric_dtype(col.dtype) or types.is_bool_dtype(col.dtype):
            continue
        values = col.dropna()
        if values.empty or not values.map(lambda v: isinstance(v, str)).all():
            continue
        if not values.str.fullmatch(_ISO_DATE.pattern).all():
            continue
        try:
            frame[name] = pd.to_datetime(col, format="ISO8601")
        except (ValueError, TypeError):
            continue  # mixed time zones or out-of-range dates: keep the text
    return frame


def profile_file(path: Path) -> dict[str, Any] | None:
    """Profile a table file; None when it is not one nbops reads or it is too large."""
    if path.suffix.lower() not in TABLE_SUFFIXES or path.stat().st_size > PROFILE_MAX_BYTES:
        return None
    try:
        return profile_frame(read_table(path))
    except (NbopsError, ValueError, TypeError, OSError) as exc:
        # a file named .csv that is not one is still a valid dataset
        logger.info(
            "nbops could not read %s as a table (%s); recording it without a schema", path, exc
        )
        return None
