"""One hash scheme per job: files, folders (the object store's manifests) and notebook code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nbops.execute import code_hash as notebook_code_hash
from nbops.hashing import code_hash, hash_file, manifest_bytes, tree_files, tree_hash
from nbops.pipeline._hashing import HashCache, path_hash
from nbops.store import ObjectStore


def _folder(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.csv").write_text("x\n1\n")
    (root / "sub" / "b.bin").write_bytes(b"\x00\x01")
    (root / "sub" / "c.txt").write_text("c")
    return root


def test_a_folder_has_one_hash_in_the_store_and_the_pipeline(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "data")
    digest, size = ObjectStore(tmp_path / "objects").put_tree(folder)
    assert size == 4 + 2 + 1
    assert tree_hash(folder) == digest
    cache = HashCache(tmp_path / "hashcache.json")
    assert path_hash(folder, cache) == f"dir:{digest}"


def test_the_folder_hash_is_its_manifest_and_sees_names_and_contents(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "data")
    files = {
        "a.csv": hash_file(folder / "a.csv")[0],
        "sub/b.bin": hash_file(folder / "sub" / "b.bin")[0],
        "sub/c.txt": hash_file(folder / "sub" / "c.txt")[0],
    }
    import hashlib

    assert tree_hash(folder) == hashlib.sha256(manifest_bytes(files)).hexdigest()
    before = tree_hash(folder)
    (folder / "sub" / "c.txt").rename(folder / "sub" / "d.txt")
    assert tree_hash(folder) != before


def test_links_are_followed_only_when_asked(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "data")
    outside = tmp_path / "secret.txt"
    outside.write_text("outside the folder")
    os.symlink(outside, folder / "link.txt")
    os.symlink(tmp_path / "missing", folder / "broken.txt")
    names = [p.name for p in tree_files(folder)]
    assert names == ["a.csv", "b.bin", "c.txt"]
    assert [p.name for p in tree_files(folder, follow_symlinks=True)] == [
        "a.csv",
        "link.txt",
        "b.bin",
        "c.txt",
    ]


def test_one_code_hash_for_cells_and_notebooks() -> None:
    nb = {
        "cells": [
            {"cell_type": "code", "source": ["a = 1\n", "b = 2\n"], "outputs": [1]},
            {"cell_type": "markdown", "source": "# title"},
            {"cell_type": "code", "source": "print(a)  \n\n"},
        ]
    }
    assert notebook_code_hash(nb) == code_hash(["a = 1\nb = 2", "print(a)"])
    # The pipeline's cache key of this notebook before the two code hashes became one: existing
    # pipeline.lock files stay valid.
    assert notebook_code_hash(nb) == (
        "7ccbd335230f8ca75b90174697545a5af4329895a1b7a1f78b1ef94158583837"
    )
    assert code_hash(["ab"]) != code_hash(["a", "b"])
    assert code_hash(["x = 1"]) == code_hash(["x = 1\n\n  "]) != code_hash([" x = 1"])


def test_code_hash_refuses_a_bare_string() -> None:
    with pytest.raises(TypeError, match=r"code_hash\(\[source\]\)"):
        code_hash("a = 1")  # type: ignore[arg-type]
