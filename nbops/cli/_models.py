"""``nbops models``: list and show registered models, move aliases."""

from __future__ import annotations

import argparse

from nbops.cli._output import fmt, print_json, table, when


def cmd_models_list(args: argparse.Namespace) -> int:
    from nbops.registry import list_models, model_aliases

    entries = list_models()
    aliases = {v.name: model_aliases(v.name) for v, _ in entries}
    if args.json:
        doc = [
            {
                "name": v.name,
                "latest": v.version,
                "versions": n,
                "aliases": aliases[v.name],
                "created_at": v.created_at,
                "model_class": v.model_class,
            }
            for v, n in entries
        ]
        print_json(doc)
        return 0
    if not entries:
        print("No models yet; register one with nbops.log_model(model, name)")
        return 0
    rows = [
        [
            v.name,
            str(v.version),
            str(n),
            " ".join(f"{a}={ver}" for a, ver in aliases[v.name].items()),
            v.model_class.rsplit(".", 1)[-1],
            when(v.created_at),
        ]
        for v, n in entries
    ]
    print(table(["NAME", "LATEST", "VERSIONS", "ALIASES", "CLASS", "REGISTERED"], rows))
    return 0


def cmd_models_show(args: argparse.Namespace) -> int:
    from nbops.registry import alias_history, get_model, model_path, model_versions

    version = get_model(args.ref)
    moves = alias_history(version.name)
    if args.json:
        doc = version.to_dict()
        doc["path"] = str(model_path(version))
        doc["versions"] = [v.version for v in model_versions(version.name)]
        doc["alias_history"] = [m.__dict__ for m in moves]
        print_json(doc)
        return 0
    lineage = version.lineage
    print(f"Model {version.ref}" + (f"  ({', '.join(version.aliases)})" if version.aliases else ""))
    print(
        f"  {version.model_class}, {version.format}, {version.size} bytes, "
        f"sha256 {version.digest[:16]}"
    )
    print(f"  registered {when(version.created_at)} by {version.created_by}")
    print(f"  file {model_path(version)}")
    if version.run_id:
        print(f"  run {version.run_id}")
    git = lineage.get("git") or {}
    if git.get("commit"):
        print(f"  git {git['commit']}" + (" (dirty)" if git.get("dirty") else ""))
    if lineage.get("notebook"):
        print(f"  notebook {lineage['notebook']}")
    for dataset in lineage.get("datasets") or []:
        print(f"  dataset {dataset['name']}@{dataset['hash'][:12]} ({dataset['kind']})")
    for title in ("params", "metrics"):
        if lineage.get(title):
            print(f"  {title}:")
            for key, value in sorted(lineage[title].items()):
                print(f"    {key} = {fmt(value)}")
    if moves:
        print("  alias moves:")
        for m in moves:
            frm = f"{m.previous} -> " if m.previous is not None else ""
            why = f": {m.reason}" if m.reason else ""
            print(f"    {when(m.moved_at)}  {m.alias} {frm}{m.version} by {m.moved_by}{why}")
    return 0


def cmd_models_alias(args: argparse.Namespace) -> int:
    from nbops.registry import set_alias

    move = set_alias(args.name, args.version, args.alias, reason=args.reason)
    frm = f" (was {move.previous})" if move.previous is not None else ""
    print(f"{move.name}@{move.alias} -> version {move.version}{frm}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``nbops models`` and its actions."""
    models = sub.add_parser("models", help="registered models: list, show, move aliases")
    actions = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = actions.add_parser("list", help="one line per model")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_models_list)
    p = actions.add_parser("show", help="one model version with its lineage and alias moves")
    p.add_argument("ref", metavar="NAME[:VERSION|@ALIAS]", help="the model version")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_models_show)
    p = actions.add_parser("alias", help="point an alias (production, staging ...) at a version")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION", type=int)
    p.add_argument("alias", metavar="ALIAS")
    p.add_argument("--reason", help="why the alias moves (kept in its history)")
    p.set_defaults(func=cmd_models_alias)
