"""Remotes: where a team shares stage outputs, executed notebooks and the run cache.

A remote is content-addressed, as DVC's: ``objects/<aa>/<rest of sha256>`` and
``runcache/<key>.json``. Every write lands under a temporary name and is renamed into place,
so a reader never sees half an object, and an interrupted transfer is resumed by running it
again (only missing objects move). Backends are chosen by URL: a directory (a path, or
``file://``) and ``ssh://`` / ``sftp://`` (paramiko, the ``remote`` extra).

Contract of a backend: ``has``/``list`` may be called from one thread at a time; ``put`` and
``get`` are atomic at their destination and never leave a partial file under the final name;
unknown names raise :class:`RemoteError`.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol, cast
from urllib.parse import unquote, urlsplit

from nbops.deps import require
from nbops.errors import NbopsError
from nbops.fileio import staged_file

#: ``progress(bytes_done, bytes_total)`` while one file moves
Progress = Callable[[int, int], None]


class Readable(Protocol):
    """Anything with ``read(size) -> bytes`` (a file, a hashing wrapper)."""

    def read(self, size: int = -1, /) -> bytes: ...


_CHUNK = 1 << 20


class RemoteError(NbopsError):
    """A remote cannot be reached, read or written."""


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


def copy_stream(source: Readable, target: Any, progress: Progress | None, total: int) -> None:
    """Copy ``source`` into the writable ``target`` in chunks, reporting ``progress``."""
    done = 0
    while chunk := source.read(_CHUNK):
        target.write(chunk)
        done += len(chunk)
        if progress is not None:
            progress(done, total)


class DirectoryRemote(Remote):
    """A local or mounted folder (thread-safe: transfers run 8 at a time)."""

    concurrency = 8

    def __init__(self, path: str | os.PathLike[str], url: str | None = None) -> None:
        self.root = Path(path)
        self.url = url or str(path)

    def _path(self, name: str) -> Path:
        parts = Path(name).parts
        if Path(name).is_absolute() or ".." in parts:
            raise RemoteError(f"refusing remote name {name!r}: it would escape {self.url}")
        return self.root / name

    def list(self, folder: str) -> Iterator[str]:
        base = self._path(folder)
        if not base.is_dir():
            return
        for dirpath, _dirs, files in os.walk(base):
            for file in files:
                if not file.startswith("."):
                    yield (Path(dirpath) / file).relative_to(self.root).as_posix()

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def open_read(self, name: str, offset: int = 0) -> IO[bytes]:
        try:
            fh = open(self._path(name), "rb")  # noqa: SIM115 (the caller closes it)
        except FileNotFoundError:
            raise RemoteError(f"{name} is not in the remote {self.url}") from None
        fh.seek(offset)
        return fh

    def size(self, name: str) -> int:
        return self._path(name).stat().st_size

    def write(self, name: str, source: Readable, progress: Progress | None, total: int) -> None:
        target = self._path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        with staged_file(target.parent, prefix=f".{target.name}.") as staged:
            copy_stream(source, staged.file, progress, total)
            staged.commit(target, mode=0o444 if name.startswith("objects/") else 0o644)

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            pass


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
