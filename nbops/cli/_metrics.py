"""``nbops metrics diff``: stage metrics between two revisions of ``nbops.lock``."""

from __future__ import annotations

import argparse

from nbops.cli._output import fmt, print_json, table


def cmd_metrics_diff(args: argparse.Namespace) -> int:
    from nbops.pipeline import metrics_diff

    changes = metrics_diff(None, args.rev_a, args.rev_b)
    if args.json:
        print_json([c.to_dict() for c in changes])
        return 0
    if not changes:
        print("No metrics in nbops.lock at either revision")
        return 0
    rows = [
        [
            c.stage,
            c.metric,
            fmt(c.a) or "-",
            fmt(c.b) or "-",
            "" if c.change is None else f"{c.change:+.6g}",
        ]
        for c in changes
    ]
    print(table(["STAGE", "METRIC", args.rev_a, args.rev_b, "CHANGE"], rows))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``nbops metrics diff``."""
    metrics = sub.add_parser("metrics", help="stage metrics recorded in nbops.lock")
    inner = metrics.add_subparsers(dest="metrics_command", metavar="COMMAND", required=True)
    p = inner.add_parser(
        "diff",
        help="metrics of every stage between two git revisions of nbops.lock",
        description="Compare the metrics nbops.lock records at REV_A (default HEAD) and REV_B "
        "(default: the working tree, 'workspace').",
    )
    p.add_argument("rev_a", nargs="?", default="HEAD", metavar="REV_A")
    p.add_argument("rev_b", nargs="?", default="workspace", metavar="REV_B")
    p.add_argument("--json", action="store_true", help="strict JSON (NaN and inf as null)")
    p.set_defaults(func=cmd_metrics_diff)
