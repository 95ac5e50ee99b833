"""Conformance tests of a store's other parts: blobs, models, datasets and the run cache.

Each class needs ``make_store(path) -> RunStore``, as :class:`StoreConformance` does.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from nbops.errors import ArtifactError, InvalidValueError, NotFoundError, StoreError
from nbops.store import RunStore


class _Parts:
    def make_store(self, path: Path) -> RunStore:
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path: Path) -> RunStore:
        return self.make_store(tmp_path / "store")


class BlobConformance(_Parts):
    """:class:`~nbops.store.BlobStore`: content addressing, atomic landing, folders."""

    def test_bytes_and_files_are_named_by_their_sha256(
        self, store: RunStore, tmp_path: Path
    ) -> None:
        data = b"some model bytes"
        digest = store.blobs.put_bytes(data)
        assert digest == hashlib.sha256(data).hexdigest()
        source = tmp_path / "f.bin"
        source.write_bytes(data)
        assert store.blobs.put_file(source) == (digest, len(data))
        assert store.blobs.exists(digest)
        assert store.blobs.remove(digest) == len(data)
        assert not store.blobs.exists(digest)
        assert store.blobs.remove(digest) == 0
        assert store.blobs.put_bytes(data) == digest
        assert store.blobs.read_bytes(digest) == data
        assert store.blobs.path_of(digest).read_bytes() == data
        assert list(store.blobs.digests()).count(digest) == 1

    def test_unknown_and_malformed_digests(self, store: RunStore) -> None:
        missing = "0" * 64
        assert not store.blobs.exists(missing)
        with pytest.raises(ArtifactError):
            store.blobs.read_bytes(missing)
        for bad in ("abc", "../" + "0" * 61, "G" * 64):
            with pytest.raises(ArtifactError):
                store.blobs.path_of(bad)

    def test_folder_round_trip(self, store: RunStore, tmp_path: Path) -> None:
        src = tmp_path / "src"
        (src / "sub").mkdir(parents=True)
        (src / "a.txt").write_text("a")
        (src / "sub" / "b.txt").write_text("bb")
        digest, size = store.blobs.put_tree(src)
        assert size == 3
        assert sorted(store.blobs.read_manifest(digest)) == ["a.txt", "sub/b.txt"]
        out = store.blobs.restore(digest, "dir", tmp_path / "out")
        assert (out / "sub" / "b.txt").read_text() == "bb"

    def test_a_checked_download_is_adopted(self, store: RunStore, tmp_path: Path) -> None:
        data = b"bytes fetched from a remote"
        digest = hashlib.sha256(data).hexdigest()
        staged = store.blobs.staging_dir() / "download.part"
        with open(staged, "wb") as fh:
            fh.write(data)
            os.fsync(fh.fileno())
        store.blobs.adopt(staged, digest)
        assert store.blobs.read_bytes(digest) == data and not staged.exists()
        assert digest in set(store.blobs.digests())
        again = store.blobs.staging_dir() / "again.part"
        again.write_bytes(data)
        store.blobs.adopt(again, digest)  # already stored: the copy just goes
        assert not again.exists() and store.blobs.read_bytes(digest) == data
        elsewhere = tmp_path / "changed.bin"
        elsewhere.write_bytes(b"not those bytes")
        with pytest.raises(ArtifactError):
            store.blobs.adopt(elsewhere, "0" * 64)

    def test_manifest_cannot_escape(self, store: RunStore) -> None:
        evil = store.blobs.put_bytes(b'{"files": {"../../x": "' + b"0" * 64 + b'"}}')
        with pytest.raises(ArtifactError, match="escape"):
            store.blobs.read_manifest(evil)

    def test_threads_put_the_same_blob(self, store: RunStore) -> None:
        results: list[str] = []
        threads = [
            threading.Thread(target=lambda: results.append(store.blobs.put_bytes(b"x" * 10000)))
            for _ in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(results)) == 1
        assert store.blobs.read_bytes(results[0]) == b"x" * 10000


def model_fields(name: str = "m", **extra: Any) -> dict[str, Any]:
    """The fields of a model version to register, for tests."""
    return {
        "name": name,
        "digest": "a" * 64,
        "size": 3,
        "format": "skops",
        "trusted_types": ["sklearn.linear_model.LogisticRegression"],
        "model_class": "sklearn.linear_model.LogisticRegression",
        "task": "classification",
        "run_id": "r1",
        "created_at": 100.0,
        "created_by": "me",
        "lineage": {"params": {"C": 1.0}, "datasets": [{"name": "d"}]},
        **extra,
    }


class ModelConformance(_Parts):
    """:class:`~nbops.store.ModelStore`: versions, extension fields, aliases and their moves."""

    def test_versions_are_numbered_per_name(self, store: RunStore) -> None:
        models = store.models
        assert models.add_version(model_fields()) == 1
        assert models.add_version(model_fields(created_at=101.0)) == 2
        assert models.add_version(model_fields("other")) == 1
        got = models.get_version("m")
        assert got is not None
        assert got["version"] == 2
        assert got["lineage"] == {"params": {"C": 1.0}, "datasets": [{"name": "d"}]}
        assert got["trusted_types"] == ["sklearn.linear_model.LogisticRegression"]
        assert [v["version"] for v in models.versions("m")] == [1, 2]
        assert [(d["name"], d["version"], n) for d, n in models.names()] == [
            ("m", 2, 2),
            ("other", 1, 1),
        ]

    def test_unknown_names_and_versions(self, store: RunStore) -> None:
        assert store.models.get_version("nope") is None
        assert store.models.versions("nope") == []
        assert store.models.aliases("nope") == {}
        store.models.add_version(model_fields())
        assert store.models.get_version("m", 7) is None
        with pytest.raises(NotFoundError):
            store.models.move_alias("m", "prod", 7, "me", None)
        with pytest.raises(NotFoundError):
            store.models.update_version("m", 7, {"status": "x"})

    def test_explicit_version_is_kept_and_not_duplicated(self, store: RunStore) -> None:
        assert store.models.add_version(model_fields(), version=5) == 5
        with pytest.raises(StoreError):
            store.models.add_version(model_fields(), version=5)
        assert store.models.add_version(model_fields()) == 6

    def test_extension_fields_round_trip_and_merge(self, store: RunStore) -> None:
        store.models.add_version(model_fields(status="staging", tags=["a"]))
        store.models.update_version("m", 1, {"status": "production", "signature": {"x": "f8"}})
        got = store.models.get_version("m", 1)
        assert got is not None
        assert (got["status"], got["tags"], got["signature"]) == (
            "production",
            ["a"],
            {"x": "f8"},
        )
        with pytest.raises(InvalidValueError):
            store.models.update_version("m", 1, {"digest": "b" * 64})

    def test_alias_moves_keep_history(self, store: RunStore) -> None:
        models = store.models
        models.add_version(model_fields())
        models.add_version(model_fields())
        first = models.move_alias("m", "prod", 1, "ann", "first", moved_at=10.0)
        assert first["previous"] is None
        second = models.move_alias("m", "prod", 2, "bob", None, moved_at=20.0)
        assert second["previous"] == 1
        models.move_alias("m", "dev", 2, "ann", None, moved_at=30.0)
        assert models.aliases("m") == {"dev": 2, "prod": 2}
        assert [(m["alias"], m["version"], m["moved_by"]) for m in models.alias_moves("m")] == [
            ("prod", 1, "ann"),
            ("prod", 2, "bob"),
            ("dev", 2, "ann"),
        ]
        assert [m["reason"] for m in models.alias_moves("m", "prod")] == ["first", None]

    def test_removing_an_alias_is_a_recorded_move(self, store: RunStore) -> None:
        models = store.models
        models.add_version(model_fields())
        models.move_alias("m", "prod", 1, "ann", "first", moved_at=10.0)
        removed = models.remove_alias("m", "prod", "bob", "retired", moved_at=20.0)
        assert (removed["version"], removed["previous"], removed["reason"]) == (0, 1, "retired")
        assert models.aliases("m") == {}
        assert [(m["version"], m["moved_by"]) for m in models.alias_moves("m", "prod")] == [
            (1, "ann"),
            (0, "bob"),
        ]
        with pytest.raises(NotFoundError):
            models.remove_alias("m", "prod", "bob", None)

    def test_update_appends_events_in_its_transaction(self, store: RunStore) -> None:
        models = store.models
        models.add_version(model_fields(events=[{"action": "registered"}]))
        models.update_version("m", 1, {"status": "validated"}, event={"action": "validated"})
        models.update_version("m", 1, {"tags": {"k": "v"}})  # no event: the history is kept
        got = models.get_version("m", 1)
        assert got is not None
        assert got["status"] == "validated" and got["tags"] == {"k": "v"}
        assert [e["action"] for e in got["events"]] == ["registered", "validated"]
        models.update_version("m", 1, {}, merge={"tags": {"a": "1", "k": None}})
        got = models.get_version("m", 1)
        assert got is not None and got["tags"] == {"a": "1"}  # merged; None removed "k"
        with pytest.raises(InvalidValueError, match="events"):
            models.update_version("m", 1, {"events": []})  # the history only grows
        with pytest.raises(InvalidValueError, match="digest"):
            models.update_version("m", 1, {}, merge={"digest": {}})
        with pytest.raises(NotFoundError):
            models.update_version("m", 7, {}, event={"action": "x"})

    def test_threads_appending_events_and_tags_lose_none(self, store: RunStore) -> None:
        store.models.add_version(model_fields())

        def change(worker: int) -> None:
            for i in range(10):
                store.models.update_version(
                    "m",
                    1,
                    {"status": f"s{worker}"},
                    event={"action": f"{worker}-{i}"},
                    merge={"tags": {f"{worker}-{i}": "x"}},
                )

        threads = [threading.Thread(target=change, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = store.models.get_version("m", 1)
        assert got is not None
        expected = sorted(f"{w}-{i}" for w in range(4) for i in range(10))
        assert sorted(e["action"] for e in got["events"]) == expected
        assert sorted(got["tags"]) == expected

    def test_concurrent_registrations_get_distinct_numbers(self, store: RunStore) -> None:
        numbers: list[int] = []
        lock = threading.Lock()

        def register() -> None:
            for _ in range(10):
                n = store.models.add_version(model_fields())
                with lock:
                    numbers.append(n)

        threads = [threading.Thread(target=register) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(numbers) == list(range(1, 41))


def dataset_fields(name: str = "d", content: str = "1" * 64, **extra: Any) -> dict[str, Any]:
    """The fields of a dataset version to record, for tests."""
    return {
        "name": name,
        "hash": content,
        "kind": "file",
        "object": content,
        "size": 10,
        "rows": 3,
        "files": None,
        "schema": {"b": "int64", "a": "float64"},
        "stats": {"b": {"min": 1}, "a": {"max": 2.5}},
        "source": "/data/d.csv",
        "created_at": 100.0,
        "run_id": None,
        **extra,
    }


class DatasetConformance(_Parts):
    """:class:`~nbops.store.DatasetStore`: versions kept as first seen, uses, lookups."""

    def test_record_keeps_the_first_and_adds_uses(self, store: RunStore) -> None:
        ds = store.datasets
        ds.record(dataset_fields(), "r1", 100.0)
        ds.record(dataset_fields(created_at=200.0, source="/elsewhere"), "r2", 200.0)
        ds.record(dataset_fields(), "r2", 300.0)  # the same use again
        (only,) = ds.versions("d")
        assert (only["created_at"], only["source"], only["run_id"]) == (100.0, "/data/d.csv", "r1")
        assert list(only["schema"]) == ["b", "a"]  # column order kept
        assert only["stats"] == {"b": {"min": 1}, "a": {"max": 2.5}}
        assert ds.uses("d", "1" * 64) == [("r1", 100.0), ("r2", 200.0)]

    def test_lookups(self, store: RunStore) -> None:
        ds = store.datasets
        ds.record(dataset_fields(), "r1", 100.0)
        ds.record(dataset_fields(content="12" + "0" * 62, created_at=150.0), "r1", 150.0)
        ds.record(dataset_fields("e", content="2" * 64), None, 120.0)
        assert [v["hash"][:2] for v in ds.find("d")] == ["12"]  # the latest
        assert [v["hash"][:2] for v in ds.find("d", "1")] == ["11", "12"]
        assert [v["hash"][:2] for v in ds.find("d", "12")] == ["12"]
        assert ds.find("d", "9") == [] and ds.find("nope") == []
        found = ds.find_hash("2" * 64)
        assert found is not None and found["name"] == "e"
        assert ds.find_hash("3" * 64) is None
        assert ds.uses("e", "2" * 64) == []
        assert [(v["name"], n) for v, n in ds.latest()] == [("d", 2), ("e", 1)]
        ds.add_use("e", "2" * 64, "r9", 130.0)
        assert ds.uses("e", "2" * 64) == [("r9", 130.0)]


class RunCacheConformance(_Parts):
    """:class:`~nbops.store.RunCache`: JSON records by stage fingerprint."""

    def test_put_get_replace_delete(self, store: RunStore) -> None:
        cache = store.run_cache
        assert cache.get("fp1") is None
        cache.put("fp1", {"run": "a", "outs": {"model.pkl": "f" * 64}})
        cache.put("fp1", {"run": "b"})
        cache.put("fp2", {"run": "c"})
        cache.put("other", {"run": "d"})
        assert cache.get("fp1") == {"run": "b"}
        assert cache.list("fp") == {"fp1": {"run": "b"}, "fp2": {"run": "c"}}
        assert len(cache.list()) == 3
        assert cache.delete("fp1") is True
        assert cache.delete("fp1") is False
        assert cache.get("fp1") is None

    def test_prefix_is_literal(self, store: RunStore) -> None:
        store.run_cache.put("a_b", {})
        store.run_cache.put("axb", {})
        store.run_cache.put("A_b", {})
        assert list(store.run_cache.list("a_")) == ["a_b"]

    def test_bad_keys_and_records(self, store: RunStore) -> None:
        with pytest.raises(InvalidValueError):
            store.run_cache.put("", {})
        with pytest.raises(ValueError, match="JSON"):
            store.run_cache.put("k", {"x": float("nan")})
        assert store.run_cache.get("k") is None
