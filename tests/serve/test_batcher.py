"""Adaptive batching and the V2 codec, without a server."""

from __future__ import annotations

import asyncio
import json
import struct
import time
from typing import Any

import numpy as np
import pytest

from nbops.serve import RequestError
from nbops.serve._batcher import Batcher
from nbops.serve._codec import decode_request, model_input
from nbops.serve._schema import Column, Schema


def _run(coro: Any) -> Any:
    """Run ``coro`` on a fresh event loop in its own thread: a test earlier in the session may
    have left a loop running in this one (nest_asyncio, IPython), where asyncio.run refuses."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _model(calls: list[int], delay: float = 0.02) -> Any:
    def predict(X: Any, outputs: frozenset[str]) -> dict[str, Any]:
        calls.append(len(X))
        time.sleep(delay)
        if (X == -1).any():
            raise ValueError("bad row")
        return {"predict": X[:, 0] * 10}

    return predict


def test_concurrent_requests_share_calls_and_get_their_own_rows() -> None:
    calls: list[int] = []
    sizes: list[int] = []

    async def main() -> list[Any]:
        batcher = Batcher(_model(calls), max_batch_size=8, max_latency=0.005, on_batch=sizes.append)
        jobs = [batcher.submit(np.array([[float(i)], [i + 0.5]]), 2) for i in range(20)]
        out = await asyncio.gather(*jobs)
        await batcher.drain()
        return out

    results = _run(main())
    for i, result in enumerate(results):
        assert result["predict"].tolist() == [i * 10.0, i * 10 + 5.0]
    assert sum(calls) == 40 and len(calls) < 20 and max(calls) <= 8
    assert sizes == calls


def test_a_call_never_exceeds_the_row_limit_unless_one_request_does() -> None:
    """A request that would overflow a call waits for the next one; a larger one runs alone."""
    calls: list[int] = []

    async def main() -> list[Any]:
        batcher = Batcher(_model(calls), max_batch_size=8, max_latency=0.005)
        first = asyncio.ensure_future(batcher.submit(np.ones((1, 1)), 1))
        await asyncio.sleep(0)  # the first call keeps the model busy while the rest queue
        sizes = [3, 3, 3, 3, 12, 2, 5]
        jobs = [batcher.submit(np.full((n, 1), float(i)), n) for i, n in enumerate(sizes)]
        out = await asyncio.gather(first, *jobs)
        await batcher.drain()
        return out

    results = _run(main())
    assert sum(calls) == 1 + 31
    assert calls[0] == 1 and 12 in calls
    assert all(n <= 8 for n in calls if n != 12), calls
    for i, result in enumerate(results[1:]):
        assert set(result["predict"].tolist()) == {i * 10.0}


def test_batches_of_many_rows_share_one_call() -> None:
    """32 queued requests of 32 rows are one call with the default limit (1,024 rows)."""
    calls: list[int] = []

    async def main() -> None:
        batcher = Batcher(_model(calls))
        first = asyncio.ensure_future(batcher.submit(np.ones((32, 1)), 32))
        await asyncio.sleep(0)
        await asyncio.gather(first, *(batcher.submit(np.ones((32, 1)), 32) for _ in range(32)))
        await batcher.drain()

    _run(main())
    assert calls == [32, 1024]


def test_a_failing_request_does_not_fail_its_batch() -> None:
    calls: list[int] = []

    async def main() -> list[Any]:
        batcher = Batcher(_model(calls), max_batch_size=64, max_latency=0.005)
        first = asyncio.ensure_future(batcher.submit(np.array([[1.0]]), 1))
        await asyncio.sleep(0)  # the first call keeps the model busy while the rest queue
        rows = [np.array([[2.0]]), np.array([[-1.0]]), np.array([[3.0]])]
        rest = [batcher.submit(r, 1) for r in rows]
        return await asyncio.gather(first, *rest, return_exceptions=True)

    results = _run(main())
    assert results[1]["predict"].tolist() == [20.0]
    assert isinstance(results[2], ValueError)
    assert results[3]["predict"].tolist() == [30.0]


def test_a_lone_request_is_not_held_for_the_batch_window() -> None:
    async def main() -> float:
        batcher = Batcher(_model([], delay=0.0), max_latency=5.0)
        start = time.perf_counter()
        for _ in range(3):
            await batcher.submit(np.array([[1.0]]), 1)
        return time.perf_counter() - start

    assert _run(main()) < 4.0  # hang guard: never waits the 5 s window


SCHEMA = Schema((Column("a"), Column("b")), named=True, output="class")


def test_binary_tensors_and_bytes() -> None:
    header = {
        "inputs": [
            {
                "name": "t",
                "shape": [2, 2],
                "datatype": "FP32",
                "parameters": {"binary_data_size": 16},
            },
            {
                "name": "s",
                "shape": [2],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": 10},
            },
        ]
    }
    head = json.dumps(header).encode()
    blob = np.array([[1, 2], [3, 4]], dtype="<f4").tobytes()
    blob += struct.pack("<I", 2) + b"hi" + struct.pack("<I", 0)
    decoded = decode_request(head + blob, str(len(head)))
    assert decoded.inputs[0][1].tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert decoded.inputs[1][1].tolist() == ["hi", ""]
    with pytest.raises(RequestError, match="does not match the body") as err:
        decode_request(head + blob[:-3], str(len(head)))
    assert err.value.field == "t" or err.value.field == "s"
    with pytest.raises(RequestError) as err:
        decode_request(head, "x")
    assert err.value.field == "headers"


@pytest.mark.parametrize(
    ("inputs", "field"),
    [
        ([{"name": "a", "shape": [2], "datatype": "FP64", "data": [[1], 2]}], "data"),
        ([{"name": "a", "shape": [-1], "datatype": "FP64", "data": [1]}], "a"),
        ([{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]}] * 2, "a"),
        ([{"shape": [1], "datatype": "FP64", "data": [1]}], "inputs[0].name"),
        ([{"name": "a", "shape": [1], "datatype": "INT8", "data": [1000]}], "a"),
    ],
)
def test_decode_errors_name_the_field(inputs: list[Any], field: str) -> None:
    with pytest.raises(RequestError) as err:
        decode_request(json.dumps({"inputs": inputs}).encode(), None)
    assert err.value.field == field and err.value.status == 400


def test_tensor_and_columns_become_a_frame_with_the_model_names() -> None:
    decoded = decode_request(
        json.dumps(
            {
                "inputs": [
                    {"name": "input-0", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3, 4]}
                ]
            }
        ).encode(),
        None,
    )
    X, _ = model_input(SCHEMA, decoded.inputs)
    assert list(X.columns) == ["a", "b"] and X["b"].tolist() == [2.0, 4.0]
    decoded = decode_request(
        json.dumps(
            {
                "inputs": [
                    {"name": "b", "shape": [1, 1], "datatype": "INT64", "data": [5]},
                    {"name": "a", "shape": [1], "datatype": "FP32", "data": [7]},
                ]
            }
        ).encode(),
        None,
    )
    X, _ = model_input(SCHEMA, decoded.inputs)
    assert list(X.columns) == ["a", "b"] and X.iloc[0].tolist() == [7.0, 5.0]


def test_schema_prefers_the_recorded_signature() -> None:
    """The adapter reads ``version.signature`` when a version has one, else the model."""
    from dataclasses import dataclass

    import pandas as pd

    from nbops.registry import ColumnSpec, Signature
    from nbops.serve._schema import schema_of, validate

    @dataclass(frozen=True)
    class Version:
        signature: Signature | None
        task: str | None = None

    class Model:
        feature_names_in_ = np.array(["ignored"])
        classes_ = np.array(["cat", "dog"])

    sig = Signature((ColumnSpec("age", "int64"), ColumnSpec("city", "object")), 2, "class")
    signed = schema_of(Version(sig), Model())
    assert [(c.name, c.datatype) for c in signed.columns] == [("age", "INT64"), ("city", "BYTES")]
    assert signed.output == "class" and signed.output_datatype == "BYTES"
    with pytest.raises(RequestError) as err:
        validate(signed, {"age": np.array(["x"], dtype=object), "city": np.array(["a"])}, 1)
    assert err.value.field == "age"
    decoded = decode_request(
        json.dumps(
            {
                "parameters": {"content_type": "pd"},
                "inputs": [
                    {"name": "age", "shape": [1], "datatype": "INT64", "data": [3]},
                    {"name": "city", "shape": [1], "datatype": "BYTES", "data": ["Oslo"]},
                ],
            }
        ).encode(),
        None,
    )
    X, _ = model_input(signed, decoded.inputs)
    assert isinstance(X, pd.DataFrame) and list(X.columns) == ["age", "city"]
    unnamed = schema_of(Version(Signature((), 3, "number")), Model())
    assert not unnamed.named and len(unnamed.columns) == 3 and unnamed.output == "value"
    with pytest.raises(RequestError) as err:
        model_input(unnamed, [("input-0", np.zeros((1, 2)))])
    assert err.value.field == "input-0"
    old = schema_of(Version(None), Model())
    assert old.names == ["ignored"] and old.named and old.signature is None


def test_the_serve_extra_parses_bodies_with_orjson() -> None:
    from nbops.serve._codec import _fast_loads

    assert _fast_loads() is not None, "orjson is missing: pip install 'nbops[serve]'"


@pytest.mark.parametrize(
    ("data", "shape", "datatype", "expected"),
    [
        ([1, 2.5, 3, 4], [2, 2], "FP64", [[1.0, 2.5], [3.0, 4.0]]),
        ([[1, 2], [3, 4]], [2, 2], "FP32", [[1.0, 2.0], [3.0, 4.0]]),
        ([[[1], [2]], [[3], [4]]], [4], "INT64", [1, 2, 3, 4]),
        ([True, False], [2], "BOOL", [True, False]),
        ([], [0, 3], "FP64", []),
        (7, [1], "INT32", [7]),
    ],
)
def test_numeric_data_flat_or_nested(
    data: Any, shape: list[int], datatype: str, expected: Any
) -> None:
    body = {"inputs": [{"name": "a", "shape": shape, "datatype": datatype, "data": data}]}
    array = decode_request(json.dumps(body).encode(), None).inputs[0][1]
    assert array.tolist() == expected if shape != [0, 3] else array.shape == (0, 3)


@pytest.mark.parametrize(
    ("data", "datatype", "field", "message"),
    [
        ([1, [2]], "FP64", "data", "rectangular"),
        ([[1, 2], [3]], "FP64", "data", "rectangular"),
        ([1, "x"], "FP64", "a", "non-numeric"),
        (["1.5", "2"], "FP64", "a", "non-numeric"),
        ([1, None], "FP64", "a", "non-numeric"),
        ([2**70, 1], "INT64", "a", "non-numeric|do not fit"),  # orjson: a float, too big
        ([1, 2, 3], "FP64", "a", "has 3 values"),
        ([300, 1], "UINT8", "a", "do not fit"),
    ],
)
def test_bad_numeric_data_names_the_field(
    data: Any, datatype: str, field: str, message: str
) -> None:
    body = {"inputs": [{"name": "a", "shape": [2], "datatype": datatype, "data": data}]}
    with pytest.raises(RequestError, match=message) as err:
        decode_request(json.dumps(body).encode(), None)
    assert err.value.field == field and err.value.status == 400


def test_bodies_orjson_refuses_still_parse_as_the_standard_library_does() -> None:
    """NaN and Infinity (Python's json.dumps writes them) fall back to the standard parser."""
    body = json.dumps(
        {"inputs": [{"name": "a", "shape": [3], "datatype": "FP64", "data": [1.0, None, 2.0]}]}
    ).replace("null", "NaN")
    array = decode_request(body.encode(), None).inputs[0][1]
    assert np.isnan(array[1]) and array[[0, 2]].tolist() == [1.0, 2.0]
    with pytest.raises(RequestError, match="not valid JSON") as err:
        decode_request(b'{"inputs": [', None)
    assert err.value.field == "body"
