"""``nbops push`` and ``nbops pull``: stage outs, executed notebooks and the run cache between
the local object store and a remote, moving only what the other side lacks, hash-verified."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError
from nbops.pipeline._lock import LockEntry, read_lock
from nbops.pipeline._outputs import missing_blobs, restore_outs
from nbops.pipeline._remote import (
    PartialMismatchError,
    Progress,
    Readable,
    Remote,
    RemoteError,
    open_remote,
)
from nbops.store import BlobStore, RunCache, RunStore

Report = Callable[[str], None]
#: files at least this large report their progress
LARGE = 64 << 20


@dataclass(frozen=True)
class TransferResult:
    """What moved: objects (and their bytes), run cache records, and what was already there."""

    objects: int = 0
    bytes: int = 0
    records: int = 0
    present: int = 0
    restored: tuple[str, ...] = ()


class _Hashing:
    """A read stream that hashes what passes through it."""

    def __init__(self, stream: Readable) -> None:
        self.stream = stream
        self.sha = hashlib.sha256()

    def read(self, size: int = -1, /) -> bytes:
        chunk = self.stream.read(size)
        self.sha.update(chunk)
        return chunk


def _object_name(digest: str) -> str:
    return f"objects/{digest[:2]}/{digest[2:]}"


def _progress(report: Report, label: str, total: int) -> Progress | None:
    if total < LARGE:
        return None
    shown = [0]

    def step(done: int, size: int) -> None:
        quarter = done * 4 // max(size, 1)
        if quarter > shown[0]:
            shown[0] = quarter
            report(f"  {label}: {done / 2**20:,.0f} of {size / 2**20:,.0f} MiB")

    return step


def _out_blobs(outs: Mapping[str, str], blobs: BlobStore) -> list[str]:
    """The blobs of ``outs`` that are here (a folder's manifest and its files)."""
    found: list[str] = []
    for digest in outs.values():
        if digest.startswith("dir:"):
            manifest = digest[4:]
            if blobs.exists(manifest):
                found += [manifest, *blobs.read_manifest(manifest).values()]
        else:
            found.append(digest)
    return found


def _selected(lock: Mapping[str, LockEntry], stages: Sequence[str]) -> dict[str, LockEntry]:
    unknown = [s for s in stages if s not in lock]
    if unknown:
        raise NbopsError(
            f"no entry in nbops.lock for {', '.join(unknown)}; run the stage(s) first "
            f"(stages in the lock: {', '.join(lock) or 'none'})"
        )
    return {name: lock[name] for name in (stages or lock)}


def _records(runcache: RunCache, stages: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = set(stages)
    return {k: r for k, r in runcache.list().items() if r.get("stage") in wanted}


def push(
    root: Path,
    store: RunStore,
    remote: Remote,
    stages: Sequence[str] = (),
    report: Report = print,
) -> TransferResult:
    """Copy the selected stages' outs (as the lock records them), the executed notebooks and
    run cache records of their executions to ``remote``; only what it lacks moves."""
    blobs, runcache = store.blobs, store.run_cache
    entries = _selected(read_lock(root), stages)
    records = _records(runcache, entries)
    wanted: list[str] = []
    for name, entry in entries.items():
        lacking = missing_blobs(entry.outs, blobs)
        if lacking:
            report(f"{name}: {len(lacking)} object(s) of its outs are not in the local cache")
        wanted += _out_blobs(entry.outs, blobs)
    for record in records.values():
        wanted += _out_blobs((record.get("entry") or {}).get("outs") or {}, blobs)
        if record.get("executed"):
            wanted.append(str(record["executed"]))
    local = [d for d in dict.fromkeys(wanted) if blobs.exists(d)]
    there = set(remote.list("objects"))
    todo = [d for d in local if _object_name(d) not in there]
    total = sum(blobs.path_of(d).stat().st_size for d in todo)
    report(
        f"pushing {len(todo)} object(s) ({total / 2**20:,.1f} MiB) to {remote.url}; "
        f"{len(local) - len(todo)} already there"
    )
    _send(remote, todo, blobs, report)
    have_records = set(remote.list("runcache"))
    pushed = 0
    for key, record in records.items():
        name = f"runcache/{key}.json"
        if name in have_records:
            continue
        data = json.dumps(record, sort_keys=True, indent=1).encode()
        remote.write(name, _BytesSource(data), None, len(data))
        pushed += 1
    return TransferResult(len(todo), total, pushed, len(local) - len(todo))


def _push_one(remote: Remote, digest: str, blobs: BlobStore, report: Report) -> None:
    path = blobs.path_of(digest)
    size = path.stat().st_size
    for attempt in (1, 2):
        with open(path, "rb") as fh:
            source = _Hashing(fh)
            try:
                remote.write(
                    _object_name(digest), source, _progress(report, digest[:12], size), size
                )
                break
            except PartialMismatchError:  # removed: the second attempt starts over
                if attempt == 2:
                    raise
    if source.sha.hexdigest() != digest:  # the local object rotted: do not spread it
        remote.delete(_object_name(digest))
        raise RemoteError(f"local object {digest[:12]} is corrupt ({path}); delete it")


class _BytesSource:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, size: int = -1, /) -> bytes:
        end = len(self.data) if size < 0 else self.pos + size
        chunk, self.pos = self.data[self.pos : end], min(end, len(self.data))
        return chunk


#: objects at least this large are downloaded into a kept partial file, so a pull that was
#: interrupted resumes where it stopped instead of starting over
RESUMABLE = 8 << 20


def _partial_file(blobs: BlobStore, digest: str) -> Path:
    """Where a pull keeps the partial download of ``digest``: the blob store's staging folder
    (on the blobs' filesystem, so the finished file is renamed into place, not copied)."""
    return blobs.staging_dir() / f"{digest}.part"


def _fetch_one(remote: Remote, digest: str, blobs: BlobStore, report: Report) -> int:
    """Download one object, verify it, put it in ``blobs``; a large one resumes from its partial
    file (content-addressed: whatever is there is a prefix of this object, checked at the end)."""
    import fcntl

    name = _object_name(digest)
    size = remote.size(name)
    private = size < RESUMABLE
    if not private:
        path = _partial_file(blobs, digest)
        fh = open(path, "ab+")  # noqa: SIM115 (closed below)
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another pull of this object: use a private file instead
            fh.close()
            private = True
    if private:
        fd, tmp = tempfile.mkstemp(dir=blobs.staging_dir(), prefix=f"{digest[:12]}-")
        path, fh = Path(tmp), os.fdopen(fd, "ab+")
    try:
        sha = hashlib.sha256()
        fh.seek(0)
        while chunk := fh.read(1 << 20):  # what an interrupted pull already fetched
            sha.update(chunk)
        done = fh.tell()
        if done > size:
            fh.truncate(0)
            sha, done = hashlib.sha256(), 0
        if done:
            report(f"  {digest[:12]}: resuming at {done / 2**20:,.0f} of {size / 2**20:,.0f} MiB")
        progress = _progress(report, digest[:12], size)
        with remote.open_read(name, done) as src:
            while chunk := src.read(1 << 20):
                fh.write(chunk)
                sha.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, size)
        fh.flush()
        os.fsync(fh.fileno())  # on disk before it is renamed into the store
        if sha.hexdigest() != digest:
            fh.truncate(0)
            raise RemoteError(f"object {digest[:12]} in {remote.url} is corrupt; not used")
        blobs.adopt(path, digest)  # still locked: no other pull takes the file meanwhile
    except BaseException:
        if private and path.exists():
            path.unlink()
        raise
    finally:
        fh.close()
    return size


def fetch_objects(
    remote: Remote, digests: Iterable[str], blobs: BlobStore, report: Report = print
) -> tuple[int, int]:
    """Download the objects ``blobs`` lacks, each verified against its hash before it is put
    in (several at once where the remote allows); return ``(objects, bytes)`` moved."""
    todo = [d for d in dict.fromkeys(digests) if not blobs.exists(d)]
    if remote.concurrency > 1 and len(todo) > 1:
        with ThreadPoolExecutor(remote.concurrency, thread_name_prefix="nbops-pull") as pool:
            sizes = list(pool.map(lambda d: _fetch_one(remote, d, blobs, report), todo))
    else:
        sizes = [_fetch_one(remote, d, blobs, report) for d in todo]
    return len(todo), sum(sizes)


def fetch_outs(
    remote: Remote, outs: Mapping[str, str], blobs: BlobStore, report: Report = print
) -> tuple[int, int]:
    """Download what restoring ``outs`` needs: folder manifests first, then their files."""
    manifests = [d[4:] for d in outs.values() if d.startswith("dir:")]
    first = fetch_objects(remote, manifests, blobs, report)
    files = [d for d in outs.values() if not d.startswith("dir:")]
    files += [blob for m in manifests for blob in blobs.read_manifest(m).values()]
    second = fetch_objects(remote, files, blobs, report)
    return first[0] + second[0], first[1] + second[1]


def fetch_records(remote: Remote, runcache: RunCache) -> int:
    """Download the run cache records this checkout lacks; return how many."""
    fetched = 0
    have = set(runcache.list())
    for name in remote.list("runcache"):
        key = Path(name).stem
        if key in have or not name.endswith(".json"):
            continue
        with remote.open_read(name) as fh:
            data = fh.read()
        try:
            record = json.loads(data)
            runcache.put(key, record)
        except (ValueError, TypeError):
            continue  # not a record: ignored, never trusted
        fetched += 1
    return fetched


def pull(
    root: Path,
    store: RunStore,
    remote: Remote,
    stages: Sequence[str] = (),
    report: Report = print,
) -> TransferResult:
    """Fetch the run cache and the selected stages' outs as ``nbops.lock`` records them (and
    their executed notebooks), then restore outs that are missing from the workspace. Outs that
    exist but differ are left as they are (``nbops status`` shows them)."""
    blobs, runcache = store.blobs, store.run_cache
    entries = _selected(read_lock(root), stages)
    records = fetch_records(remote, runcache)
    objects = size = 0
    for entry in entries.values():
        moved, nbytes = fetch_outs(remote, entry.outs, blobs, report)
        objects, size = objects + moved, size + nbytes
    notebooks = [
        str(r["executed"])
        for r in _records(runcache, entries).values()
        if r.get("executed")
        and (r.get("entry") or {}).get("outs") == dict(entries[r["stage"]].outs)
    ]
    moved, nbytes = fetch_objects(remote, notebooks, blobs, report)
    restored = []
    for name, entry in entries.items():
        missing = {o: d for o, d in entry.outs.items() if not (root / o).exists()}
        if missing:
            restore_outs(root, missing, blobs)
            restored += [f"{name}: {o}" for o in missing]
    return TransferResult(objects + moved, size + nbytes, records, 0, tuple(restored))


def open_configured(root: Path, store_dir: Path, name: str | None = None) -> Remote:
    """Open the remote ``name`` (default: the default remote) of the project."""
    from nbops.pipeline._remotes import get_remote

    return open_remote(get_remote(root, store_dir, name).url, root)


def push_objects(
    remote: Remote, digests: Iterable[str], blobs: BlobStore, report: Report = print
) -> int:
    """Upload the objects of ``digests`` that ``remote`` lacks, each verified on the way (several
    at once where the remote allows); return how many moved."""
    todo = [d for d in dict.fromkeys(digests) if not remote.exists(_object_name(d))]
    _send(remote, todo, blobs, report)
    return len(todo)


def _send(remote: Remote, todo: list[str], blobs: BlobStore, report: Report) -> None:
    """Upload ``todo``, several objects at once where the remote allows."""
    if remote.concurrency > 1 and len(todo) > 1:
        with ThreadPoolExecutor(remote.concurrency, thread_name_prefix="nbops-push") as pool:
            list(pool.map(lambda d: _push_one(remote, d, blobs, report), todo))
    else:
        for digest in todo:
            _push_one(remote, digest, blobs, report)


def push_outs(
    remote: Remote, outs: Mapping[str, str], blobs: BlobStore, report: Report = print
) -> int:
    """Upload what restoring ``outs`` elsewhere needs (a folder's manifest and its files)."""
    return push_objects(remote, _out_blobs(outs, blobs), blobs, report)
