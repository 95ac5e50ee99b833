"""Open Inference Protocol (V2) request decoding and response encoding.

Requests carry tensors (``inputs[i]`` with ``name``, ``shape``, ``datatype`` and ``data``), as
JSON or with the binary tensor extension Triton clients use (``Inference-Header-Content-Length``),
or tabular rows as MLServer's ``pandas`` codec encodes a DataFrame: one input per column and
``parameters.content_type == "pd"``. Bodies are parsed with ``orjson`` when it is installed
(the ``serve`` extra brings it; ~3x faster on numeric tensors), else, and for anything orjson
refuses (``NaN``, integers past 64 bits), with the standard library.
"""

from __future__ import annotations

import functools
import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nbops.deps import available, require
from nbops.serve._errors import RequestError
from nbops.serve._gate import import_pandas
from nbops.serve._schema import Schema, check_signature, validate

_NUMPY_OF_V2 = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "object",
}
MAX_ELEMENTS = 50_000_000


@dataclass
class Decoded:
    """A decoded infer request: input arrays in order, the client's id, requested outputs."""

    inputs: list[tuple[str, Any]]
    request_id: str | None = None
    outputs: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)


def decode_request(body: bytes, header_length: str | None) -> Decoded:
    """Parse an infer request body; raise :class:`RequestError` naming the field on bad input."""
    import numpy as np

    binary = b""
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise RequestError(
                "Inference-Header-Content-Length must be an integer", field="headers"
            ) from None
        if not 0 <= size <= len(body):
            raise RequestError(
                "Inference-Header-Content-Length is larger than the body", field="headers"
            )
        body, binary = body[:size], body[size:]
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise RequestError("the body must be a JSON object with 'inputs'", field="body")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise RequestError("'inputs' must be a non-empty list of tensors", field="inputs")
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise RequestError("'parameters' must be an object", field="parameters")
    rid = doc.get("id")
    if rid is not None and not isinstance(rid, str):
        raise RequestError("'id' must be a string", field="id")
    outputs = []
    for i, out in enumerate(doc.get("outputs") or []):
        if not isinstance(out, dict) or not isinstance(out.get("name"), str):
            raise RequestError("each output needs a 'name'", field=f"outputs[{i}].name")
        outputs.append(out["name"])
    offset = 0
    inputs: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for i, tensor in enumerate(raw_inputs):
        name, array, used = _tensor(tensor, i, binary, offset, np)
        if name in seen:
            raise RequestError(f"input {name!r} is given twice", field=name)
        seen.add(name)
        offset += used
        inputs.append((name, array))
    return Decoded(inputs, rid, outputs, parameters)


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body``; a 400 on ``body`` when it is not JSON."""
    fast = _fast_loads()
    if fast is not None:
        try:
            return fast(body)
        except ValueError:
            pass  # NaN, Infinity, huge integers, other encodings: the standard parser decides
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"the body is not valid JSON ({exc})", field="body") from None


@functools.cache
def _fast_loads() -> Callable[[bytes], Any] | None:
    if not available("orjson"):
        return None
    loads: Callable[[bytes], Any] = require("orjson").loads
    return loads


def _tensor(tensor: Any, i: int, binary: bytes, offset: int, np: Any) -> tuple[str, Any, int]:
    where = f"inputs[{i}]"
    if not isinstance(tensor, dict):
        raise RequestError(f"{where} must be an object", field=where)
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise RequestError(f"{where}.name must be a non-empty string", field=f"{where}.name")
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
    ):
        raise RequestError(
            f"input {name!r}: shape must be a list of non-negative integers", field=name
        )
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise RequestError(f"input {name!r} is too large ({count} elements)", field=name)
    datatype = tensor.get("datatype")
    if datatype not in _NUMPY_OF_V2:
        raise RequestError(
            f"input {name!r}: unknown datatype {datatype!r}; use one of {', '.join(_NUMPY_OF_V2)}",
            field=name,
        )
    params = tensor.get("parameters") or {}
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    used = 0
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise RequestError(
                f"input {name!r}: binary_data_size does not match the body", field=name
            )
        raw = binary[offset : offset + size]
        used = size
        array = _from_binary(raw, datatype, count, name, np)
    else:
        if "data" not in tensor:
            raise RequestError(f"input {name!r} has no data", field=name)
        array = _from_json(tensor["data"], datatype, count, name, np)
    return name, array.reshape(shape), used


def _from_json(data: Any, datatype: str, count: int, name: str, np: Any) -> Any:
    probe = _numeric(data, np) if datatype != "BYTES" else None
    if probe is not None:  # numbers, flat or nested rectangular: numpy walked the lists in C
        if probe.size != count:
            raise RequestError(
                f"input {name!r} has {probe.size} values; its shape needs {count}", field=name
            )
    else:
        flat = _flatten(data)
        if len(flat) != count:
            raise RequestError(
                f"input {name!r} has {len(flat)} values; its shape needs {count}", field=name
            )
        if datatype == "BYTES":
            return np.array([str(v) if not isinstance(v, str) else v for v in flat], dtype=object)
        try:
            probe = np.asarray(flat)
        except (ValueError, TypeError):
            probe = np.asarray(flat, dtype=object)
    if probe.dtype.kind not in "biuf":
        raise RequestError(f"input {name!r} is {datatype} but holds non-numeric values", field=name)
    try:
        with np.errstate(over="raise", invalid="raise"):
            array = probe.astype(_NUMPY_OF_V2[datatype], copy=False)
    except (ValueError, TypeError, OverflowError, FloatingPointError):
        raise RequestError(f"input {name!r}: values do not fit {datatype}", field=name) from None
    if probe.dtype.kind in "iu" and array.dtype.kind in "iu" and not np.array_equal(array, probe):
        raise RequestError(f"input {name!r}: values do not fit {datatype}", field=name)
    return array


def _numeric(data: Any, np: Any) -> Any:
    """``data`` as a flat numeric array, or None for anything else (ragged, text, scalars)."""
    if not isinstance(data, list):
        return None
    try:
        array = np.asarray(data)
    except (ValueError, TypeError):
        return None
    return array.reshape(-1) if array.dtype.kind in "biuf" else None


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    nested = [isinstance(v, list) for v in data]
    if not any(nested):
        return data
    if not all(nested) or len({len(v) for v in data}) > 1:
        raise RequestError("nested data must be rectangular (rows of equal length)", field="data")
    out: list[Any] = []
    for row in data:
        out.extend(_flatten(row))
    return out


def _from_binary(raw: bytes, datatype: str, count: int, name: str, np: Any) -> Any:
    if datatype == "BYTES":
        values, pos = [], 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise RequestError(f"input {name!r}: truncated BYTES element", field=name)
            (length,) = struct.unpack_from("<I", raw, pos)
            values.append(raw[pos + 4 : pos + 4 + length].decode("utf-8", "replace"))
            pos += 4 + length
        if len(values) != count:
            raise RequestError(
                f"input {name!r} has {len(values)} values, needs {count}", field=name
            )
        return np.array(values, dtype=object)
    dtype = np.dtype(_NUMPY_OF_V2[datatype])
    if len(raw) != count * dtype.itemsize:
        raise RequestError(
            f"input {name!r} has {len(raw)} bytes; shape and datatype need "
            f"{count * dtype.itemsize}",
            field=name,
        )
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True)


@dataclass
class Rows:
    """One request's rows for the prediction log; a DataFrame is made only when logged."""

    data: Any  # a DataFrame, or a 2-D array with ``names``
    names: list[str]

    def __len__(self) -> int:
        return len(self.data)

    def frame(self) -> Any:
        """The rows as a DataFrame with the model's column names."""
        if hasattr(self.data, "iloc"):
            return self.data
        return import_pandas().DataFrame(self.data, columns=self.names, copy=False)


def model_input(schema: Schema, inputs: list[tuple[str, Any]]) -> tuple[Any, Rows]:
    """Turn decoded inputs into what ``predict`` takes, checked against the schema.

    Returns ``(X, rows)``: ``X`` for the model (a DataFrame for models fitted with column names,
    else a 2-D array) and the same rows with column names, for the prediction log.
    """
    import numpy as np

    width = len(schema.columns)
    if len(inputs) == 1 and inputs[0][1].ndim == 2 and inputs[0][0] not in schema.names:
        name, array = inputs[0]
        if width and array.shape[1] != width:
            raise RequestError(
                f"input {name!r} has {array.shape[1]} columns; the model expects {width}",
                field=name,
            )
        names = schema.names or [f"x{i}" for i in range(array.shape[1])]
        if array.dtype == object:
            raise RequestError(f"input {name!r} must be numeric", field=name)
        if not schema.named:
            return check_signature(schema, array), Rows(array, names)
        pd = import_pandas()  # a server imports pandas when a model first needs it
        frame = check_signature(schema, pd.DataFrame(array, columns=names, copy=False))
        return frame, Rows(frame, names)
    n_rows = inputs[0][1].shape[0] if inputs[0][1].ndim else 1
    columns = {n: (a if a.ndim else a.reshape(1)) for n, a in inputs}
    if schema.named:
        pd = import_pandas()
        validate(schema, columns, n_rows)
        ordered = {c.name: _column(columns[c.name]) for c in schema.columns}
        frame = check_signature(schema, pd.DataFrame(ordered))
        return frame, Rows(frame, schema.names)
    if width and len(columns) != width:
        raise RequestError(
            f"got {len(columns)} input columns; the model expects {width} "
            "(or one [N, {width}] tensor)".replace("{width}", str(width)),
            field="inputs",
        )
    for n, a in columns.items():
        if a.shape[0] != n_rows:
            raise RequestError(f"input {n!r} has {a.shape[0]} rows, expected {n_rows}", field=n)
        if a.dtype.kind not in "biuf":
            raise RequestError(f"input {n!r} must be numeric", field=n)
    array = np.column_stack([_column(a) for a in columns.values()])
    return check_signature(schema, array), Rows(array, list(columns))


def _column(array: Any) -> Any:
    return array.reshape(-1) if array.ndim == 2 and array.shape[1] == 1 else array


def encode_output(name: str, values: Any) -> dict[str, Any]:
    """One V2 output tensor (JSON data) from a numpy array."""
    import numpy as np

    array = np.asarray(values)
    kind = array.dtype.kind
    if kind in "OUS":
        datatype, data = "BYTES", [str(v) for v in array.reshape(-1)]
    elif kind == "b":
        datatype, data = "BOOL", array.reshape(-1).tolist()
    elif kind in "iu":
        datatype, data = "INT64", array.reshape(-1).astype("int64").tolist()
    else:
        datatype, data = "FP64", array.reshape(-1).astype("float64").tolist()
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": data}
