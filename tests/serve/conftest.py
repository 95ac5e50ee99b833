"""Registered test models (iris with column names, digits without) and HTTP helpers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


class Store:
    """A store with registered models, shared by the servers of one test module."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.X: Any = None
        self.y: Any = None

    def __str__(self) -> str:
        return str(self.path)


def _register(path: Path) -> Store:
    import numpy as np
    from sklearn.datasets import load_digits, load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    from nbops.registry import log_model, set_alias

    X, y = load_iris(return_X_y=True, as_frame=True)
    good = LogisticRegression(max_iter=500).fit(X, y)
    log_model(good, "iris")  # version 1
    log_model(DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y), "iris")  # 2
    broken = LogisticRegression(max_iter=500).fit(X, y)
    broken.coef_ = broken.coef_[:, :3]  # predict raises: a model that fails at serving time
    log_model(broken, "iris")  # 3
    set_alias("iris", 1, "production", store=path)
    set_alias("iris", 2, "candidate", store=path)
    digits_X, digits_y = load_digits(return_X_y=True)
    log_model(LogisticRegression(max_iter=200).fit(digits_X[:500], digits_y[:500]), "digits")
    set_alias("digits", 1, "production", store=path)
    store = Store(path)
    store.X, store.y = X, np.asarray(y)
    return store


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A module-wide store holding iris (v1 production, v2 candidate, v3 broken) and digits."""
    path = tmp_path_factory.mktemp("serve-store") / ".nbops"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBOPS_HOME", str(path))
        mp.setenv("NBOPS_WANDB", "disabled")
        yield _register(path)


def pd_request(frame: Any, **extra: Any) -> dict[str, Any]:
    """A V2 request for a DataFrame, as MLServer's pandas codec encodes it."""
    inputs = [
        {"name": str(c), "shape": [len(frame)], "datatype": "FP64", "data": frame[c].tolist()}
        for c in frame.columns
    ]
    return {"parameters": {"content_type": "pd"}, "inputs": inputs, **extra}


def call(
    url: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    timeout: float = 30.0,
) -> tuple[int, Any, dict[str, str]]:
    """GET (no body) or POST JSON; return status, decoded JSON (or text) and headers."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            status, payload, got = resp.status, resp.read(), _lower(resp.headers)
    except urllib.error.HTTPError as exc:
        status, payload, got = exc.code, exc.read(), _lower(exc.headers)
    try:
        return status, json.loads(payload), got
    except ValueError:
        return status, payload.decode(errors="replace"), got


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}
