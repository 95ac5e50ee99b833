"""Model signatures: the input columns (names, dtypes), the input shape and the output kind.

``log_model`` records one from an ``input_example`` or from the training data in its lineage;
``validate_input`` checks data against it before prediction, naming the column at fault.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nbops.errors import InvalidValueError

#: Kinds of dtype a column may have; a value of one kind is not accepted for another.
_KINDS = {"b": "bool", "i": "integer", "u": "integer", "f": "float", "c": "complex"}
_NUMERIC = ("bool", "integer", "float")


class SignatureError(InvalidValueError):
    """Input data does not match a model's signature."""

    def __init__(self, message: str, column: str | None = None) -> None:
        self.column = column
        super().__init__(message)


@dataclass(frozen=True)
class ColumnSpec:
    """One input column: its name and dtype (as pandas prints it)."""

    name: str
    dtype: str

    @property
    def kind(self) -> str:
        """``bool``, ``integer``, ``float``, ``datetime``, ``category`` or ``string``."""
        return dtype_kind(self.dtype)


@dataclass(frozen=True)
class Signature:
    """What a model takes and gives: input columns (or only a width) and the output kind."""

    inputs: tuple[ColumnSpec, ...] = ()
    width: int | None = None
    output: str | None = None
    classes: tuple[Any, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.inputs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "inputs": [{"name": c.name, "dtype": c.dtype} for c in self.inputs],
            "width": self.width,
            "output": self.output,
            "classes": list(self.classes),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Signature:
        return cls(
            inputs=tuple(
                ColumnSpec(str(c["name"]), str(c["dtype"])) for c in doc.get("inputs") or []
            ),
            width=doc.get("width"),
            output=doc.get("output"),
            classes=tuple(doc.get("classes") or ()),
        )


def dtype_kind(dtype: str) -> str:
    """The kind of a dtype name (``int64`` -> ``integer``, ``object`` -> ``string``)."""
    import numpy as np

    text = str(dtype).lower()
    if text == "unknown":  # recorded without a type (no input example): any type is taken
        return "unknown"
    if text.startswith("datetime") or text.startswith("timedelta"):
        return "datetime"
    if text == "category":
        return "category"
    if text in ("boolean",):
        return "bool"
    if text.startswith(("int", "uint")):
        return "integer"
    if text.startswith("float"):
        return "float"
    try:
        return _KINDS.get(np.dtype(text).kind, "string")
    except TypeError:
        return "string"


def _output_of(model: Any) -> tuple[str | None, tuple[Any, ...]]:
    classes = getattr(model, "classes_", None)
    if classes is not None:
        return "class", tuple(c.item() if hasattr(c, "item") else c for c in classes)
    from nbops.registry._formats import task_of

    task = task_of(model)
    if task == "tabular-regression":
        return "number", ()
    return None, ()


def infer_signature(
    model: Any, input_example: Any = None, datasets: Sequence[Mapping[str, Any]] = ()
) -> Signature | None:
    """The signature of ``model``: from ``input_example``, else its feature names typed from a
    lineage dataset's schema, else its input width; None when nothing is known."""
    output, classes = _output_of(model)
    if input_example is not None:
        columns = getattr(input_example, "columns", None)
        if columns is not None:
            inputs = tuple(ColumnSpec(str(c), str(t)) for c, t in input_example.dtypes.items())
            return Signature(inputs, len(inputs), output, classes)
        shape = getattr(input_example, "shape", None)
        width = int(shape[1]) if shape is not None and len(shape) == 2 else None
        return Signature((), width, output, classes)
    names = getattr(model, "feature_names_in_", None)
    width = getattr(model, "n_features_in_", None)
    if names is not None:
        names = [str(n) for n in names]
        for dataset in datasets:
            schema = dataset.get("schema") or {}
            if all(n in schema for n in names):
                inputs = tuple(ColumnSpec(n, str(schema[n])) for n in names)
                return Signature(inputs, len(inputs), output, classes)
        return Signature(
            tuple(ColumnSpec(n, "unknown") for n in names), len(names), output, classes
        )
    if width is not None or output is not None:
        return Signature((), None if width is None else int(width), output, classes)
    return None


def _compatible(expected: str, actual: str) -> bool:
    if expected == "unknown" or expected == actual:
        return True
    if expected in _NUMERIC and actual in _NUMERIC:
        return True  # estimators take any numeric column as float
    return {expected, actual} <= {"string", "category"}


def validate_input(signature: Signature, data: Any) -> Any:
    """Check ``data`` against ``signature``; return it with the signature's columns, in order.

    Raises:
        SignatureError: A column is missing, has a type the model cannot take, or the data has
            the wrong number of columns; the message names the column.
    """
    columns = getattr(data, "columns", None)
    if columns is None:
        shape = getattr(data, "shape", None)
        if shape is None or len(shape) != 2:
            raise SignatureError("input must be a table (a DataFrame or a 2-d array)")
        if signature.width is not None and shape[1] != signature.width:
            raise SignatureError(f"input has {shape[1]} columns; the model takes {signature.width}")
        return data
    if not signature.inputs:
        if signature.width is not None and len(columns) != signature.width:
            raise SignatureError(
                f"input has {len(columns)} columns; the model takes {signature.width}"
            )
        return data
    present = {str(c) for c in columns}
    missing = [c.name for c in signature.inputs if c.name not in present]
    if missing:
        raise SignatureError(
            f"input is missing column {missing[0]!r}"
            + (
                f" (and {len(missing) - 1} more: {', '.join(missing[1:6])})"
                if len(missing) > 1
                else ""
            )
            + f"; the model takes {', '.join(signature.columns[:10])}"
            + ("..." if len(signature.inputs) > 10 else ""),
            column=missing[0],
        )
    for spec in signature.inputs:
        actual = dtype_kind(str(data[spec.name].dtype))
        if not _compatible(spec.kind, actual):
            raise SignatureError(
                f"column {spec.name!r} has type {data[spec.name].dtype} ({actual}); the model "
                f"was trained on {spec.dtype} ({spec.kind})",
                column=spec.name,
            )
    return data[list(signature.columns)]
