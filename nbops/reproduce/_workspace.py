"""The scratch copy a reproduction runs in, and the checks made before building it."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError
from nbops.reproduce._recipe import Recipe, ReproduceError
from nbops.snapshot import SKIPPED, copy_tree, export_commit

_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}


@dataclass(frozen=True)
class Check:
    """One pre-flight check: what was checked, whether it holds, and what it found."""

    name: str
    ok: bool
    detail: str
    blocking: bool = False


@dataclass(frozen=True)
class PackageChange:
    """A distribution whose installed version differs from the recorded one."""

    name: str
    recorded: str | None
    installed: str | None


def _git(
    args: list[str], cwd: str, *, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        env={**os.environ, **_GIT_ENV},
        timeout=120,
        check=False,
    )


def package_changes(recorded: dict[str, str] | Any) -> list[PackageChange]:
    """Distributions added, removed or at another version now than when the run started."""
    from nbops.capture import installed_packages

    now = installed_packages()
    names = sorted(set(recorded) | set(now))
    return [
        PackageChange(n, recorded.get(n), now.get(n))
        for n in names
        if recorded.get(n) != now.get(n) and recorded.get(n) != "[redacted]"
    ]


def preflight(recipe: Recipe, *, kernel: str, store: Any) -> list[Check]:
    """Check every piece the reproduction needs; blocking checks that fail stop it."""
    checks: list[Check] = []
    if recipe.source is not None:
        checks.append(
            Check(
                "source",
                True,
                f"the bundle's files of commit {(recipe.commit or '-')[:12]} with the recorded "
                "diff applied",
            )
        )
    elif recipe.commit:
        if not shutil.which("git"):
            checks.append(Check("git", False, "git is not installed", blocking=True))
        elif not os.path.isdir(recipe.root):
            checks.append(
                Check(
                    "git commit",
                    False,
                    f"the project {recipe.root} is gone; run from a checkout of it",
                    blocking=True,
                )
            )
        else:
            found = _git(["cat-file", "-e", f"{recipe.commit}^{{commit}}"], recipe.root)
            checks.append(
                Check(
                    "git commit",
                    found.returncode == 0,
                    f"{recipe.commit[:12]} present"
                    if found.returncode == 0
                    else f"commit {recipe.commit[:12]} is not in {recipe.root}; "
                    "`git fetch` the branch that has it",
                    blocking=found.returncode != 0,
                )
            )
        if recipe.diff_truncated:
            checks.append(
                Check(
                    "git diff",
                    False,
                    "the recorded diff was cut at its size limit and cannot be applied; commit "
                    "the work before tracking runs you want to reproduce",
                    blocking=True,
                )
            )
        elif recipe.diff:
            checks.append(Check("git diff", True, f"{recipe.diff.count(chr(10))} lines to apply"))
        if recipe.untracked:
            checks.append(
                Check(
                    "untracked files",
                    False,
                    f"{len(recipe.untracked)} file(s) were not committed when the run started; "
                    "they are copied from the working tree as they are now",
                )
            )
    else:
        checks.append(
            Check(
                "git commit",
                False,
                "the run was not in a git repository; its folder is copied as it is now",
            )
        )
    checks.extend(_dataset_checks(recipe, store))
    checks.extend(_input_checks(recipe, store))
    if recipe.secret_parameters:
        checks.append(
            Check(
                "parameters",
                False,
                "recorded only as redacted, so the notebook's defaults run: "
                + ", ".join(recipe.secret_parameters),
            )
        )
    changes = package_changes(dict(recipe.packages)) if recipe.packages else []
    checks.append(
        Check(
            "packages",
            not changes,
            "same versions as recorded"
            if not changes
            else f"{len(changes)} differ: "
            + ", ".join(
                f"{c.name} {c.recorded or '-'} -> {c.installed or '-'}" for c in changes[:8]
            )
            + (" ..." if len(changes) > 8 else ""),
        )
    )
    now = platform.python_version()
    checks.append(
        Check(
            "python",
            recipe.python in (None, now),
            f"Python {now}"
            if recipe.python in (None, now)
            else f"recorded {recipe.python}, now {now}",
        )
    )
    checks.append(_kernel_check(kernel))
    return checks


def _dataset_checks(recipe: Recipe, store: Any) -> list[Check]:
    from nbops.data import get_dataset

    checks = []
    for pin in recipe.datasets:
        try:
            get_dataset(f"{pin.name}@{pin.hash}", store=store)
        except NbopsError as exc:  # not in this store, or its hash does not match
            checks.append(
                Check(
                    f"dataset {pin.name}",
                    False,
                    f"version {pin.hash[:12]} is not in this store ({exc}); import the run's "
                    "bundle or point NBOPS_HOME at the store that has it",
                    blocking=True,
                )
            )
            continue
        checks.append(Check(f"dataset {pin.name}", True, f"version {pin.hash[:12]} available"))
    return checks


def _input_checks(recipe: Recipe, store: Any) -> list[Check]:
    from nbops.pipeline import missing_blobs

    checks = []
    for rel, digest in sorted(recipe.inputs.items()):
        if missing_blobs({rel: digest}, store.blobs):
            checks.append(
                Check(
                    f"input {rel}",
                    False,
                    f"version {digest.removeprefix('dir:')[:12]} is not in the store; the "
                    "committed file is used (`nbops pull` fetches a stage's outs from a remote)",
                )
            )
        else:
            checks.append(Check(f"input {rel}", True, f"version {digest[:16]} restored by hash"))
    return checks


def _kernel_check(kernel: str) -> Check:
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    if kernel in specs:
        return Check("kernel", True, f"{kernel} installed")
    return Check(
        "kernel",
        False,
        f"no Jupyter kernel named {kernel!r} (installed: {', '.join(sorted(specs)) or 'none'}); "
        f"`python -m ipykernel install --user --name {kernel}`",
        blocking=True,
    )


def build_workspace(recipe: Recipe, *, keep: bool, store: Any) -> Path:
    """Make the scratch project: the recorded commit with its diff, or a copy of the folder.

    Returns the scratch project root. The user's checkout is only read.
    """
    scratch = Path(tempfile.mkdtemp(prefix="nbops-reproduce-"))
    root = scratch / "project"
    root.mkdir()
    try:
        if recipe.source is not None:
            copy_tree(recipe.source, root)
        elif recipe.commit:
            export_source(recipe, root)
        else:
            _copy_folder(Path(recipe.root), root)
        _restore_datasets(recipe, root, store)
        _restore_inputs(recipe, root, store)
    except BaseException:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    return root


def export_source(recipe: Recipe, root: Path) -> None:
    """Write the project's files at the recorded commit, with the recorded diff applied and the
    files untracked at the time copied from the working tree, into ``root``."""
    assert recipe.commit is not None
    if not export_commit(recipe.root, recipe.commit, root):
        raise ReproduceError(
            f"cannot export commit {recipe.commit[:12]} from {recipe.root} (git archive failed)"
        )
    if recipe.diff:
        _git(["init", "-q"], str(root))
        applied = _git(["apply", "--whitespace=nowarn", "-"], str(root), stdin=recipe.diff.encode())
        shutil.rmtree(root / ".git", ignore_errors=True)
        if applied.returncode != 0:
            raise ReproduceError(
                f"the recorded diff does not apply to commit {recipe.commit[:12]}: "
                f"{applied.stderr.decode(errors='replace').strip()}"
            )
    for rel in recipe.untracked:
        if rel.strip("/").split("/")[0] in SKIPPED:
            continue
        source = Path(recipe.root) / rel
        target = root / rel
        if source.is_dir():
            copy_tree(source, target)
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _copy_folder(source: Path, root: Path) -> None:
    if not source.is_dir():
        raise ReproduceError(
            f"the run's folder {source} is gone and the run recorded no git commit; "
            "reproduce it from an exported bundle"
        )
    copy_tree(source, root)


def _restore_datasets(recipe: Recipe, root: Path, store: Any) -> None:
    from nbops.data import restore_dataset

    for pin in recipe.datasets:
        if pin.relpath is None:
            continue
        target = root / pin.relpath
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        restore_dataset(f"{pin.name}@{pin.hash}", target, store=store)


def _restore_inputs(recipe: Recipe, root: Path, store: Any) -> None:
    from nbops.pipeline import missing_blobs, restore_outs

    for rel, digest in recipe.inputs.items():
        if not missing_blobs({rel: digest}, store.blobs):
            restore_outs(root, {rel: digest}, store.blobs)


def datasets_changed_on_disk(recipe: Recipe) -> list[str]:
    """Names of datasets whose file in the user's project no longer has the recorded hash."""
    from nbops.hashing import hash_file

    changed = []
    for pin in recipe.datasets:
        path = Path(recipe.root) / pin.relpath if pin.relpath else None
        if pin.kind != "file" or path is None or not path.is_file():
            continue
        if hash_file(path)[0] != pin.hash:
            changed.append(pin.name)
    return changed
