"""``nbops run | status | dag | init``: notebook pipelines from ``nbops.yaml``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from nbops.cli._output import print_json, table


def _printer() -> Callable[[str], None]:
    start = time.perf_counter()

    def report(line: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f}s] {line}", flush=True)

    return report


def cmd_run(args: argparse.Namespace) -> int:
    from nbops.pipeline import PipelineFailed, parse_overrides, run_pipeline

    overrides = parse_overrides(args.param or [])
    try:
        result = run_pipeline(
            targets=args.stages,
            force=args.force,
            overrides=overrides,
            jobs=args.jobs,
            dry_run=args.dry_run,
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
    print("Pipeline " + result.id + ": " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from nbops.config import find_project_root, store_path
    from nbops.pipeline import load_spec, pipeline_status, read_lock, validate
    from nbops.pipeline._hashing import HashCache

    root = find_project_root()
    spec = load_spec(root)
    graph = validate(spec)
    cache = HashCache(store_path(root) / "hashcache.json")
    statuses = pipeline_status(spec, graph, read_lock(root), {}, cache)
    cache.save()
    if args.json:
        print_json([s.to_dict() for s in statuses])
        return 0
    for status in statuses:
        if not status.stale:
            print(f"{status.name:<14} up to date")
            continue
        print(f"{status.name:<14} stale")
        for reason in status.reasons:
            print(f"{'':<16}- {reason}")
    stale = sum(s.stale for s in statuses)
    print(f"{stale} of {len(statuses)} stage(s) stale" if stale else "Everything is up to date")
    return 0


def cmd_dag(args: argparse.Namespace) -> int:
    from nbops.config import find_project_root
    from nbops.pipeline import load_spec, render, validate

    spec = load_spec(find_project_root())
    print(render(validate(spec), spec.stages, args.format))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nbops.pipeline._scaffold import scaffold

    written = scaffold(Path(args.directory), ci=args.ci, force=args.force)
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
        "-p",
        "--param",
        action="append",
        metavar="STAGE.KEY=VALUE",
        help="override a parameter (YAML value), e.g. -p train.max_depth=6",
    )
    p.add_argument("--jobs", "-j", type=int, default=1, help="stages run at once (default 1)")
    p.add_argument("--dry-run", action="store_true", help="say what would run and why")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("status", help="which stages are stale and why")
    p.add_argument("--json", action="store_true", help="machine-readable output")
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
    p.set_defaults(func=cmd_init)
