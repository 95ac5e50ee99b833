"""Trial budgets claimed atomically in the storage, with no placeholder trials.

The budget of a sweep is a number of trials recorded in the study (``nbops.n_trials``): the
trials counted so far plus the ``n_trials`` of the latest ``nbops.sweep`` call. A worker
takes a slot under a lock held in the storage itself, so however many workers on however
many machines join, exactly the budget runs:

- journal files and SQLite: an ``fcntl`` lock on a file next to the journal/database;
- PostgreSQL: a session advisory lock; MySQL/MariaDB: ``GET_LOCK``;
- memory: a lock of this process.

Retries of trials whose worker died (WAITING trials naming a ``failed_trial``) do not count
against the budget: they replace the trial that was lost. Trials a user enqueued
(``study.enqueue_trial``) do count, and run before new ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nbops.sweeps import _optuna
from nbops.sweeps._storage import JOURNAL_PREFIX, MEMORY, with_driver

logger = logging.getLogger(__name__)

BUDGET_ATTR = "nbops.n_trials"
_memory_lock = threading.Lock()
_engines: dict[str, Any] = {}
_engines_lock = threading.Lock()


def is_retry(frozen: Any) -> bool:
    return "failed_trial" in frozen.system_attrs


def counted(trials: list[Any]) -> int:
    """Trials that used a budget slot: started, and not a retry of a lost one."""
    from optuna.trial import TrialState

    return sum(1 for t in trials if t.state != TrialState.WAITING and not is_retry(t))


@contextlib.contextmanager
def study_lock(url: str, study_name: str) -> Iterator[None]:
    """Hold the claim lock of ``study_name`` in the storage at ``url``."""
    if url == MEMORY:
        with _memory_lock:
            yield
        return
    scheme = url.split("://", 1)[0].split("+", 1)[0] if "://" in url else ""
    if url.startswith(JOURNAL_PREFIX) or scheme == "sqlite":
        path = url[len(JOURNAL_PREFIX) :] if url.startswith(JOURNAL_PREFIX) else _sqlite_path(url)
        with _file_lock(Path(f"{path}.{study_name}.claim-lock")):
            yield
        return
    if scheme in ("postgresql", "postgres", "mysql", "mariadb"):
        with _database_lock(url, scheme, study_name):
            yield
        return
    logger.warning("no claim lock for %s storages: budgets are exact per machine only", scheme)
    with _file_lock(Path.home() / ".cache" / "nbops" / f"{study_name}.claim-lock"):
        yield


def _sqlite_path(url: str) -> str:
    path = url.split("://", 1)[1]
    return path[1:] if path.startswith("/") else path


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with _memory_lock, open(path, "a+b") as fh:  # flock is per open file, threads share it
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _engine(url: str) -> Any:
    import sqlalchemy

    with _engines_lock:
        if url not in _engines:
            _engines[url] = sqlalchemy.create_engine(
                with_driver(url), poolclass=sqlalchemy.pool.NullPool
            )
        return _engines[url]


@contextlib.contextmanager
def _database_lock(url: str, scheme: str, study_name: str) -> Iterator[None]:
    import sqlalchemy

    key = int.from_bytes(hashlib.blake2b(study_name.encode(), digest_size=8).digest(), "big")
    key -= 2**63  # a signed bigint
    with _memory_lock, _engine(url).connect() as conn:
        if scheme.startswith("postgres"):
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            unlock = sqlalchemy.text("SELECT pg_advisory_unlock(:k)")
            params: dict[str, Any] = {"k": key}
        else:
            name = f"nbops-{study_name}"[:64]
            conn.execute(sqlalchemy.text("SELECT GET_LOCK(:n, -1)"), {"n": name})
            unlock = sqlalchemy.text("SELECT RELEASE_LOCK(:n)")
            params = {"n": name}
        try:
            yield
        finally:
            conn.execute(unlock, params)
            conn.commit()


def set_budget(study: Any, url: str, n_trials: int | None) -> None:
    """Make the budget ``n_trials`` more than the trials counted so far (None: no budget)."""
    with study_lock(url, study.study_name):
        used = counted(study.get_trials(deepcopy=False))
        study.set_user_attr(BUDGET_ATTR, None if n_trials is None else used + n_trials)


def claim(
    study: Any,
    url: str,
    seed: int | None,
    cap: int | None = None,
    user_attrs: dict[str, Any] | None = None,
) -> Any:
    """Take the next trial of the study, or None when the budget is spent.

    A retry of a lost trial comes first, then a trial a user enqueued, then a new one. The
    sampler is seeded from ``seed`` and the slot's index, so a seeded sweep draws the same
    parameters however many workers share it. ``cap`` bounds the budget further (the size
    of a grid). ``user_attrs`` are written with a new trial, in the same storage call.
    """
    from optuna.trial import TrialState

    with study_lock(url, study.study_name):
        trials = study.get_trials(deepcopy=False)
        waiting = [t for t in trials if t.state == TrialState.WAITING]
        for frozen in sorted(waiting, key=lambda t: (not is_retry(t), t.number)):
            if is_retry(frozen):
                trial = _optuna.claim_waiting(study, frozen)
                if trial is not None:
                    return trial
        used = counted(trials)
        budget = study.user_attrs.get(BUDGET_ATTR)
        limits = [b for b in (budget, cap) if isinstance(b, int)]
        if limits and used >= min(limits):
            return None
        for frozen in waiting:
            if not is_retry(frozen):
                trial = _optuna.claim_waiting(study, frozen)
                if trial is not None:
                    return trial
        if seed is not None:
            _optuna.reseed(study.sampler, _optuna.derive_seed(seed, "slot", used))
        return _optuna.create_running_trial(study, dict(user_attrs or {}))
