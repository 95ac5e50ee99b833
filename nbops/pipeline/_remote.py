"""Remotes: where a team shares stage outputs, executed notebooks and the run cache.

A remote is content-addressed, as DVC's: ``objects/<aa>/<rest of sha256>`` and
``runcache/<key>.json``. Every write lands under a temporary name and is renamed into place,
so a reader never sees half an object, and an interrupted transfer is resumed by running it
again (only missing objects move). A large object's upload is resumable inside the object
too: its partial file stays at the destination (``.<name>.<random>.part``) and the next push
continues it once nobody writes to it, after checking the bytes already there against the
source. Backends are chosen by URL: a directory (a path, or ``file://``) and ``ssh://`` /
``sftp://`` (paramiko, the ``remote`` extra).

Contract of a backend: ``write``, ``open_read``, ``exists`` and ``size`` may be called from
``concurrency`` threads at once; ``list`` and ``delete`` from one. ``write`` is atomic at its
destination and never leaves a partial file under the final name; unknown names raise
:class:`RemoteError`.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol, cast
from urllib.parse import unquote, urlsplit

from nbops.deps import require
from nbops.errors import NbopsError
from nbops.fileio import move_atomic, staged_file

#: ``progress(bytes_done, bytes_total)`` while one file moves
Progress = Callable[[int, int], None]


class Readable(Protocol):
    """Anything with ``read(size) -> bytes`` (a file, a hashing wrapper)."""

    def read(self, size: int = -1, /) -> bytes: ...


_CHUNK = 1 << 20

#: uploads at least this large keep their partial file when interrupted, to be continued
RESUMABLE = 8 << 20
#: a partial file whose size has not changed for this long has no writer: it may be continued
PARTIAL_IDLE = 2.0


class RemoteError(NbopsError):
    """A remote cannot be reached, read or written."""


class PartialMismatchError(RemoteError):
    """An interrupted upload's partial file did not match the object; it was removed, so
    writing again starts over."""


class Remote(ABC):
    """A place holding ``objects/`` and ``runcache/`` (relative names use ``/``)."""

    url: str
    #: transfers that may run at once on threads (1: one at a time)
    concurrency: int = 1

    @abstractmethod
    def list(self, folder: str) -> Iterator[str]:
        """Relative paths of the files under ``folder`` (``objects`` or ``runcache``)."""

    @abstractmethod
    def exists(self, name: str) -> bool:
        """Whether the file ``name`` is there."""

    @abstractmethod
    def open_read(self, name: str, offset: int = 0) -> IO[bytes]:
        """A binary stream of ``name``, from byte ``offset`` on (resumed downloads)."""

    @abstractmethod
    def size(self, name: str) -> int:
        """The size of ``name`` in bytes."""

    @abstractmethod
    def write(self, name: str, source: Readable, progress: Progress | None, total: int) -> None:
        """Copy ``source`` to ``name`` through a temporary name and a rename."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove ``name`` (missing is fine)."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections."""

    def __enter__(self) -> Remote:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def copy_stream(
    source: Readable, target: Any, progress: Progress | None, total: int, done: int = 0
) -> None:
    """Copy ``source`` into the writable ``target`` in chunks, reporting ``progress`` (from
    ``done`` bytes already there)."""
    while chunk := source.read(_CHUNK):
        target.write(chunk)
        done += len(chunk)
        if progress is not None:
            progress(done, total)


class ResumableRemote(Remote):
    """A remote whose uploads continue an earlier, interrupted upload of the same object.

    Subclasses give file primitives on their own paths; :meth:`write` does the rest: it claims
    an idle partial file of the object by renaming it (so of two writers only one continues
    it), checks the bytes already there against the source's first bytes, appends the rest and
    renames the result into place. Small files and run cache records are written in one go.
    """

    @abstractmethod
    def _path(self, name: str) -> str:
        """The backend path of the remote name ``name``."""

    @abstractmethod
    def _sizes(self, folder: str, prefix: str) -> dict[str, int]:
        """``{path: size}`` of the files in ``folder`` whose names start with ``prefix``."""

    @abstractmethod
    def _open(self, path: str, mode: str) -> IO[bytes]:
        """Open a backend path (``rb``, ``wb`` or ``ab``)."""

    @abstractmethod
    def _rename(self, source: str, target: str) -> None:
        """Rename over ``target``; raise :class:`FileNotFoundError` when ``source`` is gone."""

    @abstractmethod
    def _remove(self, path: str) -> None:
        """Remove a backend path (missing is fine)."""

    @abstractmethod
    def _makedirs(self, folder: str) -> None:
        """Create ``folder`` and its parents."""

    @abstractmethod
    def _partials(self, folder: str) -> dict[str, int]:
        """``{path: size}`` of the partial uploads (``.*.part``) anywhere under ``folder``."""

    def drop_partials(self, dry_run: bool = False) -> tuple[int, int]:
        """Remove interrupted uploads nobody is continuing (their size stays the same over
        :data:`PARTIAL_IDLE`); return ``(files, bytes)``."""
        found = self._partials(self._path("objects"))
        if not found:
            return 0, 0
        time.sleep(PARTIAL_IDLE)
        again = self._partials(self._path("objects"))
        idle = {p: n for p, n in found.items() if again.get(p) == n}
        if not dry_run:
            for path in idle:
                self._remove(path)
        return len(idle), sum(idle.values())

    def _claim(self, folder: str, prefix: str, mine: str) -> int:
        """Take over an idle partial upload as ``mine``; return its size (0: none)."""
        found = {p: n for p, n in self._sizes(folder, prefix).items() if p.endswith(".part")}
        if not found:
            return 0
        time.sleep(PARTIAL_IDLE)  # a partial still growing has a live writer: leave it
        again = self._sizes(folder, prefix)
        idle = sorted(((n, p) for p, n in found.items() if again.get(p) == n), reverse=True)
        for size, path in idle:
            try:
                self._rename(path, mine)
            except FileNotFoundError:  # another writer took it first
                continue
            return size
        return 0

    def _prefix_matches(self, path: str, size: int, source: Readable) -> bool:
        """Whether the first ``size`` bytes of ``path`` are those ``source`` yields next (read
        from ``source`` either way, so the caller's hash covers them)."""
        ours, theirs = hashlib.sha256(), hashlib.sha256()
        with self._open(path, "rb") as there:
            left = size
            while left:
                chunk = source.read(min(_CHUNK, left))
                if not chunk:
                    return False
                ours.update(chunk)
                theirs.update(there.read(len(chunk)))
                left -= len(chunk)
        return ours.digest() == theirs.digest()

    def write(self, name: str, source: Readable, progress: Progress | None, total: int) -> None:
        target = self._path(name)
        folder, base = posixpath.split(target) if "/" in target else ("", target)
        self._makedirs(folder)
        prefix = f".{base}."
        mine = posixpath.join(folder, f"{prefix}{uuid.uuid4().hex}.part")
        done = self._claim(folder, prefix, mine) if total >= RESUMABLE else 0
        if done and (done > total or not self._prefix_matches(mine, done, source)):
            self._remove(mine)  # not a prefix of this object: start over
            raise PartialMismatchError(f"the partial upload of {name} did not match; push again")
        try:
            with self._open(mine, "ab" if done else "wb") as fh:
                if progress is not None and done:
                    progress(done, total)
                copy_stream(source, fh, progress, total, done)
            self._rename(mine, target)
        except BaseException:
            if total < RESUMABLE:
                self._remove(mine)
            raise  # a large partial stays, to be continued


class DirectoryRemote(ResumableRemote):
    """A local or mounted folder (thread-safe: transfers run 8 at a time)."""

    concurrency = 8

    def __init__(self, path: str | os.PathLike[str], url: str | None = None) -> None:
        self.root = Path(path)
        self.url = url or str(path)

    def _path(self, name: str) -> str:
        parts = Path(name).parts
        if Path(name).is_absolute() or ".." in parts:
            raise RemoteError(f"refusing remote name {name!r}: it would escape {self.url}")
        return str(self.root / name)

    def list(self, folder: str) -> Iterator[str]:
        base = Path(self._path(folder))
        if not base.is_dir():
            return
        for dirpath, _dirs, files in os.walk(base):
            for file in files:
                if not file.startswith("."):
                    yield (Path(dirpath) / file).relative_to(self.root).as_posix()

    def exists(self, name: str) -> bool:
        return Path(self._path(name)).is_file()

    def open_read(self, name: str, offset: int = 0) -> IO[bytes]:
        try:
            fh = open(self._path(name), "rb")  # noqa: SIM115 (the caller closes it)
        except FileNotFoundError:
            raise RemoteError(f"{name} is not in the remote {self.url}") from None
        fh.seek(offset)
        return fh

    def size(self, name: str) -> int:
        return Path(self._path(name)).stat().st_size

    def write(self, name: str, source: Readable, progress: Progress | None, total: int) -> None:
        if total >= RESUMABLE:
            super().write(name, source, progress, total)
            if name.startswith("objects/"):
                os.chmod(self._path(name), 0o444)
            return
        target = Path(self._path(name))
        target.parent.mkdir(parents=True, exist_ok=True)
        with staged_file(target.parent, prefix=f".{target.name}.") as staged:
            copy_stream(source, staged.file, progress, total)
            staged.commit(target, mode=0o444 if name.startswith("objects/") else 0o644)

    def delete(self, name: str) -> None:
        self._remove(self._path(name))

    def _sizes(self, folder: str, prefix: str) -> dict[str, int]:
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return {}
        found = {}
        for entry in entries:
            if entry.name.startswith(prefix):
                try:
                    found[entry.path] = entry.stat().st_size
                except FileNotFoundError:
                    continue
        return found

    def _partials(self, folder: str) -> dict[str, int]:
        found = {}
        for dirpath, _dirs, files in os.walk(folder):
            for file in files:
                if file.startswith(".") and file.endswith(".part"):
                    path = os.path.join(dirpath, file)
                    try:
                        found[path] = os.stat(path).st_size
                    except FileNotFoundError:
                        continue
        return found

    def _open(self, path: str, mode: str) -> IO[bytes]:
        return cast("IO[bytes]", open(path, mode))

    def _rename(self, source: str, target: str) -> None:
        move_atomic(source, target)

    def _remove(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def _makedirs(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)


class FsspecRemote(Remote):
    """Any other URL an installed fsspec implementation handles (``s3://``, ``gs://``,
    ``memory://``...): writes go to a temporary name and are moved into place, which is a
    rename where the filesystem has one and a copy then delete where it does not (object
    stores), where a reader may briefly see no object but never half of one."""

    def __init__(self, url: str) -> None:
        fsspec = require("fsspec", feature=f"the remote {url}")
        self.url = url
        self._fs, self.base = fsspec.core.url_to_fs(url)

    def _path(self, name: str) -> str:
        if name.startswith("/") or ".." in name.split("/"):
            raise RemoteError(f"refusing remote name {name!r}: it would escape {self.url}")
        return f"{self.base.rstrip('/')}/{name}"

    def list(self, folder: str) -> Iterator[str]:
        base = self.base.rstrip("/") + "/"
        try:
            found = self._fs.find(self._path(folder))
        except FileNotFoundError:
            return
        for path in found:
            rel = str(path)[len(base) :] if str(path).startswith(base) else str(path)
            rel = rel.lstrip("/")
            if not posixpath.basename(rel).startswith("."):
                yield rel

    def exists(self, name: str) -> bool:
        return bool(self._fs.exists(self._path(name)))

    def open_read(self, name: str, offset: int = 0) -> IO[bytes]:
        try:
            fh = cast("IO[bytes]", self._fs.open(self._path(name), "rb"))
        except FileNotFoundError:
            raise RemoteError(f"{name} is not in the remote {self.url}") from None
        fh.seek(offset)
        return fh

    def size(self, name: str) -> int:
        return int(self._fs.size(self._path(name)))

    def write(self, name: str, source: Readable, progress: Progress | None, total: int) -> None:
        target = self._path(name)
        tmp = f"{posixpath.dirname(target)}/.{posixpath.basename(target)}.{uuid.uuid4().hex}.part"
        self._fs.makedirs(posixpath.dirname(target), exist_ok=True)
        try:
            with self._fs.open(tmp, "wb") as fh:
                copy_stream(source, fh, progress, total)
            self._fs.mv(tmp, target)
        except BaseException:
            if self._fs.exists(tmp):
                self._fs.rm(tmp)
            raise

    def delete(self, name: str) -> None:
        if self._fs.exists(self._path(name)):
            self._fs.rm(self._path(name))


_SCHEMES = ("", "file", "ssh", "sftp")


def _fsspec_knows(scheme: str) -> bool:
    try:
        from fsspec.registry import known_implementations
    except ImportError:
        return False
    return scheme in known_implementations


def check_url(url: str) -> None:
    """Raise :class:`RemoteError` unless ``url`` names a kind of remote nbops supports."""
    scheme = urlsplit(url).scheme.lower()
    if not url or (scheme not in _SCHEMES and len(scheme) > 1 and not _fsspec_knows(scheme)):
        raise RemoteError(
            f"remote URL {url!r} is not supported; use a folder, file://, ssh:// or sftp://, "
            "or install fsspec (and its package for that scheme) for other URLs"
        )


def open_remote(url: str, root: Path | None = None) -> Remote:
    """The backend for ``url``: a folder (relative to ``root``), ``file://``, ``ssh://`` or
    ``sftp://``."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("ssh", "sftp"):
        from nbops.pipeline._sftp import SFTPRemote

        return SFTPRemote(url)
    if scheme == "file":
        return DirectoryRemote(unquote(urlsplit(url).path), url)
    check_url(url)
    if scheme and len(scheme) > 1:
        try:
            return FsspecRemote(url)
        except ImportError as exc:
            raise RemoteError(f"{url}: {exc}; install the fsspec package for {scheme}://") from None
    path = Path(url).expanduser()
    return DirectoryRemote(path if path.is_absolute() or root is None else root / path, url)
