"""One way to find the IPython shell, which never imports IPython itself."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from nbops.shell import current_shell, in_jupyter
from tests.conftest import subprocess_env


def test_the_running_shell_is_found(ipython: Any) -> None:
    assert current_shell() is ipython
    assert not in_jupyter()  # a terminal shell has no kernel to show widgets through


def test_no_shell_and_no_ipython_import_outside_ipython() -> None:
    code = (
        "import sys\nfrom nbops.shell import current_shell, in_jupyter\n"
        "print(current_shell(), in_jupyter(), 'IPython' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env()
    )
    assert out.stdout.split() == ["None", "False", "False"], out.stderr
