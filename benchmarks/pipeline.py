"""Pipeline speed: nbops' no-op re-run against DVC, and nbops' per-stage cost over papermill.

Run ``python benchmarks/pipeline.py`` with an interpreter that has nbops (and, for the peer rows,
DVC: ``.venv-bench-pipeline``). Every figure comes from temporary ``git init``-ed projects with
``NBOPS_WANDB=disabled``; nothing touches the network. Prints a table and writes
``benchmarks/pipeline-results.json``.

1. No-op: a 10-stage chain (stage i reads out i-1 and writes out i) already run once; the whole
   ``nbops run`` / ``dvc repro`` / ``nbops status`` / ``dvc status`` process, wall clock, median
   of ``--repeats`` runs, interleaved, with ``python -c pass`` as the floor.
2. Per executed stage: the same 10 tiny notebooks run by a plain ``papermill.execute_notebook``
   loop, and by ``run_pipeline(root, force=True)`` (jobs=1), each in a fresh worker process
   after one warm-up execution; rounds alternate between the two.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "pipeline-results.json"
STAGES = 10
SKIP_DVC = "dvc not installed: skipped"
HEAVY = ("pandas", "numpy", "papermill", "nbformat", "nbclient", "jupyter_client", "wandb", "dvc")
NOOP_TARGET = 0.3
OVERHEAD_TARGET = 10.0

NOTEBOOK_PARAMS = 'src = ""\ndst = "out.txt"'
NOTEBOOK_CODE = (
    "from pathlib import Path\n"
    "text = Path(src).read_text() if src else '0'\n"
    "Path(dst).write_text(str(int(text) + 1))"
)
DVC_CMD = (
    'python -c "from pathlib import Path; '
    "Path('{dst}').write_text(str(int(Path('{src}').read_text()) + 1))\""
)

Raw = dict[str, Any]


# --- projects ----------------------------------------------------------------------------------


def _names(i: int) -> tuple[str, str, str]:
    """Stage name, the file it reads and the file it writes (stage 1 reads ``input.txt``)."""
    return f"s{i:02d}", ("input.txt" if i == 1 else f"out/s{i - 1:02d}.txt"), f"out/s{i:02d}.txt"


def _cell(cell_id: str, source: str, tags: Sequence[str] = ()) -> dict[str, Any]:
    meta = {"tags": list(tags)} if tags else {}
    return {
        "cell_type": "code",
        "id": cell_id,
        "metadata": meta,
        "source": source,
        "outputs": [],
        "execution_count": None,
    }


def _notebook() -> str:
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return json.dumps(
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "cells": [_cell("params", NOTEBOOK_PARAMS, ["parameters"]), _cell("c0", NOTEBOOK_CODE)],
            "metadata": {"kernelspec": kernelspec},
        }
    )


def _git_init(root: Path, env: dict[str, str]) -> None:
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=root, env=env, check=True)
    (root / "input.txt").write_text("0\n")
    (root / "out").mkdir()


def make_nbops_project(root: Path, env: dict[str, str]) -> None:
    """10 copies of one tiny notebook, chained through ``out/sNN.txt`` (JSON is valid YAML)."""
    _git_init(root, env)
    (root / "nb").mkdir()
    stages: dict[str, Any] = {}
    for i in range(1, STAGES + 1):
        name, src, dst = _names(i)
        (root / "nb" / f"{name}.ipynb").write_text(_notebook())
        stages[name] = {
            "notebook": f"nb/{name}.ipynb",
            "params": {"src": src, "dst": dst},
            "deps": [src],
            "outs": [dst],
        }
    (root / "nbops.yaml").write_text(json.dumps({"stages": stages}, indent=2))


def make_dvc_project(root: Path, env: dict[str, str]) -> None:
    """The same chain as ``dvc.yaml`` stages whose ``cmd`` is a tiny ``python -c``."""
    _git_init(root, env)
    run([*_dvc(), "init", "-q"], root, env)
    run([*_dvc(), "config", "core.analytics", "false"], root, env)
    stages: dict[str, Any] = {}
    for i in range(1, STAGES + 1):
        name, src, dst = _names(i)
        stages[name] = {"cmd": DVC_CMD.format(src=src, dst=dst), "deps": [src], "outs": [dst]}
    (root / "dvc.yaml").write_text(json.dumps({"stages": stages}, indent=2))


# --- processes ---------------------------------------------------------------------------------


def _tool(name: str) -> list[str]:
    """The console script next to this interpreter (what a user types), else ``python -m``."""
    script = Path(sys.executable).parent / name
    return [str(script)] if script.exists() else [sys.executable, "-m", name]


def _nbops() -> list[str]:
    return _tool("nbops")


def _dvc() -> list[str]:
    return _tool("dvc")


def has_dvc() -> bool:
    return importlib.util.find_spec("dvc") is not None


def child_env(tmp: Path) -> dict[str, str]:
    """This interpreter's bin first on PATH (kernels and ``python -c`` stages use it)."""
    env = dict(os.environ)
    env.pop("NBOPS_HOME", None)  # each project keeps its store in <root>/.nbops
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        NBOPS_WANDB="disabled",
        WANDB_MODE="disabled",
        DVC_NO_ANALYTICS="1",
        DVC_SITE_CACHE_DIR=str(tmp / "dvc-site-cache"),
        IPYTHONDIR=str(tmp / "ipython"),
        GIT_CONFIG_NOSYSTEM="1",
    )
    return env


def run(cmd: Sequence[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Run ``cmd`` to completion; return wall-clock seconds and stdout (fail loudly)."""
    start = time.perf_counter()
    done = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done.stdout + done.stderr


def _expect(output: str, text: str, what: str) -> None:
    if text not in output:
        raise RuntimeError(f"{what}: expected {text!r} in the output, got:\n{output[-2000:]}")


# --- part 1: no-op re-run ----------------------------------------------------------------------


def measure_noop(tmp: Path, repeats: int, dvc: bool) -> Raw:
    """First full runs, then ``repeats`` interleaved no-op runs of every command."""
    env = child_env(tmp)
    nb_root, dvc_root = tmp / "noop-nbops", tmp / "noop-dvc"
    make_nbops_project(nb_root, env)
    commands: dict[str, tuple[list[str], Path, str]] = {
        "python_pass": ([sys.executable, "-c", "pass"], tmp, ""),
        "nbops_run": ([*_nbops(), "run"], nb_root, f"{STAGES} cached"),
        "nbops_status": ([*_nbops(), "status"], nb_root, "Everything is up to date"),
    }
    raw: Raw = {}
    _log("first full nbops run (10 kernels)")
    raw["nbops_first_run"], _ = run([*_nbops(), "run"], nb_root, env)
    if (nb_root / "out" / f"s{STAGES:02d}.txt").read_text() != str(STAGES):
        raise RuntimeError("the nbops chain did not compute 10")
    if dvc:
        make_dvc_project(dvc_root, env)
        _log("first full dvc repro")
        raw["dvc_first_run"], _ = run([*_dvc(), "repro"], dvc_root, env)
        if (dvc_root / "out" / f"s{STAGES:02d}.txt").read_text() != str(STAGES):
            raise RuntimeError("the DVC chain did not compute 10")
        commands["dvc_repro"] = ([*_dvc(), "repro"], dvc_root, "up to date")
        commands["dvc_status"] = ([*_dvc(), "status"], dvc_root, "up to date")
    for key, (cmd, cwd, expected) in commands.items():  # warm the page cache; check no-op
        _, output = run(cmd, cwd, env)
        _expect(output, expected, key)
    times: dict[str, list[float]] = {key: [] for key in commands}
    _log(f"{repeats} interleaved no-op rounds of {', '.join(commands)}")
    for _ in range(repeats):
        for key, (cmd, cwd, _expected) in commands.items():
            times[key].append(run(cmd, cwd, env)[0])
    _, output = run([*_nbops(), "run"], nb_root, env)
    _expect(output, f"{STAGES} cached", "nbops run after the rounds")
    for key, values in times.items():
        raw[key] = statistics.median(values)
        raw[f"{key}_all"] = values
    raw["cached_path"] = cached_path_imports(nb_root, env)
    return raw


def cached_path_imports(root: Path, env: dict[str, str]) -> Raw:
    """Which modules a no-op ``nbops run`` imports, the slowest ones, and a short profile."""
    code = (
        "import sys, json, io, contextlib\n"
        "from nbops.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    rc = main(['run'])\n"
        "print(json.dumps({'rc': rc, 'modules': sorted(sys.modules)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    modules = json.loads(done.stdout.strip().splitlines()[-1])["modules"]
    heavy = sorted({m.split(".")[0] for m in modules} & set(HEAVY))
    imports = []  # (cumulative us, name) of imports made directly by the command
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(parts) != 3 or "cumulative" in line:
            continue
        name = parts[2][1:]
        if not name.startswith(" "):  # nested imports are indented
            imports.append((int(parts[1]), name))
    imports.sort(reverse=True)
    return {
        "modules": len(modules),
        "heavy_imported": heavy,
        "slowest_top_level_imports_us": [[n, us] for us, n in imports[:12]],
        "profile": _profile(root, env),
    }


def _profile(root: Path, env: dict[str, str]) -> list[str]:
    """cProfile of an in-process no-op ``nbops run``: the top functions by cumulative time."""
    code = (
        "import cProfile, pstats, io, contextlib\n"
        "from nbops.cli import main\n"
        "prof = cProfile.Profile()\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    prof.runcall(main, ['run'])\n"
        "out = io.StringIO()\n"
        "pstats.Stats(prof, stream=out).sort_stats('cumulative').print_stats(15)\n"
        "print(out.getvalue())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    lines = [line.rstrip() for line in done.stdout.splitlines()]
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return [line for line in lines[start:] if line.strip()]


# --- part 2: per executed stage ----------------------------------------------------------------


def worker_papermill(root: Path, rounds: int) -> Raw:
    """A plain loop of ``papermill.execute_notebook`` over the 10 stage notebooks."""
    import papermill

    os.chdir(root)
    executed = root / "executed-papermill"

    def stage(i: int) -> None:
        name, src, dst = _names(i)
        papermill.execute_notebook(
            f"nb/{name}.ipynb",
            str(executed / f"{name}.ipynb"),
            parameters={"src": src, "dst": dst},
            progress_bar=False,
            cwd=str(root),
        )

    executed.mkdir(exist_ok=True)
    stage(1)  # warm-up: imports already done, first kernel launch of this process
    totals = []
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(1, STAGES + 1):
            stage(i)
        totals.append(time.perf_counter() - start)
    return {"totals": totals}


def worker_nbops(root: Path, rounds: int) -> Raw:
    """``run_pipeline(root, force=True)``: tracked runs, own kernels, hashing, the lock."""
    from nbops.pipeline import run_pipeline

    quiet: Callable[[str], None] = lambda _line: None  # noqa: E731
    run_pipeline(root, ["s01"], force=True, report=quiet)  # warm-up, as for papermill
    totals, inside = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        result = run_pipeline(root, force=True, report=quiet)
        totals.append(time.perf_counter() - start)
        if [s.outcome for s in result.stages] != ["ran"] * STAGES:
            raise RuntimeError(f"not every stage ran: {result.stages}")
        inside.append(sum(s.seconds for s in result.stages))
    return {"totals": totals, "stage_seconds_sum": inside}


WORKERS: dict[str, Callable[[Path, int], Raw]] = {
    "papermill": worker_papermill,
    "nbops": worker_nbops,
}


def measure_per_stage(tmp: Path, rounds: int) -> Raw:
    """Alternate fresh worker processes: papermill loop, nbops pipeline, ``rounds`` times each."""
    env = child_env(tmp)
    root = tmp / "per-stage"
    make_nbops_project(root, env)
    run([*_nbops(), "run"], root, env)  # outs exist, kernels warmed on disk
    results: dict[str, list[Raw]] = {name: [] for name in WORKERS}
    for r in range(rounds):
        for name in WORKERS:
            _log(f"per-stage round {r + 1}/{rounds}: {name} (10 stages)")
            out = tmp / f"{name}-{r}.json"
            cmd = [sys.executable, __file__, "--worker", name, str(root), str(out)]
            run(cmd, root, env)
            results[name].append(json.loads(out.read_text()))
    raw: Raw = {"workers": results}
    for name in WORKERS:
        totals = [t for res in results[name] for t in res["totals"]]
        raw[f"{name}_per_stage"] = statistics.median(totals) / STAGES
        raw[f"{name}_per_stage_all"] = [t / STAGES for t in totals]
    inside = [t for res in results["nbops"] for t in res["stage_seconds_sum"]]
    raw["nbops_stage_seconds"] = statistics.median(inside) / STAGES
    pm, nb = raw["papermill_per_stage"], raw["nbops_per_stage"]
    raw["overhead_per_stage"] = nb - pm
    raw["overhead_pct"] = 100.0 * (nb - pm) / pm
    _log("whole-process nbops run --force (10 stages, once)")
    raw["nbops_force_process"], _ = run([*_nbops(), "run", "--force"], root, env)
    return raw


# --- report ------------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.0f} ms"


def _ratio(ours: float | None, peer: float | None, dvc: bool) -> str:
    if not dvc:
        return SKIP_DVC
    if ours is None or peer is None or ours <= 0:
        return ""
    r = peer / ours
    return f"{r:.1f}x faster than DVC" if r >= 1 else f"{1 / r:.1f}x slower than DVC"


def rows(noop: Raw, stage: Raw, dvc: bool) -> list[dict[str, Any]]:
    """The table: figure, value, target, status, ratio vs DVC."""
    skip = None if dvc else SKIP_DVC

    def row(
        figure: str, value: str, target: str = "", ok: bool | None = None, ratio: str = ""
    ) -> dict[str, Any]:
        status = "-" if ok is None else "PASS" if ok else "FAIL"
        return {
            "figure": figure,
            "value": value,
            "target": target,
            "status": status,
            "ratio": ratio,
        }

    nb_run, nb_status = noop["nbops_run"], noop["nbops_status"]
    dvc_run, dvc_status = noop.get("dvc_repro"), noop.get("dvc_status")
    heavy = noop["cached_path"]["heavy_imported"]
    return [
        row("python -c pass (floor)", _ms(noop["python_pass"])),
        row(
            "nbops run, no-op (process)",
            _ms(nb_run),
            "<= 300 ms",
            nb_run <= NOOP_TARGET,
            _ratio(nb_run, dvc_run, dvc),
        ),
        row("dvc repro, no-op (process)", skip or _ms(dvc_run)),
        row("nbops status (process)", _ms(nb_status), "", None, _ratio(nb_status, dvc_status, dvc)),
        row("dvc status (process)", skip or _ms(dvc_status)),
        row(
            "heavy modules on cached path",
            ", ".join(heavy) or "none",
            "none",
            not heavy,
        ),
        row(
            "first full run, 10 stages (kernels)",
            f"{noop['nbops_first_run']:.2f} s",
            "",
            None,
            _ratio(noop["nbops_first_run"], noop.get("dvc_first_run"), dvc),
        ),
        row("dvc repro first run (python -c)", skip or f"{noop['dvc_first_run']:.2f} s"),
        row("papermill loop, per notebook", _ms(stage["papermill_per_stage"])),
        row("nbops run_pipeline, per stage", _ms(stage["nbops_per_stage"])),
        row(
            "nbops overhead per stage",
            f"{_ms(stage['overhead_per_stage'])} ({stage['overhead_pct']:+.1f}%)",
            "<= 10%",
            stage["overhead_pct"] <= OVERHEAD_TARGET,
        ),
        row("nbops run --force, 10 stages (process)", f"{stage['nbops_force_process']:.2f} s"),
    ]


def table(lines: list[dict[str, Any]]) -> str:
    head = {"figure": "figure", "value": "value", "target": "target", "status": "status"}
    head["ratio"] = "ratio vs DVC"
    keys = list(head)
    widths = {k: max(len(str(r[k])) for r in [head, *lines]) for k in keys}

    def fmt(r: dict[str, Any]) -> str:
        return "  ".join(str(r[k]).ljust(widths[k]) for k in keys).rstrip()

    rule = "  ".join("-" * widths[k] for k in keys)
    return "\n".join([fmt(head), rule, *(fmt(r) for r in lines)])


def meta(repeats: int, rounds: int) -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    dists = ("nbops", "papermill", "nbclient", "jupyter_client", "ipykernel", "dvc")
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "interpreter": sys.executable,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": {d: version(d) for d in dists},
        "stages": STAGES,
        "noop_repeats": repeats,
        "per_stage_rounds": rounds,
    }


def _log(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, write ``benchmarks/pipeline-results.json``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="no-op runs per command")
    parser.add_argument("--rounds", type=int, default=3, help="per-stage rounds per tool")
    parser.add_argument("--quick", action="store_true", help="3 repeats, 1 round (smoke test)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument(
        "--worker", nargs=3, metavar=("NAME", "ROOT", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        name, root, out = args.worker
        Path(out).write_text(json.dumps(WORKERS[name](Path(root), 1)))
        return 0
    repeats, rounds = (3, 1) if args.quick else (args.repeats, args.rounds)
    dvc = has_dvc()
    info = meta(repeats, rounds)
    print(
        f"nbops pipeline benchmark: {info['versions']}, "
        f"Python {info['python']}, {info['cpus']} CPUs"
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nbops-bench-pipeline-") as name:
        tmp = Path(name)
        noop = measure_noop(tmp, repeats, dvc)
        stage = measure_per_stage(tmp, rounds)
    lines = rows(noop, stage, dvc)
    print()
    print(table(lines))
    cached = noop["cached_path"]
    print("\nslowest imports of a no-op `nbops run` (cumulative):")
    for module, us in cached["slowest_top_level_imports_us"][:8]:
        print(f"  {us / 1000:7.1f} ms  {module}")
    if noop["nbops_run"] > NOOP_TARGET:
        print("\nno-op target missed; cProfile of an in-process no-op `nbops run`:")
        print("\n".join(cached["profile"]))
    info["total_seconds"] = round(time.perf_counter() - started, 1)
    failed = [r["figure"] for r in lines if r["status"] == "FAIL"]
    print(f"\n{len(failed)} target(s) missed" + (": " + "; ".join(failed) if failed else ""))
    print(f"total {info['total_seconds']} s; results in {args.output}")
    document = {"meta": info, "rows": lines, "raw": {"noop": noop, "per_stage": stage}}
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
