"""Shared cache speed: ``nbops pull`` against ``dvc pull``, and status after touching one file.

Run ``python benchmarks/pipeline_remote.py`` with an interpreter that has nbops and DVC
(``.venv-bench-pipeline``: ``pip install -e . dvc``); without DVC its rows say so. Everything
happens in temporary folders with a directory remote; nothing touches the network.

1. Pull: a stage writes ``--files`` files totalling ``--mib`` MiB into a folder out; it is pushed
   to a directory remote; a fresh clone (the committed files only, an empty store) then runs
   ``nbops pull``. For DVC the same folder is ``dvc add``-ed and ``dvc push``-ed; a fresh clone
   runs ``dvc pull``. Whole processes, wall clock.
2. Status after touching one of the files: a stage depends on the folder and ran once; one file
   is rewritten; ``nbops status`` against ``dvc status`` (a ``dvc.yaml`` stage with the same
   dep), median of ``--repeats``.

Prints a table with the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WRITER = (
    "import os\nfrom pathlib import Path\n"
    "Path('data').mkdir(exist_ok=True)\n"
    "for i in range(n_files):\n"
    "    sub = Path('data', f'{i % 100:02d}')\n"
    "    sub.mkdir(exist_ok=True)\n"
    "    (sub / f'{i}.bin').write_bytes(os.urandom(size))\n"
)


def _notebook(params: str, code: str) -> str:
    cells = [
        {
            "cell_type": "code",
            "id": "p",
            "metadata": {"tags": ["parameters"]},
            "source": params,
            "outputs": [],
            "execution_count": None,
        },
        {
            "cell_type": "code",
            "id": "c",
            "metadata": {},
            "source": code,
            "outputs": [],
            "execution_count": None,
        },
    ]
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "cells": cells, "metadata": meta})


def _env(store: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBOPS_")}
    env.update(NBOPS_HOME=str(store), NBOPS_WANDB="disabled")
    return env


def _timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, timeout=3600)
    return time.perf_counter() - started


def _has_dvc() -> bool:
    return shutil.which("dvc", path=str(Path(sys.executable).parent)) is not None


def _dvc(args: list[str], cwd: Path) -> None:
    dvc = str(Path(sys.executable).parent / "dvc")
    subprocess.run([dvc, *args], cwd=cwd, check=True, capture_output=True, timeout=3600)


def bench_pull(tmp: Path, files: int, mib: int) -> dict[str, float | str]:
    nbops = [sys.executable, "-m", "nbops"]
    size = max(1, mib * 2**20 // files)
    origin = tmp / "origin"
    origin.mkdir()
    (origin / "nb.ipynb").write_text(_notebook(f"n_files = {files}\nsize = {size}", WRITER))
    (origin / "nbops.yaml").write_text(
        "stages:\n  make:\n    notebook: nb.ipynb\n    outs: [data]\n"
    )
    env = _env(origin / ".nbops")
    subprocess.run([*nbops, "run"], cwd=origin, env=env, check=True, capture_output=True)
    subprocess.run(
        [*nbops, "remote", "add", "r", str(tmp / "remote"), "--default"],
        cwd=origin,
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run([*nbops, "push"], cwd=origin, env=env, check=True, capture_output=True)
    clone = tmp / "clone"
    clone.mkdir()
    for name in ("nbops.yaml", "nbops.lock", "nb.ipynb"):
        shutil.copy(origin / name, clone / name)
    out: dict[str, float | str] = {
        "nbops pull": _timed([*nbops, "pull"], clone, _env(clone / ".nbops"))
    }
    if not _has_dvc():
        out["dvc pull"] = "dvc not installed: skipped"
        return out
    repo = tmp / "dvc-origin"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    _dvc(["init", "-q"], repo)
    shutil.copytree(origin / "data", repo / "data")
    _dvc(["add", "-q", "data"], repo)
    _dvc(["remote", "add", "-d", "r", str(tmp / "dvc-remote")], repo)
    _dvc(["push", "-q"], repo)
    fresh = tmp / "dvc-clone"
    fresh.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=fresh, check=True)
    shutil.copytree(repo / ".dvc", fresh / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp"))
    shutil.copy(repo / "data.dvc", fresh / "data.dvc")
    out["dvc pull"] = _timed([str(Path(sys.executable).parent / "dvc"), "pull", "-q"], fresh)
    return out


def bench_status(tmp: Path, files: int, repeats: int) -> dict[str, float | str]:
    nbops = [sys.executable, "-m", "nbops"]
    root = tmp / "status"
    data = root / "data"
    for i in range(files):
        sub = data / f"{i % 100:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{i}.txt").write_text(str(i))
    (root / "nb.ipynb").write_text(_notebook("", "open('count.txt', 'w').write('1')"))
    (root / "nbops.yaml").write_text(
        "stages:\n  use:\n    notebook: nb.ipynb\n    deps: [data]\n    outs: [count.txt]\n"
    )
    env = _env(root / ".nbops")
    subprocess.run([*nbops, "run"], cwd=root, env=env, check=True, capture_output=True)
    target = data / "07" / "7.txt"
    nb_times = []
    for i in range(repeats):
        target.write_text(f"touched {i}")
        nb_times.append(_timed([*nbops, "status"], root, env))
    out: dict[str, float | str] = {"nbops status": statistics.median(nb_times)}
    if not _has_dvc():
        out["dvc status"] = "dvc not installed: skipped"
        return out
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    _dvc(["init", "-q"], root)
    (root / "dvc.yaml").write_text(
        "stages:\n  use:\n    cmd: python -c \"open('count2.txt','w').write('1')\"\n"
        "    deps: [data]\n    outs: [count2.txt]\n"
    )
    _dvc(["repro", "-q"], root)
    dvc_times = []
    for i in range(repeats):
        target.write_text(f"dvc touched {i}")
        dvc_times.append(_timed([str(Path(sys.executable).parent / "dvc"), "status"], root))
    out["dvc status"] = statistics.median(dvc_times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nbops-bench-remote-") as folder:
        tmp = Path(folder)
        rows = {
            **bench_pull(tmp, args.files, args.mib),
            **bench_status(tmp, args.files, args.repeats),
        }
    print(f"{args.files} files, {args.mib} MiB; status: median of {args.repeats}")
    for name, value in rows.items():
        print(f"  {name:<14} {value if isinstance(value, str) else f'{value:8.2f} s'}")
    for ours, theirs in (("nbops pull", "dvc pull"), ("nbops status", "dvc status")):
        a, b = rows[ours], rows[theirs]
        if isinstance(a, float) and isinstance(b, float):
            print(f"  {ours} / {theirs}: {a / b:.2f}x")


if __name__ == "__main__":
    main()
