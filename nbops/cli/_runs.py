"""``nbops runs``: list, show and compare tracked runs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from nbops.cli._output import NbopsUsageError, fmt, print_json, table, when
from nbops.errors import NbopsError


def _store() -> Any:
    from nbops.store import open_store

    return open_store()


def _resolve(store: Any, run_id: str) -> str:
    if run_id == "latest":
        runs = store.list_runs()
        if not runs:
            raise NbopsError(f"the store at {store.location} has no runs yet")
        return str(runs[-1].id)
    return str(store.resolve_id(run_id))


def _run_document(store: Any, run_id: str) -> dict[str, Any]:
    record = store.get_run(run_id)
    metadata = store.get_metadata(run_id)
    return {
        "id": record.id,
        "name": record.name,
        "project": record.project,
        "group": record.group,
        "job_type": record.job_type,
        "status": record.status,
        "tags": list(record.tags),
        "notes": metadata.get("notes") or "",
        "start_time": record.start_time,
        "end_time": record.end_time,
        "params": store.get_params(run_id),
        "summary": store.get_summary(run_id),
        "metrics": store.last_metrics([run_id])[run_id],
        "artifacts": [
            {
                "name": a.name,
                "version": a.version,
                "type": a.type,
                "digest": a.digest,
                "size": a.size,
                "kind": a.kind,
            }
            for a in store.list_artifacts(run_id)
        ],
        "git": metadata.get("git"),
        "notebook": {k: v for k, v in (metadata.get("notebook") or {}).items() if k != "snapshot"},
        "provenance": metadata.get("provenance"),
        "error": metadata.get("error"),
        "wandb": metadata.get("wandb"),
        "datasets": metadata.get("datasets") or [],
        "models": metadata.get("models") or [],
        "reproduces": metadata.get("reproduces"),
        "reproductions": _reproductions(store, run_id),
        "executor": metadata.get("executor"),
    }


def _reproductions(store: Any, run_id: str) -> list[dict[str, Any]]:
    """The reproductions of a run (``nbops reproduce``), oldest first, with their verdicts."""
    found = []
    for record in store.list_runs():
        if record.job_type != "reproduction":
            continue
        link = store.get_metadata(record.id).get("reproduces") or {}
        if link.get("run") == run_id:
            found.append({"id": record.id, "verdict": link.get("verdict"), "status": record.status})
    return found


def cmd_runs_list(args: argparse.Namespace) -> int:
    from nbops.store import make_query

    sort = args.sort
    if args.desc:
        sort = "-" + (sort or "start_time").lstrip("-")
    query = make_query(
        status=args.status, tags=args.tag, where=args.filter, sort=sort, limit=args.limit
    )
    store = _store()
    rows = store.list_run_rows(args.project, query=query)
    records = [row.record for row in rows]
    last = {row.record.id: row.metrics for row in rows}
    if args.json:
        docs = [
            {
                "id": r.id,
                "name": r.name,
                "project": r.project,
                "group": r.group,
                "job_type": r.job_type,
                "status": r.status,
                "start_time": r.start_time,
                "end_time": r.end_time,
                "tags": list(r.tags),
                "params": row.params,
                "metrics": last[r.id],
            }
            for r, row in zip(records, rows, strict=True)
        ]
        print_json(docs, one_per_line=True)  # one run per line: json's fast C encoder
        return 0
    if not records:
        selected = args.project or args.status or args.tag or args.filter
        print(f"No runs in {store.location}" + (" match" if selected else ""))
        return 0
    rows = [
        [
            r.id,
            r.name,
            r.project,
            r.status,
            when(r.start_time),
            " ".join(f"{k}={fmt(v)}" for k, v in sorted(last[r.id].items())[:4]),
        ]
        for r in records
    ]
    print(table(["ID", "NAME", "PROJECT", "STATUS", "STARTED", "METRICS (last)"], rows))
    return 0


def cmd_runs_show(args: argparse.Namespace) -> int:
    store = _store()
    doc = _run_document(store, _resolve(store, args.run_id))
    if args.html:
        _write_page(store, doc["id"], args.html, args.rows)
    if args.json:
        print_json(doc)
        return 0
    print(f"Run {doc['id']} ({doc['name']})  project {doc['project']}  {doc['status']}")
    print(f"  started {when(doc['start_time'])}  ended {when(doc['end_time']) or '-'}")
    if doc["tags"]:
        print(f"  tags: {', '.join(doc['tags'])}")
    if doc["notes"]:
        print(f"  notes: {doc['notes']}")
    if doc["executor"]:
        where = doc["executor"]
        print(
            f"  executed on {where.get('url')}: worker {where.get('worker')} "
            f"({where.get('address')}), task {where.get('task')}, attempt {where.get('attempt')}"
        )
    if doc["error"]:
        err = doc["error"]
        cell = f"cell {err['cell']}" if err.get("cell") else f"In [{err.get('execution_count')}]"
        print(f"  failed in {cell}: {err.get('error')}")
    for title in ("params", "metrics", "summary"):
        if doc[title]:
            print(f"  {title}:")
            for key, value in sorted(doc[title].items()):
                print(f"    {key} = {fmt(value)}")
    for artifact in doc["artifacts"]:
        print(
            f"  artifact {artifact['name']}:v{artifact['version']} ({artifact['type']}, "
            f"{artifact['size']} bytes, "
            f"sha256 {artifact['digest'][:12]})"
        )
    for dataset in doc["datasets"]:
        print(
            f"  dataset {dataset.get('name')}@{str(dataset.get('hash'))[:12]} "
            f"({dataset.get('kind')}, {dataset.get('rows') or '?'} rows)"
        )
    for model in doc["models"]:
        print(f"  model {model.get('name')}:{model.get('version')}")
    if doc["reproduces"]:
        link = doc["reproduces"]
        print(f"  reproduces run {link.get('run')}: {link.get('verdict') or 'in progress'}")
    for rep in doc["reproductions"]:
        print(f"  reproduced by {rep['id']}: {rep['verdict'] or rep['status']}")
    if doc["git"]:
        git = doc["git"]
        print(
            f"  git {git.get('commit') or '(no commit)'} on {git.get('branch')}"
            + (" (dirty)" if git.get("dirty") else "")
        )
    print(f"  {_wandb_copy_line(store, doc)}")
    if doc["notebook"].get("path"):
        print(f"  notebook {doc['notebook']['path']}")
    if doc["provenance"]:
        prov = doc["provenance"]
        verdict = (
            "no hidden-state problems" if prov.get("reproducible") else "hidden-state problems"
        )
        print(f"  cell provenance: {prov.get('executions')} executions, {verdict}")
    return 0


def _write_page(store: Any, run_id: str, path: str, rows: int) -> None:
    """Write the run as a standalone HTML page (curves, media) to ``path``."""
    import sys
    from html import escape

    from nbops.fileio import write_atomic
    from nbops.tracking import get_run

    if rows < 0:
        raise NbopsUsageError(f"--rows must be 0 or more, not {rows}")
    run = get_run(run_id, store=store)
    title = escape(f"nbops run {run.name} ({run.id})")
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body>{run.to_html(rows=rows)}</body></html>"
    )
    write_atomic(path, page)
    print(f"wrote {path}", file=sys.stderr)


def _wandb_copy_line(store: Any, doc: dict[str, Any]) -> str:
    """The state of the run's W&B copy: complete / N of M rows / not mirrored, and why."""
    from nbops.mirror import COMPLETE, describe_copy

    wb = doc["wandb"]
    rows = None
    if isinstance(wb, dict) and wb.get("copy") != COMPLETE:
        rows = len({p.step for p in store.get_metrics(doc["id"])})
    line = describe_copy(wb, rows, live=doc.get("status") == "running")
    if isinstance(wb, dict) and wb.get("error"):
        line += f"; last error: {wb['error']}"
    return line


def cmd_runs_compare(args: argparse.Namespace) -> int:
    if len(args.run_ids) < 2:
        raise NbopsUsageError("runs compare needs at least two run ids")
    store = _store()
    docs = [_run_document(store, _resolve(store, rid)) for rid in args.run_ids]
    compared: list[dict[str, Any]] = []
    for section in ("params", "metrics"):
        keys = sorted({k for d in docs for k in d[section]})
        for key in keys:
            values = [d[section].get(key) for d in docs]
            differs = len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1
            compared.append({"section": section, "key": key, "values": values, "differs": differs})
    if args.json:
        print_json({"runs": [d["id"] for d in docs], "rows": compared})
        return 0
    header = ["", "KEY", *[d["id"] for d in docs]]
    rows = [
        [
            "*" if row["differs"] else "",
            f"{row['section']}.{row['key']}",
            *[fmt(v) if v is not None else "-" for v in row["values"]],
        ]
        for row in compared
    ]
    print(table(header, rows))
    print("(* marks values that differ)")
    return 0


def cmd_runs_tag(args: argparse.Namespace) -> int:
    from nbops.redact import scrub_text

    changes = [c for c in args.changes if c not in ("", "--")]
    if not changes:
        raise NbopsUsageError("give tags to change: nbops runs tag ID +TAG -TAG ...")
    empty = [c for c in changes if c in ("+", "-")]
    if empty:
        raise NbopsUsageError(f"empty tag {empty[0]!r}: write +TAG to add, -TAG to remove")
    store = _store()
    run_id = _resolve(store, args.run_id)
    tags = list(store.get_run(run_id).tags)
    for change in changes:
        name = scrub_text(change[1:] if change[0] in "+-" else change)
        if change.startswith("-"):
            tags = [t for t in tags if t != name]
        elif name not in tags:
            tags.append(name)
    from nbops.tracking import set_tags

    tags = list(set_tags(run_id, tags, store=store))
    print(f"{run_id}: tags {', '.join(tags) if tags else '(none)'}")
    return 0


def cmd_runs_delete(args: argparse.Namespace) -> int:
    import sys

    from nbops.tracking import delete_runs

    store = _store()
    ids = [_resolve(store, run_id) for run_id in args.run_ids]
    if not args.yes:
        if not sys.stdin.isatty():
            raise NbopsUsageError("confirm with --yes to delete runs without a terminal")
        answer = input(f"Delete {len(ids)} run(s) ({', '.join(ids)})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    deleted = delete_runs(ids, store=store)
    print(f"deleted {len(deleted)} run(s); `nbops gc` removes them and their objects")
    return 0


def cmd_runs_note(args: argparse.Namespace) -> int:
    from nbops.tracking import set_notes

    store = _store()
    run_id = _resolve(store, args.run_id)
    set_notes(run_id, " ".join(args.text), store=store)
    print(f"{run_id}: notes set")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``nbops runs`` and its actions."""
    runs = sub.add_parser("runs", help="list, show and compare tracked runs")
    actions = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    p = actions.add_parser("list", help="one line per run")
    p.add_argument("--project", help="only this project")
    p.add_argument(
        "--filter",
        action="append",
        metavar="COND",
        help='a condition on params or last metric values, e.g. "metrics.accuracy>0.9" or '
        '"params.lr=0.1" (operators = != > >= < <=; repeat to combine)',
    )
    p.add_argument("--status", action="append", help="only runs with this status (repeatable)")
    p.add_argument("--tag", action="append", help="only runs with this tag (repeat: all of them)")
    p.add_argument(
        "--sort",
        help="start_time (default), end_time, name, status, params.KEY or metrics.KEY; "
        "--sort=-KEY sorts descending",
    )
    p.add_argument("--desc", action="store_true", help="sort descending (as --sort=-KEY does)")
    p.add_argument("--limit", type=int, help="at most N runs (no --sort: the N most recent)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_runs_list)
    p = actions.add_parser("show", help="one run in full")
    p.add_argument("run_id", metavar="ID", help="run id, unique prefix, or 'latest'")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--html",
        metavar="PATH",
        help="also write an HTML page with the metric curves and logged media (images, tables, "
        "histograms)",
    )
    p.add_argument(
        "--rows", type=int, default=20, help="rows shown per logged table in --html (default 20)"
    )
    p.set_defaults(func=cmd_runs_show)
    p = actions.add_parser("compare", help="params and metrics side by side")
    p.add_argument("run_ids", nargs="+", metavar="ID", help="two or more run ids")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_runs_compare)
    p = actions.add_parser(
        "tag",
        help="add or remove tags",
        description="Add tags (+TAG or TAG) and remove tags (-TAG) of a run.",
    )
    p.add_argument("run_id", metavar="ID", help="run id, unique prefix, or 'latest'")
    p.add_argument(
        "changes", nargs=argparse.REMAINDER, metavar="+TAG|-TAG", help="tags to add or remove"
    )
    p.set_defaults(func=cmd_runs_tag)
    p = actions.add_parser(
        "delete",
        help="mark runs deleted (hidden; removed by nbops gc)",
        description="Mark runs deleted: listings hide them; `nbops gc` removes them.",
    )
    p.add_argument("run_ids", nargs="+", metavar="ID", help="run ids or unique prefixes")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_runs_delete)
    p = actions.add_parser("note", help="set a run's notes")
    p.add_argument("run_id", metavar="ID", help="run id, unique prefix, or 'latest'")
    p.add_argument("text", nargs="+", metavar="TEXT", help="the notes (replaces earlier ones)")
    p.set_defaults(func=cmd_runs_note)
