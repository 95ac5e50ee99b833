"""Which remotes a project has: ``remotes:`` in ``nbops.yaml`` (shared through git) and
``<store>/remotes.json`` (this checkout only, e.g. a mount point or credentials in a URL)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError
from nbops.fileio import write_atomic
from nbops.names import check_name
from nbops.pipeline._spec import SPEC_FILE

LOCAL_FILE = "remotes.json"
_SECTION = re.compile(r"^remotes:[ \t]*(#.*)?$")


class RemoteConfigError(NbopsError):
    """A remote is unknown or its configuration is invalid."""


@dataclass(frozen=True)
class RemoteConfig:
    """One configured remote."""

    name: str
    url: str
    default: bool = False
    local: bool = False


def _spec_remotes(root: Path) -> dict[str, Any]:
    from nbops.pipeline._yaml import yaml_load

    try:
        raw = yaml_load((root / SPEC_FILE).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return {}
    section = raw.get("remotes") if isinstance(raw, dict) else None
    return dict(section) if isinstance(section, dict) else {}


def _local_remotes(store_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((store_dir / LOCAL_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _entries(section: dict[str, Any], local: bool) -> dict[str, RemoteConfig]:
    out = {}
    for name, body in section.items():
        if isinstance(body, str):
            body = {"url": body}
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            raise RemoteConfigError(f"remote {name!r}: write {name}: {{url: URL}}")
        out[str(name)] = RemoteConfig(str(name), body["url"], bool(body.get("default")), local)
    return out


def list_remotes(root: Path, store_dir: Path) -> dict[str, RemoteConfig]:
    """Every remote; a local entry overrides a shared one of the same name."""
    return {
        **_entries(_spec_remotes(root), local=False),
        **_entries(_local_remotes(store_dir), local=True),
    }


def get_remote(root: Path, store_dir: Path, name: str | None = None) -> RemoteConfig:
    """The remote ``name``, or the default one (the only one, when there is just one)."""
    remotes = list_remotes(root, store_dir)
    if name is not None:
        if name not in remotes:
            known = ", ".join(remotes) or "none"
            raise RemoteConfigError(f"no remote named {name!r} (configured: {known})")
        return remotes[name]
    defaults = [r for r in remotes.values() if r.default]
    if defaults:
        return next((r for r in defaults if r.local), defaults[0])
    if len(remotes) == 1:
        return next(iter(remotes.values()))
    raise RemoteConfigError(
        "no default remote; add one with `nbops remote add NAME URL --default`"
        if not remotes
        else f"several remotes ({', '.join(remotes)}) and none is the default; pass --remote "
        "NAME or mark one with `nbops remote add NAME URL --default`"
    )


def _render_section(section: dict[str, Any]) -> str:
    import yaml

    if not section:
        return ""
    text: str = yaml.safe_dump(
        {"remotes": section}, default_flow_style=None, sort_keys=False, width=1000
    )
    return text


def _write_spec_section(root: Path, section: dict[str, Any]) -> None:
    path = root / SPEC_FILE
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if _SECTION.match(line)), None)
    block = _render_section(section)
    if start is None:
        tail = "" if not lines or lines[-1].endswith("\n") else "\n"
        write_atomic(path, "".join(lines) + tail + ("\n" + block if block else ""))
        return
    end = start + 1
    while end < len(lines) and (lines[end][:1] in (" ", "\t", "#", "\n") or not lines[end]):
        end += 1
    write_atomic(path, "".join(lines[:start]) + block + "".join(lines[end:]))


def add_remote(
    root: Path, store_dir: Path, name: str, url: str, *, default: bool = False, local: bool = False
) -> RemoteConfig:
    """Add (or change) a remote in ``nbops.yaml`` (``local``: in this checkout's store only);
    with ``default``, it becomes the one ``push``, ``pull`` and ``run --pull`` use."""
    check_name(name, "remote name")
    from nbops.pipeline._remote import check_url

    check_url(url)
    if local:
        section = _local_remotes(store_dir)
    else:
        if not (root / SPEC_FILE).is_file():
            raise RemoteConfigError(f"no {SPEC_FILE} in {root}; create one with `nbops init`")
        section = _spec_remotes(root)
    body: dict[str, Any] = {"url": url}
    if default:
        for other in section.values():
            if isinstance(other, dict):
                other.pop("default", None)
        body["default"] = True
    section[name] = body
    if local:
        write_atomic(store_dir / LOCAL_FILE, json.dumps(section, indent=2, sort_keys=True) + "\n")
    else:
        _write_spec_section(root, section)
    return RemoteConfig(name, url, default, local)


def remove_remote(root: Path, store_dir: Path, name: str) -> None:
    """Remove a remote from wherever it is configured."""
    local, shared = _local_remotes(store_dir), _spec_remotes(root)
    if name not in local and name not in shared:
        raise RemoteConfigError(f"no remote named {name!r}")
    if name in local:
        del local[name]
        write_atomic(store_dir / LOCAL_FILE, json.dumps(local, indent=2, sort_keys=True) + "\n")
    if name in shared:
        del shared[name]
        _write_spec_section(root, shared)
