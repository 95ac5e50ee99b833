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
from nbops.data._sources import (
    TableReader,
    read_source,
    register_table_source,
    source_prefix,
    table_sources,
)
from nbops.data._versions import DatasetIndex, DatasetVersion, parse_ref

__all__ = [
    "DATASETS_KEY",
    "DatasetIndex",
    "DatasetPathError",
    "DatasetVersion",
    "TableReadError",
    "TableReader",
    "dataset_versions",
    "get_dataset",
    "list_datasets",
    "load_dataset",
    "log_dataset",
    "parse_ref",
    "read_source",
    "read_table",
    "register_table_source",
    "restore_dataset",
    "source_prefix",
    "table_sources",
]
