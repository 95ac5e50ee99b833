from __future__ import annotations

from pathlib import Path

from nbops.store import MemoryStore, RunStore
from nbops.testing import BackendConformance


class TestMemoryStore(BackendConformance):
    def make_store(self, path: Path) -> RunStore:
        return MemoryStore(str(path))
