"""Dataset versions and their index (a table in the store's ``runs.db``)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from nbops.errors import InvalidValueError, NotFoundError
from nbops.names import check_name
from nbops.store import SQLiteDatabase

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dataset_versions (
    name TEXT NOT NULL, hash TEXT NOT NULL, kind TEXT NOT NULL, object TEXT NOT NULL,
    size INTEGER NOT NULL, rows INTEGER, files INTEGER, schema TEXT, stats TEXT,
    source TEXT NOT NULL, created_at REAL NOT NULL, run_id TEXT,
    PRIMARY KEY (name, hash)
);
CREATE INDEX IF NOT EXISTS dataset_versions_time ON dataset_versions(name, created_at);
CREATE TABLE IF NOT EXISTS dataset_uses (
    name TEXT NOT NULL, hash TEXT NOT NULL, run_id TEXT NOT NULL, used_at REAL NOT NULL,
    PRIMARY KEY (name, hash, run_id)
);
"""
_COLUMNS = "name, hash, kind, object, size, rows, files, schema, stats, source, created_at, run_id"
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

    def __init__(self, store_dir: str | os.PathLike[str]) -> None:
        self.store_dir = Path(store_dir)
        self._db = SQLiteDatabase(store_dir, _SCHEMA)

    def record(self, version: DatasetVersion, run_id: str) -> DatasetVersion:
        """Add a version (kept as first seen when it exists) and note that ``run_id`` used it."""
        with self._db.write() as con:
            con.execute(
                f"INSERT OR IGNORE INTO dataset_versions ({_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    version.name,
                    version.hash,
                    version.kind,
                    version.object,
                    version.size,
                    version.rows,
                    version.files,
                    None if version.schema is None else json.dumps(dict(version.schema)),
                    None if version.stats is None else json.dumps(dict(version.stats)),
                    version.source,
                    version.created_at,
                    run_id,
                ),
            )
            con.execute(
                "INSERT OR IGNORE INTO dataset_uses VALUES (?, ?, ?, ?)",
                (version.name, version.hash, run_id, version.created_at),
            )
        return self.get(version.name, version.hash)

    def find_hash(self, content_hash: str) -> DatasetVersion | None:
        """Any version with this content hash (under any name), to reuse its stored blob."""
        row = (
            self._db.read()
            .execute(
                f"SELECT {_COLUMNS} FROM dataset_versions WHERE hash = ? LIMIT 1", (content_hash,)
            )
            .fetchone()
        )
        return None if row is None else self._version(row)

    def get(self, name: str, digest: str | None = None) -> DatasetVersion:
        """The version of ``name`` whose hash starts with ``digest`` (default: the latest)."""
        check_name(name, "dataset name")
        con = self._db.read()
        if digest is None:
            rows = con.execute(
                f"SELECT {_COLUMNS} FROM dataset_versions WHERE name = ? "
                "ORDER BY created_at DESC, rowid DESC LIMIT 1",
                (name,),
            ).fetchall()
        else:
            rows = con.execute(
                f"SELECT {_COLUMNS} FROM dataset_versions "
                "WHERE name = ? AND substr(hash, 1, ?) = ?",
                (name, len(digest), digest),
            ).fetchall()
        if not rows:
            known = "" if digest is None else f" with a hash starting {digest!r}"
            raise NotFoundError(
                f"no dataset {name!r}{known} in the store at {self.store_dir}; "
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
        rows = (
            self._db.read()
            .execute(
                f"SELECT {_COLUMNS} FROM dataset_versions WHERE name = ? "
                "ORDER BY created_at, rowid",
                (name,),
            )
            .fetchall()
        )
        return [self._with_uses(self._version(r)) for r in rows]

    def latest(self) -> list[tuple[DatasetVersion, int]]:
        """For each dataset name: its latest version and how many versions it has."""
        rows = (
            self._db.read()
            .execute(
                f"SELECT {_COLUMNS}, n FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY name "
                "ORDER BY created_at DESC, rowid DESC) AS rn, COUNT(*) OVER (PARTITION BY name) "
                "AS n FROM dataset_versions) WHERE rn = 1 ORDER BY name"
            )
            .fetchall()
        )
        return [(self._version(r[:-1]), int(r[-1])) for r in rows]

    def _with_uses(self, version: DatasetVersion) -> DatasetVersion:
        rows = (
            self._db.read()
            .execute(
                "SELECT run_id FROM dataset_uses WHERE name = ? AND hash = ? ORDER BY used_at",
                (version.name, version.hash),
            )
            .fetchall()
        )
        return DatasetVersion(**{**version.__dict__, "used_by": tuple(r[0] for r in rows)})

    @staticmethod
    def _version(row: tuple[Any, ...]) -> DatasetVersion:
        return DatasetVersion(
            name=row[0],
            hash=row[1],
            kind=row[2],
            object=row[3],
            size=row[4],
            rows=row[5],
            files=row[6],
            schema=None if row[7] is None else json.loads(row[7]),
            stats=None if row[8] is None else json.loads(row[8]),
            source=row[9],
            created_at=row[10],
            run_id=row[11],
        )
