"""Tabular values (DataFrames, Series, arrays) written as files to log as artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbops.errors import ArtifactError


def is_table(value: Any) -> bool:
    """True for a pandas DataFrame or Series, or a numpy array (checked without importing)."""
    kind = type(value)
    module = kind.__module__.split(".")[0]
    return (module == "pandas" and kind.__name__ in ("DataFrame", "Series")) or (
        module == "numpy" and kind.__name__ == "ndarray"
    )


def write_table(value: Any, folder: Path, name: str) -> tuple[Path, str]:
    """Write ``value`` into ``folder``; return the file and its artifact type.

    DataFrames and Series become CSV files (type ``table``), numpy arrays ``.npy`` files (type
    ``array``, without pickles: arrays of Python objects are refused).
    """
    kind = type(value).__name__
    if kind == "Series":
        value = value.to_frame()
        kind = "DataFrame"
    if kind == "DataFrame":
        path = folder / f"{name}.csv"
        value.to_csv(path, index=True)
        return path, "table"
    if kind == "ndarray":
        import numpy as np

        if value.dtype.hasobject:
            raise ArtifactError(
                f"cannot log array {name!r}: it holds Python objects ({value.dtype}); convert "
                "it to numbers or strings first"
            )
        path = folder / f"{name}.npy"
        np.save(path, value, allow_pickle=False)
        return path, "array"
    raise ArtifactError(
        f"cannot log {name!r} as a table: a {kind} is not a DataFrame, Series or numpy array"
    )
