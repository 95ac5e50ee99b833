"""Sweeps that already exist: open one, join one as a worker, list a storage's sweeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbops.deps import require
from nbops.sweeps._errors import SweepError
from nbops.sweeps._spec import SPEC_ATTR, SweepSpec
from nbops.sweeps._storage import STOP_ATTR, open_storage, redact_url, resolve_url, sweep_name
from nbops.sweeps._sweep import Sweep


def load_sweep(name: str, storage: Any = None) -> Sweep:
    """Open an existing sweep (to inspect it, show its panel, or stop its workers).

    Raises:
        SweepError: No such sweep.
        MissingDependencyError: Optuna is not installed (``pip install "nbops[sweeps]"``).
    """
    optuna = require("optuna", feature="nbops.load_sweep")

    url, store = _existing_storage(name, storage)
    try:
        study = optuna.load_study(study_name=name, storage=store)
    except KeyError:
        shown = storage if isinstance(storage, str) else redact_url(url)
        raise SweepError(f"no sweep {name!r} in {redact_url(str(shown))}") from None
    attrs = dict(study.user_attrs.get(SPEC_ATTR) or {})
    spec = SweepSpec(
        study_name=name,
        storage=url,
        kind=attrs.get("kind", "trial"),
        target=attrs.get("target"),
        space=attrs.get("space"),
        metrics=tuple(attrs.get("metrics") or ()),
        directions=tuple(d.name.lower() for d in study.directions),
        deadline=attrs.get("deadline"),
        trusted=False,
    )
    loaded = Sweep(spec, study)
    loaded._loaded = True
    loaded._done.set()
    if study.user_attrs.get(STOP_ATTR) is not None:  # stopped by whoever ran it
        loaded._stop.set()
    return loaded


def _existing_storage(name: str, storage: Any) -> tuple[str, Any]:
    """The URL and opened storage of an existing sweep; creates nothing when there is none."""
    sweep_name(name)
    url = resolve_url(storage, name)
    if url.startswith("journal:") and not Path(url[len("journal:") :]).exists():
        where = storage if storage is not None else Path(url[len("journal:") :]).parent
        raise SweepError(
            f"no sweep {name!r} in {where}; give storage=... (--storage) for sweeps kept "
            "elsewhere, or list them with `nbops sweep status`"
        )
    return url, open_storage(url)


def join_sweep(name: str, storage: Any) -> int:
    """Run trials of an existing sweep in this process, as its creator asked (its stored
    objective, sampler and seed, pruner, budget, timeout, trial timeout and W&B mode);
    return how many this worker ran. Ctrl-C and SIGTERM stop it (its trial ends as FAIL).

    Raises:
        SweepError: No such sweep, or it cannot be joined from here.
        SweepInterrupted: The worker was stopped.
    """
    import signal

    from nbops.sweeps._worker import Interrupter, load_study, run_worker

    url, store = _existing_storage(name, storage)
    probe = load_study(SweepSpec(name, url, "trial"), store)
    spec = SweepSpec.from_attrs(probe.user_attrs.get(SPEC_ATTR) or {}, name, url)
    interrupter = Interrupter()
    previous = {
        sig: signal.signal(sig, interrupter.signal_handler)
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        return run_worker(spec, interrupter=interrupter, study=load_study(spec, store))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def list_sweeps(storage: Any = None) -> list[str]:
    """Names of the sweeps in ``storage`` (default: the journals under ``.nbops/sweeps/``)."""
    import optuna

    from nbops.sweeps._storage import sweeps_dir

    if storage is None:
        return sorted(p.stem for p in sweeps_dir().glob("*.journal"))
    url = resolve_url(storage, "_")
    if url.startswith("journal:") and not Path(url[len("journal:") :]).exists():
        return []
    names = optuna.get_all_study_names(open_storage(url))
    return sorted(names)
