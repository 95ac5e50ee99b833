"""``nbops.serve`` is callable however the package was imported; options are checked early."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nbops.serve import RolloutError, ServeError, model_specs, parse_routes, serve
from tests.conftest import subprocess_env


@pytest.mark.parametrize(
    "code",
    [
        "import nbops; f = nbops.serve",
        "from nbops.serve import predictions; import nbops; f = nbops.serve",
        "import nbops.serve; import nbops; f = nbops.serve",
    ],
)
def test_nbops_serve_is_the_function_in_every_import_order(code: str) -> None:
    check = code + "\nimport inspect\nassert callable(f)\nprint(inspect.signature(f.__call__))"
    done = subprocess.run(
        [sys.executable, "-c", check],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_routes_and_specs_are_validated() -> None:
    assert [str(r) for r in parse_routes("production=90, v3=10")] == ["production=90", "3=10"]
    for bad in ("production=x", "production=0", "a=1,a=2", "../x=1", "p=-1"):
        with pytest.raises((RolloutError, ValueError)):
            parse_routes(bad)
    specs = model_specs(["a@production", "b:2"], ["b:2=50,candidate=50"], ["a:candidate"])
    assert [str(r) for r in specs[1].routes] == ["2=50", "candidate=50"]
    assert specs[0].shadow == "candidate" and specs[1].shadow is None
    with pytest.raises(ServeError, match="name one as MODEL"):
        model_specs(["a", "b"], ["production=1"])
    with pytest.raises(ServeError, match="given twice"):
        model_specs(["a", "a@candidate"])
    with pytest.raises(ServeError, match="unknown serve option"):
        serve("a", colour="red")


def test_server_handle_renders_in_a_notebook() -> None:
    from nbops.serve import Server

    class Done:
        pid = 7

        def poll(self) -> int:
            return 0

    server = Server(Done(), "http://127.0.0.1:1/<x>", None)  # type: ignore[arg-type]
    html = server._repr_html_()
    assert "&lt;x&gt;" in html and "<x>" not in html and "stopped" in html
    assert repr(server) == "<nbops Server http://127.0.0.1:1/<x> pid=7 stopped>"
