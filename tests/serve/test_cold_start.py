"""A server process starts without pandas and imports it when a model or the log first needs it.

Behaviour, not timing (``benchmarks/serve.py`` measures the cold start): a probe runs the
server the way ``nbops serve`` does (:func:`nbops.serve.run`) with a client thread inside the
same process, so the test can read ``sys.modules`` at each step.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nbops.registry import load_model, log_model, set_alias
from nbops.serve import ServeConfig, model_specs, predictions, serve
from nbops.serve._server import free_port
from tests.conftest import subprocess_env
from tests.serve.conftest import call, pd_request

pytestmark = pytest.mark.slow

_WATCHED = ("pandas", "pyarrow", "sklearn.utils.fixes", "skops.io")

#: The server in the main thread (as ``nbops serve``), the client's steps in a thread; prints
#: one JSON document and exits.
_PROBE = """
import json, os, sys, threading, time, traceback, urllib.error, urllib.request
from nbops.serve import ServeConfig, run

config = ServeConfig.from_json(os.environ["PROBE_CONFIG"])
plan = json.loads(os.environ["PROBE_PLAN"])
url = f"http://127.0.0.1:{config.port}"


def post(path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get(path):
    with urllib.request.urlopen(url + path, timeout=30) as r:
        return json.loads(r.read())


def steps():
    out = {}
    try:
        while True:
            try:
                get("/v2/health/ready")
                break
            except OSError:
                time.sleep(0.05)
        for step in plan:
            kind = step["do"]
            if kind == "modules":
                out[step["as"]] = {m: m in sys.modules for m in step["names"]}
            elif kind == "infer":
                out[step["as"]] = post(step["path"], step["body"])
            elif kind == "alias":
                from nbops.registry import set_alias
                set_alias(step["model"], step["version"], step["alias"], store=config.store)
            elif kind == "wait_version":
                deadline = time.monotonic() + 60
                while get(step["path"])["parameters"]["version"] != step["version"]:
                    assert time.monotonic() < deadline, "the new version was never served"
                    time.sleep(0.1)
            elif kind == "wait_files":
                deadline = time.monotonic() + 60
                while len(list(__import__("pathlib").Path(step["folder"]).rglob("*.parquet"))) < 1:
                    assert time.monotonic() < deadline, "no prediction log was written"
                    time.sleep(0.1)
                time.sleep(0.5)
        print(json.dumps(out), flush=True)
        os._exit(0)
    except BaseException:
        traceback.print_exc()
        os._exit(1)


threading.Thread(target=steps, daemon=True).start()
run(config)
"""


def _probe(config: ServeConfig, plan: list[dict[str, Any]]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=subprocess_env(PROBE_CONFIG=config.to_json(), PROBE_PLAN=json.dumps(plan)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _modules(tag: str) -> dict[str, Any]:
    return {"do": "modules", "as": tag, "names": list(_WATCHED)}


def _tensor(rows: Any) -> dict[str, Any]:
    rows = np.asarray(rows, dtype="float64")
    return {
        "inputs": [
            {
                "name": "x",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.ravel().tolist(),
            }
        ]
    }


def _config(store: Path, *models: str, **options: Any) -> ServeConfig:
    return ServeConfig(
        models=model_specs(list(models)), port=free_port(), store=str(store), **options
    )


def _digits() -> Any:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    log_model(LogisticRegression(max_iter=200).fit(X[:500], y[:500]), "digits")
    return X


def test_the_server_starts_without_pandas_and_answers_arrays(isolated_env: Path) -> None:
    X = _digits()
    expected = load_model("digits").predict(X[:7]).tolist()
    store = isolated_env / ".nbops"
    got = _probe(
        _config(store, "digits", log_sample=0.0),
        [
            _modules("ready"),
            {
                "do": "infer",
                "as": "answer",
                "path": "/v2/models/digits/infer",
                "body": _tensor(X[:7]),
            },
            _modules("answered"),
        ],
    )
    deferred = {"pandas": False, "pyarrow": False, "sklearn.utils.fixes": True, "skops.io": True}
    assert got["ready"] == deferred  # scikit-learn and skops are in; pandas is not
    assert got["answered"] == deferred  # an array request does not need it either
    status, answer = got["answer"]
    assert status == 200 and answer["outputs"][0]["data"] == expected


def test_a_model_fitted_on_a_dataframe_gets_pandas_when_it_is_first_served(
    isolated_env: Path,
) -> None:
    """The server starts on an array model (no pandas); the alias then moves to a model fitted
    on a DataFrame, which the same process loads and serves through the ``pandas`` codec."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    log_model(LogisticRegression(max_iter=500).fit(X.to_numpy(), y), "iris")  # 1: arrays
    log_model(LogisticRegression(max_iter=500).fit(X, y), "iris")  # 2: column names
    set_alias("iris", 1, "production")
    rows = X.iloc[::15]
    v1 = load_model("iris:1").predict(rows.to_numpy()).tolist()
    v2 = load_model("iris:2").predict(rows).tolist()
    shuffled = rows[list(reversed(rows.columns))]  # the codec orders columns by name
    renamed = rows.rename(columns={rows.columns[0]: "sepal"})
    store = isolated_env / ".nbops"
    got = _probe(
        _config(store, "iris@production", log_sample=0.0, poll_interval=0.2),
        [
            {"do": "infer", "as": "v1", "path": "/v2/models/iris/infer", "body": _tensor(rows)},
            _modules("before"),
            {"do": "alias", "model": "iris", "version": 2, "alias": "production"},
            {"do": "wait_version", "path": "/v2/models/iris", "version": "2"},
            {"do": "infer", "as": "v2", "path": "/v2/models/iris/infer", "body": pd_request(rows)},
            {
                "do": "infer",
                "as": "shuffled",
                "path": "/v2/models/iris/infer",
                "body": pd_request(shuffled),
            },
            {
                "do": "infer",
                "as": "renamed",
                "path": "/v2/models/iris/infer",
                "body": pd_request(renamed),
            },
            _modules("after"),
        ],
    )
    assert got["before"]["pandas"] is False
    assert got["v1"][0] == 200 and got["v1"][1]["outputs"][0]["data"] == v1
    assert got["v2"][0] == 200 and got["v2"][1]["outputs"][0]["data"] == v2
    assert got["v2"][1]["model_version"] == "2"
    assert got["shuffled"][0] == 200 and got["shuffled"][1]["outputs"][0]["data"] == v2
    assert got["renamed"][0] == 400 and got["renamed"][1]["field"] == X.columns[0]
    assert got["after"]["pandas"] is True


def test_prediction_logging_imports_pandas_off_the_request_path(isolated_env: Path) -> None:
    X = _digits()
    expected = load_model("digits").predict(X[:12]).tolist()
    store = isolated_env / ".nbops"
    got = _probe(
        _config(store, "digits"),  # logging every request: the default
        [
            _modules("ready"),
            *[
                {
                    "do": "infer",
                    "as": f"answer{i}",
                    "path": "/v2/models/digits/infer",
                    "body": _tensor(X[i * 4 : i * 4 + 4]),
                }
                for i in range(3)
            ],
            {"do": "wait_files", "folder": str(store / "predictions" / "digits")},
            _modules("logged"),
        ],
    )
    assert got["ready"]["pandas"] is False
    assert [p for i in range(3) for p in got[f"answer{i}"][1]["outputs"][0]["data"]] == expected
    assert got["logged"]["pandas"] is True and got["logged"]["pyarrow"] is True
    deadline = time.monotonic() + 30
    while len(table := predictions("digits", store=store)) < 12 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(table) == 12
    assert table.sort_values(["ts", "row"])["prediction"].tolist() == expected
    assert table["x0"].tolist() == pytest.approx(X[:12, 0].tolist())


def test_the_child_of_nbops_serve_has_no_pandas_loaded(isolated_env: Path) -> None:
    """The real entry point (``python -m nbops.serve``): pandas' extension modules are not
    mapped into the server process (Linux ``/proc/PID/maps``) after start and an answer."""
    X = _digits()
    expected = load_model("digits").predict(X[:3]).tolist()
    with serve("digits", log_sample=0.0) as server:
        status, answer, _ = call(f"{server.url}/v2/models/digits/infer", _tensor(X[:3]))
        mapped = Path(f"/proc/{server.pid}/maps").read_text()
    assert status == 200 and answer["outputs"][0]["data"] == expected
    assert "/sklearn/" in mapped  # the probe sees the libraries the server did load
    assert "/pandas/" not in mapped and "/pyarrow/" not in mapped


def test_an_app_created_in_a_notebook_does_not_defer(isolated_env: Path) -> None:
    """``create_app`` in a notebook or test process is not a server process: nothing deferred."""
    _digits()
    script = """
        import asyncio, sys
        from nbops.serve import ServeConfig, create_app, model_specs
        app = create_app(ServeConfig(models=model_specs(["digits"])))

        async def start():
            sent = []
            events = [{"type": "lifespan.startup"}]
            async def receive():
                if events:
                    return events.pop()
                await asyncio.Event().wait()
            async def send(message):
                sent.append(message)
            task = asyncio.ensure_future(app({"type": "lifespan"}, receive, send))
            while not sent:
                await asyncio.sleep(0.01)
            task.cancel()
            return sent[0]["type"]

        assert asyncio.run(start()) == "lifespan.startup.complete"
        import pandas
        assert sys.modules["sklearn.utils.fixes"].pd is pandas
        print("ok")
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


_RACE = """
import sys, threading
from nbops.registry import import_skops_for_serving, load_model
from nbops.serve._gate import import_pandas, predicting

import_skops_for_serving()
model = load_model("digits")
import numpy as np
X = np.zeros((1, 64))
stop, errors, done = False, [], [0]

def loop():
    while not stop:
        try:
            with predicting():
                model.predict(X)
            done[0] += 1
        except Exception as exc:  # a half-imported pandas
            errors.append(repr(exc))

threads = [threading.Thread(target=loop) for _ in range(4)]
for t in threads:
    t.start()
while done[0] < 50:
    pass
{import_statement}
stop = True
for t in threads:
    t.join()
print(len(errors), errors[:1])
"""


@pytest.mark.parametrize("gated", [True, False])
def test_the_first_pandas_import_waits_for_predictions(isolated_env: Path, gated: bool) -> None:
    """Predicting while pandas is half imported fails in scikit-learn (it looks pandas up in
    ``sys.modules``); the server's first import of pandas runs alone. Ungated, the same race
    shows the failure the gate prevents."""
    _digits()
    statement = "import_pandas()" if gated else "import pandas"
    done = subprocess.run(
        [sys.executable, "-c", _RACE.replace("{import_statement}", statement)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    errors = int(done.stdout.split()[0])
    if gated:
        assert errors == 0, done.stdout
    else:
        assert errors > 0 and "partially initialized module" in done.stdout, done.stdout


def test_requests_from_the_start_all_answer_while_the_log_imports_pandas(
    isolated_env: Path,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    X = _digits()
    body = _tensor(X[:1])
    for _ in range(2):
        with serve("digits", max_latency=0.005) as server:
            url = f"{server.url}/v2/models/digits/infer"
            with ThreadPoolExecutor(16) as pool:
                statuses = list(pool.map(lambda _, u=url: call(u, body)[0], range(400)))
            assert statuses == [200] * 400, server.logs()[-3000:]
