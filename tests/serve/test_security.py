"""Bearer tokens, open health checks, timeouts, loopback by default, and ``nbops serve``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from nbops.serve import ServeError, serve
from nbops.serve._server import free_port
from tests.conftest import subprocess_env
from tests.serve.conftest import Store, call, pd_request

pytestmark = pytest.mark.slow
TOKEN = "s3cret-serving-token-value"


def test_token_required_except_for_health(models: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    monkeypatch.setenv("NBOPS_SERVE_TOKEN", TOKEN)
    with serve("iris@production", store=models.path, token_env="NBOPS_SERVE_TOKEN") as server:
        body = pd_request(models.X.iloc[:1])
        url = f"{server.url}/v2/models/iris/infer"
        assert call(f"{server.url}/v2/health/live")[0] == 200
        assert call(f"{server.url}/v2/health/ready")[0] == 200
        for headers in (
            None,
            {"Authorization": "Bearer wrong"},
            {"Authorization": TOKEN},
            {"Authorization": f"Basic {TOKEN}"},
        ):
            status, out, got = call(url, body, headers=headers)
            assert status == 401 and got["www-authenticate"] == "Bearer"
            assert TOKEN not in str(out)
        assert call(f"{server.url}/metrics")[0] == 401
        assert call(f"{server.url}/v2/models/iris")[0] == 401
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert call(url, body, headers=good)[0] == 200
        assert call(f"{server.url}/metrics", headers=good)[0] == 200
        client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
        assert client.get_model_metadata("iris", headers=good)["name"] == "iris"
        with pytest.raises(InferenceServerException):
            client.get_model_metadata("iris")
        client.close()
        server.stop()
        assert TOKEN not in server.logs()
    monkeypatch.delenv("NBOPS_SERVE_TOKEN")
    with pytest.raises(ServeError, match="NBOPS_SERVE_TOKEN"):
        serve("iris@production", store=models.path, token_env="NBOPS_SERVE_TOKEN")


def test_without_a_token_nothing_asks_for_one(
    models: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Auth off (no ``token_env``): every endpoint answers without credentials, a stray
    Authorization header is ignored, and a token in the environment is not picked up."""
    monkeypatch.setenv("NBOPS_SERVE_TOKEN", TOKEN)  # set, but the server was not told to use it
    with serve("iris@production", store=models.path) as server:
        body = pd_request(models.X.iloc[:1])
        url = f"{server.url}/v2/models/iris/infer"
        for headers in (None, {"Authorization": "Bearer wrong"}):
            status, out, got = call(url, body, headers=headers)
            assert status == 200 and out["model_version"] == "1"
            assert "www-authenticate" not in got
        assert call(f"{server.url}/v2/models/iris")[0] == 200
        assert call(f"{server.url}/v2")[0] == 200
        assert call(f"{server.url}/metrics")[0] == 200


def test_slow_requests_time_out_and_the_server_keeps_serving(models: Store) -> None:
    from sklearn.datasets import load_digits

    rows = load_digits().data[:1500]
    big = {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.reshape(-1).tolist(),
            }
        ]
    }
    with serve("digits", store=models.path, timeout=0.001) as server:
        status, out, _ = call(f"{server.url}/v2/models/digits/infer", big)
        assert status == 504 and "no answer within" in out["error"] and out["request_id"]
        assert call(f"{server.url}/v2/health/live")[0] == 200
        _, metrics, _ = call(f"{server.url}/metrics")
    assert 'kind="timeout"' in metrics


def test_loopback_by_default(models: Store) -> None:
    with serve("digits", store=models.path) as server:
        assert server.url.startswith("http://127.0.0.1:")
        lsof = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True)
        port = server.url.rsplit(":", 1)[1]
        if lsof.returncode == 0:  # ss is optional; the url check above is the contract
            lines = [ln for ln in lsof.stdout.splitlines() if f":{port} " in ln]
            assert lines and all("127.0.0.1:" in ln for ln in lines), lines


def test_unknown_model_fails_fast_with_a_clear_error(models: Store) -> None:
    from nbops.errors import NotFoundError

    with pytest.raises(NotFoundError, match="model 'ghost' has no alias 'production'"):
        serve("ghost@production", store=models.path, start_timeout=60)


def test_cli_serve_runs_in_the_foreground_and_stops_on_sigint(models: Store) -> None:
    port = free_port()
    env = subprocess_env(NBOPS_HOME=str(models.path))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nbops",
            "serve",
            "iris@production",
            "--port",
            str(port),
            "--route",
            "production=50,candidate=50",
            "--max-latency-ms",
            "1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        status: Any = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = call(f"http://127.0.0.1:{port}/v2/health/ready")[0]
            except OSError:
                status = None
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200
        versions = {
            call(f"http://127.0.0.1:{port}/v2/models/iris/infer", pd_request(models.X.iloc[:1]))[1][
                "model_version"
            ]
            for _ in range(40)
        }
        assert versions == {"1", "2"}
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert "Serving iris (production=50, candidate=50) at http://127.0.0.1" in out
    assert "Traceback" not in err
    bad = subprocess.run(
        [sys.executable, "-m", "nbops", "serve", "iris", "--route", "a=x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and bad.stderr.startswith("Error: route 'a=x'")
    assert os.environ.get("NBOPS_SERVE_CONFIG") is None


def test_port_in_use_is_a_clear_cli_error(
    models: Store, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        monkeypatch.setenv("NBOPS_HOME", str(models.path))
        result = cli("serve", "digits", "--port", str(port))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: cannot listen on 127.0.0.1:{port}")


def test_server_stops_when_the_notebook_process_dies(models: Store) -> None:
    code = (
        "import os, nbops\n"
        f"s = nbops.serve('digits', store={str(models.path)!r})\n"
        "print(s.url, s.pid, flush=True)\n"
        "os._exit(0)  # a crashed kernel: no stop(), no atexit\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    _url, pid = done.stdout.split()
    deadline = time.monotonic() + 30
    alive = True
    while time.monotonic() < deadline and alive:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            alive = "\tZ" not in status.split("State:", 1)[1].splitlines()[0]
            time.sleep(0.2)
        except FileNotFoundError:
            alive = False
    assert not alive, "the server outlived the process that started it"
