"""Write an offline W&B run folder directly, as wandb 0.31 writes one offline, without wandb.

A run copied from the store that has no media and no artifacts needs nothing of wandb's
runtime: its ``.wandb`` file is a header record, the run record (id, name, project, group, job
type, tags, notes, config, host, start time, git), telemetry, the run's files, one history
record per step (with ``_step``, ``_runtime`` and ``_timestamp``), the summary and the exit
record, framed as :func:`~nbops.mirror._offline_file.frame_records` frames them. ``wandb sync``
uploads such a folder like one wandb wrote (the tests sync both to a loopback server).

The records are encoded here in protobuf's wire format, by the field numbers of wandb's
``wandb_internal.proto`` (the tests check them against wandb's own descriptors): importing
wandb's generated module runs ``import wandb`` (~0.4 s), more than a whole sweep's copies cost.

The folder is filled under a hidden name next to its final place and renamed into place, so a
reader (``nbops sync``, ``wandb sync``) never sees half of one. wandb's ``latest-run`` link is
not touched: copies written after their runs are not the latest run of anything.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import sysconfig
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from nbops.fileio import staged_dir
from nbops.mirror._offline_file import frame_records

#: What wandb 0.31 writes as the file's ``min_consumer`` (the oldest reader it expects).
MIN_CONSUMER = "0.70.0"
#: Seconds after which a hidden staging folder left by a writer is taken for abandoned.
STALE_AFTER = 3600.0

# Field numbers in wandb_internal.proto (Record and the messages it holds).
_RECORD_NUM, _RECORD_INFO = 1, 200
_HISTORY, _SUMMARY, _FILES, _TELEMETRY, _RUN, _EXIT, _HEADER = 2, 3, 6, 11, 17, 18, 21
_ITEM_KEY, _ITEM_NESTED_KEY, _ITEM_VALUE_JSON = 1, 2, 16  # ConfigItem, SummaryItem, HistoryItem
_RUN_FIELDS = {
    "run_id": 1,
    "project": 3,
    "config": 4,
    "run_group": 6,
    "job_type": 7,
    "display_name": 8,
    "notes": 9,
    "tags": 10,
    "host": 13,
    "start_time": 17,
    "telemetry": 19,
    "git": 21,
}
_GIT_REMOTE_URL, _GIT_COMMIT = 1, 2
_TELEMETRY_FEATURE, _TELEMETRY_PYTHON, _TELEMETRY_CLI, _TELEMETRY_PLATFORM = 3, 4, 5, 13
#: Feature flags wandb sets for a run started offline with a name, id, tags and config.
_FEATURES = {
    "finish": 2,
    "offline": 4,
    "set_init_name": 13,
    "set_init_id": 14,
    "set_init_tags": 15,
    "set_init_config": 16,
    "set_step_log": 61,
    "set_summary": 62,
}


@dataclass(frozen=True)
class RunCopy:
    """What an offline copy of a run holds; every value already redacted.

    Attributes:
        rows: ``(step, unix time, {metric: value})`` per history row, steps increasing.
        summary: The run's summary; it overrides the last values of the history rows.
        files: ``{path relative to the run's files folder: text}`` (code, requirements, ...).
        start_time / end_time: Unix times; ``_runtime`` and the exit record's runtime count
            from ``start_time``.
    """

    run_id: str
    project: str
    name: str
    start_time: float
    group: str | None = None
    job_type: str | None = None
    tags: tuple[str, ...] = ()
    notes: str = ""
    host: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    rows: Sequence[tuple[int, float, Mapping[str, Any]]] = ()
    summary: Mapping[str, Any] = field(default_factory=dict)
    end_time: float | None = None
    exit_code: int = 0
    git_commit: str | None = None
    git_remote: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)


def run_dir_name(run_id: str, start_time: float) -> str:
    """``offline-run-<YYYYmmdd_HHMMSS>-<id>``, the local start time as wandb names it."""
    return f"offline-run-{time.strftime('%Y%m%d_%H%M%S', time.localtime(start_time))}-{run_id}"


def write_offline_run(copy: RunCopy, wandb_dir: str | os.PathLike[str]) -> Path:
    """Write ``copy`` as an offline run folder in ``wandb_dir`` (the ``wandb/`` folder itself).

    The folder is built under a hidden temporary name beside its final place, then renamed;
    a folder of the same name (an earlier copy of the same run) is replaced. A reader sees the
    whole folder or none of it, also when the writing process is killed.

    Returns:
        The run folder, ``<wandb_dir>/offline-run-<time>-<id>``.
    """
    target = Path(wandb_dir) / run_dir_name(copy.run_id, copy.start_time)
    data = frame_records(encode_records(copy))
    with staged_dir(target) as staging:
        files = staging / "files"
        files.mkdir()
        for relative, text in copy.files.items():
            path = files / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        # Not fsynced, as wandb does not fsync its own: the copy outlives a crash of the process
        # (the rename is atomic), as the store (SQLite, synchronous=NORMAL) does. An fsync per
        # copy cost 0.2-0.35 ms of CPU and ~0.5 ms of wall time, a third of the copy.
        (staging / f"run-{copy.run_id}.wandb").write_bytes(data)
    return target


def remove_stale_staging(wandb_dir: str | os.PathLike[str], age: float = STALE_AFTER) -> list[Path]:
    """Remove the hidden folders of writers that died before renaming their copy into place
    (``.offline-run-*.tmp`` older than ``age`` seconds); return them."""
    removed: list[Path] = []
    cutoff = time.time() - age
    try:
        entries = list(os.scandir(wandb_dir))
    except OSError:  # no wandb/ folder yet
        return removed
    for entry in entries:
        if not (entry.name.startswith(".offline-run-") and entry.name.endswith(".tmp")):
            continue
        try:
            if entry.is_dir(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # gone meanwhile, or not ours to remove
            continue
    return removed


def encode_records(copy: RunCopy) -> list[bytes]:
    """The copy's records, each a serialized ``wandb_internal.Record``, in file order."""
    stream = copy.run_id
    start = copy.start_time
    last: dict[str, Any] = {}  # what wandb derives the summary from: each key's last value
    bodies: list[tuple[int, bytes]] = [(_HEADER, _header()), (_RUN, _run(copy))]
    bodies.append((_TELEMETRY, _telemetry(copy, finished=False)))
    if copy.files:
        bodies.append((_FILES, b"".join(_message(1, _string(1, p)) for p in copy.files)))
    for step, timestamp, metrics in copy.rows:
        runtime = max(timestamp - start, 0.0)
        values = {**metrics, "_timestamp": timestamp, "_runtime": runtime, "_step": step}
        last.update(values)
        row = b"".join(_message(1, _item(k, v, nested=True)) for k, v in values.items())
        bodies.append((_HISTORY, row + _message(2, _varint_field(1, step))))
    runtime = max((copy.end_time or start) - start, 0.0)
    summary = {**last, **copy.summary}
    items = [_message(1, _item(k, v)) for k, v in summary.items()]
    items.append(_message(1, _nested_item(("_wandb", "runtime"), int(runtime))))
    bodies.append((_SUMMARY, b"".join(items)))
    bodies.append((_TELEMETRY, _telemetry(copy, finished=True)))
    exit_body = _varint_field(1, copy.exit_code) + _varint_field(2, int(runtime))
    bodies.append((_EXIT, exit_body))
    info = _message(_RECORD_INFO, _string(1, stream))
    return [
        _varint_field(_RECORD_NUM, num) + _message(kind, body) + info
        for num, (kind, body) in enumerate(bodies, start=1)
    ]


def _header() -> bytes:
    version = _string(1, wandb_version()) + _string(2, MIN_CONSUMER)
    return _message(1, version)


def _run(copy: RunCopy) -> bytes:
    f = _RUN_FIELDS
    config = b"".join(
        _message(1, _item(k, v)) for k, v in {"_wandb": {}, **dict(copy.config)}.items()
    )
    seconds = math.floor(copy.start_time)
    nanos = int((copy.start_time - seconds) * 1e9)
    parts = [
        _string(f["run_id"], copy.run_id),
        _string(f["project"], copy.project),
        _message(f["config"], config),
        _string(f["run_group"], copy.group or ""),
        _string(f["job_type"], copy.job_type or ""),
        _string(f["display_name"], copy.name),
        _string(f["notes"], copy.notes),
        *(_string(f["tags"], tag, keep_empty=True) for tag in copy.tags),
        _string(f["host"], copy.host or ""),
        _message(f["start_time"], _varint_field(1, seconds) + _varint_field(2, nanos)),
        _message(f["telemetry"], _telemetry(copy, finished=False)),
    ]
    if copy.git_commit or copy.git_remote:
        git = _string(_GIT_REMOTE_URL, copy.git_remote or "") + _string(
            _GIT_COMMIT, copy.git_commit or ""
        )
        parts.append(_message(f["git"], git))
    return b"".join(parts)


def _telemetry(copy: RunCopy, *, finished: bool) -> bytes:
    names = ["offline", "set_init_name", "set_init_id", "set_init_config"]
    if copy.tags:
        names.append("set_init_tags")
    if finished:
        names += ["finish", *(["set_step_log"] if copy.rows else [])]
        names += ["set_summary"] if copy.summary else []
    numbers = sorted(_FEATURES[name] for name in names)
    feature = b"".join(_varint_field(number, 1) for number in numbers)
    return _message(_TELEMETRY_FEATURE, feature) + _environment()


@lru_cache(maxsize=1)
def _environment() -> bytes:
    """The telemetry fields naming Python, wandb and the platform, as wandb fills them."""
    return (
        _string(_TELEMETRY_PYTHON, platform.python_version())
        + _string(_TELEMETRY_CLI, wandb_version())
        + _string(_TELEMETRY_PLATFORM, sysconfig.get_platform())
    )


@lru_cache(maxsize=1)
def wandb_version() -> str:
    """The installed wandb's version (written where wandb writes its own), or ``""``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wandb")
    except PackageNotFoundError:
        return ""


def _item(key: str, value: Any, *, nested: bool = False) -> bytes:
    """A ConfigItem / SummaryItem / HistoryItem: the key (as wandb-core writes history keys,
    a one-element ``nested_key``) and the value as JSON (NaN and infinities as Python and
    wandb write them)."""
    return _string(_ITEM_NESTED_KEY if nested else _ITEM_KEY, key, keep_empty=True) + _string(
        _ITEM_VALUE_JSON, json.dumps(value, separators=(",", ":"), default=str)
    )


def _nested_item(keys: Sequence[str], value: Any) -> bytes:
    return b"".join(_string(_ITEM_NESTED_KEY, k, keep_empty=True) for k in keys) + _string(
        _ITEM_VALUE_JSON, json.dumps(value)
    )


# -- protobuf wire format ----------------------------------------------------------------------


def _varint(n: int) -> bytes:
    if n < 0:  # int32/int64 negatives take ten bytes, as two's complement
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _varint_field(number: int, value: int) -> bytes:
    """A varint field; zero (proto3's default) is left out, as protobuf leaves it out."""
    return _varint(number << 3) + _varint(value) if value else b""


def _message(number: int, body: bytes) -> bytes:
    """A length-delimited field holding an embedded message (written even when empty)."""
    return _varint(number << 3 | 2) + _varint(len(body)) + body


def _string(number: int, text: str, *, keep_empty: bool = False) -> bytes:
    """A string field; an empty one is left out unless ``keep_empty`` (repeated fields)."""
    if not text and not keep_empty:
        return b""
    return _message(number, text.encode("utf-8"))
