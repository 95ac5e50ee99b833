"""The server's imports: deferred modules, SciPy's docstrings as under -OO, and the fallback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbops.registry import defer_imports, log_model
from tests.conftest import subprocess_env


@pytest.fixture
def packages(tmp_path: Path) -> Iterator[Path]:
    """``optdep`` (the deferred module) and two modules that import it only if installed."""
    root = tmp_path / "pkgs"
    (root / "optdep").mkdir(parents=True)
    (root / "optdep" / "__init__.py").write_text("VALUE = 42\n")
    (root / "optdep" / "sub.py").write_text("VALUE = 43\n")
    for name in ("uses_a", "uses_b", "uses_c"):
        (root / f"{name}.py").write_text(
            "try:\n    import optdep.sub as dep\nexcept ImportError:\n    dep = None\n"
        )
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.split(".")[0] in ("optdep", "uses_a", "uses_b")]:
            del sys.modules[name]
        sys.modules.pop("uses_c", None)


def test_defer_imports_refuses_the_named_importers_only(packages: Path) -> None:
    got: dict[str, object] = {}

    def other_thread() -> None:
        import uses_c  # type: ignore[import-not-found]

        got["c"] = uses_c.dep

    finders = list(sys.meta_path)
    with defer_imports(["optdep"], ["uses_a"]) as refused:
        import uses_a  # type: ignore[import-not-found]

        assert uses_a.dep is None  # told the module is not installed
        assert "optdep" not in sys.modules
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        import uses_b  # type: ignore[import-not-found]

    assert got["c"] is not None and got["c"].VALUE == 43  # type: ignore[attr-defined]
    assert uses_b.dep is not None and uses_b.dep.VALUE == 43  # imported as usual
    assert refused == ["uses_a"]
    assert sys.meta_path == finders  # the finder is gone
    import optdep  # type: ignore[import-not-found]

    assert optdep.VALUE == 42


def _run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _register() -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    log_model(LogisticRegression(max_iter=500).fit(X, y), "frame")  # fitted with column names


_SERVING = """
import sys, warnings
from nbops.registry import import_skops_for_serving, load_model

import_skops_for_serving()
assert "skops.io" in sys.modules and "sklearn.utils.fixes" in sys.modules
assert "pandas" not in sys.modules and "pyarrow" not in sys.modules, "pandas was imported"
assert sys.modules["sklearn.utils.fixes"].pd is None
assert type(sys.meta_path[0]).__name__ != "_Deferrer"
import scipy.stats
assert "Parameters" not in (scipy.stats.ttest_ind.__doc__ or "")  # parsed as empty (-OO)
assert abs(scipy.stats.ttest_ind([1.0, 2.0, 3.0, 4.0], [2.0, 3.5, 4.0, 6.0]).pvalue - {p}) < 1e-9
model = load_model("frame")
import pandas as pd  # a model fitted on a DataFrame: the first need
from sklearn.datasets import load_iris
X, y = load_iris(return_X_y=True, as_frame=True)
with warnings.catch_warnings():
    warnings.simplefilter("error")  # scikit-learn sees the column names
    got = model.predict(X.iloc[::10]).tolist()
assert got == {expected}, got
try:
    model.predict(X.iloc[::10][list(reversed(X.columns))])
except ValueError as exc:
    assert "feature names" in str(exc), exc
else:
    raise SystemExit("columns in the wrong order were accepted")
print("ok")
"""


def test_the_serving_import_defers_pandas_and_models_fitted_on_frames_still_work() -> None:
    import scipy.stats
    from sklearn.datasets import load_iris

    from nbops.registry import load_model

    _register()
    X, _ = load_iris(return_X_y=True, as_frame=True)
    expected = load_model("frame").predict(X.iloc[::10]).tolist()
    p = scipy.stats.ttest_ind([1.0, 2.0, 3.0, 4.0], [2.0, 3.5, 4.0, 6.0]).pvalue
    done = _run(_SERVING.format(expected=expected, p=repr(float(p))))
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_a_process_that_does_not_serve_keeps_pandas_and_docstrings() -> None:
    _register()
    done = _run(
        """
        import sys
        from nbops.registry import load_model
        load_model("frame")
        import pandas, scipy.stats
        assert sys.modules["sklearn.utils.fixes"].pd is pandas
        assert "Parameters" in scipy.stats.ttest_ind.__doc__
        assert not any(type(f).__name__ == "_Deferrer" for f in sys.meta_path)
        print("ok")
        """
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_a_library_the_deferral_breaks_is_imported_fully() -> None:
    """A SciPy whose docstring parser no longer takes what nbops hands it: the import is
    retried the usual way (with a warning), not left half done."""
    _register()
    done = _run(
        """
        import contextlib, logging, sys
        logging.basicConfig(level=logging.WARNING)
        from nbops.registry import _serving, import_skops_for_serving, load_model

        @contextlib.contextmanager
        def broken():
            from scipy._lib import _docscrape
            init = _docscrape.FunctionDoc.__init__
            def fail(self, *args, **kwargs):
                raise TypeError("a newer parser")
            _docscrape.FunctionDoc.__init__ = fail
            try:
                yield
            finally:
                _docscrape.FunctionDoc.__init__ = init

        _serving._scipy_docstrings_as_optimized = broken
        import_skops_for_serving()
        import scipy.stats
        assert "Parameters" in scipy.stats.ttest_ind.__doc__  # imported the usual way
        from sklearn.datasets import load_iris
        X, _ = load_iris(return_X_y=True, as_frame=True)
        assert load_model("frame").predict(X.iloc[:2]).shape == (2,)
        print("ok")
        """
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert "imported it fully" in done.stderr and "a newer parser" in done.stderr
