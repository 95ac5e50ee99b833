"""``nbops install-extension``: load nbops in every IPython session of a profile."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError
from nbops.fileio import write_atomic

EXTENSION = "nbops"


def profile_config(profile: str = "default") -> Path:
    """Return the profile's ``ipython_config.json`` (IPython reads it beside ``.py`` configs)."""
    base = Path(os.environ.get("IPYTHONDIR") or Path.home() / ".ipython")
    return base / f"profile_{profile}" / "ipython_config.json"


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        config = json.loads(path.read_text() or "{}")
    except ValueError as exc:
        raise NbopsError(f"{path} is not valid JSON ({exc}); fix or remove it, then retry") from exc
    if not isinstance(config, dict):
        raise NbopsError(f"{path} does not hold a JSON object; fix or remove it, then retry")
    return config


def install_extension(profile: str = "default") -> Path:
    """Add nbops to ``InteractiveShellApp.extensions`` of the profile; return the config path."""
    path = profile_config(profile)
    config = _load(path)
    extensions = config.setdefault("InteractiveShellApp", {}).setdefault("extensions", [])
    if EXTENSION not in extensions:
        extensions.append(EXTENSION)
        write_atomic(path, json.dumps(config, indent=2) + "\n")
    return path


def uninstall_extension(profile: str = "default") -> Path:
    """Remove nbops from the profile's extensions, leaving everything else as it was."""
    path = profile_config(profile)
    config = _load(path)
    shell_app = config.get("InteractiveShellApp", {})
    extensions = shell_app.get("extensions", [])
    if EXTENSION in extensions:
        shell_app["extensions"] = [e for e in extensions if e != EXTENSION]
        write_atomic(path, json.dumps(config, indent=2) + "\n")
    return path
