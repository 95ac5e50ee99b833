"""``nbops sweep``: run a sweep, show its status, or join it as a worker.

Forms::

    nbops sweep run TARGET --space FILE --metric M [--direction D] --n-trials N [--jobs J]
                    [--storage URL] [--study NAME] [--timeout S]
    nbops sweep TARGET ...            (shorthand for ``run``)
    nbops sweep status NAME [--storage URL] [--json]
    nbops sweep worker --study NAME --storage URL

TARGET is a notebook or ``module:function``. Exit codes: 0 done, 1 error, 2 usage, 130 stopped.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from nbops.cli._output import NbopsUsageError, fmt, table

ACTIONS = ("run", "status", "worker")


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nbops sweep run", description="Run an Optuna sweep.")
    p.add_argument("target", help="a notebook (.ipynb) or module:function")
    p.add_argument("--space", help="YAML file of the search space (needed for notebooks)")
    p.add_argument("--metric", action="append", help="metric to optimise (repeat: multi-objective)")
    p.add_argument(
        "--direction",
        action="append",
        choices=("maximize", "minimize"),
        help="direction per metric (default maximize)",
    )
    p.add_argument("--n-trials", type=int, help="trials in total, across workers")
    p.add_argument("--timeout", type=float, help="stop starting trials after S seconds")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--storage", help="journal path, sqlite:///FILE or postgresql://... URL")
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


def cmd_run(args: argparse.Namespace) -> int:
    from nbops.sweeps import sweep

    if args.n_trials is None and args.timeout is None:
        raise NbopsUsageError("give --n-trials N or --timeout S")
    target = args.target
    if target.endswith(".ipynb") and not os.path.isfile(target):
        raise NbopsUsageError(f"no such notebook: {target}")
    result = sweep(
        target,
        space=args.space,
        n_trials=args.n_trials,
        timeout=args.timeout,
        metric=args.metric,
        direction=args.direction or "maximize",
        storage=args.storage,
        study_name=args.study,
        jobs=args.jobs,
        panel=False,
        project=args.project,
        trial_timeout=args.trial_timeout,
    )
    doc = _summary(result)
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        _print_summary(doc)
    return 0 if "best" in doc or "pareto_front" in doc else 1


def cmd_status(args: argparse.Namespace) -> int:
    from nbops.sweeps import load_sweep
    from nbops.sweeps._storage import sweeps_dir

    if args.name is None:
        names = sorted(p.stem for p in sweeps_dir().glob("*.journal"))
        if args.json:
            print(json.dumps({"sweeps": names}))
        else:
            print("\n".join(names) if names else f"no sweeps under {sweeps_dir()}")
        return 0
    doc = _summary(load_sweep(args.name, storage=args.storage))
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        _print_summary(doc)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from nbops.names import check_name
    from nbops.sweeps._spec import SPEC_ATTR, SweepSpec
    from nbops.sweeps._storage import open_storage, resolve_url
    from nbops.sweeps._worker import load_study, run_worker

    check_name(args.study, "sweep name")
    url = resolve_url(args.storage, args.study)
    probe = load_study(SweepSpec(args.study, url, "trial"), open_storage(url))
    spec = SweepSpec.from_attrs(probe.user_attrs.get(SPEC_ATTR) or {}, args.study, url)
    count = run_worker(spec)
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
