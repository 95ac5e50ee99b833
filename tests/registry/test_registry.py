"""The model registry: versions, lineage, aliases, safe and verified loading, ``nbops models``."""

from __future__ import annotations

import getpass
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import nbops
from nbops.errors import InvalidValueError, ModelIntegrityError, NotFoundError, UnsafeModelError
from nbops.registry import (
    PickleWarning,
    alias_history,
    get_model,
    list_models,
    load_model,
    log_model,
    model_path,
    model_versions,
    set_alias,
)
from tests.conftest import subprocess_env


@pytest.fixture
def iris() -> tuple[Any, Any]:
    return load_iris(return_X_y=True)


def _train(iris: tuple[Any, Any], trees: int = 5) -> tuple[RandomForestClassifier, str]:
    X, y = iris
    frame = load_iris(as_frame=True).frame
    with nbops.init(project="reg", config={"n_estimators": trees}) as run:
        nbops.log_dataset(frame, name="iris")
        model = RandomForestClassifier(n_estimators=trees, random_state=0).fit(X, y)
        run.log({"accuracy": model.score(X, y)})
        run.summary["best"] = 0.5
        nbops.log_model(model, "iris-rf")
    return model, run.id


def test_versions_lineage_and_loading(iris: tuple[Any, Any]) -> None:
    first, run_a = _train(iris, 3)
    second, run_b = _train(iris, 4)
    v1, v2 = model_versions("iris-rf")
    assert (v1.version, v2.version) == (1, 2)
    assert v1.format == "skops" and v1.task == "tabular-classification"
    assert v1.model_class == "sklearn.ensemble._forest.RandomForestClassifier"
    assert v1.created_by == getpass.getuser()
    lineage = v1.lineage
    assert lineage["run"]["id"] == run_a and v2.run_id == run_b
    assert lineage["params"] == {"n_estimators": 3}
    assert lineage["metrics"] == {"accuracy": first.score(*iris), "best": 0.5}
    assert [d["name"] for d in lineage["datasets"]] == ["iris"]
    assert lineage["datasets"][0]["hash"] == nbops.data.get_dataset("iris").hash
    X, _ = iris
    for ref, model in (("iris-rf:1", first), ("iris-rf", second), ("iris-rf@latest", second)):
        loaded = load_model(ref)
        assert type(loaded) is RandomForestClassifier
        assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert nbops.get_run(run_a).metadata["models"] == [{"name": "iris-rf", "version": 1}]


def test_aliases_move_and_keep_their_history(iris: tuple[Any, Any]) -> None:
    _train(iris, 3)
    _train(iris, 4)
    set_alias("iris-rf", 1, "production", reason="first release")
    assert get_model("iris-rf@production").version == 1
    assert get_model("iris-rf:1").aliases == ("production",)
    set_alias("iris-rf", 2, "production", reason="better accuracy")
    set_alias("iris-rf", 1, "staging")
    assert get_model("iris-rf@production").version == 2
    assert load_model("iris-rf@production").n_estimators == 4
    moves = alias_history("iris-rf", "production")
    assert [(m.previous, m.version, m.reason) for m in moves] == [
        (None, 1, "first release"),
        (1, 2, "better accuracy"),
    ]
    assert all(m.moved_by == getpass.getuser() and m.moved_at > 0 for m in moves)
    assert len(alias_history("iris-rf")) == 3
    with pytest.raises(NotFoundError, match="no alias 'canary'"):
        get_model("iris-rf@canary")
    with pytest.raises(NotFoundError, match="version 9"):
        set_alias("iris-rf", 9, "production")
    for alias in ("latest", "3", "../prod", "has space"):
        with pytest.raises(InvalidValueError):
            set_alias("iris-rf", 1, alias)


def test_a_tampered_model_file_is_refused(iris: tuple[Any, Any]) -> None:
    _train(iris)
    path = model_path(get_model("iris-rf:1"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match=r"refusing to load model iris-rf:1") as info:
        load_model("iris-rf:1")
    assert info.value.path == str(path) and info.value.expected != info.value.actual
    path.unlink()
    with pytest.raises(NotFoundError, match="missing"):
        load_model("iris-rf:1")


def test_trust_comes_from_the_allow_list_not_from_the_record(iris: tuple[Any, Any]) -> None:
    _train(iris)
    assert get_model("iris-rf").trusted_types == ("sklearn.tree._tree.Tree",)
    with sqlite3.connect(Path(os.environ["NBOPS_HOME"]) / "runs.db") as con:
        con.execute("UPDATE model_versions SET trusted_types = '[\"posix.system\"]'")
    assert load_model("iris-rf").n_estimators == 5


def test_other_objects_need_pickle_opt_in(iris: tuple[Any, Any]) -> None:
    class Custom:
        pass

    with nbops.init(project="reg"):
        with pytest.raises(UnsafeModelError, match="allow_pickle=True"):
            log_model({"weights": [1, 2]}, "plain")
        with pytest.warns(PickleWarning, match="pickle"):
            version = log_model({"weights": [1, 2]}, "plain", allow_pickle=True)
    assert version.format == "pickle" and version.trusted_types == ()
    with pytest.raises(UnsafeModelError, match="saved with pickle"):
        load_model("plain")
    with pytest.warns(PickleWarning):
        assert load_model("plain:1", allow_pickle=True) == {"weights": [1, 2]}


def test_a_model_can_be_registered_without_a_run(iris: tuple[Any, Any]) -> None:
    model = LogisticRegression(max_iter=300).fit(*iris)
    version = log_model(model, "no-run")
    assert version.run_id is None and version.lineage == {}
    assert version.trusted_types == ()
    assert np.array_equal(load_model("no-run").coef_, model.coef_)


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "/abs",
        "a/b",
        "",
        " ",
        "two words",
        "ctrl\x1b[31m",
        "nul\x00",
        "line\n",
        "..",
        "caf\u00e9",
        "rtl\u202e",
        "a:b",
        "a@b",
    ],
)
def test_odd_model_names_are_rejected(name: str, iris: tuple[Any, Any]) -> None:
    model = LogisticRegression(max_iter=300).fit(*iris)
    with pytest.raises(InvalidValueError):
        log_model(model, name)
    if "@" not in name:  # "a@b" is a valid reference: alias b of model a
        with pytest.raises(InvalidValueError):
            load_model(name)


def test_concurrent_writers_get_distinct_versions(tmp_path: Path) -> None:
    code = (
        "import sys, nbops\n"
        "from sklearn.dummy import DummyClassifier\n"
        "m = DummyClassifier().fit([[0], [1]], [0, 1])\n"
        "print(' '.join(str(nbops.log_model(m, 'shared').version) for _ in range(5)))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=subprocess_env()
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    versions = sorted(int(v) for out in outputs for v in out.split())
    assert versions == list(range(1, 21))
    assert [v.version for v in model_versions("shared")] == list(range(1, 21))


def test_cli_models_list_show_alias(iris: tuple[Any, Any], cli: Any) -> None:
    assert "No models yet" in cli("models", "list").output
    _, run_id = _train(iris, 3)
    _train(iris, 4)
    moved = cli("models", "alias", "iris-rf", "1", "production", "--reason", "first <release>")
    assert moved.exit_code == 0 and moved.output.strip() == "iris-rf@production -> version 1"
    moved = cli("models", "alias", "iris-rf", "2", "production")
    assert moved.output.strip() == "iris-rf@production -> version 2 (was 1)"
    listing = cli("models", "list")
    assert listing.exit_code == 0
    assert listing.output.splitlines()[1].split()[:4] == ["iris-rf", "2", "2", "production=2"]
    assert json.loads(cli("models", "list", "--json").output)[0]["aliases"] == {"production": 2}
    shown = cli("models", "show", "iris-rf:1")
    assert shown.exit_code == 0
    assert "Model iris-rf:1" in shown.output and f"run {run_id}" in shown.output
    assert "n_estimators = 3" in shown.output and "dataset iris@" in shown.output
    assert "production 1 by" in shown.output and ": first <release>" in shown.output
    doc = json.loads(cli("models", "show", "iris-rf@production", "--json").output)
    assert doc["version"] == 2 and doc["aliases"] == ["production"]
    assert [m["reason"] for m in doc["alias_history"]] == ["first <release>", None]
    assert Path(doc["path"]).is_file()
    bad = cli("models", "show", "../../etc/passwd")
    assert bad.exit_code == 1 and "invalid model name" in bad.stderr
    assert cli("models", "alias", "iris-rf", "7", "production").exit_code == 1
    assert [v.name for v, _ in list_models()] == ["iris-rf"]
