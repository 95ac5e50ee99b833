"""Test suites shipped with nbops: the contract every store backend must pass.

Run them for a backend by subclassing in a pytest module::

    from nbops.testing import DurableBackendConformance

    class TestMyBackend(DurableBackendConformance):
        def make_store(self, path):
            return open_store(f"mine://{path}")
"""

from __future__ import annotations

from nbops.testing.parts_conformance import (
    BlobConformance,
    DatasetConformance,
    ModelConformance,
    RunCacheConformance,
)
from nbops.testing.query_conformance import QueryConformance
from nbops.testing.store_conformance import ProcessConformance, StoreConformance

__all__ = [
    "BackendConformance",
    "BlobConformance",
    "DatasetConformance",
    "DurableBackendConformance",
    "ModelConformance",
    "ProcessConformance",
    "QueryConformance",
    "RunCacheConformance",
    "StoreConformance",
]


class BackendConformance(
    StoreConformance,
    QueryConformance,
    BlobConformance,
    ModelConformance,
    DatasetConformance,
    RunCacheConformance,
):
    """Every part's suite, for a backend used by one process (``memory://``)."""


class DurableBackendConformance(BackendConformance, ProcessConformance):
    """Every suite, plus processes, second instances, ``close()`` and SIGKILL durability."""
