"""``nbops sweep``: run a sweep, show its status, or join it as a worker.

Forms::

    nbops sweep run TARGET --space FILE --metric M --direction D --n-trials N [--jobs J]
                    [--storage URL] [--study NAME] [--timeout S]
                    [--executor dask://HOST:PORT [--shared-disk]]
                    [--sampler tpe|random|grid|... --seed N --pruner median|hyperband|none]
    nbops sweep run sweep.yaml [flags]  (a W&B-style sweep file; flags override it)
    nbops sweep TARGET ...            (shorthand for ``run``)
    nbops sweep status [NAME] [--storage URL] [--json]
    nbops sweep worker --study NAME --storage URL

TARGET is a notebook or ``module:function``. Exit codes: 0 done, 1 error, 2 usage, 130 stopped.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from nbops.cli._output import NbopsUsageError, fmt, print_json, table

ACTIONS = ("run", "status", "worker")


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nbops sweep run", description="Run an Optuna sweep.")
    p.add_argument("target", help="a notebook (.ipynb), module:function, or a sweep file (.yaml)")
    p.add_argument("--space", help="YAML file of the search space (needed for notebooks)")
    p.add_argument("--metric", action="append", help="metric to optimise (repeat: multi-objective)")
    p.add_argument(
        "--direction",
        action="append",
        choices=("maximize", "minimize"),
        help="direction per metric (required: maximize or minimize)",
    )
    p.add_argument("--sampler", help="tpe, random, grid, cmaes, gp, qmc, nsgaii or bruteforce")
    p.add_argument("--seed", type=int, help="seed of the sampler (reproducible sweeps)")
    p.add_argument("--pruner", help="median, hyperband, successive-halving, percentile or none")
    p.add_argument("--n-trials", type=int, help="trials in total, across workers")
    p.add_argument("--timeout", type=float, help="stop starting trials after S seconds")
    p.add_argument("--jobs", type=int, help="worker processes (default 1)")
    p.add_argument("--storage", help="journal path, sqlite:///FILE or postgresql://... URL")
    p.add_argument(
        "--executor",
        help="local (default) or dask://HOST:PORT: trials run as tasks on a Dask cluster "
        "(needs --storage postgresql://..., or a journal with --shared-disk)",
    )
    p.add_argument(
        "--shared-disk",
        action="store_true",
        default=None,
        help="the Dask workers see this disk at the same paths (a journal storage is shared)",
    )
    p.add_argument("--study", help="sweep name (resumes when it exists)")
    p.add_argument("--project", help="project of the trial runs")
    p.add_argument("--trial-timeout", type=float, help="seconds one notebook trial may run")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def _status_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nbops sweep status", description="Show a sweep.")
    p.add_argument("name", nargs="?", help="sweep name (omit to list sweeps under .nbops/)")
    p.add_argument("--storage", help="where the sweep lives (default: .nbops/sweeps/NAME.journal)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def _worker_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nbops sweep worker", description="Join a running sweep from this machine."
    )
    p.add_argument("--study", required=True, help="sweep name")
    p.add_argument("--storage", required=True, help="the sweep's storage URL or journal path")
    return p


def _summary(sweep: Any) -> dict[str, Any]:
    from optuna.trial import TrialState

    trials = sweep.trials()
    doc: dict[str, Any] = {
        "name": sweep.name,
        "storage": sweep.storage_url,
        "n_trials": sweep.n_trials,
        "states": {s.name: sum(t.state == s for t in trials) for s in TrialState},
        "errors": [{"trial": n, "error": m} for n, m in sweep.errors],
    }
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete and len(sweep.study.directions) == 1:
        best = sweep.best_trial
        doc["best"] = {"trial": best.number, "value": best.value, "params": best.params}
    elif complete:
        doc["pareto_front"] = [
            {"trial": t.number, "values": t.values, "params": t.params} for t in sweep.best_trials
        ]
    doc["trials"] = [
        {"number": t.number, "state": t.state.name, "values": t.values, "params": t.params}
        for t in trials
    ]
    return doc


def _print_summary(doc: dict[str, Any]) -> None:
    states = ", ".join(f"{k.lower()} {v}" for k, v in doc["states"].items() if v)
    print(f"sweep {doc['name']} ({doc['storage']}): {states or 'no trials'}")
    if "best" in doc:
        best = doc["best"]
        print(
            f"best: trial {best['trial']} value {fmt(best['value'])} params {fmt(best['params'])}"
        )
    rows = [
        [str(t["number"]), t["state"], fmt(t["values"]), fmt(t["params"])] for t in doc["trials"]
    ]
    if rows:
        print(table(["#", "state", "values", "params"], rows[-20:]))
    for error in doc["errors"][-5:]:
        print(f"error in trial {error['trial']}: {error['error']}")


def _is_sweep_file(target: str) -> bool:
    return target.endswith((".yaml", ".yml"))


def cmd_run(args: argparse.Namespace) -> int:
    from nbops.sweeps import SweepConfig, load_sweep_file, sweep

    target = args.target
    if _is_sweep_file(target):
        if not os.path.isfile(target):
            raise NbopsUsageError(f"no such sweep file: {target}")
        base = load_sweep_file(target)
    else:
        if target.endswith(".ipynb") and not os.path.isfile(target):
            raise NbopsUsageError(f"no such notebook: {target}")
        if args.n_trials is None and args.timeout is None and args.sampler != "grid":
            raise NbopsUsageError("give --n-trials N or --timeout S")
        base = SweepConfig(objective=target)
    flags = {
        "space": args.space,
        "n_trials": args.n_trials,
        "timeout": args.timeout,
        "metric": args.metric,
        "direction": args.direction,
        "storage": args.storage,
        "study_name": args.study,
        "jobs": args.jobs,
        "executor": args.executor,
        "shared_disk": args.shared_disk,
        "project": args.project,
        "trial_timeout": args.trial_timeout,
        "sampler": args.sampler,
        "seed": args.seed,
        "pruner": args.pruner,
    }
    result = sweep(config=base, panel=False, **{k: v for k, v in flags.items() if v is not None})
    doc = _summary(result)
    if args.json:
        print_json(doc)
    else:
        _print_summary(doc)
    if result.stopped:  # stopped from elsewhere (another terminal, the panel)
        return 130
    return 0 if "best" in doc or "pareto_front" in doc else 1


def cmd_status(args: argparse.Namespace) -> int:
    from nbops.sweeps import list_sweeps, load_sweep

    if args.name is None:
        names = list_sweeps(args.storage)
        if args.json:
            print_json({"sweeps": names})
        else:
            where = args.storage or ".nbops/sweeps"
            print("\n".join(names) if names else f"no sweeps in {where}")
        return 0
    doc = _summary(load_sweep(args.name, storage=args.storage))
    if args.json:
        print_json(doc)
    else:
        _print_summary(doc)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from nbops.sweeps import join_sweep

    count = join_sweep(args.study, args.storage)
    print(f"nbops: worker {os.getpid()} ran {count} trial(s) of sweep {args.study}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    first = args.action
    rest = list(args.rest)
    if first in ("-h", "--help"):
        print(__doc__)
        return 0
    handlers = {"run": (_run_parser, cmd_run), "status": (_status_parser, cmd_status)}
    handlers["worker"] = (_worker_parser, cmd_worker)
    if first in handlers:
        make, handler = handlers[first]
    else:  # shorthand: nbops sweep TARGET ...
        make, handler, rest = _run_parser, cmd_run, [first, *rest]
    return handler(make().parse_args(rest))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``nbops sweep``."""
    p = sub.add_parser(
        "sweep",
        help="Optuna sweeps: run, status, worker",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    p.add_argument("action", metavar="run|status|worker|TARGET")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_sweep)
