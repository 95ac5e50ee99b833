"""Every use of Optuna's private names in nbops, in one place, checked by :func:`check`.

Optuna has no public way to reach a study's storage, a trial's storage id, to turn a
specific WAITING trial into a running :class:`optuna.Trial`, or to seed a sampler's random
state with a given seed (``reseed_rng()`` draws a random one). nbops needs each of these;
they live here and nowhere else, and ``tests/sweeps/test_optuna_compat.py`` calls
:func:`check` so an Optuna release that renames any of them fails loudly, naming it.
The supported range is bounded in ``pyproject.toml`` (``optuna>=4.0,<6``).
"""

from __future__ import annotations

import hashlib
from typing import Any

SUPPORTED = ((4, 0), (6, 0))  # [low, high) as in pyproject.toml


def storage_of(study: Any) -> Any:
    """The ``BaseStorage`` behind a study."""
    return study._storage


def study_id(study: Any) -> int:
    return int(study._study_id)


def trial_id(trial: Any) -> int:
    """Storage id of an ``optuna.Trial`` or ``FrozenTrial`` (the number is per study)."""
    return int(trial._trial_id)


def trial_of(study: Any, trial_id: int) -> Any:
    """An ``optuna.Trial`` for a trial id this process owns (RUNNING)."""
    import optuna

    return optuna.Trial(study, trial_id)


def create_running_trial(study: Any, user_attrs: dict[str, Any]) -> Any:
    """``study.ask()`` with the trial's user attributes written in the same storage call
    (each extra call is a write, and on a journal file an fsync)."""
    from optuna.trial import TrialState, create_trial

    study._thread_local.cached_all_trials = None  # as Study.ask does: sample on fresh trials
    template = create_trial(state=TrialState.RUNNING, user_attrs=user_attrs)
    created = storage_of(study).create_new_trial(study_id(study), template_trial=template)
    return trial_of(study, created)


def claim_waiting(study: Any, frozen: Any) -> Any:
    """Move one WAITING trial to RUNNING (compare-and-set); the ``Trial``, or None if taken."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = storage_of(study)
    try:
        if not storage.set_trial_state_values(trial_id(frozen), state=TrialState.RUNNING):
            return None
    except UpdateFinishedTrialError:
        return None
    return trial_of(study, trial_id(frozen))  # Trial() calls the sampler's before_trial


def fail_running(study: Any, frozen: Any) -> bool:
    """Move a RUNNING trial to FAIL; False if another process finished it first."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        return bool(storage_of(study).set_trial_state_values(trial_id(frozen), TrialState.FAIL))
    except UpdateFinishedTrialError:
        return False


def set_user_attr(study: Any, frozen: Any, key: str, value: Any) -> None:
    """Set a user attribute of any trial of the study (not only one this process runs)."""
    storage_of(study).set_trial_user_attr(trial_id(frozen), key, value)


def reseed(sampler: Any, seed: int) -> None:
    """Seed every random state of ``sampler`` (and of the samplers inside it) from ``seed``.

    Optuna's own ``reseed_rng()`` reseeds from the OS, so parallel workers differ but a
    seeded sweep is no longer reproducible; this makes each draw a function of ``seed``.
    """
    from optuna.samplers import BaseSampler
    from optuna.samplers._lazy_random_state import LazyRandomState

    found = False
    for index, (name, value) in enumerate(sorted(vars(sampler).items())):
        if isinstance(value, LazyRandomState):
            value.rng.seed(derive_seed(seed, name) % 2**32)
            found = True
        elif isinstance(value, BaseSampler) and index < 50:
            reseed(value, derive_seed(seed, name))
            found = True
    if not found:
        sampler.reseed_rng()


def seed_of(sampler: Any) -> int:
    """A seed drawn from a copy of the sampler's random state: fixed when it was seeded."""
    import numpy as np
    from optuna.samplers._lazy_random_state import LazyRandomState

    for _, value in sorted(vars(sampler).items()):
        if isinstance(value, LazyRandomState) and value._rng is not None:
            copy = np.random.RandomState()
            copy.set_state(value._rng.get_state())
            return int(copy.randint(0, 2**31 - 1))
    seed = getattr(sampler, "_seed", None)
    if isinstance(seed, int):
        return seed
    return int(np.random.SeedSequence().entropy % (2**31 - 1))  # type: ignore[operator]


def grid_of(sampler: Any) -> dict[str, list[Any]] | None:
    """The search space of a ``GridSampler`` (None for other samplers)."""
    from optuna.samplers import GridSampler

    if not isinstance(sampler, GridSampler):
        return None
    return {k: list(v) for k, v in sampler._search_space.items()}


def derive_seed(seed: int, *parts: object) -> int:
    """A 31-bit seed that depends only on ``seed`` and ``parts``."""
    text = ":".join([str(seed), *map(str, parts)]).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") % (2**31 - 1)


def check() -> list[str]:
    """Return what this module relies on that the installed Optuna lacks (empty when fine)."""
    import optuna
    from optuna.samplers import GridSampler, RandomSampler, TPESampler

    problems: list[str] = []
    version = tuple(int(p) for p in optuna.__version__.split(".")[:2])
    if not SUPPORTED[0] <= version < SUPPORTED[1]:
        problems.append(f"optuna {optuna.__version__} is outside the supported range {SUPPORTED}")
    study = optuna.create_study()
    for name in ("_storage", "_study_id", "_thread_local"):
        if not hasattr(study, name):
            problems.append(f"optuna.Study.{name}")
    frozen = study.ask()
    if not hasattr(frozen, "_trial_id"):
        problems.append("optuna.Trial._trial_id")
    if not hasattr(getattr(study, "_thread_local", None), "cached_all_trials"):
        problems.append("optuna.Study._thread_local.cached_all_trials")
    made = create_running_trial(study, {"k": 1})
    if made.user_attrs != {"k": 1} or study.trials[-1].state.name != "RUNNING":
        problems.append("BaseStorage.create_new_trial(template_trial=RUNNING trial)")
    study.tell(made, 1.0)
    study.tell(frozen, 1.0)
    if not hasattr(study.trials[0], "_trial_id"):
        problems.append("optuna.trial.FrozenTrial._trial_id")
    try:
        from optuna.samplers._lazy_random_state import LazyRandomState
    except ImportError:
        problems.append("optuna.samplers._lazy_random_state.LazyRandomState")
    else:
        for cls in (RandomSampler, TPESampler):
            if not any(isinstance(v, LazyRandomState) for v in vars(cls(seed=1)).values()):
                problems.append(f"{cls.__name__} keeps no LazyRandomState")
        if getattr(LazyRandomState(), "_rng", 0) is not None:
            problems.append("LazyRandomState._rng")
    grid = GridSampler({"x": [1, 2]})
    if getattr(grid, "_search_space", None) != {"x": [1, 2]}:
        problems.append("GridSampler._search_space")
    return problems
