"""Statuses, what a bare name means, aliases on validated versions only, tags, archive, delete."""

from __future__ import annotations

from typing import Any

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import nbops
from nbops.errors import InvalidValueError, NotFoundError
from nbops.registry import (
    alias_history,
    archive_version,
    delete_version,
    get_model,
    load_model,
    log_model,
    model_versions,
    remove_alias,
    set_alias,
    set_run_models_status,
    set_status,
    tag_version,
)


def _model() -> LogisticRegression:
    X, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=300).fit(X, y)


def test_a_bare_name_resolves_to_the_latest_validated_version() -> None:
    log_model(_model(), "m")  # outside a pipeline: validated
    with nbops.init(project="p") as run:
        candidate = log_model(_model(), "m", status="candidate")
    assert candidate.status == "candidate"
    assert get_model("m").version == 1 and get_model("m@latest").version == 1
    assert load_model("m:2") is not None  # an exact version always resolves
    # the gate of the run that registered version 2 fails: it is rejected, with why
    (rejected,) = set_run_models_status(run.id, "rejected", "evaluate: accuracy 0.33 < 0.9")
    assert rejected.status == "rejected"
    assert rejected.events[-1].reason == "evaluate: accuracy 0.33 < 0.9"
    assert get_model("m").version == 1
    set_status("m", 1, "rejected", reason="superseded")
    with pytest.raises(NotFoundError, match=r"no validated version \(2 rejected\)"):
        get_model("m")


def test_aliases_go_only_on_validated_versions_unless_forced() -> None:
    log_model(_model(), "m", status="candidate")
    with pytest.raises(InvalidValueError, match="only a validated version can get an alias"):
        set_alias("m", 1, "production")
    with pytest.raises(InvalidValueError, match="needs a reason"):
        set_alias("m", 1, "production", force=True)
    move = set_alias("m", 1, "production", force=True, reason="hotfix")
    assert move.reason == "forced onto a candidate version: hotfix"
    with pytest.raises(InvalidValueError, match="move or remove the alias"):
        set_status("m", 1, "rejected")


def test_remove_alias_archive_delete_and_tags_are_recorded(cli: Any) -> None:
    log_model(_model(), "m")
    log_model(_model(), "m")
    set_alias("m", 1, "production", reason="first")
    with pytest.raises(InvalidValueError, match="m@production points at it"):
        delete_version("m", 1)
    with pytest.raises(InvalidValueError, match="m@production points at it"):
        archive_version("m", 1)
    removed = remove_alias("m", "production", reason="retired")
    assert removed.removed and removed.previous == 1
    assert [(m.version, m.reason) for m in alias_history("m", "production")] == [
        (1, "first"),
        (0, "retired"),
    ]
    with pytest.raises(NotFoundError, match="has no alias 'production'"):
        get_model("m@production")
    archive_version("m", 2, reason="bad data")
    assert get_model("m").version == 1  # an archived version is never "latest"
    assert get_model("m:2").archived
    deleted = delete_version("m", 1, reason="leaked PII")
    assert deleted.version == 1
    with pytest.raises(NotFoundError, match=r"m:1 was deleted by .*: leaked PII"):
        get_model("m:1")
    assert log_model(_model(), "m").version == 3  # numbers are never reused
    tagged = tag_version("m", 3, {"team": "vision", "ticket": "ML-1"}, reason="ownership")
    tagged = tag_version("m", 3, {}, remove=("ticket",))
    assert tagged.tags == {"team": "vision"}
    assert [e.action for e in tagged.events] == ["registered as validated", "tagged", "tagged"]
    assert [v.deleted for v in model_versions("m")] == [True, False, False]

    out = cli("models", "tag", "m:3", "stage=prod", "--reason", "why not")
    assert out.exit_code == 0 and "m:3: stage=prod, team=vision" in out.output
    out = cli("models", "alias", "m", "2", "production")
    assert out.exit_code == 1 and "archived" in out.stderr
    assert cli("models", "archive", "m:2", "--restore").exit_code == 0
    assert cli("models", "alias", "m", "2", "production").exit_code == 0
    out = cli("models", "delete", "m:2")
    assert (
        out.exit_code == 1 and "Error: cannot delete m:2: m@production points at it" in out.stderr
    )
    out = cli("models", "alias", "--delete", "m", "production", "--reason", "done")
    assert out.exit_code == 0 and "m@production removed (was version 2)" in out.output
    assert cli("models", "status", "m:2", "rejected", "--reason", "lost").exit_code == 0
    shown = cli("models", "show", "m:2").output
    assert "status rejected" in shown and "status validated -> rejected by" in shown
    assert "production 2 -> removed by" in shown and ": done" in shown
    listing = cli("models", "list").output
    assert "STATUS" in listing.splitlines()[0]


def _archive_restore_and_tag(args: tuple[int, int]) -> None:
    worker, n = args
    for i in range(n):
        archive_version("m", 1, reason=f"{worker}-{i}", restore=i % 2 == 1)
        tag_version("m", 1, {f"t{worker}-{i}": "x"}, reason=f"tag {worker}-{i}")


def test_processes_changing_one_version_keep_every_history_entry_and_tag() -> None:
    import multiprocessing

    log_model(_model(), "m")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_archive_restore_and_tag, [(w, 10) for w in range(4)])
    (version,) = model_versions("m")
    steps = sorted(f"{w}-{i}" for w in range(4) for i in range(10))
    reasons = [e.reason for e in version.events[1:]]
    assert version.events[0].action == "registered as validated"
    assert sorted(r for r in reasons if r and not r.startswith("tag ")) == steps
    assert sorted(r.removeprefix("tag ") for r in reasons if r and r.startswith("tag ")) == steps
    assert sorted(version.tags) == sorted(f"t{s}" for s in steps)  # no tag lost either
