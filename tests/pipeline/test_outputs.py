"""Outs are never stale: cleared before a stage runs, stored after, restored exactly; the lock
only changes when results do."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

import nbops
from nbops.pipeline import PipelineFailed, read_lock, run_pipeline
from nbops.pipeline._hashing import HashCache, path_hash
from tests.pipeline.conftest import STAMP, executions, write_notebook, write_spec

pytestmark = pytest.mark.kernel


def quiet(lines: list[str] | None = None) -> Callable[[str], None]:
    return (lines if lines is not None else []).append


def _folder_stage(root: Path) -> None:
    """``emit`` writes ``parts/<tag>.txt`` for its ``tag`` parameter (a folder out)."""
    write_notebook(
        root / "emit.ipynb",
        "tag = 'a'\napi_key = ''",
        STAMP.format(name="emit"),
        "Path('parts').mkdir(exist_ok=True)\nPath('parts', tag + '.txt').write_text(tag)",
    )
    write_spec(
        root,
        {"stages": {"emit": {"notebook": "emit.ipynb", "params": {"tag": "a"}, "outs": ["parts"]}}},
    )


def test_a_stage_that_stops_writing_its_out_fails(isolated_env: Path) -> None:
    root = isolated_env
    write_notebook(root / "w.ipynb", "", "open('result.txt', 'w').write('v1')")
    write_spec(root, {"stages": {"write": {"notebook": "w.ipynb", "outs": ["result.txt"]}}})
    run_pipeline(root, report=quiet())
    good = read_lock(root)["write"]
    write_notebook(root / "w.ipynb", "", "print('forgot to write the result')")
    with pytest.raises(PipelineFailed) as caught:
        run_pipeline(root, report=quiet())
    assert "stage write did not write out result.txt" in str(caught.value)
    assert not (root / "result.txt").exists()  # the old file is not passed off as fresh
    assert read_lock(root)["write"] == good


def test_folder_outs_hold_only_what_the_last_run_wrote(isolated_env: Path) -> None:
    root = isolated_env
    _folder_stage(root)
    run_pipeline(root, report=quiet())
    (root / "parts" / "stray.txt").write_text("dropped here by hand")
    run_pipeline(root, overrides={"emit": {"tag": "b"}}, report=quiet())
    assert sorted(p.name for p in (root / "parts").iterdir()) == ["b.txt"]
    files = {"b.txt": hashlib.sha256(b"b").hexdigest()}
    manifest = json.dumps({"files": files}, sort_keys=True).encode()
    assert read_lock(root)["emit"].outs["parts"] == "dir:" + hashlib.sha256(manifest).hexdigest()


def test_checkpoints_and_nbopsignore_are_not_hashed(isolated_env: Path) -> None:
    root = isolated_env
    data = root / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "x.csv").write_text("1")
    cache = HashCache(root / "hc.json")
    before = path_hash(data, cache)
    (data / ".ipynb_checkpoints").mkdir()
    (data / ".ipynb_checkpoints" / "x-checkpoint.csv").write_text("2")
    (data / "sub" / "__pycache__").mkdir()
    (data / "sub" / "__pycache__" / "m.pyc").write_bytes(b"\0")
    assert path_hash(data, cache) == before
    from nbops.pipeline._ignore import IgnoreRules

    (root / ".nbopsignore").write_text("# scratch files\n*.tmp\n/data/sub/keep/\n!important.tmp\n")
    rules = IgnoreRules.load(root)
    (data / "a.tmp").write_text("t")
    (data / "important.tmp").write_text("i")
    (data / "sub" / "keep").mkdir()
    (data / "sub" / "keep" / "y").write_text("y")
    ignoring = HashCache(root / "hc.json", rules)
    with_important = path_hash(data, ignoring)
    (data / "important.tmp").unlink()
    assert path_hash(data, ignoring) == before != with_important


def test_restoring_a_cached_stage_restores_its_outs_exactly(isolated_env: Path) -> None:
    root = isolated_env
    _folder_stage(root)
    run_pipeline(root, report=quiet())
    (root / "parts" / "a.txt").write_text("edited by hand")
    (root / "parts" / "extra.txt").write_text("not the stage's")
    lines: list[str] = []
    result = run_pipeline(root, report=quiet(lines))
    assert result["emit"].outcome == "cached" and "restored" in (result["emit"].message or "")
    assert {p.name: p.read_text() for p in (root / "parts").iterdir()} == {"a.txt": "a"}
    assert executions(root) == {"emit": 1}
    assert any("restored" in line for line in lines)


def test_run_cache_skips_inputs_seen_before(isolated_env: Path) -> None:
    root = isolated_env
    _folder_stage(root)
    first = run_pipeline(root, report=quiet())
    run_pipeline(root, overrides={"emit": {"tag": "b"}}, report=quiet())
    back = run_pipeline(root, report=quiet())  # tag a again: seen before
    assert back["emit"].outcome == "cached"
    assert back["emit"].run_id == first["emit"].run_id
    assert "run cache" in (back["emit"].message or "")
    assert executions(root) == {"emit": 2}
    assert sorted(p.name for p in (root / "parts").iterdir()) == ["a.txt"]
    assert read_lock(root)["emit"].params == {"tag": "a"}


def test_a_deterministic_rerun_leaves_the_lock_unchanged(isolated_env: Path) -> None:
    root = isolated_env
    _folder_stage(root)
    run_pipeline(root, overrides={"emit": {"tag": "a", "api_key": "k-123456"}}, report=quiet())
    before = (root / "nbops.lock").read_bytes()
    again = run_pipeline(
        root, force=True, overrides={"emit": {"tag": "a", "api_key": "k-123456"}}, report=quiet()
    )
    assert again["emit"].outcome == "ran" and executions(root) == {"emit": 2}
    assert (root / "nbops.lock").read_bytes() == before
    text = before.decode()
    assert "run:" not in text and "executed:" not in text and ".nbops" not in text
    record = nbops.get_run(again["emit"].run_id or "").metadata["pipeline"]
    assert record["executed"].startswith(".nbops")


def test_secret_params_are_sealed_with_a_key(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbops.pipeline._secrets import Sealer

    here = Sealer(b"k" * 32)
    sealed = here.seal("abc1")
    assert sealed.startswith("hmac-sha256:")
    assert hashlib.sha256(b'"abc1"').hexdigest() not in sealed  # not a bare, brute-forceable hash
    assert here.seal("abc1") != sealed  # salted
    assert here.check(sealed, "abc1") is True and here.check(sealed, "abc2") is False
    assert Sealer(b"other" * 8).check(sealed, "abc1") is None  # another machine's key
    assert here.lockable({"api_key": "abc1", "n": 1}, {"api_key": sealed}) == {
        "api_key": sealed,
        "n": 1,
    }
    # the key comes from NBOPS_LOCK_KEY, or a private key file in the store
    monkeypatch.delenv("NBOPS_LOCK_KEY", raising=False)
    store = isolated_env / ".nbops"
    Sealer.for_store(store)
    assert (store / "lock.key").stat().st_mode & 0o077 == 0
    assert Sealer.for_store(store).key_id == Sealer.for_store(store).key_id
    monkeypatch.setenv("NBOPS_LOCK_KEY", "shared-in-ci")
    assert Sealer.for_store(store).key_id == Sealer(b"shared-in-ci").key_id


def test_the_hash_cache_rereads_and_rewrites_only_what_changed(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    import nbops.pipeline._hashing as hashing

    data = isolated_env / "data"
    data.mkdir()
    for i in range(300):
        (data / f"{i}.txt").write_text(str(i))
    cache = HashCache(isolated_env / "hc.sqlite")
    before = path_hash(data, cache)
    cache.save()
    reads: list[object] = []
    real = hashing.hash_file
    monkeypatch.setattr(hashing, "hash_file", lambda p: reads.append(p) or real(p))
    (data / "7.txt").write_text("seven")
    fresh = HashCache(isolated_env / "hc.sqlite")
    after = path_hash(data, fresh)
    assert after != before and reads == [data / "7.txt"]
    assert list(fresh._dirty) == [str(data / "7.txt")]  # one row to write, not 300
    fresh.save()
    db = sqlite3.connect(isolated_env / "hc.sqlite")
    rows = db.execute("SELECT digest FROM hashes WHERE path = ?", (str(data / "7.txt"),))
    assert rows.fetchone()[0] == hashlib.sha256(b"seven").hexdigest()
    assert db.execute("SELECT count(*) FROM hashes").fetchone()[0] == 300


def test_symlinked_folders_in_deps_are_followed_and_loops_refused(isolated_env: Path) -> None:
    from nbops.pipeline._hashing import SymlinkLoopError

    real = isolated_env / "real"
    real.mkdir()
    (real / "x.csv").write_text("1")
    data = isolated_env / "data"
    data.mkdir()
    (data / "linked").symlink_to(real, target_is_directory=True)
    cache = HashCache(isolated_env / "hc.sqlite")
    before = path_hash(data, cache)
    (real / "x.csv").write_text("2")  # a change behind the link changes the dep
    assert path_hash(data, cache) != before
    (real / "loop").symlink_to(data, target_is_directory=True)
    with pytest.raises(SymlinkLoopError, match="symlink back"):
        path_hash(data, cache)


def test_two_links_to_one_folder_are_not_a_loop(isolated_env: Path) -> None:
    real = isolated_env / "real"
    real.mkdir()
    (real / "x.csv").write_text("1")
    data = isolated_env / "data"
    data.mkdir()
    (data / "a").symlink_to(real, target_is_directory=True)
    (data / "b").symlink_to(real, target_is_directory=True)
    from nbops.pipeline._hashing import tree_files

    assert [rel for rel, _ in tree_files(data, HashCache(isolated_env / "h").ignore)] == [
        "a/x.csv",
        "b/x.csv",
    ]
