"""The ``%nbops`` line magic: a thin shell over :class:`NotebookSession` and the tracking API."""

from __future__ import annotations

import argparse
import numbers
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import MagicArgumentParser

from nbops.errors import NbopsError
from nbops.notebook._session import NotebookSession

WANDB_MODES = ("online", "offline", "disabled")


def _parser() -> MagicArgumentParser:
    parser = MagicArgumentParser(prog="%nbops", description="Track this notebook with nbops.")
    sub = parser.add_subparsers(dest="command", parser_class=MagicArgumentParser, metavar="COMMAND")
    track = sub.add_parser(
        "track",
        help="start a run, or re-attach to the current one",
        description="Start a run, or re-attach to the current one when the "
        "cell is re-run (never a duplicate run).",
    )
    track.add_argument("--project", help="project name (default: the project root's name)")
    track.add_argument("--name", help="run name")
    track.add_argument(
        "--tag", action="append", default=[], metavar="TAG", help="a tag (repeat for several)"
    )
    track.add_argument("--group", help="group runs together")
    track.add_argument("--job-type", help="kind of run, e.g. train")
    track.add_argument(
        "--wandb", choices=WANDB_MODES, help="W&B mirror mode (default: offline without an API key)"
    )
    track.add_argument(
        "--autolog",
        action="store_true",
        help="record scikit-learn, XGBoost and LightGBM training into the run (nbops.autolog())",
    )
    track.add_argument(
        "--new",
        action="store_true",
        help="finish the current run and start another with the same project, tags, group, "
        "job type and W&B mode (unless given)",
    )
    log = sub.add_parser(
        "log",
        help="log notebook variables by name",
        description="Log variables: numbers as metrics, DataFrames and arrays as table "
        "artifacts, anything else as parameters.",
    )
    log.add_argument("names", nargs="+", metavar="NAME", help="a variable of the notebook")
    log.add_argument("--step", type=int, help="step for the metrics")
    sub.add_parser(
        "status",
        help="show the run and the cell provenance report",
        description="Show the run, the W&B mirror and the cell provenance report.",
    )
    stop = sub.add_parser(
        "stop",
        help="finish the run and report cell provenance",
        description="Finish the run and print the cell provenance report.",
    )
    stop.add_argument("--status", choices=("finished", "failed", "killed"), default="finished")
    sweep = sub.add_parser(
        "sweep",
        help="sweep a notebook's parameters with Optuna, with a live panel",
        description="Start an Optuna sweep of NOTEBOOK in the background and show its panel; "
        "the Sweep is stored in the variable `nbops_sweep`.",
    )
    sweep.add_argument("notebook", help="the notebook to execute per trial")
    sweep.add_argument("--space", required=True, help="YAML file of the search space")
    sweep.add_argument("--n-trials", type=int, required=True, help="number of trials")
    sweep.add_argument(
        "--jobs",
        type=int,
        help="worker processes (default 1), or Dask tasks (default: one per worker)",
    )
    sweep.add_argument("--metric", required=True, help="the metric the notebook logs")
    sweep.add_argument(
        "--direction",
        choices=("maximize", "minimize"),
        required=True,
        help="whether higher or lower values of the metric are better (no default)",
    )
    sweep.add_argument("--storage", help="storage URL (default: a journal under .nbops/)")
    sweep.add_argument("--study", help="sweep name")
    sweep.add_argument(
        "--executor",
        help="local (default) or dask://HOST:PORT: trials run as tasks on a Dask cluster "
        "(needs --storage postgresql://..., or a journal with --shared-disk)",
    )
    sweep.add_argument(
        "--shared-disk",
        action="store_true",
        help="the Dask workers see this disk at the same paths (a journal storage is shared)",
    )
    reproduce = sub.add_parser(
        "reproduce",
        help="re-run a tracked run top to bottom in a fresh kernel and compare",
        description="Re-execute RUN's recorded notebook in a scratch copy of the project at its "
        "recorded commit and data, compare metrics, artifacts and outputs, and show the verdict.",
    )
    reproduce.add_argument("run", help="run id, unique prefix, 'latest', or a bundle .zip")
    reproduce.add_argument(
        "--tolerance", action="append", metavar="KEY=REL", help="relative tolerance of a metric"
    )
    reproduce.add_argument("--timeout", type=float, help="seconds the notebook may run")
    return parser


PARSER = _parser()


def _help() -> str:
    commands = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction))
    parts = ["Track this notebook with nbops.\n"]
    parts += [sub.format_help() for sub in commands.choices.values()]
    return "\n".join(parts)


@magics_class
class NbopsMagics(Magics):
    """The ``%nbops`` magic."""

    def __init__(self, shell: Any, session: NotebookSession) -> None:
        super().__init__(shell)
        self.session = session

    @line_magic
    def nbops(self, line: str) -> Any:
        try:
            argv = shlex.split(line)
        except ValueError as exc:  # an unclosed quote
            raise UsageError(f"%nbops: {exc} in {line!r}; close the quote") from None
        args = PARSER.parse_args(argv)
        if args.command is None:
            raise UsageError(
                "%nbops needs a command: track, log, status, stop, sweep or reproduce (see %nbops?)"
            )
        try:
            return getattr(self, f"_{args.command}")(args)
        except NbopsError as exc:
            raise UsageError(str(exc)) from None

    def _track(self, args: argparse.Namespace) -> None:
        if args.project is not None and not args.project.strip():
            raise UsageError(
                "invalid project name '': give a non-empty --project, or leave it out to use "
                "the default (the project root's folder name)"
            )
        run, reattached = self.session.track(
            new=args.new,
            project=args.project,
            name=args.name,
            tags=args.tag or None,
            group=args.group,
            job_type=args.job_type,
            wandb=args.wandb,
        )
        if args.autolog:
            from nbops.tracking import autolog

            autolog()
        mirror = run.mirror.state.mode if run.mirror is not None else "disabled"
        verb = "Re-attached to" if reattached else "Tracking"
        print(
            f"nbops: {verb} run {run.id} ({run.name}) in project {run.project!r}; "
            f"store {run.store.location}; W&B {mirror}"
        )
        given = [k for k in ("project", "name", "group", "job_type", "wandb") if getattr(args, k)]
        if reattached and (given or args.tag):
            print(
                "nbops: options ignored because a run is already active; use --new to start another"
            )

    def _log(self, args: argparse.Namespace) -> None:
        from nbops.tracking import is_table

        run = self.session.run
        if run is None:
            raise UsageError("no run to log to; start one with %nbops track or nbops.init()")
        ns = self.session.shell.user_ns
        missing = [n for n in args.names if n not in ns]
        if missing:
            raise UsageError(f"no variable named {', '.join(missing)} in the notebook")
        metrics = {
            n: ns[n]
            for n in args.names
            if isinstance(ns[n], numbers.Real) and not isinstance(ns[n], bool)
        }
        tables = [n for n in args.names if n not in metrics and is_table(ns[n])]
        params = {n: ns[n] for n in args.names if n not in metrics and n not in tables}
        for name in tables:
            run.log_table(name.lstrip("_") or "table", ns[name])
        if metrics:
            run.log(metrics, step=args.step)
        if params:
            run.log_params(params)
        print(
            f"nbops: logged {len(metrics)} metric(s), {len(params)} parameter(s) and "
            f"{len(tables)} table(s) to {run.id}"
        )

    def _status(self, args: argparse.Namespace) -> None:
        run = self.session.run
        if run is None:
            print("nbops: no active run; start one with %nbops track or nbops.init()")
            return
        self.session.wait_for_capture(run)
        run.flush()
        mirror = run.mirror.state if run.mirror is not None else None
        notebook = run.store.get_metadata(run.id).get("notebook") or {}
        print(
            f"nbops: run {run.id} ({run.name}) in project {run.project!r}, {run.status}, "
            f"next step {run.step}"
        )
        print(f"  store: {run.store.location}")
        print(
            f"  W&B: {mirror.mode + ', ' + mirror.status if mirror else 'disabled'}"
            + (f" ({mirror.error})" if mirror and mirror.error else "")
        )
        if not notebook and run.capturing:
            print("  notebook: capture in progress (git, packages and the notebook's location)")
        else:
            print(
                f"  notebook: {notebook.get('path') or 'not found'}"
                + (f" ({notebook.get('detail')})" if notebook.get("detail") else "")
            )
        print(self.session.provenance(run))

    def _sweep(self, args: argparse.Namespace) -> None:
        from nbops.sweeps import sweep

        result = sweep(
            args.notebook,
            space=args.space,
            n_trials=args.n_trials,
            metric=args.metric,
            direction=args.direction,
            storage=args.storage,
            study_name=args.study,
            jobs=args.jobs,
            executor=args.executor,
            shared_disk=args.shared_disk,
            panel=True,
        )
        if self.shell is not None:
            self.shell.user_ns["nbops_sweep"] = result
        print(f"nbops: sweep {result.name} started; it is in `nbops_sweep` (.wait(), .stop())")

    def _reproduce(self, args: argparse.Namespace) -> Any:
        """Return the :class:`~nbops.reproduce.Reproduction`: the cell shows it as a table."""
        from nbops.reproduce import parse_tolerances, reproduce

        return reproduce(
            args.run, tolerances=parse_tolerances(args.tolerance or []), timeout=args.timeout
        )

    def _stop(self, args: argparse.Namespace) -> None:
        run = self.session.run
        report = self.session.stop(args.status)
        if run is None:
            print("nbops: no active run")
            return
        print(f"nbops: finished run {run.id} ({args.status})")
        if report is not None:
            print(report)


NbopsMagics.nbops.__doc__ = _help()
