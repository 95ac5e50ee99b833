"""``nbops.predict``: score data with a registered model, validating it against its signature."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from nbops.deps import require
from nbops.errors import InvalidValueError
from nbops.fileio import staged_file
from nbops.registry._api import StoreArg, get_model, load_model
from nbops.registry._signature import validate_input

#: Rows scored per batch by :func:`predict_file`.
BATCH_ROWS = 50_000


def predict(
    ref: str,
    data: Any,
    *,
    trusted: Iterable[str] = (),
    store: StoreArg = None,
) -> Any:
    """Predict with the model ``ref`` (``NAME``, ``NAME:VERSION``, ``NAME@ALIAS``) on ``data``.

    ``data`` is checked against the version's signature first: a missing column or a column of
    the wrong type raises :class:`~nbops.registry.SignatureError` naming it; columns the model
    does not take are dropped and the rest put in the trained order.
    """
    version = get_model(ref, store=store)
    model = load_model(version.ref, trusted=trusted, store=store)
    checked = validate_input(version.signature, data) if version.signature else data
    return model.predict(checked)


def _batches(path: Path, rows: int) -> Iterator[Any]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
            yield batch.to_pandas()
    elif suffix == ".csv":
        import pandas as pd

        yield from pd.read_csv(path, chunksize=rows)
    else:
        raise InvalidValueError(f"cannot read {path}: give a .csv or .parquet file")


def _rows_of(path: Path) -> int | None:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    return None


def predict_file(
    ref: str,
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    column: str = "prediction",
    batch_rows: int = BATCH_ROWS,
    trusted: Iterable[str] = (),
    store: StoreArg = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> int:
    """Score a CSV or Parquet file in batches into ``output`` (CSV or Parquet): the input rows
    with a ``column`` of predictions. The output is written atomically. Returns the row count."""
    import pandas as pd

    src, dest = Path(source), Path(output)
    if not src.is_file():
        raise InvalidValueError(f"input file {src} does not exist")
    if dest.suffix.lower() not in (".csv", ".parquet"):
        raise InvalidValueError(f"cannot write {dest}: give a .csv or .parquet output path")
    if dest.resolve() == src.resolve():
        raise InvalidValueError("the output would overwrite the input; give another path")
    if ".parquet" in (src.suffix.lower(), dest.suffix.lower()):
        require("pyarrow", feature="Parquet predictions")
    version = get_model(ref, store=store)
    model = load_model(version.ref, trusted=trusted, store=store)
    total = _rows_of(src)
    writer: Any = None
    done = 0
    with staged_file(dest.parent, prefix=f".{dest.name}.") as staged:
        tmp = Path(staged.path)  # written by pandas and pyarrow through its path
        try:
            for frame in _batches(src, batch_rows):
                checked = validate_input(version.signature, frame) if version.signature else frame
                scored = frame.assign(**{column: model.predict(checked)})
                if dest.suffix.lower() == ".csv":
                    scored.to_csv(tmp, mode="a" if done else "w", header=not done, index=False)
                else:
                    import pyarrow as pa
                    import pyarrow.parquet as pq

                    table = pa.Table.from_pandas(scored, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
                done += len(frame)
                if progress is not None:
                    progress(done, total)
            if writer is not None:
                writer.close()
                writer = None
            if done == 0:  # an empty input still gives a readable output
                empty = pd.DataFrame({column: []})
                if dest.suffix.lower() == ".csv":
                    empty.to_csv(tmp, index=False)
                else:
                    empty.to_parquet(tmp)
        finally:
            if writer is not None:
                writer.close()
        staged.commit(dest)
    return done


def print_progress(done: int, total: int | None) -> None:
    """Progress on stderr: ``scored 50,000 / 200,000 rows (25%)``."""
    share = f" ({done / total:.0%})" if total else ""
    of = f" / {total:,}" if total else ""
    print(f"scored {done:,}{of} rows{share}", file=sys.stderr, flush=True)
