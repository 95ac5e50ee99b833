"""Data versions: content-addressed datasets recorded as inputs of runs."""

from __future__ import annotations

from nbops.data._api import (
    DATASETS_KEY,
    dataset_versions,
    get_dataset,
    list_datasets,
    load_dataset,
    log_dataset,
    restore_dataset,
)
from nbops.data._files import DatasetPathError
from nbops.data._profile import TableReadError, read_table
from nbops.data._versions import DatasetIndex, DatasetVersion, parse_ref

__all__ = [
    "DATASETS_KEY",
    "DatasetIndex",
    "DatasetPathError",
    "DatasetVersion",
    "TableReadError",
    "dataset_versions",
    "get_dataset",
    "list_datasets",
    "load_dataset",
    "log_dataset",
    "parse_ref",
    "read_table",
    "restore_dataset",
]
