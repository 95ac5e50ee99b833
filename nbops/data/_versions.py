"""Dataset versions and their index, kept by the store's datasets part."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any

from nbops.errors import InvalidValueError, NotFoundError
from nbops.names import check_name
from nbops.store import RunStore

_HEX = re.compile(r"[0-9a-f]{4,64}")


@dataclass(frozen=True)
class DatasetVersion:
    """One version of a dataset: its content hash and what was measured about it.

    ``hash`` identifies the content (a file's sha256, a folder's manifest sha256, or a
    DataFrame's content hash); ``object`` is the blob kept in the store (a DataFrame is kept
    as Parquet, so its ``object`` differs from its ``hash``).
    """

    name: str
    hash: str
    kind: str  # "file", "dir" or "dataframe"
    object: str
    size: int
    source: str
    created_at: float
    rows: int | None = None
    files: int | None = None
    schema: Mapping[str, str] | None = None
    stats: Mapping[str, Mapping[str, Any]] | None = None
    run_id: str | None = None
    used_by: tuple[str, ...] = field(default=())

    @property
    def ref(self) -> str:
        """``name@hash12``: what ``nbops data show`` and ``get`` accept."""
        return f"{self.name}@{self.hash[:12]}"

    def to_dict(self, *, stats: bool = True) -> dict[str, Any]:
        """A JSON-ready dict (``stats=False`` leaves the per-column statistics out)."""
        doc = {
            "name": self.name,
            "hash": self.hash,
            "kind": self.kind,
            "object": self.object,
            "size": self.size,
            "rows": self.rows,
            "files": self.files,
            "schema": dict(self.schema) if self.schema is not None else None,
            "source": self.source,
            "created_at": self.created_at,
            "run_id": self.run_id,
            "used_by": list(self.used_by),
        }
        if stats:
            doc["stats"] = dict(self.stats) if self.stats is not None else None
        return doc

    def _repr_html_(self) -> str:
        when = datetime.fromtimestamp(self.created_at).strftime("%Y-%m-%d %H:%M:%S")
        rows = [
            ("dataset", self.name),
            ("hash", self.hash),
            ("kind", self.kind),
            ("rows", self.rows),
            ("size", f"{self.size} bytes"),
            ("logged", when),
        ]
        rows += [(f"column {c}", t) for c, t in (self.schema or {}).items()]
        body = "".join(
            f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>"
            for k, v in rows
            if v is not None
        )
        return f"<table class='nbops-dataset'>{body}</table>"


def parse_ref(ref: str) -> tuple[str, str | None]:
    """Split ``NAME[@HASH]`` into the name and the hash prefix (None for the latest)."""
    name, sep, digest = ref.partition("@")
    check_name(name, "dataset name")
    if sep and not _HEX.fullmatch(digest):
        raise InvalidValueError(
            f"invalid dataset version {digest!r} in {ref!r}: give 4 to 64 lowercase hex "
            "characters of its hash (see `nbops data show NAME`)"
        )
    return name, digest if sep else None


class DatasetIndex:
    """Every dataset version logged into one store, and the runs that used each."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self._datasets = store.datasets

    def record(self, version: DatasetVersion, run_id: str) -> DatasetVersion:
        """Add a version (kept as first seen when it exists) and note that ``run_id`` used it."""
        fields = version.to_dict()
        fields.pop("used_by")
        fields["run_id"] = run_id
        self._datasets.record(fields, run_id, version.created_at)
        return self.get(version.name, version.hash)

    def find_hash(self, content_hash: str) -> DatasetVersion | None:
        """Any version with this content hash (under any name), to reuse its stored blob."""
        doc = self._datasets.find_hash(content_hash)
        return None if doc is None else self._version(doc)

    def get(self, name: str, digest: str | None = None) -> DatasetVersion:
        """The version of ``name`` whose hash starts with ``digest`` (default: the latest)."""
        check_name(name, "dataset name")
        rows = self._datasets.find(name, digest)
        if not rows:
            known = "" if digest is None else f" with a hash starting {digest!r}"
            raise NotFoundError(
                f"no dataset {name!r}{known} in the store at {self.store.location}; "
                "list datasets with `nbops data list`"
            )
        if len(rows) > 1:
            raise InvalidValueError(
                f"hash prefix {digest!r} matches {len(rows)} versions of {name!r}; "
                "give more characters"
            )
        return self._with_uses(self._version(rows[0]))

    def versions(self, name: str) -> list[DatasetVersion]:
        """Every version of ``name``, oldest first."""
        check_name(name, "dataset name")
        return [self._with_uses(self._version(d)) for d in self._datasets.versions(name)]

    def latest(self) -> list[tuple[DatasetVersion, int]]:
        """For each dataset name: its latest version and how many versions it has."""
        return [(self._version(d), n) for d, n in self._datasets.latest()]

    def _with_uses(self, version: DatasetVersion) -> DatasetVersion:
        uses = self._datasets.uses(version.name, version.hash)
        return DatasetVersion(**{**version.__dict__, "used_by": tuple(r for r, _ in uses)})

    @staticmethod
    def _version(doc: Mapping[str, Any]) -> DatasetVersion:
        return DatasetVersion(
            name=doc["name"],
            hash=doc["hash"],
            kind=doc["kind"],
            object=doc["object"],
            size=doc["size"],
            rows=doc["rows"],
            files=doc["files"],
            schema=doc["schema"],
            stats=doc["stats"],
            source=doc["source"],
            created_at=doc["created_at"],
            run_id=doc["run_id"],
        )
