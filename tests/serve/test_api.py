"""``nbops.serve`` is callable however the package was imported; options are checked early."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


@pytest.mark.postgres
@pytest.mark.slow
def test_a_server_opens_the_team_store_it_was_given(
    postgres_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PostgreSQL store passed to serve() is the one the server process reads models from,
    not a SQLite store in its local folder (nor the default store of the environment)."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from nbops.registry import log_model, set_alias
    from tests.serve.conftest import call, pd_request

    monkeypatch.setenv("NBOPS_STORE", postgres_store_url)
    monkeypatch.setenv("NBOPS_BLOBS", str(tmp_path / "team-blobs"))
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    log_model(model, "team-iris", input_example=X.head())
    set_alias("team-iris", 1, "production", store=postgres_store_url)
    for name in ("NBOPS_STORE", "NBOPS_BLOBS"):  # the server learns both from the store given
        monkeypatch.delenv(name)
    server = serve("team-iris@production", store=postgres_store_url, start_timeout=120)
    try:
        status, body, _ = call(f"{server.url}/v2/models/team-iris/infer", pd_request(X.head(3)))
        assert status == 200, body
        assert body["model_version"] == "1"
        assert body["outputs"][0]["data"] == model.predict(X.head(3)).tolist()
    finally:
        server.stop()
