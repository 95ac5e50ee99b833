"""The blob store interface: content-addressed (sha256) objects shared by every part."""

from __future__ import annotations

import abc
import json
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from nbops.errors import ArtifactError
from nbops.fileio import copy_atomic
from nbops.hashing import manifest_bytes, tree_files

_HEX = frozenset("0123456789abcdef")


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is a lowercase sha256 hex digest; raise otherwise."""
    if not isinstance(digest, str) or len(digest) != 64 or not _HEX.issuperset(digest):
        raise ArtifactError(f"not a sha256 digest: {digest!r}")
    return digest


def _safe_relpath(rel: str) -> PurePosixPath:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ArtifactError(f"refusing artifact entry {rel!r}: it would escape its directory")
    return path


class BlobStore(abc.ABC):
    """Immutable blobs named by the sha256 of their bytes; a folder is a JSON manifest blob.

    Contract (checked by :class:`nbops.testing.BlobConformance`):

    * **Content addressing.** A blob's name is the sha256 of its bytes; putting the same bytes
      twice stores them once. Blobs are never modified; only ``nbops gc`` removes them
      (:meth:`remove`), and only blobs nothing in the store or the project refers to.
    * **Atomicity.** A blob is either absent or complete: writers go through a temporary name and
      a rename (or the remote's equivalent), so a killed writer leaves no partial blob.
    * **Processes and threads.** Any number of writers may put the same or different blobs at
      the same time.
    * **Unknown digests.** :meth:`path_of` may name a file that does not exist; :meth:`exists`
      says whether it does; reading a missing blob raises :class:`ArtifactError`. A malformed
      digest raises :class:`ArtifactError`.
    * **Local access.** :meth:`path_of` is a readable local file for an existing blob (a remote
      store downloads it into a local cache first). Callers that care verify the hash.
    """

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """Where the blobs live, as a URL (``file:///...``)."""

    @abc.abstractmethod
    def path_of(self, digest: str) -> Path:
        """A local file holding the blob ``digest`` (it may not exist)."""

    @abc.abstractmethod
    def exists(self, digest: str) -> bool:
        """Whether the blob is stored."""

    @abc.abstractmethod
    def put_file(self, source: str | os.PathLike[str]) -> tuple[str, int]:
        """Store a file's bytes while hashing them; return ``(digest, size)``."""

    @abc.abstractmethod
    def put_bytes(self, data: bytes) -> str:
        """Store bytes; return their digest."""

    @abc.abstractmethod
    def remove(self, digest: str) -> int:
        """Delete the blob; return the bytes freed (0 when it was absent)."""

    @abc.abstractmethod
    def digests(self) -> Iterator[str]:
        """Every stored blob's digest (in no particular order)."""

    def staging_dir(self) -> Path:
        """A private local folder where a download may keep a file it is writing (a partial
        download resumed later); :meth:`adopt` takes such a file cheaply."""
        import tempfile

        uid = os.getuid() if hasattr(os, "getuid") else 0
        folder = Path(tempfile.gettempdir()) / f"nbops-partial-{uid}"
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder

    def adopt(self, path: str | os.PathLike[str], digest: str) -> None:
        """Take the file ``path``, whose sha256 the caller checked is ``digest`` and which it
        flushed to disk (``os.fsync``), as that blob (moved where the store allows, else copied
        and hashed again); ``path`` is gone after."""
        stored, _ = self.put_file(path)
        if stored != digest:
            raise ArtifactError(f"{path} changed while it was stored as {digest[:12]}")
        Path(path).unlink()

    def read_bytes(self, digest: str) -> bytes:
        """The blob's bytes."""
        path = self.path_of(check_digest(digest))
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ArtifactError(f"blob {digest} is missing from {self.url}") from None

    def put_tree(self, source: str | os.PathLike[str]) -> tuple[str, int]:
        """Store every regular file under a folder; return the manifest's digest and total size."""
        root = Path(source)
        manifest: dict[str, str] = {}
        total = 0
        for path in tree_files(root):
            digest, size = self.put_file(path)
            manifest[path.relative_to(root).as_posix()] = digest
            total += size
        return self.put_bytes(manifest_bytes(manifest)), total

    def read_manifest(self, digest: str) -> dict[str, str]:
        """Return ``{relative path: digest}`` of a directory object."""
        files = json.loads(self.read_bytes(digest))["files"]
        return {str(_safe_relpath(rel)): d for rel, d in files.items()}

    def restore(self, digest: str, kind: str, dest: str | os.PathLike[str]) -> Path:
        """Copy an object (``kind`` "file" or "dir") out to ``dest``; return ``dest``."""
        target = Path(dest)
        if kind == "file":
            target.parent.mkdir(parents=True, exist_ok=True)
            copy_atomic(self.path_of(digest), target)
            return target
        for rel, blob in self.read_manifest(digest).items():
            out = target / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            copy_atomic(self.path_of(blob), out)
        return target
