"""Decide whether the W&B mirror runs online, offline or not at all, without importing wandb."""

from __future__ import annotations

import logging
import netrc
import os
from collections.abc import Mapping
from urllib.parse import urlparse

from nbops.errors import InvalidValueError

logger = logging.getLogger(__name__)

MODES = ("online", "offline", "disabled")
DEFAULT_BASE_URL = "https://api.wandb.ai"

# wandb's own spellings, mapped onto the three nbops modes.
_ALIASES = {"dryrun": "offline", "run": "online", "shared": "online"}


def resolve_mode(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Return the mirror mode: ``"online"``, ``"offline"`` or ``"disabled"``.

    Order: ``explicit`` > ``NBOPS_WANDB`` > ``WANDB_MODE`` (``dryrun`` is offline, ``run`` online)
    > ``"offline"`` when no API key is configured > ``"online"``.

    Args:
        explicit: A mode given by the caller; ``None`` or ``""`` means "not given".
        environ: Environment to read; defaults to ``os.environ``.

    Raises:
        InvalidValueError: A given mode is not one of the valid choices.
    """
    env = os.environ if environ is None else environ
    for source, value in (
        ("mode", explicit),
        ("NBOPS_WANDB", env.get("NBOPS_WANDB")),
        ("WANDB_MODE", env.get("WANDB_MODE")),
    ):
        if value is not None and value.strip():
            return _normalise(source, value)
    return "online" if api_key_configured(env) else "offline"


def _normalise(source: str, value: str) -> str:
    mode = value.strip().lower()
    mode = _ALIASES.get(mode, mode)
    if mode not in MODES:
        raise InvalidValueError(
            f"invalid W&B mirror mode {value!r} (from {source}); "
            f"choose one of {', '.join(MODES)} (wandb's 'dryrun' and 'run' are also accepted)"
        )
    return mode


def base_url(environ: Mapping[str, str] | None = None) -> str:
    """Return the W&B server URL (``WANDB_BASE_URL`` or the public cloud)."""
    env = os.environ if environ is None else environ
    return (env.get("WANDB_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


def netrc_path(environ: Mapping[str, str] | None = None) -> str:
    """Return the netrc file wandb reads credentials from (``NETRC`` or ``~/.netrc``)."""
    env = os.environ if environ is None else environ
    if env.get("NETRC"):
        return env["NETRC"]
    home = env.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".netrc")


def api_key_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Return True when ``WANDB_API_KEY`` is set or the netrc file has an entry for the server."""
    env = os.environ if environ is None else environ
    if env.get("WANDB_API_KEY", "").strip():
        return True
    host = urlparse(base_url(env)).hostname or ""
    path = netrc_path(env)
    if not host or not os.path.isfile(path):
        return False
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (netrc.NetrcParseError, OSError) as exc:
        logger.warning("cannot read netrc file %s: %s", path, type(exc).__name__)
        return False
    return bool(entry and entry[2])
