from __future__ import annotations

from pathlib import Path

import pytest

from nbops.config import default_project, find_project_root, store_path


@pytest.mark.parametrize("marker", [".git", "pyproject.toml", "nbops.yaml"])
def test_root_is_the_nearest_marked_ancestor(tmp_path: Path, marker: str) -> None:
    root = tmp_path / "repo"
    deep = root / "a" / "b"
    deep.mkdir(parents=True)
    (root / marker).mkdir() if marker == ".git" else (root / marker).write_text("")
    assert find_project_root(deep) == root.resolve()


def test_store_defaults_to_root_and_nbops_home_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "repo"
    (root / "nb").mkdir(parents=True)
    (root / "nbops.yaml").write_text("")
    monkeypatch.delenv("NBOPS_HOME")
    assert store_path(root / "nb") == root.resolve() / ".nbops"
    monkeypatch.setenv("NBOPS_HOME", str(tmp_path / "elsewhere"))
    assert store_path(root / "nb") == (tmp_path / "elsewhere").resolve()


def test_default_project_is_the_root_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "my-project"
    root.mkdir()
    (root / "pyproject.toml").write_text("")
    assert default_project(root) == "my-project"
    monkeypatch.setenv("NBOPS_PROJECT", "override")
    assert default_project(root) == "override"


def test_root_is_cached_until_a_searched_folder_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outer = tmp_path / "outer"
    deep = outer / "inner" / "deep"
    deep.mkdir(parents=True)
    (outer / "pyproject.toml").write_text("")
    assert find_project_root(deep) == outer.resolve()
    looked: list[Path] = []
    real_exists = Path.exists

    def counting_exists(self: Path, *args: object, **kwargs: object) -> bool:
        looked.append(self)
        return real_exists(self)

    monkeypatch.setattr(Path, "exists", counting_exists)
    assert find_project_root(deep) == outer.resolve()
    assert looked == []  # answered from the cache: no marker looked up again
    (outer / "inner" / "nbops.yaml").write_text("")  # a nearer root appears
    assert find_project_root(deep) == (outer / "inner").resolve()
    (outer / "inner" / "nbops.yaml").unlink()  # and goes away
    assert find_project_root(deep) == outer.resolve()
    (deep / ".git").mkdir()  # a marker in the start folder itself
    assert find_project_root(deep) == deep.resolve()
