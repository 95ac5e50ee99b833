"""Where studies live: an Optuna journal file under ``.nbops/`` by default, or an RDB URL.

Storage strings:

- ``None``: the journal file ``<store>/sweeps/<study>.journal`` (several processes, one machine);
- ``journal:PATH`` or a path ending in ``.journal``: a journal file elsewhere;
- ``sqlite:///PATH``, ``postgresql://...``, ``mysql://...``: an Optuna ``RDBStorage``, with
  heartbeats so trials of a killed worker are failed (and retried) after the grace period;
- ``memory``: in-process only (function objectives, ``jobs=1``).
"""

from __future__ import annotations

import logging
import os
import re
import socket
from pathlib import Path
from typing import Any

from nbops.config import store_path
from nbops.deps import require
from nbops.sweeps._errors import SweepNameError, SweepStorageError

logger = logging.getLogger(__name__)

JOURNAL_PREFIX = "journal:"
STOP_ATTR = "nbops.stop"
MEMORY = "memory"
_RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")
_CONNECT_TIMEOUT = 5


def sweep_name(name: object) -> str:
    """Validate a sweep (study) name with the one naming rule (it names files)."""
    from nbops.errors import InvalidValueError
    from nbops.names import check_name

    try:
        return check_name(name, "sweep name")
    except InvalidValueError as exc:
        raise SweepNameError(str(exc), name) from None


def sweeps_dir() -> Path:
    """Folder of the default journals, trial notebooks and worker logs."""
    return store_path() / "sweeps"


def resolve_url(storage: Any, study_name: str) -> str:
    """Return the storage string workers use (an absolute journal path, an RDB URL, memory)."""
    if storage is None:
        return JOURNAL_PREFIX + str(sweeps_dir() / f"{study_name}.journal")
    if not isinstance(storage, (str, os.PathLike)):
        url = getattr(storage, "url", None)
        if isinstance(url, str):
            return url
        raise SweepStorageError(
            f"cannot hand storage {type(storage).__name__} to worker processes; pass a URL "
            "(sqlite:///..., postgresql://...), a .journal path, or None for the default"
        )
    text = os.fspath(storage)
    if text in (MEMORY, ":memory:"):
        return MEMORY
    if text.startswith(JOURNAL_PREFIX):
        return JOURNAL_PREFIX + str(Path(text[len(JOURNAL_PREFIX) :]).expanduser().resolve())
    if text.endswith(".journal") and "://" not in text:
        return JOURNAL_PREFIX + str(Path(text).expanduser().resolve())
    scheme = text.split("://", 1)[0].split("+", 1)[0] if "://" in text else ""
    if scheme not in _RDB_SCHEMES:
        raise SweepStorageError(
            f"unknown storage {redact_url(text)!r}: use None (a journal under .nbops/), a "
            "path ending in .journal, sqlite:///FILE, postgresql://USER@HOST:PORT/DB or memory"
        )
    return text


def redact_url(url: str) -> str:
    """Hide the password of ``scheme://user:password@host``."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def is_rdb(url: str) -> bool:
    return "://" in url


def open_storage(
    url: str, *, heartbeat_interval: int | None = None, grace_period: int | None = None
) -> Any:
    """Open the Optuna storage behind ``url``; fail within seconds when it cannot be reached.

    RDB storages get heartbeats: a trial whose worker stops beating for ``grace_period``
    seconds is failed by the next worker that looks and re-queued with the same parameters.
    """
    optuna = require("optuna", feature="sweep storages")

    if url == MEMORY:
        return optuna.storages.InMemoryStorage()
    if url.startswith(JOURNAL_PREFIX):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url[len(JOURNAL_PREFIX) :])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise SweepStorageError(f"cannot open the sweep journal {path}: {exc}") from None
    engine_kwargs: dict[str, Any] = {}
    url = with_driver(url)
    scheme = url.split("://", 1)[0]
    if scheme.startswith(("postgres", "mysql", "mariadb")):
        engine_kwargs["connect_args"] = {"connect_timeout": _CONNECT_TIMEOUT}
    heartbeat: dict[str, Any] = {}
    if heartbeat_interval:
        import warnings

        from optuna.storages import RetryHeartbeatStaleTrialCallback

        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        heartbeat = {
            "heartbeat_interval": int(heartbeat_interval),
            "grace_period": int(grace_period or 2 * heartbeat_interval),
            "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=3),
        }
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
    except ImportError as exc:
        raise SweepStorageError(
            f"the driver for {redact_url(url)} is not installed ({exc}); for PostgreSQL "
            "install psycopg2-binary (pip install 'nbops[postgres]')"
        ) from None
    except Exception as exc:  # noqa: BLE001 - sqlalchemy.exc.OperationalError and friends
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SweepStorageError(
            f"cannot reach the sweep storage {redact_url(url)}: {first}; check that the "
            "database server runs and the URL (host, port, user, database) is right"
        ) from None


def with_driver(url: str) -> str:
    """Pick psycopg2 for ``postgresql://`` when psycopg 3 (SQLAlchemy 2.1's default) is absent."""
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg") is None:
        require("psycopg2", feature="a PostgreSQL sweep storage")
        return f"postgresql+psycopg2{sep}{rest}"
    return url


def this_host() -> str:
    return socket.gethostname()


def fail_dead_local_trials(study: Any, pids: set[int] | None = None) -> list[int]:
    """Fail RUNNING trials whose worker on this machine has died and retry them; return their
    numbers.

    A worker on the same host checks the recorded pid (journal storages have no heartbeat, and
    on a database this notices a death at once instead of after the grace period). A killed
    worker counts as dead whether or not its parent has reaped it. ``pids``, when given, are
    workers known to be dead (the coordinator's own). The retry is a WAITING trial with the
    same parameters, as Optuna's heartbeat retry makes, so whichever way a death is noticed
    the trial runs again; only the process that moves the trial to FAIL enqueues it.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    from nbops.process import pid_alive
    from nbops.sweeps import _optuna

    host = this_host()
    failed: list[int] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get("nbops.pid")
        if not isinstance(pid, int) or trial.user_attrs.get("nbops.host") != host:
            continue
        dead = pid in pids if pids is not None else not pid_alive(pid)
        if not dead:
            continue
        try:  # before the state: a finished trial's attributes are frozen
            _optuna.set_user_attr(
                study, trial, "nbops.error", f"worker process {pid} on {host} died"
            )
        except UpdateFinishedTrialError:
            continue  # another worker got there first
        if _optuna.fail_running(study, trial):
            if not study.user_attrs.get(STOP_ATTR):  # a stopped sweep leaves no queued work
                retry_lost_trial(study, trial)
            failed.append(trial.number)
    if failed:
        logger.warning(
            "trials %s of sweep %s lost their worker; they run again with the same parameters",
            failed,
            study.study_name,
        )
    return failed


def retry_lost_trial(study: Any, trial: Any, max_retry: int = 3) -> None:
    """Enqueue ``trial`` again with its parameters, as Optuna's heartbeat retry does (same
    ``failed_trial``/``retry_history`` system attributes), without nbops' per-run attributes."""
    import optuna

    system_attrs: dict[str, Any] = {
        "failed_trial": trial.number,
        "retry_history": [],
        **trial.system_attrs,
    }
    system_attrs["retry_history"] = [*system_attrs["retry_history"], trial.number]
    if len(system_attrs["retry_history"]) > max_retry:
        return
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs={k: v for k, v in trial.user_attrs.items() if not k.startswith("nbops.")},
            system_attrs=system_attrs,
        )
    )
