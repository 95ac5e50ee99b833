"""``nbops drift``: compare two CSV or Parquet files (or logged traffic) column by column.

Exit codes: 0 compared (drift or not), 1 an error (unreadable file, bad data), 2 a usage error,
3 drift detected with ``--fail-on-drift``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nbops.cli._output import NbopsUsageError, print_json, table

#: Exit code of ``nbops drift --fail-on-drift`` when the dataset drifted.
EXIT_DRIFT = 3


def read_table(path: str) -> Any:
    """Read a table for ``nbops drift``: a file, or a table source such as
    ``predictions:MODEL@ALIAS:7d``; a file that cannot be read is a usage error (exit 2)."""
    from nbops.data import TableReadError, read_source

    try:
        return read_source(path)
    except TableReadError as exc:
        raise NbopsUsageError(str(exc)) from None


def _thresholds(pairs: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            if not sep:
                raise ValueError
            out[key.strip()] = int(value) if key.strip() == "bins" else float(value)
        except ValueError:
            raise NbopsUsageError(
                f"--threshold expects NAME=NUMBER (e.g. alpha=0.01), got {pair!r}"
            ) from None
    return out


def cmd_drift(args: argparse.Namespace) -> int:
    from nbops.data import source_prefix
    from nbops.monitor import drift

    columns = None
    if args.columns is not None:
        columns = [c.strip() for c in args.columns.split(",") if c.strip()]
        if not columns:
            raise NbopsUsageError("--columns is empty; give names separated by commas")
    reference = read_table(args.reference)
    current = read_table(args.current)
    domain: bool | dict[str, float] = False
    if not args.no_domain:
        domain = {"auc": args.domain_auc} if args.domain_auc is not None else True
    report = drift(
        reference,
        current,
        columns=columns,
        thresholds=_thresholds(args.threshold),
        domain=domain,
    )
    if args.html:
        name = args.current if source_prefix(args.current) else Path(args.current).name
        report.save_html(args.html, title=f"Data drift: {name}")
    if args.json:
        print_json(report.to_dict())
    else:
        _print_summary(report)
        if args.html:
            print(f"HTML report written to {args.html}")
    if args.fail_on_drift and report.drifted:
        print("Drift detected (--fail-on-drift): exit code 3", file=sys.stderr)
        return EXIT_DRIFT
    return 0


def _print_summary(report: Any) -> None:
    rows = []
    for col in report.columns.values():
        effect = f"W/std={col.wasserstein:.3f}" if col.kind == "numeric" else f"TVD={col.tvd:.3f}"
        rows.append(
            [
                col.name,
                col.kind,
                ("DRIFT: " + ", ".join(col.reasons)) if col.drifted else "no",
                f"{col.test} p={col.p_value:.2g}"
                if col.p_value >= 1e-300
                else f"{col.test} p<1e-300",
                f"PSI={col.psi:.3f}",
                effect,
                f"missing {col.missing_reference:.1%}->{col.missing_current:.1%}",
            ]
        )
    print(table(["COLUMN", "TYPE", "DRIFT", "TEST", "PSI", "EFFECT", "MISSING"], rows))
    verdict = "DRIFT" if report.drifted else "no drift"
    print(
        f"\n{verdict}: {len(report.drifted_columns)}/{len(report.columns)} columns drifted "
        f"(share {report.share:.2f}, dataset threshold {report.thresholds.share:.2f}); "
        f"{report.n_reference:,} reference rows, {report.n_current:,} current rows, "
        f"{report.seconds:.2f} s"
    )
    if report.domain:
        told = "tells" if report.domain["drifted"] else "cannot tell"
        print(
            f"domain classifier: {told} the tables apart (AUC {report.domain['auc']:.3f}, "
            f"threshold {report.domain['threshold']:g}, {report.domain['rows']:,} sampled rows)"
        )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``nbops drift``."""
    p = sub.add_parser(
        "drift",
        help="compare two CSV/Parquet files for data drift",
        description="Compare CURRENT with REFERENCE column by column (KS, chi-square, PSI, "
        "Wasserstein, missing rates). Exit codes: 0 compared, 1 error, 2 usage error, "
        "3 drift detected with --fail-on-drift.",
    )
    p.add_argument("reference", metavar="REFERENCE", help="baseline .csv/.tsv/.parquet file")
    p.add_argument(
        "current",
        metavar="CURRENT",
        help=".csv/.tsv/.parquet file to check, or a served model's logged inputs: "
        "predictions:MODEL@ALIAS:7d",
    )
    p.add_argument("--html", metavar="PATH", help="write an HTML report with distribution plots")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--fail-on-drift", action="store_true", help="exit with code 3 when the dataset drifted"
    )
    p.add_argument("--columns", metavar="A,B", help="compare only these columns")
    p.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a threshold (alpha, psi, wasserstein, tvd, missing, new_category, "
        "share, bins); repeatable",
    )
    p.add_argument(
        "--no-domain",
        action="store_true",
        help="skip the domain classifier (the multivariate check, on by default)",
    )
    p.add_argument(
        "--domain-auc",
        type=float,
        metavar="AUC",
        help="AUC above which the domain classifier reports drift (default 0.6)",
    )
    p.set_defaults(func=cmd_drift)
