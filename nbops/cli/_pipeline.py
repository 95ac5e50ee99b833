"""``nbops run | status | dag | init``: notebook pipelines from ``nbops.yaml``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

from nbops.cli._output import dumps_json, table
from nbops.errors import NbopsError


def _stdout_closed() -> None:
    """The reader of our output went away (``nbops status | head``): drop further output
    instead of dying with ``BrokenPipeError``, as Python's own docs recommend."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _out(text: str) -> None:
    try:
        print(text, flush=True)
    except BrokenPipeError:
        _stdout_closed()


def _printer() -> Callable[[str], None]:
    start = time.perf_counter()

    def report(line: str) -> None:
        _out(f"[{time.perf_counter() - start:6.1f}s] {line}")

    return report


def _wait_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    if value == "forever":
        return float("inf")
    try:
        seconds = float(value)
    except ValueError:
        raise NbopsError(
            f"--wait {value!r}: give seconds, or no value to wait as long as it takes"
        ) from None
    return seconds


def cmd_run(args: argparse.Namespace) -> int:
    from nbops.cluster import parse_executor
    from nbops.pipeline import PipelineFailed, parse_overrides, run_pipeline

    if args.executor is not None:
        parse_executor(args.executor)
    overrides = parse_overrides(args.param or [])
    try:
        result = run_pipeline(
            targets=args.stages,
            force=args.force,
            overrides=overrides,
            jobs=args.jobs,
            dry_run=args.dry_run,
            wait=_wait_seconds(args.wait),
            downstream=args.downstream,
            single=args.single,
            pull=args.pull,
            push=args.push,
            remote=args.remote,
            executor=args.executor,
            shared_disk=True if args.shared_disk else None,
            retries=args.retries,
            report=_printer(),
        )
    except PipelineFailed as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted: completed stages are recorded in nbops.lock", file=sys.stderr)
        return 130
    counts: dict[str, int] = {}
    for stage in result.stages:
        counts[stage.outcome] = counts.get(stage.outcome, 0) + 1
    _out("Pipeline " + result.id + ": " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from nbops.pipeline import project_status

    statuses = project_status()
    stale = sum(s.stale for s in statuses)
    code = 1 if args.exit_code and stale else 0
    if args.json:
        _out(dumps_json([s.to_dict() for s in statuses]))
        return code
    lines: list[str] = []
    for status in statuses:
        lines.append(f"{status.name:<14} {'stale' if status.stale else 'up to date'}")
        lines += [f"{'':<16}- {reason}" for reason in status.reasons]
    lines.append(
        f"{stale} of {len(statuses)} stage(s) stale" if stale else "Everything is up to date"
    )
    _out("\n".join(lines))
    return code


def cmd_dag(args: argparse.Namespace) -> int:
    from nbops.config import find_project_root
    from nbops.pipeline import load_spec, render, validate

    spec = load_spec(find_project_root(), strict=False)
    _out(render(validate(spec), spec.stages, args.format))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nbops.pipeline import scaffold

    written = scaffold(
        Path(args.directory),
        ci=args.ci,
        force=args.force,
        nbops_from=args.nbops_from,
        commit_outs=args.commit_outs,
    )
    print(table(["WROTE"], [[str(p)] for p in written]))
    print("Next: `nbops run` executes the pipeline; `nbops dag` shows it.")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``nbops run``, ``status``, ``dag`` and ``init``."""
    p = sub.add_parser(
        "run",
        help="run the stale stages of nbops.yaml",
        description="Run stale stages (and, for named stages, what they need) "
        "in dependency order; independent stages in parallel up to --jobs.",
    )
    p.add_argument("stages", nargs="*", metavar="STAGE", help="only these stages and their needs")
    p.add_argument("--force", action="store_true", help="run even when nothing changed")
    p.add_argument(
        "--downstream",
        action="store_true",
        help="run the named stages and every stage after them, not what they need",
    )
    p.add_argument(
        "--single",
        action="store_true",
        help="force exactly the named stages, without their upstream stages",
    )
    p.add_argument(
        "-p",
        "--param",
        action="append",
        metavar="STAGE.KEY=VALUE",
        help="override a parameter (YAML value), e.g. -p train.max_depth=6",
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        help="stages run at once (default 1; with a Dask executor, its number of workers)",
    )
    p.add_argument(
        "--executor",
        metavar="URL",
        help="where stages run: local (default) or dask://HOST:PORT, a Dask scheduler "
        "(overrides pipeline.executor in nbops.yaml)",
    )
    p.add_argument(
        "--shared-disk",
        action="store_true",
        help="the Dask workers see this project and its store at the same paths "
        "(otherwise files travel through the default remote)",
    )
    p.add_argument(
        "--retries",
        type=int,
        metavar="N",
        help="times Dask retries a stage's task that raised (default 1)",
    )
    p.add_argument(
        "--pull",
        action="store_true",
        help="fetch the remote's run cache first, and the outs of stages restored from it",
    )
    p.add_argument("--push", action="store_true", help="push outs and the run cache after success")
    p.add_argument("--remote", "-r", metavar="NAME", help="the remote (default: the default one)")
    p.add_argument("--dry-run", action="store_true", help="say what would run and why")
    p.add_argument(
        "--wait",
        nargs="?",
        const="forever",
        metavar="SECONDS",
        help="when another `nbops run` holds the project, wait for it (at most SECONDS)",
    )
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("status", help="which stages are stale and why")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--exit-code", action="store_true", help="exit 1 when any stage is stale (for CI)"
    )
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("dag", help="draw the stage graph")
    p.add_argument("--format", choices=("text", "mermaid", "dot"), default="text")
    p.set_defaults(func=cmd_dag)
    p = sub.add_parser("init", help="scaffold a pipeline project")
    p.add_argument("directory", nargs="?", default=".", help="where (default: here)")
    p.add_argument(
        "--ci",
        choices=("github", "gitlab", "both", "none"),
        default="github",
        help="CI workflow to add (default: github)",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument(
        "--nbops-from",
        metavar="REQUIREMENT",
        help="where CI installs nbops from, as a requirements line: a version pin (default: "
        "this version), a wheel path, or 'nbops @ git+URL'",
    )
    p.add_argument(
        "--commit-outs",
        action="store_true",
        help="commit the pipeline's outs (by default .gitignore leaves them out)",
    )
    p.set_defaults(func=cmd_init)
