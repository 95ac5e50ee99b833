"""Serving figures: nbops vs a bare FastAPI endpoint (and MLServer / BentoML when asked).

A 100-tree RandomForest on digits; single-row and 32-row requests at concurrency 1, 8 and 32;
requests/s, p50, p99, server RSS and cold start (process start to first answer, median of
``--cold-starts``, wall clock and the server's CPU seconds), all measured in one run on the same
machine. On a shared machine the CPU figures are the stable ones: wall clock includes waiting
for a core. Peers with conflicting dependencies run from their own venvs::

    python benchmarks/serve.py                      # nbops and FastAPI (this venv)
    python benchmarks/serve.py --peers mlserver      # builds .venv-bench-mlserver once
    python benchmarks/serve.py --seconds 2 --concurrency 1,8   # a quick check

Targets (README "Serving"): with batching >= 1.5x MLServer's requests/s at concurrency 32 with
p99 no worse; cold start <= 1.5 s; server overhead per request vs a bare predict <= 1 ms at
concurrency 1 (measured in-process against a bare ``predict`` interleaved with it, as wall-clock
medians and as CPU time per request). Writes ``benchmarks/serve-results.json`` (``--output``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "serve-results.json"

FASTAPI_APP = """
import os, numpy as np, skops.io as sio
from fastapi import FastAPI, Request
path = os.environ["BENCH_MODEL"]
model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
app = FastAPI()

@app.post("/v2/models/digits/infer")
async def infer(request: Request):
    doc = await request.json()
    t = doc["inputs"][0]
    X = np.asarray(t["data"], dtype="float64").reshape(t["shape"])
    return {"outputs": [{"name": "predict", "datatype": "INT64", "shape": [len(X)],
                         "data": model.predict(X).tolist()}]}
"""

BENTO_SERVICE = """
import os, numpy as np, bentoml, joblib

@bentoml.service(workers=1)
class Digits:
    def __init__(self):
        self.model = joblib.load(os.environ["BENCH_JOBLIB"])

    @bentoml.api(route="/v2/models/digits/infer")
    def infer(self, inputs: list) -> dict:
        t = inputs[0]
        X = np.asarray(t["data"], dtype="float64").reshape(t["shape"])
        return {"outputs": [{"name": "predict", "datatype": "INT64", "shape": [len(X)],
                             "data": self.model.predict(X).tolist()}]}
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB (Linux /proc)."""
    total = 0
    pids = [pid]
    try:
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        pids += [int(p) for p in children.stdout.split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far, in seconds (Linux /proc)."""
    total = 0.0
    pids = [pid]
    try:
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        pids += [int(p) for p in children.stdout.split()]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def post(conn: http.client.HTTPConnection, path: str, body: bytes) -> int:
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    return resp.status


def wait_first_answer(port: int, path: str, body: bytes, proc: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            if post(conn, path, body) == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.02)
    raise RuntimeError("server did not answer")


def load(port: int, path: str, body: bytes, concurrency: int, seconds: float) -> dict[str, Any]:
    """Closed-loop load: ``concurrency`` threads with keep-alive connections."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, bad = [], 0
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            try:
                ok = post(conn, path, body) == 200
            except OSError:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            if ok:
                mine.append(time.perf_counter() - t0)
            else:
                bad += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            errors += bad

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    latencies.sort()
    n = len(latencies)
    return {
        "rps": n / elapsed,
        "p50_ms": 1000 * latencies[n // 2] if n else float("nan"),
        "p99_ms": 1000 * latencies[min(n - 1, int(0.99 * n))] if n else float("nan"),
        "errors": errors,
    }


def peer_venv(name: str, packages: list[str]) -> Path:
    venv = ROOT / f".venv-bench-{name}"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    return python


def start(name: str, work: Path, store: Path, port: int) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        NBOPS_HOME=str(store),
        BENCH_MODEL=str(work / "model.skops"),
        BENCH_JOBLIB=str(work / "model.joblib"),
        BENTOML_DO_NOT_TRACK="True",
    )
    if name == "nbops":
        cmd = [sys.executable, "-m", "nbops", "serve", "digits", "--port", str(port)]
    elif name == "fastapi":
        (work / "bare_app.py").write_text(FASTAPI_APP)
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
    elif name == "mlserver":
        python = peer_venv("mlserver", ["mlserver", "mlserver-sklearn", "uvloop<0.22"])
        folder = work / "mlserver"
        (folder / "digits").mkdir(parents=True, exist_ok=True)
        (folder / "settings.json").write_text(
            json.dumps(
                {
                    "http_port": port,
                    "grpc_port": free_port(),
                    "metrics_port": free_port(),
                    "parallel_workers": 0,
                }
            )
        )
        (folder / "digits" / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": "digits",
                    "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": str(work / "model.joblib")},
                }
            )
        )
        cmd = [str(python.parent / "mlserver"), "start", str(folder)]
    elif name == "bentoml":
        python = peer_venv("bentoml", ["bentoml", "scikit-learn", "joblib"])
        (work / "bento_service.py").write_text(BENTO_SERVICE)
        cmd = [
            str(python.parent / "bentoml"),
            "serve",
            "bento_service:Digits",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        ]
    else:
        raise SystemExit(f"unknown peer {name}")
    with open(work / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)


def request_body(rows: Any, bento: bool = False) -> bytes:
    tensor = {
        "name": "input-0",
        "shape": list(rows.shape),
        "datatype": "FP64",
        "data": rows.reshape(-1).tolist(),
    }
    return json.dumps({"inputs": [tensor]}).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per cell")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--rows", default="1,32")
    parser.add_argument("--peers", default="", help="also mlserver and/or bentoml (own venvs)")
    parser.add_argument("--cold-starts", type=int, default=3, help="starts per peer (median)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()
    import joblib
    import skops.io as sio
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier

    work = Path(tempfile.mkdtemp(prefix="nbops-bench-serve-"))
    store = work / ".nbops"
    os.environ["NBOPS_HOME"] = str(store)
    X, y = load_digits(return_X_y=True)
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    import nbops

    nbops.log_model(model, "digits")
    # a model whose predict is ~0.1 ms, so the server's own CPU per request stands out
    from sklearn.linear_model import LogisticRegression

    nbops.log_model(LogisticRegression(max_iter=300).fit(X, y), "fast")
    sio.dump(model, work / "model.skops")
    joblib.dump(model, work / "model.joblib")

    bare: dict[int, float] = {}
    for n in map(int, args.rows.split(",")):
        times = []
        for i in range(200):
            t0 = time.perf_counter()
            model.predict(X[i : i + n])
            times.append(time.perf_counter() - t0)
        bare[n] = statistics.median(times) * 1000
        print(f"bare predict, {n} row(s): p50 {bare[n]:.2f} ms")

    peers = ["nbops", "fastapi", *[p for p in args.peers.split(",") if p]]
    results: dict[str, Any] = {"bare_predict_ms": bare, "peers": {}}
    results["in_process"] = in_process_overhead(store, X)
    results["in_process_fast_model"] = in_process_overhead(store, X, model_name="fast")
    for key, label in (("in_process", "forest"), ("in_process_fast_model", "fast model")):
        print(
            f"in-process (ASGI, no network), {label}, 1 row: p50 request {{request_ms:.2f}} ms, "
            "p50 bare predict {predict_ms:.2f} ms, overhead {overhead_ms:.2f} ms "
            "(fastest request minus fastest predict: {min_overhead_ms:.2f} ms; "
            "CPU per request minus CPU per predict: {cpu_overhead_ms:.2f} ms)".format(
                **results[key]
            )
        )
    for name in peers:
        path = "/v2/models/digits/infer"
        colds: list[tuple[float, float]] = []
        for attempt in range(args.cold_starts):
            port = free_port()
            t0 = time.perf_counter()
            proc = start(name, work, store, port)
            try:
                wait_first_answer(port, path, request_body(X[:1]), proc)
                colds.append((time.perf_counter() - t0, cpu_seconds(proc.pid)))
                print(
                    f"{name}: first answer {colds[-1][0]:.2f} s after start "
                    f"({colds[-1][1]:.2f} s of CPU)"
                )
                if attempt < args.cold_starts - 1:
                    continue
                cells = {}
                for n in map(int, args.rows.split(",")):
                    body = request_body(X[:n])
                    for c in map(int, args.concurrency.split(",")):
                        cells[f"{n}x{c}"] = load(port, path, body, c, args.seconds)
                results["peers"][name] = {
                    "cold_start_s": statistics.median(c[0] for c in colds),
                    "cold_start_cpu_s": statistics.median(c[1] for c in colds),
                    "cold_starts": colds,
                    "rss_mb": rss_mb(proc.pid),
                    "cells": cells,
                }
            finally:
                proc.terminate()
                proc.wait(30)
    print_table(results, peers)
    args.output.write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {args.output}")


def in_process_overhead(
    store: Path, X: Any, n: int = 200, model_name: str = "digits"
) -> dict[str, float]:
    """p50 of a 1-row request through the nbops ASGI app (no socket) and of a bare predict.

    Both run interleaved in this process on the same model object, so machine noise hits
    them alike; the difference is what the server adds (decode, validate, batch, metrics, log).
    """
    import asyncio

    from nbops.serve import ServeConfig, create_app, model_specs

    app = create_app(ServeConfig(models=model_specs([model_name]), store=str(store)))
    body = request_body(X[:1])
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/v2/models/{model_name}/infer",
        "query_string": b"",
        "root_path": "",
        "server": ("127.0.0.1", 1),
        "client": ("127.0.0.1", 2),
        "raw_path": f"/v2/models/{model_name}/infer".encode(),
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }

    async def call() -> None:
        sent = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> Any:
            return sent.pop() if sent else {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            if message["type"] == "http.response.start":
                assert message["status"] == 200, message

        await app(scope, receive, send)

    async def main() -> dict[str, float]:
        started = asyncio.Event()
        events = [{"type": "lifespan.startup"}]

        async def receive() -> Any:
            if events:
                return events.pop()
            await asyncio.Event().wait()

        async def send(message: Any) -> None:
            started.set()

        life = asyncio.ensure_future(app({"type": "lifespan"}, receive, send))
        await started.wait()
        model = nbops_model(store, model_name)
        request, predict = [], []
        for _ in range(20):
            await call()
        for _ in range(n):
            t0 = time.perf_counter()
            await call()
            request.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            model.predict(X[:1])
            predict.append(time.perf_counter() - t0)
        # CPU time (every thread of this process) is what the server adds whatever else the
        # machine runs; wall-clock medians include the scheduler's delays under load.
        cpu = []
        for _ in range(3):
            c0 = time.process_time()
            for _ in range(n):
                await call()
            c1 = time.process_time()
            for _ in range(n):
                model.predict(X[:1])
            c2 = time.process_time()
            cpu.append(((c1 - c0) - (c2 - c1)) / n * 1000)
        life.cancel()
        r, p = statistics.median(request) * 1000, statistics.median(predict) * 1000
        fastest = (min(request) - min(predict)) * 1000
        return {
            "request_ms": r,
            "predict_ms": p,
            "overhead_ms": r - p,
            "min_overhead_ms": fastest,
            "cpu_overhead_ms": statistics.median(cpu),
        }

    return asyncio.run(main())


def nbops_model(store: Path, name: str = "digits") -> Any:
    from nbops.registry import load_model

    return load_model(name, store=store)


def print_table(results: dict[str, Any], peers: list[str]) -> None:
    print()
    print(
        f"{'peer':<10}{'cold s':>8}{'cpu s':>7}{'RSS MB':>8}  "
        + "  ".join(f"{cell:>22}" for cell in results["peers"][peers[0]]["cells"])
    )
    for name in peers:
        r = results["peers"][name]
        cells = "  ".join(
            f"{c['rps']:7.0f}/s {c['p50_ms']:5.1f}/{c['p99_ms']:5.1f}ms"
            for c in r["cells"].values()
        )
        print(
            f"{name:<10}{r['cold_start_s']:8.2f}{r.get('cold_start_cpu_s', 0):7.2f}"
            f"{r['rss_mb']:8.0f}  {cells}"
        )
    base = results["peers"]["nbops"]["cells"]
    for name in peers[1:]:
        other = results["peers"][name]["cells"]
        ratios = ", ".join(f"{k} {base[k]['rps'] / other[k]['rps']:.2f}x" for k in base)
        print(f"nbops / {name} requests/s: {ratios}")
    one = base.get("1x1")
    if one:
        overhead = one["p50_ms"] - results["bare_predict_ms"][1]
        print(
            textwrap.dedent(f"""
            server overhead at concurrency 1 (p50 minus bare predict, client included):
            {overhead:.2f} ms""")
        )


if __name__ == "__main__":
    main()
