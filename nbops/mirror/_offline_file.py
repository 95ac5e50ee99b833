"""Read offline W&B runs from their binary ``.wandb`` file, without a server."""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops.errors import MirrorError

logger = logging.getLogger(__name__)

_FILE_HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
_BLOCK_SIZE = 32 * 1024
_CHUNK_HEADER = struct.Struct("<IHB")  # crc32, length, type
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
_TYPE_CRC = {kind: zlib.crc32(bytes([kind])) for kind in (_FULL, _FIRST, _MIDDLE, _LAST)}


@dataclass(frozen=True)
class OfflineArtifact:
    """An artifact logged by an offline run."""

    name: str
    type: str


@dataclass(frozen=True)
class OfflineRun:
    """What an offline W&B run recorded, as read from its ``.wandb`` file.

    ``history`` rows hold ``_step``, ``_timestamp`` (when logged) and the metric values;
    ``summary`` leaves out wandb's internal ``_``-prefixed keys. ``exit_code`` is ``None`` and
    ``complete`` is False when the file ends before the run finished (a killed process).
    ``files`` lists the run files saved for upload (``requirements.txt``, ``diff.patch``,
    ``code/...``), relative to the run's ``files/`` folder; ``git_commit`` and ``git_remote``
    come from the run record, as do ``tags`` and ``notes`` (the last run record wins: wandb
    writes one again when they change).
    """

    path: Path
    run_id: str
    name: str
    project: str
    group: str
    job_type: str
    tags: tuple[str, ...]
    notes: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[OfflineArtifact] = field(default_factory=list)
    exit_code: int | None = None
    complete: bool = False
    files: tuple[str, ...] = ()
    git_commit: str = ""
    git_remote: str = ""


def find_offline_runs(wandb_dir: str | os.PathLike[str]) -> list[Path]:
    """Return the ``offline-run-*`` directories under ``wandb_dir``, newest last.

    ``wandb_dir`` may be the ``wandb/`` folder itself or the folder containing it.
    """
    root = Path(wandb_dir)
    if (root / "wandb").is_dir() and root.name != "wandb":
        root = root / "wandb"
    if not root.is_dir():
        return []
    # Names are offline-run-YYYYMMDD_HHMMSS-<id>: sort by time stamp, then mtime.
    runs = [p for p in root.glob("offline-run-*") if p.is_dir() and not p.is_symlink()]
    return sorted(runs, key=lambda p: (p.name.split("-")[2:3], p.stat().st_mtime))


def wandb_file(run_dir_or_wandb_file: str | os.PathLike[str]) -> Path:
    """Return the ``run-<id>.wandb`` file of a run directory (or the file itself)."""
    path = Path(run_dir_or_wandb_file)
    if path.is_file():
        return path
    files = sorted(path.glob("run-*.wandb")) if path.is_dir() else []
    if not files:
        raise MirrorError(f"no run-*.wandb file in {path}; pass an offline-run-* directory")
    return files[0]


def iter_records(path: str | os.PathLike[str]) -> Iterator[bytes]:
    """Yield each record payload of a ``.wandb`` file, stopping quietly at a truncated end.

    Raises:
        MirrorError: The file does not start with the W&B header.
    """
    data = Path(path).read_bytes()
    if not data.startswith(_FILE_HEADER[:4]):
        raise MirrorError(f"{path} is not a W&B run file (bad header)")
    yield from _records(data, len(_FILE_HEADER), str(path))


def frame_records(payloads: Iterable[bytes]) -> bytes:
    """The bytes of a ``.wandb`` file holding ``payloads``, as wandb writes one.

    The file header, then each payload in LevelDB-log chunks: a chunk never crosses a 32 KiB
    block (a payload that does not fit is split into FIRST, MIDDLE and LAST chunks), and a
    block's last bytes are zero padding when fewer than a chunk header are left. Each chunk's
    checksum is the CRC-32 of its type byte and data.
    """
    out = bytearray(_FILE_HEADER)
    for payload in payloads:
        first = True
        while True:
            left = _BLOCK_SIZE - len(out) % _BLOCK_SIZE
            if left < _CHUNK_HEADER.size:
                out += bytes(left)
                left = _BLOCK_SIZE
            room = left - _CHUNK_HEADER.size
            piece, payload = payload[:room], payload[room:]
            last = not payload
            kind = (_FULL if last else _FIRST) if first else (_LAST if last else _MIDDLE)
            out += _CHUNK_HEADER.pack(zlib.crc32(piece, _TYPE_CRC[kind]), len(piece), kind)
            out += piece
            if last:
                break
            first = False
    return bytes(out)


def _records(data: bytes, pos: int, name: str, warn: bool = True) -> Iterator[bytes]:
    """Yield record payloads from ``pos``; chunks continuing a record begun earlier are skipped."""
    pending: list[bytes] | None = None
    while pos < len(data):
        left_in_block = _BLOCK_SIZE - pos % _BLOCK_SIZE
        if left_in_block < _CHUNK_HEADER.size:
            pos += left_in_block  # zero padding at the end of a block
            continue
        if pos + _CHUNK_HEADER.size > len(data):
            break
        crc, length, kind = _CHUNK_HEADER.unpack_from(data, pos)
        start = pos + _CHUNK_HEADER.size
        payload = data[start : start + length]
        if kind == 0 and length == 0:  # zero-filled tail (preallocated or unflushed)
            break
        if len(payload) < length or zlib.crc32(payload, zlib.crc32(bytes([kind]))) != crc:
            if warn:
                logger.warning(
                    "%s is truncated or damaged at byte %d; read what came before", name, pos
                )
            break
        pos = start + length
        if kind == _FULL:
            pending = None
            yield payload
        elif kind == _FIRST:
            pending = [payload]
        elif kind == _MIDDLE and pending is not None:
            pending.append(payload)
        elif kind == _LAST and pending is not None:
            pending.append(payload)
            yield b"".join(pending)
            pending = None


def exit_record_written(run_dir_or_wandb_file: str | os.PathLike[str]) -> bool:
    """Return True when the run's ``.wandb`` file ends with its exit record on disk.

    Reads only the last two 32 KiB blocks, so it is cheap however long the history is.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    try:
        path = wandb_file(run_dir_or_wandb_file)
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(0, (size // _BLOCK_SIZE - 1) * _BLOCK_SIZE)
            f.seek(start)
            data = f.read()
    except (OSError, MirrorError):
        return False
    if start == 0 and not data.startswith(_FILE_HEADER[:4]):
        return False
    found = False
    first = len(_FILE_HEADER) if start == 0 else 0  # ``start`` is block aligned
    for payload in _records(data, first, str(path), warn=False):
        record = pb.Record()  # type: ignore[attr-defined]
        try:
            record.ParseFromString(payload)
        except Exception:  # noqa: BLE001 - a torn record at the very end: the exit record is not there yet
            logger.debug("undecodable record at the end of %s", path)
            return False
        if record.WhichOneof("record_type") == "exit":
            found = True
    return found


def read_offline_run(run_dir_or_wandb_file: str | os.PathLike[str]) -> OfflineRun:
    """Read an offline W&B run (its directory or ``.wandb`` file) into an :class:`OfflineRun`.

    A truncated file gives what was written before the cut.

    Raises:
        MirrorError: No ``.wandb`` file was found, or it is not a W&B file.
    """
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2 as pb  # lazy: importing wandb costs ~0.3 s

    path = wandb_file(run_dir_or_wandb_file)
    run: dict[str, Any] = {"run_id": "", "name": "", "project": "", "group": "", "job_type": ""}
    tags: tuple[str, ...] = ()
    notes = ""
    config: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    artifacts: list[OfflineArtifact] = []
    exit_code: int | None = None
    files: dict[str, None] = {}
    git = {"git_commit": "", "git_remote": ""}
    for payload in iter_records(path):
        record = pb.Record()  # type: ignore[attr-defined]
        try:
            record.ParseFromString(payload)
        except DecodeError:  # stop like a truncated file
            logger.warning("%s has an undecodable record; stopped reading there", path)
            break
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run = {
                "run_id": r.run_id,
                "name": r.display_name,
                "project": r.project,
                "group": r.run_group,
                "job_type": r.job_type,
            }
            tags = tuple(r.tags)
            notes = r.notes
            if r.git.commit or r.git.remote_url:
                git = {"git_commit": r.git.commit, "git_remote": r.git.remote_url}
            _apply_items(config, r.config.update)
            _apply_items(summary, r.summary.update)
        elif kind == "config":
            _apply_items(config, record.config.update)
            _remove_items(config, record.config.remove)
        elif kind == "history":
            history.append(_history_row(record.history))
        elif kind == "summary":
            _apply_items(summary, record.summary.update)
            _remove_items(summary, record.summary.remove)
        elif kind == "artifact":
            artifacts.append(OfflineArtifact(record.artifact.name, record.artifact.type))
        elif kind == "files":
            files.update((f.path, None) for f in record.files.files)
        elif kind == "exit":
            exit_code = record.exit.exit_code
    config.pop("_wandb", None)
    return OfflineRun(
        path=path,
        tags=tags,
        notes=notes,
        config=config,
        history=history,
        summary={k: v for k, v in summary.items() if not k.startswith("_")},
        artifacts=artifacts,
        exit_code=exit_code,
        complete=exit_code is not None,
        files=tuple(files),
        **git,
        **run,
    )


def _keys(item: Any) -> list[str]:
    return list(item.nested_key) if item.nested_key else [item.key]


def _decode(value_json: str) -> Any:
    try:
        return json.loads(value_json)
    except ValueError:
        return value_json


def _apply_items(target: dict[str, Any], items: Any) -> None:
    for item in items:
        *parents, leaf = _keys(item)
        node = target
        for key in parents:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[leaf] = _decode(item.value_json)


def _remove_items(target: dict[str, Any], items: Any) -> None:
    for item in items:
        *parents, leaf = _keys(item)
        node: Any = target
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)


def _history_row(history: Any) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for item in history.item:
        key = ".".join(_keys(item))
        if key in ("_runtime", "_wandb"):
            continue
        row[key] = _decode(item.value_json) if item.value_json else _typed_value(item)
    if "_step" not in row and history.HasField("step"):
        row["_step"] = history.step.num
    return row


def _typed_value(item: Any) -> Any:
    kind = item.WhichOneof("value") if "value" in item.DESCRIPTOR.oneofs_by_name else None
    return getattr(item, kind) if kind else None
