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
    """One input column: its name, V2 datatype, per-row shape, and whether numbers are required."""

    name: str
    datatype: str = "FP64"
    shape: tuple[int, ...] = ()
    numeric: bool = True


@dataclass(frozen=True)
class Schema:
    """What a model takes: named columns (tabular) or a width, and what it returns."""

    columns: tuple[Column, ...]
    named: bool  # False: the model was fitted on an unnamed array (columns are positions)
    output: str  # "class", "value" or "unknown"
    output_datatype: str = "FP64"
    signature: Any = None  # the registry's Signature, when the version recorded one

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
    out_type = "FP64"
    if output == "class":
        out_type = (
            "BYTES" if _string_classes(model) else "INT64" if _integer_classes(model) else out_type
        )
    numbers = _needs_numbers(model)
    if signature is not None:
        inputs = getattr(signature, "inputs", None) or ()
        if inputs:
            columns = tuple(_column_of(c, numbers) for c in inputs)
            return Schema(columns, True, output, out_type, signature)
        width = getattr(signature, "width", None)
        if width:
            cols = tuple(Column(f"x{i}") for i in range(int(width)))
            return Schema(cols, False, output, out_type, signature)
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        cols = tuple(Column(str(n), numeric=numbers) for n in names)
        return Schema(cols, True, output, out_type)
    count = int(getattr(model, "n_features_in_", 0) or 0)
    return Schema(tuple(Column(f"x{i}") for i in range(count)), False, output, out_type)


def _column_of(spec: Any, numbers: bool) -> Column:
    dtype = str(getattr(spec, "dtype", "unknown"))
    shape = tuple(int(s) for s in (getattr(spec, "shape", None) or ()))
    if dtype == "unknown":  # a name without a type: plain estimators still need numbers
        return Column(str(spec.name), "FP64" if numbers else "BYTES", shape, numbers)
    datatype = v2_datatype(dtype)
    return Column(str(spec.name), datatype, shape, datatype in _NUMERIC)


def _needs_numbers(model: Any) -> bool:
    """False for pipelines and column transformers, which may encode text columns."""
    return not (hasattr(model, "steps") or hasattr(model, "transformers"))


def _output_kind(version: Any, model: Any) -> str:
    signature = getattr(version, "signature", None)
    kind = getattr(signature, "output", None) or getattr(signature, "output_kind", None)
    if isinstance(kind, str) and kind:
        return "class" if "class" in kind else "value"
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
    These are the checks the V2 protocol needs on top of the registry's ``validate_input``
    (extra columns, per-row shapes, row counts); :func:`check_signature` runs that one.
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
        flat_ok = col.shape == () and values.ndim == 2 and values.shape[1] == 1
        if tuple(values.shape[1:]) != col.shape and not flat_ok:
            raise RequestError(
                f"input {col.name!r} has shape {list(values.shape)}; expected "
                f"{[n_rows, *col.shape]}",
                field=col.name,
            )
        if col.numeric and values.dtype.kind not in "biuf":
            raise RequestError(
                f"input {col.name!r} must be numeric ({col.datatype}); got non-numeric values",
                field=col.name,
            )


def check_signature(schema: Schema, frame: Any) -> Any:
    """Run the registry's ``validate_input`` on the request's rows; a 400 naming the column.

    Columns recorded without a type (``unknown``) are left to :func:`validate`: the registry
    would read ``unknown`` as a string type and refuse numbers.
    """
    signature = schema.signature
    if signature is None:
        return frame
    import dataclasses

    from nbops.registry import Signature, SignatureError, validate_input

    inputs = getattr(signature, "inputs", ())
    known = tuple(c for c in inputs if str(getattr(c, "dtype", "")) != "unknown")
    if len(known) != len(inputs) and isinstance(signature, Signature):
        if not known:
            return frame
        signature = dataclasses.replace(signature, inputs=known)
    try:
        validate_input(signature, frame)
    except SignatureError as exc:
        raise RequestError(str(exc), field=exc.column or "inputs") from None
    return frame


def _list(names: Sequence[str]) -> str:
    shown = ", ".join(names[:8])
    return shown + (f", ... ({len(names)} columns)" if len(names) > 8 else "")
