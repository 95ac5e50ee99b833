"""Executor URLs, and a real Dask cluster (scheduler and two worker processes on loopback)."""

from __future__ import annotations

import time

import pytest

from nbops.cluster import LOCAL, ClusterUnavailableError, dask_client, parse_executor
from nbops.errors import InvalidValueError
from tests.conftest import DaskCluster


@pytest.mark.parametrize("url", [None, "", "local", " local "])
def test_local_is_the_default(url: str | None) -> None:
    assert parse_executor(url) == LOCAL
    assert parse_executor(url).is_local


def test_a_dask_url_names_the_scheduler() -> None:
    parsed = parse_executor("dask://10.0.0.5:8786")
    assert (parsed.kind, parsed.address, parsed.url) == (
        "dask",
        "tcp://10.0.0.5:8786",
        "dask://10.0.0.5:8786",
    )
    assert parse_executor("tcp://[::1]:9000").address == "tcp://[::1]:9000"


@pytest.mark.parametrize(
    "url", ["dask://host", "dask://:8786", "http://host:80", "dask://h:99999", "dask://h:1/x"]
)
def test_bad_urls_say_what_to_write(url: str) -> None:
    with pytest.raises(InvalidValueError, match="dask://HOST:PORT"):
        parse_executor(url)


def test_nothing_listening_is_a_clear_error() -> None:
    started = time.monotonic()
    with pytest.raises(ClusterUnavailableError, match="dask scheduler --host"):
        dask_client("dask://127.0.0.1:1", timeout=1)
    assert time.monotonic() - started < 30  # bounded, not a hang


def _worker_name(delay: float) -> str:
    from distributed import get_worker

    time.sleep(delay)
    return str(get_worker().name)


@pytest.mark.slow
def test_a_real_cluster_runs_tasks_on_both_workers(dask_cluster: DaskCluster) -> None:
    with dask_client(dask_cluster.url) as client:
        workers = client.scheduler_info()["workers"]
        assert sorted(w["name"] for w in workers.values()) == ["w0", "w1"]
        futures = [client.submit(_worker_name, 0.2, pure=False, workers=[a]) for a in workers]
        assert sorted(client.gather(futures)) == ["w0", "w1"]
        dask_cluster.kill_worker("w0")
        survivor = client.submit(_worker_name, 0, pure=False)
        assert survivor.result(timeout=60) == "w1"
