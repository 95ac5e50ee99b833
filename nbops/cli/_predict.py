"""``nbops predict``: score a CSV or Parquet file with a registered model, in batches."""

from __future__ import annotations

import argparse
import sys


def cmd_predict(args: argparse.Namespace) -> int:
    from nbops.registry import BATCH_ROWS, predict_file, print_progress

    rows = predict_file(
        args.ref,
        args.input,
        args.output,
        column=args.column,
        batch_rows=args.batch_size or BATCH_ROWS,
        trusted=tuple(args.trust),
        progress=None if args.quiet else print_progress,
    )
    print(f"wrote {rows:,} predictions to {args.output}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``nbops predict``."""
    p = sub.add_parser(
        "predict",
        help="score a CSV/Parquet file with a registered model",
        description="Read INPUT (CSV or Parquet) in batches, check each batch against the model's "
        "signature, and write the rows with a prediction column to OUTPUT (CSV or Parquet).",
    )
    p.add_argument("ref", metavar="MODEL_REF", help="NAME, NAME:VERSION or NAME@ALIAS")
    p.add_argument("input", metavar="INPUT")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT")
    p.add_argument("--column", default="prediction", help="name of the prediction column")
    p.add_argument("--batch-size", type=int, default=0, help="rows per batch (default 50,000)")
    p.add_argument(
        "--trust", action="append", default=[], metavar="TYPE", help="a type to trust at load"
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_predict)
