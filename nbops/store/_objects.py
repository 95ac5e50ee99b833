"""Blobs in a local (or shared, mounted) folder: the default :class:`BlobStore`."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from nbops.errors import ArtifactError
from nbops.fileio import move_atomic, staged_file, write_atomic
from nbops.store._blobs import BlobStore, check_digest

_CHUNK = 1 << 20


class ObjectStore(BlobStore):
    """Blobs under ``<root>/<aa>/<rest of sha256>``, read-only once written."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def url(self) -> str:
        return self.root.absolute().as_uri()

    def __repr__(self) -> str:
        return f"ObjectStore({str(self.root)!r})"

    def path_of(self, digest: str) -> Path:
        check_digest(digest)
        return self.root / digest[:2] / digest[2:]

    def exists(self, digest: str) -> bool:
        return self.path_of(digest).is_file()

    def remove(self, digest: str) -> int:
        path = self.path_of(digest)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def digests(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if len(folder.name) != 2 or not folder.is_dir():
                continue
            for blob in sorted(folder.iterdir()):
                if not blob.name.startswith("."):
                    yield folder.name + blob.name

    def put_file(self, source: str | os.PathLike[str]) -> tuple[str, int]:
        sha = hashlib.sha256()
        size = 0
        with staged_file(self.root) as staged, open(source, "rb") as src:
            while chunk := src.read(_CHUNK):
                sha.update(chunk)
                staged.write(chunk)
                size += len(chunk)
            digest = sha.hexdigest()
            final = self.path_of(digest)
            if not final.exists():
                final.parent.mkdir(exist_ok=True)
                staged.commit(final, mode=0o444)
            else:
                _touch(final)
        return digest, size

    def staging_dir(self) -> Path:
        """``<root>/.staging``: on the blobs' filesystem, so :meth:`adopt` is a rename."""
        folder = self.root / ".staging"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def adopt(self, path: str | os.PathLike[str], digest: str) -> None:
        source = Path(path)
        if source.parent.resolve() != self.staging_dir().resolve():
            super().adopt(path, digest)
            return
        final = self.path_of(digest)
        if final.exists():
            source.unlink()
            _touch(final)
            return
        final.parent.mkdir(exist_ok=True)
        os.chmod(source, 0o444)
        try:
            move_atomic(source, final)
        except FileNotFoundError:
            raise ArtifactError(f"{source} vanished before it was stored") from None

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if not self.exists(digest):
            write_atomic(self.path_of(digest), data, mode=0o444)
        else:
            _touch(self.path_of(digest))
        return digest


def _touch(path: Path) -> None:
    """Mark a blob written again, so ``nbops gc`` sees it as new (it may be about to be
    recorded by whoever just stored it)."""
    try:
        os.utime(path)
    except OSError:  # another user's blob in a shared folder
        pass
