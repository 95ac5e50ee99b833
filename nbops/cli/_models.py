"""``nbops models``: list and show registered models, move aliases."""

from __future__ import annotations

import argparse

from nbops.cli._output import NbopsUsageError, fmt, print_json, table, when


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
                "status": v.status,
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
            v.status + (" (archived)" if v.archived else "") + (" (deleted)" if v.deleted else ""),
            v.model_class.rsplit(".", 1)[-1],
            when(v.created_at),
        ]
        for v, n in entries
    ]
    headers = ["NAME", "LATEST", "VERSIONS", "ALIASES", "STATUS", "CLASS", "REGISTERED"]
    print(table(headers, rows))
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
    state = version.status + (", archived" if version.archived else "")
    print(f"  status {state}")
    if version.tags:
        print("  tags " + ", ".join(f"{k}={v}" for k, v in sorted(version.tags.items())))
    if version.signature is not None:
        sig = version.signature
        cols = ", ".join(f"{c.name}:{c.dtype}" for c in sig.inputs[:12])
        more = f", ... ({len(sig.inputs)} columns)" if len(sig.inputs) > 12 else ""
        shape = f"{sig.width} columns" if sig.width is not None else "unknown width"
        print(f"  signature inputs ({shape}): {cols or '-'}{more}")
        print(f"  signature output: {sig.output or 'unknown'}")
    print(
        f"  {version.model_class}, {version.format}, {version.size} bytes, "
        f"sha256 {version.digest[:16]}"
    )
    print(f"  registered {when(version.created_at)} by {version.created_by}")
    print(f"  file {model_path(version)}")
    if version.trusted_types:
        print(f"  types: {', '.join(version.trusted_types)}")
    if version.untrusted_types:
        print(
            f"  not trusted by default: {', '.join(version.untrusted_types)} "
            "(load_model(..., trusted=[...]) to load it)"
        )
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
    if version.events:
        print("  history:")
        for e in version.events:
            why = f": {e.reason}" if e.reason else ""
            print(f"    {when(e.at)}  {e.action} by {e.by}{why}")
    if moves:
        print("  alias moves:")
        for m in moves:
            frm = f"{m.previous} -> " if m.previous is not None else ""
            to = "removed" if m.removed else str(m.version)
            why = f": {m.reason}" if m.reason else ""
            print(f"    {when(m.moved_at)}  {m.alias} {frm}{to} by {m.moved_by}{why}")
    return 0


def cmd_models_alias(args: argparse.Namespace) -> int:
    from nbops.registry import remove_alias, set_alias

    if args.delete:
        if args.version is not None and not args.version.isdigit():
            args.alias = args.version  # `alias --delete NAME ALIAS`
        alias = args.alias or args.version
        if not alias:
            raise NbopsUsageError(
                "give the alias to delete: nbops models alias --delete NAME ALIAS"
            )
        move = remove_alias(args.name, alias, reason=args.reason)
        print(f"{move.name}@{move.alias} removed (was version {move.previous})")
        return 0
    if args.version is None or not args.version.isdigit() or not args.alias:
        raise NbopsUsageError("usage: nbops models alias NAME VERSION ALIAS [--reason ...]")
    move = set_alias(args.name, int(args.version), args.alias, reason=args.reason, force=args.force)
    frm = f" (was {move.previous})" if move.previous is not None else ""
    print(f"{move.name}@{move.alias} -> version {move.version}{frm}")
    return 0


def _name_version(ref: str) -> tuple[str, int]:
    from nbops.registry import parse_model_ref

    parsed = parse_model_ref(ref)
    if parsed.version is None:
        raise NbopsUsageError(f"give a version: {parsed.name}:VERSION")
    return parsed.name, parsed.version


def cmd_models_status(args: argparse.Namespace) -> int:
    from nbops.registry import set_status

    name, number = _name_version(args.ref)
    version = set_status(name, number, args.status, reason=args.reason)
    print(f"{version.ref} is {version.status}")
    return 0


def cmd_models_tag(args: argparse.Namespace) -> int:
    from nbops.registry import tag_version

    name, number = _name_version(args.ref)
    pairs = {}
    for item in args.tags:
        key, sep, value = item.partition("=")
        if not sep:
            raise NbopsUsageError(f"tags are KEY=VALUE, got {item!r}")
        pairs[key] = value
    version = tag_version(name, number, pairs, remove=tuple(args.remove), reason=args.reason)
    shown = ", ".join(f"{k}={v}" for k, v in sorted(version.tags.items())) or "no tags"
    print(f"{version.ref}: {shown}")
    return 0


def cmd_models_archive(args: argparse.Namespace) -> int:
    from nbops.registry import archive_version

    name, number = _name_version(args.ref)
    version = archive_version(name, number, reason=args.reason, restore=args.restore)
    print(f"{version.ref} {'restored' if args.restore else 'archived'}")
    return 0


def cmd_models_delete(args: argparse.Namespace) -> int:
    from nbops.registry import delete_version

    name, number = _name_version(args.ref)
    version = delete_version(name, number, reason=args.reason)
    print(f"{version.ref} deleted")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``nbops models`` and its actions."""
    models = sub.add_parser(
        "models", help="registered models: list, show, aliases, status, tags, archive, delete"
    )
    actions = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = actions.add_parser("list", help="one line per model")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_models_list)
    p = actions.add_parser("show", help="one model version with its lineage and alias moves")
    p.add_argument("ref", metavar="NAME[:VERSION|@ALIAS]", help="the model version")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_models_show)
    p = actions.add_parser(
        "alias",
        help="point an alias (production, staging ...) at a validated version, or delete it",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION", nargs="?")
    p.add_argument("alias", metavar="ALIAS", nargs="?")
    p.add_argument("--reason", help="why the alias moves (kept in its history)")
    p.add_argument("--force", action="store_true", help="allow a version that is not validated")
    p.add_argument("--delete", action="store_true", help="remove the alias: --delete NAME ALIAS")
    p.set_defaults(func=cmd_models_alias)
    p = actions.add_parser("status", help="mark a version candidate, validated or rejected")
    p.add_argument("ref", metavar="NAME:VERSION")
    p.add_argument("status", choices=["candidate", "validated", "rejected"])
    p.add_argument("--reason", help="why (kept in the version's history)")
    p.set_defaults(func=cmd_models_status)
    p = actions.add_parser("tag", help="set KEY=VALUE tags on a version (--remove KEY)")
    p.add_argument("ref", metavar="NAME:VERSION")
    p.add_argument("tags", metavar="KEY=VALUE", nargs="*")
    p.add_argument("--remove", action="append", default=[], metavar="KEY")
    p.add_argument("--reason", help="why (kept in the version's history)")
    p.set_defaults(func=cmd_models_tag)
    p = actions.add_parser("archive", help="archive a version (refused while an alias uses it)")
    p.add_argument("ref", metavar="NAME:VERSION")
    p.add_argument("--restore", action="store_true", help="undo an archive")
    p.add_argument("--reason", help="why (kept in the version's history)")
    p.set_defaults(func=cmd_models_archive)
    p = actions.add_parser("delete", help="delete a version (refused while an alias uses it)")
    p.add_argument("ref", metavar="NAME:VERSION")
    p.add_argument("--reason", help="why (kept in the version's history)")
    p.set_defaults(func=cmd_models_delete)
