"""Content-addressed object storage (sha256) for artifacts, deduplicated, written atomically."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePosixPath

from nbops.errors import ArtifactError
from nbops.fileio import copy_atomic, staged_file, write_atomic
from nbops.hashing import manifest_bytes, tree_files

_CHUNK = 1 << 20


def _safe_relpath(rel: str) -> PurePosixPath:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ArtifactError(f"refusing artifact entry {rel!r}: it would escape its directory")
    return path


class ObjectStore:
    """Blobs under ``<root>/<aa>/<rest of sha256>``; directories as a JSON manifest blob."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path_of(self, digest: str) -> Path:
        """Return where the blob with ``digest`` lives (it may not exist)."""
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise ArtifactError(f"not a sha256 digest: {digest!r}")
        return self.root / digest[:2] / digest[2:]

    def put_file(self, source: str | os.PathLike[str]) -> tuple[str, int]:
        """Copy a file in while hashing it; return ``(digest, size)``. Existing blobs are reused."""
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
        return digest, size

    def put_bytes(self, data: bytes) -> str:
        """Store bytes; return their digest."""
        digest = hashlib.sha256(data).hexdigest()
        final = self.path_of(digest)
        if not final.exists():
            write_atomic(final, data, mode=0o444)
        return digest

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
        files = json.loads(self.path_of(digest).read_bytes())["files"]
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
