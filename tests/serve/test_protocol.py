"""The Open Inference Protocol over a real server process: health, metadata, infer, bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from nbops.serve import Server, serve
from tests.serve.conftest import Store, call, pd_request

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(models: Store) -> Iterator[Server]:
    with serve("iris@production", "digits", store=models.path, max_body_bytes=200_000) as s:
        yield s


def test_health_and_metadata(server: Server) -> None:
    assert call(f"{server.url}/v2/health/live")[:2] == (200, {"live": True})
    assert call(f"{server.url}/v2/health/ready")[:2] == (200, {"ready": True})
    status, meta, _ = call(f"{server.url}/v2")
    assert status == 200 and meta["name"] == "nbops"
    status, ready, _ = call(f"{server.url}/v2/models/iris/ready")
    assert (status, ready["ready"], ready["version"]) == (200, True, "1")
    assert call(f"{server.url}/v2/models/iris/versions/1/ready")[0] == 200
    assert call(f"{server.url}/v2/models/iris/versions/2/ready")[0] == 404
    status, meta, _ = call(f"{server.url}/v2/models/iris")
    assert status == 200
    assert [i["name"] for i in meta["inputs"]] == [
        "sepal length (cm)",
        "sepal width (cm)",
        "petal length (cm)",
        "petal width (cm)",
    ]
    assert meta["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]}]
    status, meta, _ = call(f"{server.url}/v2/models/digits")
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 64]}]


def test_infer_pandas_codec_and_tensor(server: Server, models: Store) -> None:
    from nbops.registry import load_model

    frame = models.X.iloc[:5]
    expected = load_model("iris:1", store=models.path).predict(frame).tolist()
    status, out, headers = call(f"{server.url}/v2/models/iris/infer", pd_request(frame))
    assert status == 200, out
    assert out["model_name"] == "iris" and out["model_version"] == "1"
    assert headers["x-model-version"] == "1" and headers["x-request-id"] == out["id"]
    assert out["outputs"][0]["data"] == expected and out["outputs"][0]["shape"] == [5]
    tensor = {
        "id": "my-request-1",
        "inputs": [
            {
                "name": "x",
                "shape": [5, 4],
                "datatype": "FP32",
                "data": frame.to_numpy().tolist(),
            }  # nested rows are accepted too
        ],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    status, out, headers = call(f"{server.url}/v2/models/iris/infer", tensor)
    assert status == 200, out
    assert out["id"] == "my-request-1" == headers["x-request-id"]
    assert out["outputs"][0]["data"] == expected
    assert out["outputs"][1]["shape"] == [5, 3]


def test_triton_client_library(server: Server, models: Store) -> None:
    """tritonclient (NVIDIA's V2 client, binary tensor extension by default) works unchanged."""
    import tritonclient.http as httpclient

    from nbops.registry import load_model

    client = httpclient.InferenceServerClient(url=server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("digits")
    meta = client.get_model_metadata("digits")
    assert meta["inputs"][0]["shape"] == [-1, 64]
    from sklearn.datasets import load_digits

    rows = load_digits().data[:32].astype(np.float32)
    tensor = httpclient.InferInput("input-0", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=True)
    result = client.infer("digits", [tensor], outputs=[httpclient.InferRequestedOutput("predict")])
    expected = load_model("digits:1", store=models.path).predict(rows)
    assert result.as_numpy("predict").tolist() == expected.tolist()
    assert result.get_response()["model_version"] == "1"
    # the pandas-codec layout through the client: one FP64 input per column
    frame = models.X.iloc[:3]
    inputs = []
    for column in frame.columns:
        one = httpclient.InferInput(column, [3], "FP64")
        one.set_data_from_numpy(frame[column].to_numpy(), binary_data=False)
        inputs.append(one)
    result = client.infer("iris", inputs)
    assert result.as_numpy("predict").tolist() == [0, 0, 0]
    client.close()


def _bad(server: Server, body: Any, model: str = "iris", raw: bytes | None = None) -> Any:
    status, out, _ = call(f"{server.url}/v2/models/{model}/infer", body, raw=raw)
    assert "Traceback" not in json.dumps(out)
    return status, out


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda d: d["inputs"].pop(1), "sepal width (cm)", "missing input column"),
        (
            lambda d: d["inputs"].append({**d["inputs"][0], "name": "colour"}),
            "colour",
            "unexpected input column",
        ),
        (
            lambda d: d["inputs"][0].update(datatype="BYTES", data=["a", "b"]),
            "sepal length (cm)",
            "must be numeric",
        ),
        (lambda d: d["inputs"][2].update(data=[1.0, "x"]), "petal length (cm)", "non-numeric"),
        (lambda d: d["inputs"][0].update(shape=[3]), "sepal length (cm)", "has 2 values"),
        (
            lambda d: d["inputs"][0].update(shape=[2, 2], data=[1, 2, 3, 4]),
            "sepal length (cm)",
            "shape",
        ),
        (lambda d: d["inputs"][3].update(datatype="FLOAT"), "petal width (cm)", "unknown datatype"),
        (lambda d: d["inputs"][0].pop("shape"), "sepal length (cm)", "shape must be"),
        (lambda d: d.update(outputs=[{"name": "explain"}]), "outputs[0].name", "unknown output"),
    ],
)
def test_bad_inputs_are_400_naming_the_field(
    server: Server, models: Store, change: Any, field: str, words: str
) -> None:
    doc = pd_request(models.X.iloc[:2])
    change(doc)
    status, out = _bad(server, doc)
    assert status == 400, out
    assert out["field"] == field and words in out["error"], out
    assert out["request_id"]


def test_malformed_bodies_and_unknown_models(server: Server, models: Store) -> None:
    status, out = _bad(server, None, raw=b"{not json")
    assert (status, out["field"]) == (400, "body") and "not valid JSON" in out["error"]
    assert _bad(server, {"inputs": []})[1]["field"] == "inputs"
    assert _bad(server, [1, 2])[1]["field"] == "body"
    status, out = _bad(
        server,
        {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
        model="digits",
    )
    assert status == 400 and out["field"] == "x" and "expects 64" in out["error"]
    status, out = _bad(server, pd_request(models.X.iloc[:1]), model="secret-model")
    assert status == 404 and "secret-model" not in out["error"]
    status, out, _ = call(
        f"{server.url}/v2/models/iris/versions/7/infer", pd_request(models.X.iloc[:1])
    )
    assert status == 404
    big = {
        "inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP64", "data": [0.123456789] * 64}],
        "pad": "y" * 300_000,
    }
    status, out = _bad(server, big, model="digits")
    assert (status, out["field"]) == (413, "body")
    # the server is still healthy after all of that
    assert call(f"{server.url}/v2/models/iris/infer", pd_request(models.X.iloc[:1]))[0] == 200


def test_model_exception_is_a_500_with_request_id(models: Store) -> None:
    with serve("iris:3", store=models.path) as broken:
        status, out, headers = call(
            f"{broken.url}/v2/models/iris/infer",
            pd_request(models.X.iloc[:2]),
            headers={"X-Request-Id": "req-42"},
        )
        assert status == 500
        assert out["request_id"] == "req-42" == headers["x-request-id"]
        text = json.dumps(out)
        assert "Traceback" not in text and "matmul" not in text and str(models.path) not in text
        assert call(f"{broken.url}/v2/health/live")[0] == 200
        broken.stop()
        log = broken.logs()
    assert "req-42" in log and "Traceback" in log


def test_typed_signature_of_a_pipeline_with_text_columns(isolated_env: Any) -> None:
    """A version with a recorded, typed signature: text columns served, types checked."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from nbops.registry import log_model

    frame = pd.DataFrame({"city": ["oslo", "rome", "oslo", "lima"] * 10, "age": list(range(40))})
    target = (frame["city"] == "oslo").astype(int)
    model = make_pipeline(
        ColumnTransformer(
            [("city", OneHotEncoder(handle_unknown="ignore"), ["city"])], remainder="passthrough"
        ),
        LogisticRegression(),
    ).fit(frame, target)
    version = log_model(model, "towns", input_example=frame.head())
    assert version.signature is not None
    with serve("towns") as server:
        url = f"{server.url}/v2/models/towns/infer"
        _, meta, _ = call(f"{server.url}/v2/models/towns")
        assert meta["inputs"] == [
            {"name": "city", "datatype": "BYTES", "shape": [-1]},
            {"name": "age", "datatype": "INT64", "shape": [-1]},
        ]
        good = {
            "parameters": {"content_type": "pd"},
            "inputs": [
                {"name": "city", "shape": [2], "datatype": "BYTES", "data": ["oslo", "lima"]},
                {"name": "age", "shape": [2], "datatype": "INT64", "data": [30, 31]},
            ],
        }
        status, out, _ = call(url, good)
        assert status == 200 and out["outputs"][0]["data"] == [1, 0]
        bad = json.loads(json.dumps(good))
        bad["inputs"][0].update(datatype="FP64", data=[1.0, 2.0])
        status, out, _ = call(url, bad)
        assert status == 400 and out["field"] == "city" and "city" in out["error"]
        bad = json.loads(json.dumps(good))
        bad["inputs"][1].update(datatype="BYTES", data=["x", "y"])
        status, out, _ = call(url, bad)
        assert status == 400 and out["field"] == "age"
