"""``nbops card``: write a model's card."""

from __future__ import annotations

import argparse


def cmd_card(args: argparse.Namespace) -> int:
    from nbops.cards import card

    result = card(args.ref)
    if args.output == "-":
        print(result.markdown, end="")
    else:
        path = result.save(args.output, html=args.html)
        print(f"Wrote {path}" + (f" and {args.html}" if args.html else ""))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``nbops card``."""
    p = sub.add_parser("card", help="write a model card (Markdown, optionally HTML)")
    p.add_argument("ref", metavar="MODEL_REF", help="NAME, NAME:VERSION or NAME@ALIAS")
    p.add_argument(
        "-o",
        "--output",
        default="model_card.md",
        metavar="PATH",
        help="Markdown file (default model_card.md; '-' prints it, plots inline)",
    )
    p.add_argument("--html", metavar="PATH", help="also write a self-contained HTML page")
    p.set_defaults(func=cmd_card)
