"""git_state against real temporary repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nbops.capture import git_state, strip_credentials


@pytest.fixture
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Isolate git from the user's config."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for key, value in {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }.items():
        monkeypatch.setenv(key, value)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, git_env: None) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "train.py").write_text("lr = 0.1\n")
    git(root, "add", "train.py")
    git(root, "commit", "-q", "-m", "first")
    return root


def test_clean_repo(repo: Path) -> None:
    state = git_state(repo)
    assert state is not None
    assert state["root"] == str(repo)
    assert state["commit"] == git(repo, "rev-parse", "HEAD")
    assert state["branch"] == "main"
    assert state["dirty"] is False
    assert state["diff"] == ""
    assert state["untracked"] == []
    assert state["remote"] is None
    assert state["errors"] == []


def test_dirty_repo_with_staged_change_untracked_file_and_remote(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_API_TOKEN", "tok-1234567890")
    (repo / "train.py").write_text("lr = 0.2\ntoken = 'tok-1234567890'\n")
    (repo / "staged.py").write_text("x = 1\n")
    git(repo, "add", "staged.py")
    (repo / "notes.txt").write_text("scratch\n")
    (repo / "data").mkdir()
    (repo / "data" / "a.csv").write_text("1\n")
    git(repo, "remote", "add", "origin", "https://alice:s3cret@github.com/org/proj.git")

    state = git_state(repo / "train.py")  # a file inside the tree works too
    assert state is not None
    assert state["dirty"] is True
    assert "+lr = 0.2" in state["diff"]
    assert "+x = 1" in state["diff"]  # staged changes are part of `git diff HEAD`
    assert "tok-1234567890" not in state["diff"]
    assert "[redacted]" in state["diff"]
    assert state["diff_truncated"] is False
    assert sorted(state["untracked"]) == ["data/", "notes.txt"]
    assert state["remote"] == "https://github.com/org/proj.git"


def test_diff_is_capped(repo: Path) -> None:
    (repo / "train.py").write_text("".join(f"line {i}\n" for i in range(5000)))
    state = git_state(repo, diff_limit=1000)
    assert state is not None
    assert state["diff_truncated"] is True
    assert len(state["diff"].encode()) == 1000


def test_detached_head_has_no_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    state = git_state(repo)
    assert state is not None
    assert state["branch"] is None
    assert state["commit"] == git(repo, "rev-parse", "HEAD")


def test_repo_without_commits(tmp_path: Path, git_env: None) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    git(fresh, "init", "-q", "-b", "main")
    (fresh / "a.py").write_text("print(1)\n")
    git(fresh, "add", "a.py")
    (fresh / "b.py").write_text("print(2)\n")
    state = git_state(fresh)
    assert state is not None
    assert state["commit"] is None
    assert state["branch"] == "main"
    assert state["dirty"] is True
    assert "+print(1)" in state["diff"]
    assert state["untracked"] == ["b.py"]


def test_not_a_repo(tmp_path: Path, git_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_state(tmp_path) is None


def test_git_missing(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    assert git_state(repo) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://alice:pw@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://ghp_token@github.com/o/r.git", "https://github.com/o/r.git"),
        ("http://u:p@host:8080/r", "http://host:8080/r"),
        ("ssh://git@github.com/o/r.git", "ssh://git@github.com/o/r.git"),
        ("ssh://git:pw@github.com/o/r.git", "ssh://github.com/o/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("https://github.com/o/r.git", "https://github.com/o/r.git"),
        ("/srv/git/r.git", "/srv/git/r.git"),
    ],
)
def test_strip_credentials(url: str, expected: str) -> None:
    assert strip_credentials(url) == expected
