"""``nbops.log_dataset`` and reading dataset versions back."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from nbops.data._files import (
    DatasetPathError,
    check_tree,
    clear_destination,
    put_file_once,
    put_tree_once,
)
from nbops.data._profile import frame_hash, profile_file, profile_frame, read_table
from nbops.data._versions import DatasetIndex, DatasetVersion, parse_ref
from nbops.deps import require
from nbops.errors import DataIntegrityError, InvalidValueError, NbopsError
from nbops.fileio import write_atomic
from nbops.hashing import hash_file
from nbops.names import check_name, slug
from nbops.store import BlobStore, RunStore, open_store

if TYPE_CHECKING:
    import pandas as pd

    from nbops.tracking import Run

#: Run metadata key listing the dataset versions a run used (a list of small dicts).
DATASETS_KEY = "datasets"
_metadata_lock = threading.Lock()


def _index(store: RunStore) -> DatasetIndex:
    return DatasetIndex(store)


def _is_frame(obj: Any) -> bool:
    module = type(obj).__module__
    return module.startswith("pandas") and type(obj).__name__ == "DataFrame"


def log_dataset(
    data: str | os.PathLike[str] | pd.DataFrame,
    name: str | None = None,
    *,
    run: Run | None = None,
) -> DatasetVersion:
    """Record a dataset version as an input of the active run (or ``run``).

    Files and folders are hashed while they are copied, in chunks, into the store's
    content-addressed objects (a folder's hash is that of its manifest of file hashes); a
    DataFrame is hashed by its contents and kept as Parquet. Content already in the store is
    not stored twice. CSV, TSV and Parquet files and DataFrames also get their schema, row
    count and per-column statistics.

    Args:
        data: A file, a folder or a pandas DataFrame.
        name: The dataset's name; default: the file or folder name (required for a DataFrame).
        run: The run that used the data; default: the active run.

    Returns:
        The version, as recorded (``version.hash`` is its content hash).
    """
    from nbops.tracking import require_active

    target = run if run is not None else require_active("log a dataset")
    objects = target.store.blobs
    index = _index(target.store)
    now = time.time()
    if _is_frame(data):
        frame = cast("pd.DataFrame", data)
        if name is None:
            raise InvalidValueError(
                "log_dataset(frame) needs a name: log_dataset(df, name='train')"
            )
        check_name(name, "dataset name")
        content = frame_hash(frame)
        known = index.find_hash(content)
        if known is not None and known.kind == "dataframe":
            blob, size = known.object, known.size
        else:
            blob, size = _put_parquet(frame, objects)
        version = DatasetVersion(
            name=name,
            hash=content,
            kind="dataframe",
            object=blob,
            size=size,
            source=f"DataFrame {len(frame)} rows x {len(frame.columns)} columns",
            created_at=now,
            **profile_frame(frame),
        )
    else:
        path = Path(os.fspath(cast("str | os.PathLike[str]", data)))
        if not path.exists():
            raise NbopsError(f"cannot log dataset: {path} does not exist")
        name = check_name(name, "dataset name") if name is not None else slug(path.name, "dataset")
        if path.is_dir():
            check_tree(path)
            digest, size = put_tree_once(objects, path)
            files = len(objects.read_manifest(digest))
            version = DatasetVersion(
                name, digest, "dir", digest, size, str(path.resolve()), now, files=files
            )
        else:
            digest, size = put_file_once(objects, path)
            profile = profile_file(path) or {}
            version = DatasetVersion(
                name, digest, "file", digest, size, str(path.resolve()), now, **profile
            )
    version = index.record(version, target.id)
    _add_to_run(target, version)
    mirror = getattr(target, "mirror", None)
    if mirror is not None and version.kind != "dataframe":
        mirror.log_artifact(version.source, name=name, type="dataset")
    return version


def _put_parquet(frame: pd.DataFrame, objects: BlobStore) -> tuple[str, int]:
    require("pyarrow", feature="logging a DataFrame")
    fd, tmp = tempfile.mkstemp(prefix="nbops-frame-", suffix=".parquet")
    os.close(fd)
    try:
        try:
            frame.to_parquet(tmp)
        except (ValueError, TypeError) as exc:
            raise InvalidValueError(
                f"cannot store this DataFrame as Parquet ({exc}); give it string column names "
                "and columns of one type each, or save it to a file and log the file"
            ) from exc
        return objects.put_file(tmp)
    finally:
        os.unlink(tmp)


def _add_to_run(run: Run, version: DatasetVersion) -> None:
    entry = {
        "name": version.name,
        "hash": version.hash,
        "kind": version.kind,
        "rows": version.rows,
        "size": version.size,
        "source": version.source,
    }
    with _metadata_lock:
        current = list(run.store.get_metadata(run.id).get(DATASETS_KEY) or [])
        if not any(
            e.get("name") == version.name and e.get("hash") == version.hash for e in current
        ):
            run.set_metadata(DATASETS_KEY, [*current, entry])


def get_dataset(
    ref: str, *, store: RunStore | str | os.PathLike[str] | None = None
) -> DatasetVersion:
    """Return the version ``NAME@HASH`` (a unique hash prefix is enough) or ``NAME``'s latest."""
    name, digest = parse_ref(ref)
    return _index(open_store(store)).get(name, digest)


def list_datasets(
    *, store: RunStore | str | os.PathLike[str] | None = None
) -> list[tuple[DatasetVersion, int]]:
    """Every dataset name's latest version, with its number of versions, by name."""
    return _index(open_store(store)).latest()


def dataset_versions(
    name: str, *, store: RunStore | str | os.PathLike[str] | None = None
) -> list[DatasetVersion]:
    """Every version of one dataset, oldest first."""
    return _index(open_store(store)).versions(name)


def _verified(objects: BlobStore, digest: str, ref: str) -> Path:
    path = objects.path_of(digest)
    if not path.exists():
        raise DataIntegrityError(f"the stored content of dataset {ref} is missing ({path})")
    actual, _ = hash_file(path)
    if actual != digest:
        raise DataIntegrityError(
            f"the stored content of dataset {ref} ({path}) was modified: its sha256 is "
            f"{actual[:16]}..., not {digest[:16]}...; log the dataset again from its source"
        )
    return path


def restore_dataset(
    ref: str,
    dest: str | os.PathLike[str],
    *,
    force: bool = False,
    store: RunStore | str | os.PathLike[str] | None = None,
) -> Path:
    """Write a dataset version to ``dest``: the file or folder byte for byte; a DataFrame as
    Parquet (or CSV when ``dest`` ends in ``.csv``). Every blob is checked against its hash.

    A folder version written into an existing non-empty folder is refused unless ``force``,
    which replaces the folder (once every blob is verified), so it holds exactly the version.
    """
    target = open_store(store)
    version = get_dataset(ref, store=target)
    objects = target.blobs
    out = Path(dest)
    if version.kind == "dir":
        _verified(objects, version.object, version.ref)
        for blob in objects.read_manifest(version.object).values():
            _verified(objects, blob, version.ref)
        clear_destination(out, "dir", force=force)
        return objects.restore(version.object, "dir", out)
    if out.is_dir():
        raise DatasetPathError(
            f"{out} is a folder; dataset {version.ref} is a single {version.kind}: give a file "
            "path such as " + str(out / (Path(version.source).name or "data.parquet")),
            (str(out),),
        )
    _verified(objects, version.object, version.ref)
    if version.kind == "dataframe" and out.suffix.lower() == ".csv":
        out.parent.mkdir(parents=True, exist_ok=True)
        import pandas as pd

        require("pyarrow", feature="writing a DataFrame dataset as CSV")
        text = pd.read_parquet(objects.path_of(version.object)).to_csv(index=False)
        write_atomic(out, text)
        return out
    return objects.restore(version.object, "file", out)


def load_dataset(
    ref: str, *, store: RunStore | str | os.PathLike[str] | None = None
) -> pd.DataFrame:
    """Return a DataFrame version, or a CSV/TSV/Parquet file version, as a DataFrame."""
    import pandas as pd

    target = open_store(store)
    version = get_dataset(ref, store=target)
    objects = target.blobs
    if version.kind == "dataframe":
        require("pyarrow", feature="loading a DataFrame dataset")
        return pd.read_parquet(_verified(objects, version.object, version.ref))
    if version.kind == "file" and version.schema is not None:
        suffix = Path(version.source).suffix
        with tempfile.TemporaryDirectory() as tmp:
            copy = objects.restore(version.object, "file", Path(tmp) / f"data{suffix}")
            _verified(objects, version.object, version.ref)
            return read_table(copy)
    raise InvalidValueError(
        f"dataset {version.ref} is a {version.kind} nbops cannot read as a table; "
        f"write it out with `nbops data get {version.ref} -o PATH`"
    )
