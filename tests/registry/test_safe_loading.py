"""Loading is safe: only allow-listed types load without the caller trusting them explicitly."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import nbops
from nbops.errors import UnsafeModelError
from nbops.registry import (
    ModelRoundTripError,
    get_model,
    is_trusted_type,
    load_model,
    log_model,
    model_versions,
)


def test_a_function_transformer_running_a_shell_command_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = FunctionTransformer(functools.partial(os.system), validate=False)
    with pytest.warns(UserWarning, match=r"posix\.system"):
        version = log_model(evil, "evil")
    assert "posix.system" in version.untrusted_types
    with pytest.raises(UnsafeModelError, match=r"functools\.partial, posix\.system") as info:
        load_model("evil")
    assert "trusted=['functools.partial', 'posix.system']" in str(info.value)
    # the caller who checked where it came from can still load it, explicitly
    loaded = load_model("evil", trusted=["functools.partial", "posix.system"])
    assert isinstance(loaded, FunctionTransformer)
    assert not marker.exists()


def test_allow_listed_models_load_without_trusting_anything() -> None:
    X, y = load_iris(return_X_y=True)
    model = make_pipeline(
        FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression(max_iter=300)
    ).fit(X, y)
    version = log_model(model, "piped")
    assert version.untrusted_types == ()
    assert np.array_equal(load_model("piped").predict(X), model.predict(X))


@pytest.mark.parametrize(
    ("name", "trusted"),
    [
        ("sklearn.tree._tree.Tree", True),
        ("numpy.float64", True),
        ("scipy.sparse._csr.csr_matrix", True),
        ("numpy.testing.assert_equal", False),
        ("numpy.load", False),
        ("builtins.eval", False),
        ("posix.system", False),
        ("sklearnx.Evil", False),
    ],
)
def test_the_allow_list(name: str, trusted: bool) -> None:
    assert is_trusted_type(name) is trusted


def test_a_model_that_cannot_be_loaded_back_is_not_registered() -> None:
    model = make_pipeline(FunctionTransformer(lambda x: x), LogisticRegression())
    with (
        nbops.init(project="rt"),
        pytest.raises(ModelRoundTripError, match="cannot be loaded back") as info,
    ):
        log_model(model, "lambda")
    assert info.value.format == "skops"
    assert model_versions("lambda") == []


def test_models_show_lists_the_types_a_version_needs(cli: Any) -> None:
    evil = FunctionTransformer(functools.partial(os.system), validate=False)
    with pytest.warns(UserWarning, match="allow-list"):
        log_model(evil, "evil")
    shown = cli("models", "show", "evil")
    assert "types: functools.partial, posix.system" in shown.output
    assert "not trusted by default: functools.partial, posix.system" in shown.output
    doc = get_model("evil").to_dict()
    assert doc["untrusted_types"] == ["functools.partial", "posix.system"]


_SERVING_IMPORT = """
import sys
from nbops.errors import UnsafeModelError
from nbops.registry import import_skops_for_serving, load_model
import_skops_for_serving()
scanned = [m for m in ("pytest", "sklearn.neural_network", "sklearn.naive_bayes")
           if m in sys.modules]
assert not scanned, scanned
model = load_model("forest")
assert model.predict([[5.1, 3.5, 1.4, 0.2]]).shape == (1,)
try:
    load_model("evil")
except UnsafeModelError as exc:
    assert "posix.system" in str(exc), exc
else:
    raise SystemExit("an untrusted type loaded")
print("ok")
"""


def test_the_servers_skops_import_skips_the_scan_and_keeps_the_checks() -> None:
    """A server process imports skops without scikit-learn's every module (cold start), and
    nbops' own trust rules still admit scikit-learn types and refuse everything else."""
    import subprocess
    import sys

    from sklearn.ensemble import RandomForestClassifier

    from tests.conftest import subprocess_env

    X, y = load_iris(return_X_y=True)
    log_model(RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y), "forest")
    with pytest.warns(UserWarning, match=r"posix\.system"):
        log_model(FunctionTransformer(functools.partial(os.system), validate=False), "evil")
    done = subprocess.run(
        [sys.executable, "-c", _SERVING_IMPORT],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
