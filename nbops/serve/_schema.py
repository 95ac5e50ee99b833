"""The inputs a served model expects, and validation of a request against them.

This is the one place that reads a model version's signature. When the registry records one
(``ModelVersion.signature``) it is used; older versions fall back to what the loaded model says
about itself (scikit-learn's ``feature_names_in_`` and ``n_features_in_``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nbops.serve._errors import RequestError

#: V2 datatype of each numpy kind / dtype name.
_V2_OF_DTYPE = {
    "bool": "BOOL",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "object": "BYTES",
    "str": "BYTES",
    "string": "BYTES",
    "category": "BYTES",
}
_NUMERIC = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_NUMERIC |= {"FP16", "FP32", "FP64", "BOOL"}


@dataclass(frozen=True)
class Column:
    """One input column: its name, V2 datatype and per-row shape (``()`` for a scalar)."""

    name: str
    datatype: str = "FP64"
    shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class Schema:
    """What a model takes: named columns (tabular) and what it returns."""

    columns: tuple[Column, ...]
    named: bool  # False: the model was fitted on an unnamed array (columns are positions)
    output: str  # "class", "value" or "unknown"
    output_datatype: str = "FP64"

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def metadata_inputs(self) -> list[dict[str, Any]]:
        """The V2 ``inputs`` of the model metadata."""
        if not self.named:
            return [
                {"name": "input-0", "datatype": "FP64", "shape": [-1, len(self.columns)]},
            ]
        return [
            {"name": c.name, "datatype": c.datatype, "shape": [-1, *c.shape]} for c in self.columns
        ]

    def metadata_outputs(self) -> list[dict[str, Any]]:
        """The V2 ``outputs`` of the model metadata."""
        return [{"name": "predict", "datatype": self.output_datatype, "shape": [-1]}]


def v2_datatype(dtype: Any) -> str:
    """The V2 datatype name of a numpy/pandas dtype or dtype name."""
    name = str(dtype).lower()
    if name in {v.lower() for v in _V2_OF_DTYPE.values()}:
        return name.upper()
    return _V2_OF_DTYPE.get(name, "BYTES" if "str" in name or "obj" in name else "FP64")


def schema_of(version: Any, model: Any) -> Schema:
    """The schema of a loaded model version: its recorded signature, else the model's own."""
    signature = getattr(version, "signature", None)
    output = _output_kind(version, model)
    out_type = "BYTES" if output == "class" and _string_classes(model) else "FP64"
    if output == "class" and not _string_classes(model):
        out_type = "INT64" if _integer_classes(model) else "FP64"
    if signature is not None:
        cols = getattr(signature, "inputs", None) or getattr(signature, "columns", None) or ()
        columns = tuple(
            Column(
                str(c.name),
                v2_datatype(getattr(c, "dtype", "float64")),
                tuple(int(s) for s in (getattr(c, "shape", None) or ())),
            )
            for c in cols
        )
        if columns:
            return Schema(columns, True, output, out_type)
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return Schema(tuple(Column(str(n)) for n in names), True, output, out_type)
    count = int(getattr(model, "n_features_in_", 0) or 0)
    return Schema(tuple(Column(f"x{i}") for i in range(count)), False, output, out_type)


def _output_kind(version: Any, model: Any) -> str:
    signature = getattr(version, "signature", None)
    kind = getattr(signature, "output", None) or getattr(signature, "output_kind", None)
    if isinstance(kind, str):
        return "class" if "class" in kind else "value" if kind else "unknown"
    task = getattr(version, "task", None) or ""
    if "classification" in task or hasattr(model, "classes_"):
        return "class"
    return "value" if "regression" in task else "unknown"


def _string_classes(model: Any) -> bool:
    classes = getattr(model, "classes_", None)
    return (
        classes is not None
        and getattr(classes, "dtype", None) is not None
        and (classes.dtype.kind in "OUS")
    )


def _integer_classes(model: Any) -> bool:
    classes = getattr(model, "classes_", None)
    return (
        classes is not None
        and getattr(classes, "dtype", None) is not None
        and (classes.dtype.kind in "iub")
    )


def validate(schema: Schema, columns: dict[str, Any], n_rows: int) -> None:
    """Check decoded columns against the schema; raise a 400 naming the first bad field.

    ``columns`` maps a column name to a numpy array whose first axis has ``n_rows`` entries.
    Swap this function for the registry's ``validate_input`` once every version has a signature.
    """
    if not schema.columns:
        return
    expected = schema.names
    missing = [n for n in expected if n not in columns]
    if missing:
        raise RequestError(
            f"missing input column {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + f"; the model expects {_list(expected)}",
            field=missing[0],
        )
    extra = [n for n in columns if n not in set(expected)]
    if extra:
        raise RequestError(
            f"unexpected input column {extra[0]!r}; the model expects {_list(expected)}",
            field=extra[0],
        )
    for col in schema.columns:
        values = columns[col.name]
        if values.shape[0] != n_rows:
            raise RequestError(
                f"input {col.name!r} has {values.shape[0]} rows, other inputs have {n_rows}",
                field=col.name,
            )
        if tuple(values.shape[1:]) != col.shape and not (
            col.shape == () and values.ndim == 2 and values.shape[1] == 1
        ):
            raise RequestError(
                f"input {col.name!r} has shape {list(values.shape)}; expected "
                f"{[n_rows, *col.shape]}",
                field=col.name,
            )
        if col.datatype in _NUMERIC and values.dtype.kind not in "biuf":
            raise RequestError(
                f"input {col.name!r} must be numeric ({col.datatype}); got non-numeric values",
                field=col.name,
            )


def _list(names: Sequence[str]) -> str:
    shown = ", ".join(names[:8])
    return shown + (f", ... ({len(names)} columns)" if len(names) > 8 else "")
