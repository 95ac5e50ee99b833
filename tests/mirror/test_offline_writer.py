"""Offline W&B copies written directly, without wandb's runtime, hold what wandb's own copy of
the same run holds, and wandb reads and uploads them.

Real parts: wandb writing the copy to compare with, wandb's own reader (``wandb leet inspect``),
``wandb sync`` uploading both copies to a loopback W&B server, a writer process killed halfway.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import nbops
from nbops.mirror import (
    COMPLETE,
    METADATA_KEY,
    complete_offline_copies,
    deferred_state,
    find_offline_runs,
    needs_wandb,
    read_offline_run,
    rebuild_offline_copy,
)
from nbops.mirror import _offline_writer as writer
from nbops.mirror._offline_file import frame_records, iter_records
from nbops.store import open_store
from tests.conftest import subprocess_env
from tests.mirror.servers import fake_wandb
from tests.mirror.test_copy_completion import assert_copy_equals_store, store_rows

SECRET = "writer-secret-5f4e3d2c1b"
WANDB = str(Path(sys.executable).parent / "wandb")
FAKE_KEY = "f" * 36 + "cafe"


def _stored_run(monkeypatch: pytest.MonkeyPatch, *, status: str = "finished") -> str:
    """A finished run with config, metrics (NaN and infinity too), summary, notes, tags and
    code metadata, whose W&B copy is owed (as a sweep's trial); a secret in the environment
    shows up in its name, notes, config and summary."""
    monkeypatch.setenv("WRITER_API_TOKEN", SECRET)
    run = nbops.init(
        project="writer",
        name=f"trial-{SECRET}",
        config={"lr": 0.1, "layers": [64, 32], "optimizer": {"name": "adam"}, "api_key": "k1"},
        group="study",
        job_type="trial",
        tags=["a", "b"],
        wandb="disabled",
        capture=False,
    )
    run.set_metadata(METADATA_KEY, deferred_state().to_dict(), deferred=True)
    run.notes = f"notes with {SECRET}"
    run.set_metadata("git", {"commit": "0123abcd", "remote": "https://example.com/r.git"})
    run.set_metadata("packages", {"numpy": "2.0.0"})
    for step in range(4):
        run.log({"loss": 1.0 / (step + 1), "acc": step / 4}, step=step)
    run.log({"loss": float("nan"), "grad": float("inf")}, step=10)
    run.summary["best"] = 0.75
    run.summary["comment"] = f"contains {SECRET}"
    run.finish(status)
    return run.id


def _leet(run_dir: Path) -> dict[str, Any]:
    """What wandb's own reader makes of a run folder."""
    done = subprocess.run(
        [WANDB, "leet", "inspect", "--summary", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON (NaN equals NaN; 1 equals 1.0)."""

    def norm(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list):
            return [norm(v) for v in value]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return "NaN" if math.isnan(value) else float(value)
        return value

    return json.dumps(norm(a), sort_keys=True) == json.dumps(norm(b), sort_keys=True)


def test_field_numbers_are_wandbs() -> None:
    """The hand-encoded field numbers are those of wandb's own protobuf descriptors."""
    from wandb.proto import wandb_internal_pb2 as pb
    from wandb.proto import wandb_telemetry_pb2 as tpb

    record = pb.Record.DESCRIPTOR.fields_by_name
    for name, number in [
        ("num", writer._RECORD_NUM),
        ("_info", writer._RECORD_INFO),
        ("history", writer._HISTORY),
        ("summary", writer._SUMMARY),
        ("files", writer._FILES),
        ("telemetry", writer._TELEMETRY),
        ("run", writer._RUN),
        ("exit", writer._EXIT),
        ("header", writer._HEADER),
    ]:
        assert record[name].number == number, name
    run = pb.RunRecord.DESCRIPTOR.fields_by_name
    assert {name: run[name].number for name in writer._RUN_FIELDS} == writer._RUN_FIELDS
    for message in (pb.ConfigItem, pb.SummaryItem, pb.HistoryItem):
        fields = message.DESCRIPTOR.fields_by_name
        assert fields["key"].number == writer._ITEM_KEY
        assert fields["nested_key"].number == writer._ITEM_NESTED_KEY
        assert fields["value_json"].number == writer._ITEM_VALUE_JSON
    git = pb.GitRepoRecord.DESCRIPTOR.fields_by_name
    assert (git["remote_url"].number, git["commit"].number) == (
        writer._GIT_REMOTE_URL,
        writer._GIT_COMMIT,
    )
    telemetry = tpb.TelemetryRecord.DESCRIPTOR.fields_by_name
    assert [telemetry[n].number for n in ("feature", "python_version", "cli_version", "platform")]
    assert telemetry["feature"].number == writer._TELEMETRY_FEATURE
    assert telemetry["python_version"].number == writer._TELEMETRY_PYTHON
    assert telemetry["cli_version"].number == writer._TELEMETRY_CLI
    assert telemetry["platform"].number == writer._TELEMETRY_PLATFORM
    feature = tpb.Feature.DESCRIPTOR.fields_by_name
    assert {name: feature[name].number for name in writer._FEATURES} == writer._FEATURES


def test_a_direct_copy_holds_what_wandbs_copy_holds(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _stored_run(monkeypatch, status="failed")
    store = open_store()
    copy = rebuild_offline_copy(store, run_id, isolated_env / "w", through_wandb=True)
    through_wandb = Path(copy.detail)
    direct = Path(rebuild_offline_copy(store, run_id, isolated_env / "d").detail)
    assert (through_wandb / "logs").is_dir() and not (direct / "logs").exists()  # wandb's folder

    ours, theirs = read_offline_run(direct), read_offline_run(through_wandb)
    for name in ("run_id", "name", "project", "group", "job_type", "tags", "notes", "exit_code"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.complete and ours.exit_code == 1
    assert (ours.git_commit, ours.git_remote) == (theirs.git_commit, theirs.git_remote)
    assert sorted(ours.files) == sorted(theirs.files) == ["requirements.txt", "wandb-metadata.json"]
    for name in ours.files:
        assert (direct / "files" / name).read_bytes() == (
            through_wandb / "files" / name
        ).read_bytes()
    assert _same(ours.config, theirs.config)
    assert _same(ours.history, theirs.history)
    assert _same(ours.summary, theirs.summary)
    assert ours.config["api_key"] == "[redacted]" and SECRET not in ours.name + ours.notes
    assert ours.summary["comment"] == "contains [redacted]"
    for path in direct.rglob("*"):
        assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path

    # wandb's own reader sees the same run in both
    mine, wandbs = _leet(direct), _leet(through_wandb)
    for key in ("config", "name", "notes", "project", "run_id", "state", "tags", "exit_code"):
        assert _same(mine[key], wandbs[key]), key
    drop = ("_runtime", "_wandb")  # how long after its start wandb wrote the copy
    assert _same(
        {k: v for k, v in mine["summary"].items() if k not in drop},
        {k: v for k, v in wandbs["summary"].items() if k not in drop},
    )
    assert mine["state"] == "failed" and mine["step"] == 10


def test_wandb_sync_uploads_the_same_run_from_either_copy(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _stored_run(monkeypatch)
    store = open_store()
    copy = rebuild_offline_copy(store, run_id, isolated_env / "w", through_wandb=True)
    through_wandb = Path(copy.detail)
    direct = Path(rebuild_offline_copy(store, run_id, isolated_env / "d").detail)
    received = {}
    with fake_wandb() as server:
        for kind, run_dir in (("wandb", through_wandb), ("direct", direct)):
            done = subprocess.run(
                [WANDB, "sync", str(run_dir)],
                env=subprocess_env(WANDB_BASE_URL=server.url, WANDB_API_KEY=FAKE_KEY),
                capture_output=True,
                text=True,
                timeout=120,
                stdin=subprocess.DEVNULL,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            assert list(run_dir.glob("run-*.wandb.synced")), done.stdout + done.stderr
            received[kind] = server.runs.pop(run_id)
    ours, theirs = received["direct"], received["wandb"]
    assert ours.complete and theirs.complete and ours.exitcode == theirs.exitcode == 0

    def rows(run: Any) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in run.history[i].items() if k != "_runtime"}
            for i in sorted(run.history)
        ]

    assert len(rows(ours)) == 5 and _same(rows(ours), rows(theirs))
    config = [{k: v for k, v in r.config.items() if k != "_wandb"} for r in (ours, theirs)]
    assert config[0]["lr"] == 0.1 and _same(*config)
    summary = [
        {k: v for k, v in r.summary.items() if k not in ("_runtime", "_wandb")}
        for r in (ours, theirs)
    ]
    assert summary[0]["best"] == 0.75 and _same(*summary)
    first = [r.upserts[0] for r in (ours, theirs)]
    for key in ("displayName", "groupName", "jobType", "tags", "notes", "commit", "repo"):
        assert first[0][key] == first[1][key], key
    assert ours.files == theirs.files
    assert {"requirements.txt", "wandb-metadata.json", "wandb-summary.json"} <= ours.files


def test_needs_wandb_only_for_media_and_artifacts(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    plain = nbops.init(name="plain", wandb="disabled", capture=False)
    plain.log({"loss": 0.5})
    plain.finish()
    media = nbops.init(name="media", wandb="disabled", capture=False)
    media.log({"sample": nbops.Image(np.zeros((4, 5, 3), np.uint8))})
    media.finish()
    artifact = nbops.init(name="artifact", wandb="disabled", capture=False)
    (isolated_env / "model.bin").write_bytes(b"weights")
    artifact.log_artifact(isolated_env / "model.bin", name="model", type="model")
    artifact.finish()
    store = open_store()
    assert not needs_wandb(store, plain.id)
    assert needs_wandb(store, media.id)
    assert needs_wandb(store, artifact.id)

    folders = {}
    for run in (plain, media, artifact):
        folders[run.name] = Path(rebuild_offline_copy(store, run.id, isolated_env).detail)
        assert store.get_metadata(run.id)[METADATA_KEY]["copy"] == COMPLETE
    for run in (plain, artifact):  # the media run's image is a history value the store keeps aside
        assert_copy_equals_store(store, run.id, folders[run.name])
    assert not (folders["plain"] / "logs").exists()  # written directly
    assert (folders["media"] / "logs").is_dir() and list(folders["media"].rglob("*.png"))
    assert [a.name for a in read_offline_run(folders["artifact"]).artifacts] == ["model"]


def test_writing_again_replaces_the_copy(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _stored_run(monkeypatch)
    store = open_store()
    first = rebuild_offline_copy(store, run_id, isolated_env)
    again = rebuild_offline_copy(store, run_id, isolated_env)
    assert first.detail == again.detail and again.rows == first.rows == 5
    (run_dir,) = find_offline_runs(isolated_env)
    assert str(run_dir) == again.detail
    assert run_dir.name.endswith(f"-{run_id}") and run_dir.name.startswith("offline-run-")
    assert [p.name for p in run_dir.parent.iterdir()] == [run_dir.name]  # no latest-run link
    state = store.get_metadata(run_id)[METADATA_KEY]
    assert (state["copy"], state["rows"], state["wandb_id"]) == (COMPLETE, 5, run_id)
    assert _same(read_offline_run(run_dir).history, store_rows(store, run_id))  # NaN included


KILLED_WRITER = """
import os, signal, sys
from nbops.mirror import rebuild_offline_copy
from nbops.store import open_store

real_replace = os.replace

def replace(source, target):  # the folder is filled, not yet renamed into place
    if os.path.basename(str(source)).startswith(".offline-run-"):
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(source, target)

os.replace = replace
rebuild_offline_copy(open_store(), sys.argv[1], sys.argv[2])
"""


def test_a_writer_killed_halfway_leaves_no_visible_folder(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _stored_run(monkeypatch)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, run_id, str(isolated_env)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr
    wandb_dir = isolated_env / "wandb"
    left = list(wandb_dir.iterdir())
    assert len(left) == 1 and left[0].name.startswith(".offline-run-"), left  # hidden, half
    assert list(left[0].glob("run-*.wandb"))
    assert find_offline_runs(isolated_env) == []
    store = open_store()
    assert store.get_metadata(run_id)[METADATA_KEY]["copy"] != COMPLETE  # sync will write it
    complete_offline_copies(store, isolated_env)  # what `nbops sync --offline` does
    (run_dir,) = find_offline_runs(isolated_env)
    assert store.get_metadata(run_id)[METADATA_KEY]["copy"] == COMPLETE
    assert left[0].exists()  # a writer's staging folder may still be in use: kept for an hour
    os.utime(left[0], (0, 0))
    complete_offline_copies(store, isolated_env)
    assert [p.name for p in wandb_dir.iterdir()] == [run_dir.name]


@pytest.mark.parametrize("seed", range(3))
def test_framing_splits_records_across_blocks_as_leveldb_does(tmp_path: Path, seed: int) -> None:
    """Payloads of every size around the 32 KiB block edges read back whole, by nbops and by
    wandb's own reader."""
    from wandb.proto import wandb_internal_pb2 as pb

    rng = random.Random(seed)
    block = 32 * 1024
    payloads = []
    for size in (1, block - 7 - 7 - 20, block * 3 + 5, 7, 0, rng.randrange(1, 3 * block)):
        record = pb.Record(num=len(payloads) + 1)
        record.history.item.add(key="blob", value_json=json.dumps("x" * size))
        payloads.append(record.SerializeToString())
    for pad in range(0, 16):  # land the next chunk header 0..15 bytes before a block's end
        record = pb.Record(num=len(payloads) + 1)
        used = len(frame_records(payloads))
        room = block - used % block - 7 - pad
        record.history.item.add(key="k", value_json=json.dumps("y" * max(room - 20, 0)))
        payloads.append(record.SerializeToString())
    path = tmp_path / "run-x.wandb"
    path.write_bytes(frame_records(payloads))
    assert list(iter_records(path)) == payloads
    done = subprocess.run(
        [WANDB, "leet", "inspect", "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["num"] for line in done.stdout.splitlines()] == [
        int(pb.Record.FromString(p).num) for p in payloads
    ]


def test_the_writer_does_not_import_wandb(isolated_env: Path) -> None:
    code = (
        "import sys\n"
        "from nbops.mirror._offline_writer import RunCopy, write_offline_run\n"
        "write_offline_run(RunCopy('r1', 'p', 'n', 1.0e9, rows=[(0, 1.0e9, {'x': 1.0})]), 'w')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('wandb', 'google')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=isolated_env,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert read_offline_run(next((isolated_env / "w").iterdir())).history[0]["x"] == 1.0
