"""Files and folders as dataset versions: what a folder may hold, copying only what is new,
and writing a version out without mixing it into what is already there."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from nbops.errors import InvalidValueError
from nbops.store import BlobStore, hash_file


class DatasetPathError(InvalidValueError):
    """A dataset folder holds something nbops cannot record, or an output path is taken."""

    def __init__(self, message: str, paths: tuple[str, ...] = ()) -> None:
        self.paths = paths
        super().__init__(message)


def _listed(paths: list[str]) -> str:
    return ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")


def check_tree(root: Path) -> None:
    """Refuse a folder holding symlinks or empty folders, which a version cannot restore.

    Raises:
        DatasetPathError: Listing them and what to do.
    """
    links: list[str] = []
    empty: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for entry in [*dirnames, *filenames]:
            if (here / entry).is_symlink():
                links.append((here / entry).relative_to(root).as_posix())
        if here != root and not dirnames and not filenames:
            empty.append(here.relative_to(root).as_posix() + "/")
    if links:
        raise DatasetPathError(
            f"cannot log {root} as a dataset: it holds symlinks ({_listed(links)}), which a "
            "dataset version does not keep; copy the files they point to into the folder or "
            "log their targets separately",
            tuple(links),
        )
    if empty:
        raise DatasetPathError(
            f"cannot log {root} as a dataset: it holds empty folders ({_listed(empty)}), which a "
            "dataset version does not keep; remove them or put a file (e.g. .gitkeep) in them",
            tuple(empty),
        )


def put_file_once(objects: BlobStore, path: Path) -> tuple[str, int]:
    """Store a file unless a blob with its hash is already stored (no second copy)."""
    digest, size = hash_file(path)
    if objects.exists(digest):
        return digest, size
    return objects.put_file(path)


def put_tree_once(objects: BlobStore, root: Path) -> tuple[str, int]:
    """Store a folder like :meth:`BlobStore.put_tree`, copying only files not stored yet."""
    manifest: dict[str, str] = {}
    total = 0
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        digest, size = put_file_once(objects, path)
        manifest[path.relative_to(root).as_posix()] = digest
        total += size
    data = json.dumps({"files": manifest}, sort_keys=True).encode()
    return objects.put_bytes(data), total


def clear_destination(out: Path, kind: str, *, force: bool) -> None:
    """Make ``out`` ready for a version: refuse a non-empty folder or a file unless ``force``
    (which removes it first, so the result holds exactly the version)."""
    if not out.exists() and not out.is_symlink():
        return
    if kind == "dir" and out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
        return
    if not force:
        what = "a non-empty folder" if out.is_dir() else "a file"
        raise DatasetPathError(
            f"{out} is {what}; writing the dataset there would mix it with what is there. "
            "Give a new path, or --force (force=True) to replace it",
            (str(out),),
        )
    if out.is_dir() and not out.is_symlink():
        shutil.rmtree(out)
    else:
        out.unlink()
