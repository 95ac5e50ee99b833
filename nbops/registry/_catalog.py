"""Registered model versions and aliases, kept by the store's models part."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from html import escape
from typing import Any

from nbops.errors import InvalidValueError, NotFoundError
from nbops.names import check_name
from nbops.registry._signature import Signature
from nbops.store import RunStore

_REF = re.compile(r"(?P<name>[^:@]*)(?::(?P<version>[^:@]*)|@(?P<alias>[^:@]*))?")
#: Alias names with a meaning of their own.
RESERVED_ALIASES = ("latest",)
#: A version's status: ``candidate`` until its gates pass, then ``validated``; ``rejected`` when
#: a gate failed or a challenger lost. Only validated versions are "latest" and get aliases.
STATUSES = ("candidate", "validated", "rejected")


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

    @property
    def removed(self) -> bool:
        """The alias was removed (recorded as a move to version 0)."""
        return self.version == 0


@dataclass(frozen=True)
class VersionEvent:
    """One change of a version's status, tags or archive state: who, when, why."""

    action: str
    by: str
    at: float
    reason: str | None
    detail: Mapping[str, Any] = field(default_factory=dict)


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
    status: str = "validated"
    archived: bool = False
    deleted: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)
    signature: Signature | None = None
    events: tuple[VersionEvent, ...] = ()
    evaluation: Mapping[str, Any] | None = None

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
            "status": self.status,
            "archived": self.archived,
            "deleted": self.deleted,
            "tags": dict(self.tags),
            "signature": self.signature.to_dict() if self.signature else None,
            "events": [asdict(e) for e in self.events],
            "evaluation": dict(self.evaluation) if self.evaluation else None,
            "lineage": dict(self.lineage),
        }

    def _repr_html_(self) -> str:
        when = datetime.fromtimestamp(self.created_at).strftime("%Y-%m-%d %H:%M:%S")
        rows = [
            ("model", self.ref),
            ("class", self.model_class),
            ("status", self.status + (" (archived)" if self.archived else "")),
            ("aliases", ", ".join(self.aliases) or "-"),
            ("format", self.format),
            ("sha256", self.digest),
            ("run", self.run_id or "-"),
            ("registered", f"{when} by {self.created_by}"),
        ]
        body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
        return f"<table class='nbops-model'>{body}</table>"


class ModelCatalog:
    """The model versions, aliases and alias moves of one store (through ``store.models``)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self._models = store.models

    def add(self, fields: Mapping[str, Any]) -> int:
        """Insert the next version of ``fields['name']`` atomically; return its number."""
        return self._models.add_version(fields)

    def get(self, ref: ModelRef) -> ModelVersion:
        """Resolve a reference to a version."""
        version = ref.version
        if ref.alias is not None:
            found = self._models.aliases(ref.name).get(ref.alias)
            if found is None:
                raise NotFoundError(
                    f"model {ref.name!r} has no alias {ref.alias!r}; set one with "
                    f"`nbops models alias {ref.name} VERSION {ref.alias}`"
                )
            version = found
        if version is None:
            return self._latest_usable(ref.name)
        doc = self._models.get_version(ref.name, version)
        if doc is None:
            raise NotFoundError(
                f"no model {ref.name!r} version {version} in the store at {self.store.location}; "
                "list models with `nbops models list`"
            )
        resolved = self._version(doc)
        if resolved.deleted:
            last = resolved.events[-1] if resolved.events else None
            why = f" by {last.by}: {last.reason}" if last and last.reason else ""
            raise NotFoundError(f"model {resolved.ref} was deleted{why}")
        return resolved

    def _latest_usable(self, name: str) -> ModelVersion:
        """The latest validated version that is not archived (what a bare name means)."""
        versions = self.versions(name)
        if not versions:
            raise NotFoundError(
                f"no model {name!r} in the store at {self.store.location}; list models with "
                "`nbops models list`"
            )
        for version in reversed(versions):
            if version.status == "validated" and not version.archived and not version.deleted:
                return version
        counts: dict[str, int] = {}
        for version in versions:
            state = (
                "deleted"
                if version.deleted
                else ("archived" if version.archived else version.status)
            )
            counts[state] = counts.get(state, 0) + 1
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        raise NotFoundError(
            f"model {name!r} has no validated version ({summary}); a version is validated when "
            f"its pipeline gates pass, or with `nbops models status {name} VERSION validated "
            f"--reason ...`; load a specific one with {name}:VERSION"
        )

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        aliases = self._models.aliases(name)
        return [self._version(d, aliases) for d in self._models.versions(name)]

    def names(self) -> list[tuple[ModelVersion, int]]:
        """For each model name: its latest version and its number of versions."""
        return [(self._version(d), n) for d, n in self._models.names()]

    def aliases(self, name: str) -> dict[str, int]:
        """``{alias: version}`` of one model."""
        return self._models.aliases(name)

    def move_alias(
        self, name: str, alias: str, version: int, moved_by: str, reason: str | None
    ) -> AliasMove:
        """Point ``alias`` at ``version`` and record the move, in one transaction."""
        return AliasMove(**self._models.move_alias(name, alias, version, moved_by, reason))

    def remove_alias(self, name: str, alias: str, moved_by: str, reason: str | None) -> AliasMove:
        """Remove ``alias``, recording who removed it, when and why."""
        try:
            return AliasMove(**self._models.remove_alias(name, alias, moved_by, reason))
        except NotFoundError:
            raise NotFoundError(
                f"model {name!r} has no alias {alias!r}; its aliases: "
                f"{', '.join(self._models.aliases(name)) or 'none'}"
            ) from None

    def record(
        self,
        version: ModelVersion,
        event: VersionEvent,
        *,
        tags: Mapping[str, str | None] | None = None,
        **fields: Any,
    ) -> None:
        """Set ``fields`` of a version, merge ``tags`` into its tags (``None`` removes one) and
        append ``event`` to its history.

        The store does all of it in one transaction, so concurrent changes lose nothing.
        """
        self._models.update_version(
            version.name,
            version.version,
            fields,
            event=asdict(event),
            merge={"tags": dict(tags)} if tags else None,
        )

    def alias_moves(self, name: str, alias: str | None = None) -> list[AliasMove]:
        """The history of alias moves of one model (optionally one alias), oldest first."""
        return [AliasMove(**m) for m in self._models.alias_moves(name, alias)]

    def _version(
        self, doc: Mapping[str, Any], aliases: Mapping[str, int] | None = None
    ) -> ModelVersion:
        if aliases is None:
            aliases = self._models.aliases(doc["name"])
        return ModelVersion(
            name=doc["name"],
            version=int(doc["version"]),
            digest=doc["digest"],
            size=doc["size"],
            format=doc["format"],
            trusted_types=tuple(doc["trusted_types"]),
            model_class=doc["model_class"],
            task=doc["task"],
            run_id=doc["run_id"],
            created_at=doc["created_at"],
            created_by=doc["created_by"],
            lineage=doc["lineage"],
            aliases=tuple(a for a, v in aliases.items() if v == int(doc["version"])),
            status=str(doc.get("status") or "validated"),  # versions from before statuses
            archived=bool(doc.get("archived")),
            deleted=bool(doc.get("deleted")),
            tags=dict(doc.get("tags") or {}),
            signature=Signature.from_dict(doc["signature"]) if doc.get("signature") else None,
            events=tuple(VersionEvent(**e) for e in doc.get("events") or []),
            evaluation=doc.get("evaluation"),
        )
