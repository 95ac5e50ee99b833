"""``import nbops.capture`` stays standard-library only and cheap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbops

REPO = str(Path(next(iter(nbops.__path__))).parent)

CODE = """
import json, sys
before = set(sys.modules)
import nbops.capture
new = set(sys.modules) - before
print(json.dumps(sorted(new)))
"""


def test_import_capture_pulls_in_no_third_party_or_network_modules() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CODE],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": REPO},
        check=True,
    ).stdout
    new = json.loads(out)
    stdlib = set(sys.stdlib_module_names)
    foreign = [m for m in new if m.split(".")[0] not in stdlib and m.split(".")[0] != "nbops"]
    assert [m for m in foreign if not m.startswith("_")] == []
    # Loaded only when used: metadata scanning and HTTP.
    assert not {"importlib.metadata", "urllib.request", "http.client", "ssl"} & set(new)
