"""Registered model versions and aliases (tables in the store's ``runs.db``)."""

from __future__ import annotations

import json
import os
import re
import time
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
CREATE TABLE IF NOT EXISTS model_versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, digest TEXT NOT NULL, size INTEGER NOT NULL,
    format TEXT NOT NULL, trusted_types TEXT NOT NULL, model_class TEXT NOT NULL, task TEXT,
    run_id TEXT, created_at REAL NOT NULL, created_by TEXT NOT NULL, lineage TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS model_aliases (
    name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE IF NOT EXISTS model_alias_moves (
    name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL, previous INTEGER,
    moved_by TEXT NOT NULL, moved_at REAL NOT NULL, reason TEXT
);
CREATE INDEX IF NOT EXISTS model_alias_moves_name ON model_alias_moves(name, moved_at);
"""
_COLUMNS = (
    "name, version, digest, size, format, trusted_types, model_class, task, run_id, "
    "created_at, created_by, lineage"
)
_REF = re.compile(r"(?P<name>[^:@]*)(?::(?P<version>[^:@]*)|@(?P<alias>[^:@]*))?")
#: Alias names with a meaning of their own.
RESERVED_ALIASES = ("latest",)


@dataclass(frozen=True)
class ModelRef:
    """A parsed ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


def parse_model_ref(ref: str) -> ModelRef:
    """Parse a model reference; the latest version when neither version nor alias is given."""
    match = _REF.fullmatch(ref) if isinstance(ref, str) else None
    if match is None:
        raise InvalidValueError(
            f"invalid model reference {ref!r}: use NAME, NAME:VERSION or NAME@ALIAS"
        )
    name = check_name(match["name"], "model name")
    if match["version"] is not None:
        if not match["version"].isdigit() or not match["version"].isascii():
            raise InvalidValueError(f"invalid model version {match['version']!r} in {ref!r}")
        return ModelRef(name, version=int(match["version"]))
    if match["alias"] is not None:
        alias = check_name(match["alias"], "alias")
        return ModelRef(name) if alias == "latest" else ModelRef(name, alias=alias)
    return ModelRef(name)


def check_alias(alias: str) -> str:
    """Validate an alias name to set: a name, not all digits, not reserved."""
    check_name(alias, "alias")
    if alias.isdigit() or alias in RESERVED_ALIASES:
        raise InvalidValueError(
            f"invalid alias {alias!r}: an alias cannot be a number or one of "
            f"{', '.join(RESERVED_ALIASES)}"
        )
    return alias


@dataclass(frozen=True)
class AliasMove:
    """One move of an alias: who pointed it at which version, when and why."""

    name: str
    alias: str
    version: int
    previous: int | None
    moved_by: str
    moved_at: float
    reason: str | None


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model and its lineage.

    ``lineage`` holds what the run recorded when the model was registered: ``run`` (id, name,
    project), ``datasets``, ``params``, ``metrics`` (last values), ``git``, ``notebook``.
    """

    name: str
    version: int
    digest: str
    size: int
    format: str  # "skops", "xgboost", "lightgbm" or "pickle"
    trusted_types: tuple[str, ...]  # types its file needs beyond skops' default-trusted ones
    model_class: str
    task: str | None
    run_id: str | None
    created_at: float
    created_by: str
    lineage: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def untrusted_types(self) -> tuple[str, ...]:
        """The needed types outside nbops' allow-list: ``load_model`` needs them in ``trusted``."""
        from nbops.registry._trust import untrusted

        return tuple(untrusted(self.trusted_types))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "size": self.size,
            "format": self.format,
            "trusted_types": list(self.trusted_types),
            "untrusted_types": list(self.untrusted_types),
            "model_class": self.model_class,
            "task": self.task,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "aliases": list(self.aliases),
            "lineage": dict(self.lineage),
        }

    def _repr_html_(self) -> str:
        when = datetime.fromtimestamp(self.created_at).strftime("%Y-%m-%d %H:%M:%S")
        rows = [
            ("model", self.ref),
            ("class", self.model_class),
            ("aliases", ", ".join(self.aliases) or "-"),
            ("format", self.format),
            ("sha256", self.digest),
            ("run", self.run_id or "-"),
            ("registered", f"{when} by {self.created_by}"),
        ]
        body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
        return f"<table class='nbops-model'>{body}</table>"


class ModelCatalog:
    """The model versions, aliases and alias moves of one store."""

    def __init__(self, store_dir: str | os.PathLike[str]) -> None:
        self.store_dir = Path(store_dir)
        self._db = SQLiteDatabase(store_dir, _SCHEMA)

    def add(self, fields: Mapping[str, Any]) -> int:
        """Insert the next version of ``fields['name']`` atomically; return its number."""
        with self._db.write() as con:
            (version,) = con.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE name = ?",
                (fields["name"],),
            ).fetchone()
            con.execute(
                f"INSERT INTO model_versions ({_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    fields["name"],
                    version,
                    fields["digest"],
                    fields["size"],
                    fields["format"],
                    json.dumps(list(fields["trusted_types"])),
                    fields["model_class"],
                    fields["task"],
                    fields["run_id"],
                    fields["created_at"],
                    fields["created_by"],
                    json.dumps(fields["lineage"], default=repr, sort_keys=True),
                ),
            )
        return int(version)

    def get(self, ref: ModelRef) -> ModelVersion:
        """Resolve a reference to a version."""
        con = self._db.read()
        version = ref.version
        if ref.alias is not None:
            row = con.execute(
                "SELECT version FROM model_aliases WHERE name = ? AND alias = ?",
                (ref.name, ref.alias),
            ).fetchone()
            if row is None:
                raise NotFoundError(
                    f"model {ref.name!r} has no alias {ref.alias!r}; set one with "
                    f"`nbops models alias {ref.name} VERSION {ref.alias}`"
                )
            version = row[0]
        if version is None:
            row = con.execute(
                f"SELECT {_COLUMNS} FROM model_versions WHERE name = ? "
                "ORDER BY version DESC LIMIT 1",
                (ref.name,),
            ).fetchone()
        else:
            row = con.execute(
                f"SELECT {_COLUMNS} FROM model_versions WHERE name = ? AND version = ?",
                (ref.name, version),
            ).fetchone()
        if row is None:
            what = f"model {ref.name!r}" + (f" version {version}" if version is not None else "")
            raise NotFoundError(
                f"no {what} in the store at {self.store_dir}; list models with `nbops models list`"
            )
        return self._version(row)

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        rows = (
            self._db.read()
            .execute(
                f"SELECT {_COLUMNS} FROM model_versions WHERE name = ? ORDER BY version", (name,)
            )
            .fetchall()
        )
        return [self._version(r) for r in rows]

    def names(self) -> list[tuple[ModelVersion, int]]:
        """For each model name: its latest version and its number of versions."""
        rows = (
            self._db.read()
            .execute(
                f"SELECT {_COLUMNS}, n FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY name "
                "ORDER BY version DESC) AS rn, COUNT(*) OVER (PARTITION BY name) AS n "
                "FROM model_versions) WHERE rn = 1 ORDER BY name"
            )
            .fetchall()
        )
        return [(self._version(r[:-1]), int(r[-1])) for r in rows]

    def aliases(self, name: str) -> dict[str, int]:
        """``{alias: version}`` of one model."""
        rows = (
            self._db.read()
            .execute(
                "SELECT alias, version FROM model_aliases WHERE name = ? ORDER BY alias", (name,)
            )
            .fetchall()
        )
        return {a: int(v) for a, v in rows}

    def move_alias(
        self, name: str, alias: str, version: int, moved_by: str, reason: str | None
    ) -> AliasMove:
        """Point ``alias`` at ``version`` and record the move, in one transaction."""
        with self._db.write() as con:
            exists = con.execute(
                "SELECT 1 FROM model_versions WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
            if exists is None:
                raise NotFoundError(
                    f"no model {name!r} version {version}; list versions with "
                    f"`nbops models show {name}`"
                )
            row = con.execute(
                "SELECT version FROM model_aliases WHERE name = ? AND alias = ?", (name, alias)
            ).fetchone()
            move = AliasMove(
                name,
                alias,
                version,
                None if row is None else int(row[0]),
                moved_by,
                time.time(),
                reason,
            )
            con.execute(
                "INSERT OR REPLACE INTO model_aliases (name, alias, version) VALUES (?, ?, ?)",
                (name, alias, version),
            )
            con.execute(
                "INSERT INTO model_alias_moves VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, alias, version, move.previous, moved_by, move.moved_at, reason),
            )
        return move

    def alias_moves(self, name: str, alias: str | None = None) -> list[AliasMove]:
        """The history of alias moves of one model (optionally one alias), oldest first."""
        sql = "SELECT * FROM model_alias_moves WHERE name = ?"
        args: tuple[Any, ...] = (name,)
        if alias is not None:
            sql += " AND alias = ?"
            args = (name, alias)
        rows = self._db.read().execute(sql + " ORDER BY moved_at, rowid", args).fetchall()
        return [AliasMove(*row) for row in rows]

    def _version(self, row: tuple[Any, ...]) -> ModelVersion:
        aliases = self.aliases(row[0])
        return ModelVersion(
            name=row[0],
            version=int(row[1]),
            digest=row[2],
            size=row[3],
            format=row[4],
            trusted_types=tuple(json.loads(row[5])),
            model_class=row[6],
            task=row[7],
            run_id=row[8],
            created_at=row[9],
            created_by=row[10],
            lineage=json.loads(row[11]),
            aliases=tuple(a for a, v in aliases.items() if v == int(row[1])),
        )
