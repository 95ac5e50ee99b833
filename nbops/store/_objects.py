"""Content-addressed object storage (sha256) for artifacts, deduplicated, written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path, PurePosixPath

from nbops.errors import ArtifactError
from nbops.fileio import copy_atomic

_CHUNK = 1 << 20


def _safe_relpath(rel: str) -> PurePosixPath:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ArtifactError(f"refusing artifact entry {rel!r}: it would escape its directory")
    return path


def hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """Return ``(sha256 hex digest, size)`` of a file, read in chunks."""
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


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
        self.root.mkdir(parents=True, exist_ok=True)
        sha = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    sha.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
            digest = sha.hexdigest()
            final = self.path_of(digest)
            if final.exists():
                os.unlink(tmp)
            else:
                final.parent.mkdir(exist_ok=True)
                os.chmod(tmp, 0o444)
                os.replace(tmp, final)
            return digest, size
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def put_bytes(self, data: bytes) -> str:
        """Store bytes; return their digest."""
        digest = hashlib.sha256(data).hexdigest()
        final = self.path_of(digest)
        if not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".incoming-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, final)
        return digest

    def put_tree(self, source: str | os.PathLike[str]) -> tuple[str, int]:
        """Store every regular file under a folder; return the manifest's digest and total size."""
        root = Path(source)
        manifest: dict[str, str] = {}
        total = 0
        for path in sorted(root.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            digest, size = self.put_file(path)
            manifest[path.relative_to(root).as_posix()] = digest
            total += size
        data = json.dumps({"files": manifest}, sort_keys=True).encode()
        return self.put_bytes(data), total

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
