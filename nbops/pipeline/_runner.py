"""``nbops run``: execute stale stages in dependency order, in parallel where possible."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nbops.cluster import parse_executor
from nbops.config import default_project, store_path, store_url
from nbops.errors import NbopsError
from nbops.pipeline._dask import DaskStages, executor_options, needs_remote, open_transfer_remote
from nbops.pipeline._hashing import HashCache
from nbops.pipeline._ignore import IgnoreRules
from nbops.pipeline._lock import LockEntry, read_lock, update_lock
from nbops.pipeline._matrix import group_of, pinned_members, split_pins
from nbops.pipeline._outputs import missing_blobs, restore_outs
from nbops.pipeline._runlock import RunLock
from nbops.pipeline._secrets import Sealer
from nbops.pipeline._spec import Stage, load_spec
from nbops.pipeline._stage import Report, RunContext, StageResult, execute_stage
from nbops.pipeline._status import Fingerprint, fingerprint, input_reasons, out_reasons
from nbops.pipeline._sync import fetch_outs, fetch_records
from nbops.pipeline._sync import push as push_outputs
from nbops.pipeline._validate import validate
from nbops.store import open_store

logger = logging.getLogger(__name__)

#: how a stale stage is executed: in a kernel here, or as a task on a cluster
RunStage = Callable[[RunContext, Stage, Fingerprint, tuple[str, ...]], StageResult]


@dataclass(frozen=True)
class PipelineResult:
    """Every selected stage's result, in the order they were decided."""

    id: str
    stages: tuple[StageResult, ...]

    @property
    def ok(self) -> bool:
        return all(s.outcome in ("ran", "cached", "would-run") for s in self.stages)

    def __getitem__(self, name: str) -> StageResult:
        return next(s for s in self.stages if s.name == name)


class PipelineFailed(NbopsError):
    """One or more stages failed (the result is attached)."""

    def __init__(self, result: PipelineResult) -> None:
        self.result = result
        failed = [s for s in result.stages if s.outcome in ("failed", "interrupted")]
        lines = "\n".join(
            f"  {s.message}"
            if (s.message or "").startswith(f"{s.name}: ")
            else f"  {s.name}: {s.message}"
            for s in failed
        )
        super().__init__(f"{len(failed)} stage(s) failed:\n{lines}")


def parse_overrides(pairs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["train.n_estimators=200"]`` -> ``{"train": {"n_estimators": 200}}`` (YAML values)."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        stage, dot, name = key.partition(".")
        if not sep or not dot or not stage or not name:
            raise NbopsError(f"-p {pair!r}: write STAGE.KEY=VALUE, e.g. -p train.max_depth=6")
        out.setdefault(stage, {})[name] = _override_value(pair, value) if value else ""
    return out


def _override_value(pair: str, value: str) -> Any:
    import yaml

    from nbops.pipeline._yaml import yaml_load

    try:
        return yaml_load(value)
    except (yaml.YAMLError, ValueError) as exc:
        raise NbopsError(f"-p {pair!r}: the value is not valid YAML ({exc})") from None


def run_pipeline(
    root: str | os.PathLike[str] | None = None,
    targets: Sequence[str] = (),
    *,
    force: bool = False,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    jobs: int | None = None,
    dry_run: bool = False,
    wait: float | None = None,
    downstream: bool = False,
    single: bool = False,
    pull: bool = False,
    push: bool = False,
    remote: str | None = None,
    executor: str | None = None,
    shared_disk: bool | None = None,
    retries: int | None = None,
    report: Report = print,
) -> PipelineResult:
    """Run what is stale among ``targets`` (default: all) and what they need.

    ``downstream``: the targets and every stage after them, not what they need (their deps are
    used as they are on disk). ``single``: exactly the targets, forced, without their upstream.
    ``pull``: fetch the run cache of the remote (``remote``, default: the default remote) first,
    and the objects of any stage restored from it; ``push``: push after a successful run.

    ``executor``: where stages run, ``local`` (threads here, the default) or ``dask://HOST:PORT``
    (one Dask task per stage); it overrides ``pipeline.executor`` of ``nbops.yaml``, as do
    ``shared_disk`` (the workers see this project and its store at the same paths; otherwise
    files travel through the default remote) and ``retries`` (of a task that raised; default 1).
    ``jobs``: stages at once (default: 1 locally, the number of workers on Dask).

    One run at a time per project: another ``nbops run`` holding the project's run lock makes
    this one fail at once with :class:`PipelineBusyError`, or wait up to ``wait`` seconds
    (``float("inf")``: as long as it takes). A dry run takes no lock.

    Raises:
        PipelineBusyError: another run holds the project's run lock.
        SpecError: ``nbops.yaml`` is invalid (nothing ran).
        InvalidValueError: the executor URL is not understood (nothing ran).
        ExecutorConfigError: a Dask executor without a remote or a shared disk (nothing ran).
        ClusterUnavailableError: no Dask scheduler answers (nothing ran).
        PipelineFailed: a stage failed; independent stages still finished, and the lock kept
            the last good entry of each failed stage.
        KeyboardInterrupt: stopped by Ctrl-C after killing running kernels; completed stages
            are in the lock.
    """
    from nbops.config import find_project_root
    from nbops.tracking import new_run_id

    if executor is not None:
        parse_executor(executor)  # a bad URL is an error before anything else
    base = Path(root) if root is not None else find_project_root()
    spec = load_spec(base, strict=False)
    groups = spec.raw.get("stages") or {}
    pins, overrides = split_pins(groups, overrides or {})
    if pins:  # -p train.lr=0.05 on an axis addresses train@lr=0.05 (made if not listed)
        spec = load_spec(base, strict=False, pins=pins)
    addressed = {g: pinned_members(g, groups[g], pin) for g, pin in pins.items()}
    overrides = {
        member: values
        for name, values in overrides.items()
        for member in addressed.get(name) or _expand_targets(spec.stages, [name])
    }  # -p train.depth=4 sets it on every stage of a foreach/matrix group
    graph = validate(spec, overrides, kernels=True)
    options = executor_options(spec, executor, shared_disk, retries)
    passed_over = {
        s for g, members in addressed.items() for s in spec.stages if group_of(s) == g and "@" in s
    } - {m for members in addressed.values() for m in members}
    asked = _expand_targets(spec.stages, targets)
    targets = [t for t in asked if t not in passed_over]
    if asked and not targets:
        pinned = ", ".join(m for members in addressed.values() for m in members)
        raise NbopsError(f"-p addresses {pinned}, not {', '.join(asked)}; drop one of them")
    unknown = [t for t in targets if t not in spec.stages]
    if unknown:
        raise NbopsError(f"no stage named {', '.join(unknown)}; stages: {', '.join(spec.stages)}")
    if jobs is not None and jobs < 1:
        raise NbopsError("--jobs must be at least 1")
    if (downstream or single) and not targets:
        raise NbopsError("--downstream and --single need the stage(s) to start from")
    if downstream and single:
        raise NbopsError("--downstream and --single cannot be combined")
    store_dir = store_path(base)
    if single:
        selected, force = set(targets), True
    elif downstream:
        selected = set(targets).union(*(graph.downstream(t) for t in targets))
    else:
        selected = graph.closure(targets or set(spec.stages) - passed_over)
    order = graph.topological(selected)
    store = open_store(store_url(base))
    with contextlib.ExitStack() as held:
        if not dry_run:
            held.enter_context(RunLock(base, store_dir, wait=wait))
        remote_needed = pull or push or needs_remote(options, dry_run)
        shared = (
            held.enter_context(open_transfer_remote(base, store_dir, remote, options))
            if remote_needed
            else None
        )
        ctx = RunContext(
            spec=spec,
            graph=graph,
            overrides=overrides,
            pipeline_id=new_run_id(),
            report=report,
            cache=HashCache(store_dir / "hashcache.sqlite", IgnoreRules.load(base)),
            lock=dict(read_lock(base)),  # read under the run lock: no other run changes it
            store_dir=store_dir,
            project=str(spec.raw.get("project") or default_project(base)),
            store=store,
            blobs=store.blobs,
            runcache=store.run_cache,
            sealer=Sealer.for_store(store_dir),
            remote=shared if pull else None,
        )
        run_stage: RunStage = execute_stage
        threads = jobs or 1
        if not options.executor.is_local and not dry_run:
            cluster = held.enter_context(DaskStages(ctx, options, shared))
            run_stage = cluster.run
            workers = len(cluster.workers())
            threads = cluster.limit(jobs or max(1, workers))
            report(f"running stages on {options.executor.url} ({workers} workers)")
        if pull and shared is not None:
            fetched = fetch_records(shared, ctx.runcache)
            report(f"pulled {fetched} run cache record(s) from {shared.url}")
        try:
            results = _schedule(
                ctx, order, selected, force=force, jobs=threads, dry_run=dry_run, run=run_stage
            )
        finally:
            ctx.cache.save()
        result = PipelineResult(ctx.pipeline_id, tuple(results[name] for name in order))
        if push and shared is not None and result.ok and not dry_run:
            in_lock = [n for n in order if n in read_lock(base)]
            sent = push_outputs(base, store, shared, in_lock, report)
            report(f"pushed {sent.objects} object(s) and {sent.records} record(s) to {shared.url}")
    if not result.ok:
        raise PipelineFailed(result)
    if not dry_run and not targets and any(s.outcome == "ran" for s in result.stages):
        _write_card(ctx)
    return result


def _expand_targets(stages: Mapping[str, Stage], targets: Sequence[str]) -> list[str]:
    """Stage names as given, a foreach/matrix group (``train``) as all of its stages."""
    out: list[str] = []
    for target in targets:
        members = [s for s in stages if "@" in s and group_of(s) == target]
        out += members if target not in stages and members else [target]
    return list(dict.fromkeys(out))


def _write_card(ctx: RunContext) -> None:
    """Write the model card named in ``pipeline.card``, from the tracked evidence."""
    if not (ctx.spec.raw.get("pipeline") or {}).get("card"):
        return
    from nbops.cards import write_pipeline_card

    written = write_pipeline_card(ctx.spec.root, store=ctx.store_dir)
    if written is not None:
        shown = " and ".join(os.path.relpath(p, ctx.spec.root) for p in written if p is not None)
        ctx.report(f"model card written to {shown}")


def _schedule(
    ctx: RunContext,
    order: list[str],
    selected: set[str],
    *,
    force: bool,
    jobs: int,
    dry_run: bool,
    run: RunStage = execute_stage,
) -> dict[str, StageResult]:
    """Decide each stage when its upstream stages are done; hand the stale ones to ``run`` (the
    executor: in-process kernels, or a Dask task per stage) on up to ``jobs`` threads."""
    results: dict[str, StageResult] = {}
    pending = list(order)
    running: dict[Future[StageResult], str] = {}
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="nbops-stage")
    try:
        while pending or running:
            for name in list(pending):
                needs = [u for u in ctx.graph.upstream[name] if u in selected]
                if not all(u in results for u in needs) or len(running) >= jobs:
                    continue
                pending.remove(name)
                decided = _decide(ctx, name, needs, results, force=force, dry_run=dry_run)
                if isinstance(decided, StageResult):
                    results[name] = decided
                    continue
                ctx.report(f"{name:<14} running   ({'; '.join(decided[1])})")
                running[pool.submit(run, ctx, ctx.spec.stages[name], *decided)] = name
            if running:
                done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    results[name] = _finished(ctx, name, future)
    except KeyboardInterrupt:
        ctx.stopping.set()
        ctx.report("Interrupted: stopping running stages (completed stages are kept)")
        _kill_kernels(ctx)
        for future, name in running.items():
            try:
                results[name] = future.result(timeout=30)
            except Exception:
                logger.warning("stage %s did not stop cleanly", name, exc_info=True)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def _decide(
    ctx: RunContext,
    name: str,
    needs: list[str],
    results: Mapping[str, StageResult],
    *,
    force: bool,
    dry_run: bool,
) -> StageResult | tuple[Fingerprint, tuple[str, ...]]:
    broken = [u for u in needs if results[u].outcome in ("failed", "skipped", "interrupted")]
    if broken:
        ctx.report(f"{name:<14} skipped   (upstream {', '.join(broken)} failed)")
        return StageResult(name, "skipped", message=f"upstream {', '.join(broken)} failed")
    stage = ctx.spec.stages[name]
    fp = fingerprint(ctx.spec, stage, {name: _stage_overrides(ctx, stage)}, ctx.cache)
    entry = ctx.lock.get(name)
    inputs = input_reasons(fp, entry, ctx.sealer)
    inputs += [
        f"upstream stage {u!r} will re-run" for u in needs if results[u].outcome == "would-run"
    ]
    outs = out_reasons(ctx.spec, stage, entry, ctx.cache)
    if force:
        return fp, ("forced", *inputs, *outs)
    record = ctx.runcache.get(fp.key(ctx.sealer))
    if not inputs and not outs:
        if stage.sweep and entry is not None and entry.sweep:
            ctx.handoff[name] = dict(entry.sweep["best_params"])
        run = record["run"] if record else None
        ctx.report(f"{name:<14} cached    (unchanged{f' since run {run}' if run else ''})")
        return StageResult(name, "cached", run_id=run, metrics=entry.metrics if entry else {})
    restored = _restore(ctx, stage, fp, entry if not inputs else None, record, dry_run=dry_run)
    if restored is not None:
        return restored
    reasons = tuple(inputs + outs)
    if dry_run:
        ctx.report(f"{name:<14} would run ({'; '.join(reasons)})")
        return StageResult(name, "would-run", reasons=reasons)
    return fp, reasons


def _restore(
    ctx: RunContext,
    stage: Stage,
    fp: Fingerprint,
    entry: LockEntry | None,
    record: Mapping[str, Any] | None,
    *,
    dry_run: bool,
) -> StageResult | None:
    """Restore the stage's outs instead of running it, when nothing it reads changed (``entry``)
    or the run cache holds an execution with these exact inputs (``record``) and every object
    needed is in the local object store."""
    if entry is None and record is not None:
        try:
            entry = LockEntry(**record["entry"])
        except (KeyError, TypeError):
            entry = None
        source = f"the run cache (run {record.get('run')})"
    else:
        source = "the cache (the inputs are unchanged)"
    if entry is None:
        return None
    if missing_blobs(entry.outs, ctx.blobs) and ctx.remote is not None and not dry_run:
        try:
            fetch_outs(ctx.remote, entry.outs, ctx.blobs, ctx.report)
        except (NbopsError, OSError) as exc:
            ctx.report(f"{stage.name:<14} cannot pull its outs ({exc}); it will run")
    if missing_blobs(entry.outs, ctx.blobs):
        return None
    run = record.get("run") if record else None
    if dry_run:
        ctx.report(f"{stage.name:<14} would restore its outs from {source}")
        return StageResult(stage.name, "cached", run_id=run, metrics=entry.metrics)
    restore_outs(ctx.spec.root, entry.outs, ctx.blobs)
    if stage.sweep and entry.sweep:
        ctx.handoff[stage.name] = dict(entry.sweep["best_params"])
    previous = ctx.lock.get(stage.name)
    # sealed with this machine's key, so a record pulled from elsewhere verifies here
    fresh = replace(
        entry, params=ctx.sealer.lockable(fp.params, previous.params if previous else None)
    )
    with ctx.lock_mutex:
        update_lock(ctx.spec.root, {stage.name: fresh}, ctx.spec.stages)
        ctx.lock[stage.name] = fresh
    ctx.report(f"{stage.name:<14} restored  ({len(entry.outs)} out(s) from {source})")
    return StageResult(
        stage.name, "cached", run_id=run, message=f"restored from {source}", metrics=entry.metrics
    )


def _stage_overrides(ctx: RunContext, stage: Stage) -> dict[str, Any]:
    """``-p`` overrides of the stage, plus the best parameters of the sweep stages before it
    for the names its parameters cell declares."""
    overrides = dict(ctx.overrides.get(stage.name, {}))
    handed = {
        key: value
        for upstream in ctx.graph.closure([stage.name]) - {stage.name}
        for key, value in ctx.handoff.get(upstream, {}).items()
    }
    if handed:
        from nbops.execute import NotebookError, declared_parameters

        try:
            declared = declared_parameters(ctx.spec.root / stage.notebook)
        except NotebookError:
            declared = {}
        overrides = {**{k: v for k, v in handed.items() if k in declared}, **overrides}
    return overrides


def _finished(ctx: RunContext, name: str, future: Future[StageResult]) -> StageResult:
    try:
        result = future.result()
    except Exception as exc:  # noqa: BLE001 - a bug or an infrastructure failure: the stage's
        result = StageResult(name, "failed", message=f"{type(exc).__name__}: {exc}")
    if result.outcome == "ran":
        ctx.report(
            f"{name:<14} ran       in {result.seconds:.1f} s (run {result.run_id}; "
            f"notebook {result.executed})"
        )
    else:
        ctx.report(
            f"{name:<14} {result.outcome.upper():<9} after {result.seconds:.1f} s: {result.message}"
        )
    return result


def _kill_kernels(ctx: RunContext) -> None:
    from nbops.execute import kill_kernel

    for manager in list(ctx.kernels.values()):
        kill_kernel(manager)
    for stop in ctx.on_stop:
        try:
            stop()
        except Exception:
            logger.warning("cannot stop the remote stages", exc_info=True)
