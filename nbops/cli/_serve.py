"""``nbops serve``, ``nbops rollout`` and ``nbops predictions``: serving registered models."""

from __future__ import annotations

import argparse
from typing import Any

from nbops.cli._output import NbopsUsageError, print_json, table, when


def cmd_serve(args: argparse.Namespace) -> int:
    from nbops.serve import ServeConfig, check_models, check_port, model_specs, run
    from nbops.store import open_store

    specs = model_specs(args.models, args.route, args.shadow)
    check_models(specs)
    check_port(args.host, args.port)
    if args.token_env:
        import os

        if not os.environ.get(args.token_env):
            raise NbopsUsageError(f"--token-env {args.token_env}: the variable is not set")
    config = ServeConfig(
        models=specs,
        host=args.host,
        port=args.port,
        workers=args.workers,
        store=str(open_store().path),
        token_env=args.token_env,
        sticky_header=args.sticky_header,
        max_body_bytes=args.max_body_bytes,
        timeout=args.timeout,
        max_batch_size=args.max_batch_size,
        max_latency=args.max_latency_ms / 1000.0,
        poll_interval=args.poll_interval,
        log_sample=args.log_sample,
        log_folder=args.log_folder,
        rollback_error_rate=args.rollback_error_rate,
        rollback_p99=None if args.rollback_p99_ms is None else args.rollback_p99_ms / 1000.0,
        rollback_window=args.rollback_window,
        rollback_min_requests=args.rollback_min_requests,
    )
    names = ", ".join(f"{s.name} ({', '.join(map(str, s.routes))})" for s in specs)
    print(f"Serving {names} at http://{args.host}:{args.port} (Ctrl-C stops)", flush=True)
    run(config)
    return 0


def cmd_rollout_status(args: argparse.Namespace) -> int:
    from nbops.registry import model_aliases
    from nbops.serve import read_rollout, rollout_history

    state = read_rollout(args.model)
    aliases = model_aliases(args.model)
    history = rollout_history(args.model)
    if args.json:
        doc: dict[str, Any] = {
            "rollout": state.to_dict() if state else None,
            "aliases": aliases,
            "history": [_event(e) for e in history],
        }
        print_json(doc)
        return 0
    if state is None:
        print(f"{args.model}: no routes set (a server sends all traffic to the reference it got)")
    else:
        print(
            f"{args.model}: "
            + ", ".join(str(r) for r in state.routes)
            + (f"; shadow {state.shadow}" if state.shadow else "")
        )
    print("aliases: " + (" ".join(f"{a}={v}" for a, v in aliases.items()) or "-"))
    if history:
        rows = [
            [when(e.at), e.action, ",".join(map(str, e.routes)), e.by, e.reason or ""]
            for e in history[-args.last :]
        ]
        print(table(["WHEN", "ACTION", "ROUTES", "BY", "WHY"], rows))
    return 0


def _event(event: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(event)


def cmd_rollout_set(args: argparse.Namespace) -> int:
    from nbops.serve import set_rollout

    state = set_rollout(args.model, args.route, shadow=args.shadow, reason=args.reason)
    print(
        f"{state.model}: "
        + ", ".join(map(str, state.routes))
        + (f"; shadow {state.shadow}" if state.shadow else "")
    )
    return 0


def cmd_rollout_promote(args: argparse.Namespace) -> int:
    from nbops.registry import model_aliases
    from nbops.serve import promote

    promote(args.model, source=args.source, alias=args.alias, reason=args.reason)
    print(
        f"{args.model}@{args.alias} -> version {model_aliases(args.model)[args.alias]}; "
        f"all traffic to {args.alias}"
    )
    return 0


def cmd_rollout_rollback(args: argparse.Namespace) -> int:
    from nbops.registry import model_aliases
    from nbops.serve import rollback

    state = rollback(args.model, reason=args.reason)
    version = model_aliases(args.model).get(state.primary, state.primary)
    print(f"{args.model}: all traffic to {state.primary} (version {version})")
    return 0


def cmd_predictions_export(args: argparse.Namespace) -> int:
    from nbops.fileio import write_atomic
    from nbops.serve import predictions

    frame = predictions(args.model, since=args.since, labels=not args.inputs_only)
    if args.inputs_only:
        from nbops.serve import META_COLUMNS

        frame = frame.drop(columns=[c for c in META_COLUMNS if c in frame.columns])
    if not args.output.endswith((".parquet", ".csv")):
        raise NbopsUsageError("--output must end in .parquet or .csv")
    if args.output.endswith(".csv"):
        write_atomic(args.output, frame.to_csv(index=False))
    else:
        import io

        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        write_atomic(args.output, buffer.getvalue())
    print(f"{len(frame)} rows written to {args.output}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``nbops serve``, ``nbops rollout`` and ``nbops predictions``."""
    p = sub.add_parser(
        "serve",
        help="serve registered models over the Open Inference Protocol (KServe V2)",
        description="Serve MODEL_REF (NAME, NAME@ALIAS or NAME:VERSION) over HTTP/REST. Binds "
        "to 127.0.0.1 unless --host says otherwise.",
    )
    p.add_argument("models", nargs="+", metavar="MODEL_REF")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=1, help="server processes")
    p.add_argument(
        "--route",
        action="append",
        metavar="[MODEL:]T=W,...",
        help="split traffic, e.g. production=90,candidate=10",
    )
    p.add_argument(
        "--shadow",
        action="append",
        metavar="[MODEL:]TARGET",
        help="send a copy of every request to TARGET; log, do not answer",
    )
    p.add_argument(
        "--sticky-header",
        metavar="HEADER",
        help="requests with the same value of HEADER take the same route",
    )
    p.add_argument("--token-env", metavar="VAR", help="require the bearer token held in $VAR")
    p.add_argument("--max-body-bytes", type=int, default=16 * 1024 * 1024)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    p.add_argument("--max-batch-size", type=int, default=1024, help="most rows in one model call")
    p.add_argument(
        "--max-latency-ms", type=float, default=2.0, help="longest wait for a batch to fill"
    )
    p.add_argument(
        "--poll-interval",
        type=float,
        default=2.0,
        help="seconds between checks for alias and route changes",
    )
    p.add_argument("--log-sample", type=float, default=1.0, help="share of requests logged")
    p.add_argument("--log-folder", help="prediction logs folder (default .nbops/predictions)")
    p.add_argument(
        "--rollback-error-rate",
        type=float,
        metavar="RATE",
        help="roll a canary back when its error rate exceeds RATE",
    )
    p.add_argument(
        "--rollback-p99-ms",
        type=float,
        metavar="MS",
        help="roll a canary back when its p99 latency exceeds MS",
    )
    p.add_argument("--rollback-window", type=float, default=60.0, metavar="SECONDS")
    p.add_argument("--rollback-min-requests", type=int, default=20)
    p.set_defaults(func=cmd_serve)

    rollout = sub.add_parser("rollout", help="routes between model versions: canary, promote")
    actions = rollout.add_subparsers(dest="rollout_command", metavar="ACTION", required=True)
    p = actions.add_parser("status", help="routes, aliases and the history of changes")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--last", type=int, default=20, help="history entries shown")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rollout_status)
    p = actions.add_parser("set", help="split traffic, e.g. --route production=90,candidate=10")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--route", required=True, metavar="T=W,...")
    p.add_argument("--shadow", metavar="TARGET")
    p.add_argument("--reason", help="why (kept in the history)")
    p.set_defaults(func=cmd_rollout_set)
    p = actions.add_parser("promote", help="point the production alias at the candidate")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--from", dest="source", default="candidate", metavar="TARGET")
    p.add_argument("--alias", default="production")
    p.add_argument("--reason")
    p.set_defaults(func=cmd_rollout_promote)
    p = actions.add_parser("rollback", help="drop canaries, or move production back")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--reason")
    p.set_defaults(func=cmd_rollout_rollback)

    preds = sub.add_parser("predictions", help="prediction logs of served models")
    actions = preds.add_subparsers(dest="predictions_command", metavar="ACTION", required=True)
    p = actions.add_parser("export", help="write logged predictions to a file (for nbops drift)")
    p.add_argument("model", metavar="MODEL[@ALIAS]")
    p.add_argument("--since", default=None, help="a window (7d, 12h) or an ISO date")
    p.add_argument("--output", "-o", required=True, help=".parquet or .csv file")
    p.add_argument(
        "--inputs-only",
        action="store_true",
        help="only the model's input columns (what nbops drift compares)",
    )
    p.set_defaults(func=cmd_predictions_export)
