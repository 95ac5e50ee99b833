"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every write goes through a temporary file in the target's folder that is flushed to disk
(``fsync``) before it is renamed over the target, so a crash leaves either the old file or the
complete new one, and never an empty file under the final name.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

_UMASK: int | None = None


def _umask() -> int:
    """The process umask (read once: reading it means setting it)."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK


class StagedFile:
    """A temporary file being written next to its destination; see :func:`staged_file`."""

    def __init__(self, fh: BinaryIO, path: str) -> None:
        self.file = fh
        self.path = path
        self.committed: Path | None = None

    def write(self, data: bytes) -> int:
        """Append ``data``."""
        return self.file.write(data)

    def commit(self, target: str | os.PathLike[str], *, mode: int | None = None) -> Path:
        """Flush to disk and rename over ``target`` (made in the same folder as the temp file).

        Args:
            target: The final path.
            mode: Its permission bits; default the replaced file's, or ``0o666`` minus the umask.
        """
        dest = Path(target)
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        if mode is None:
            mode = dest.stat().st_mode & 0o777 if dest.exists() else 0o666 & ~_umask()
        os.chmod(self.path, mode)
        os.replace(self.path, dest)
        self.committed = dest
        return dest


@contextmanager
def staged_file(
    folder: str | os.PathLike[str], *, prefix: str = ".incoming-"
) -> Iterator[StagedFile]:
    """Write a temporary file in ``folder``; ``commit(target)`` puts it in place atomically.

    Use it when the final name is known only after writing (content-addressed blobs). A file
    not committed when the block ends (or raises) is removed.
    """
    where = Path(folder)
    where.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=where, prefix=prefix, suffix=".tmp")
    staged = StagedFile(os.fdopen(fd, "wb"), tmp)
    try:
        yield staged
    finally:
        staged.file.close()
        if staged.committed is None and os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def staged_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Fill a temporary folder next to ``target``; it takes ``target``'s place when the block
    ends without error (what was there is removed first), and is removed otherwise."""
    dest = Path(target)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    try:
        yield staging
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        elif dest.is_dir():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_atomic(
    path: str | os.PathLike[str], data: str | bytes, *, mode: int | None = None
) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; return ``path``.

    ``mode`` defaults to the replaced file's permissions, or ``0o666`` minus the umask.
    """
    if not isinstance(data, (str, bytes)):
        raise TypeError(f"write_atomic writes str or bytes, not {type(data).__name__}")
    target = Path(path)
    with staged_file(target.parent, prefix=f".{target.name}.") as staged:
        staged.write(data.encode() if isinstance(data, str) else data)
        return staged.commit(target, mode=mode)


def write_once(path: str | os.PathLike[str], data: bytes) -> bytes:
    """Create ``path`` with ``data`` unless it exists; return what it holds.

    Of several processes creating one file, one wins and all return its bytes: the file is
    written aside and linked into place, so it is never seen empty or half-written.
    """
    target = Path(path)
    try:
        return target.read_bytes()
    except FileNotFoundError:
        pass
    with staged_file(target.parent, prefix=f".{target.name}.") as staged:
        staged.write(data)
        staged.file.flush()
        os.fsync(staged.file.fileno())
        os.chmod(staged.path, 0o666 & ~_umask())
        try:
            os.link(staged.path, target)
        except FileExistsError:
            return target.read_bytes()
    return data


def copy_atomic(
    source: str | os.PathLike[str], target: str | os.PathLike[str], *, mode: int | None = None
) -> Path:
    """Copy a file so that ``target`` is either absent, the old file, or the whole copy."""
    dest = Path(target)
    with staged_file(dest.parent, prefix=f".{dest.name}.") as staged, open(source, "rb") as src:
        shutil.copyfileobj(src, staged.file)
        return staged.commit(dest, mode=mode)


def move_atomic(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Rename ``source`` over ``target`` in one step (both on one filesystem); a missing
    ``source`` raises :class:`FileNotFoundError`, so of two movers only one gets it."""
    os.replace(source, target)
    return Path(target)
