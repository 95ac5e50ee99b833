"""How a model server process imports the libraries of the models it loads (its cold start).

A server loads scikit-learn models from skops files and answers requests. Most of the time it
needs to start goes to importing what scikit-learn and skops pull in for notebooks, not for
``predict``. :func:`import_skops_for_serving` leaves three of those out:

- skops' scan of every scikit-learn module (its default trust list: nbops checks types itself);
- pandas (and pyarrow, through it) is *deferred*, not removed: ``sklearn.utils.fixes`` imports it
  only to keep an optional reference it never uses, and :func:`defer_imports` tells that one
  module pandas is absent. Whatever else needs pandas (the ``pandas`` codec, models fitted on
  DataFrames, Parquet prediction logs) imports it the usual way when it first needs it;
- SciPy's rewriting of several hundred docstrings at import (numpydoc sections parsed and
  re-rendered) reads them as empty, as it does under ``python -OO``.

Each changes the whole process, so only processes that do nothing but serve call it (``nbops
serve`` and the child of ``nbops.serve()``); a notebook or script that loads models keeps
skops' own defaults, pandas and SciPy's docstrings.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec

logger = logging.getLogger(__name__)

#: Modules a server defers, and the modules that import them without needing them: only those
#: are told the module is absent. scikit-learn's ``fixes`` keeps ``pd = None`` when pandas is
#: missing and uses it nowhere else.
SERVING_DEFERRED = ("pandas",)
SERVING_DEFERRING_IMPORTERS = ("sklearn.utils.fixes",)

_lock = threading.Lock()


class _Deferrer:
    """A meta path finder (``sys.meta_path``) refusing ``modules`` to ``importers`` only."""

    def __init__(self, modules: Sequence[str], importers: Sequence[str]) -> None:
        self.modules = frozenset(modules)
        self.importers = frozenset(importers)
        self.refused: list[tuple[str, str]] = []

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] not in self.modules:
            return None
        importer = _importing_module()
        if importer not in self.importers:
            return None  # the other finders import it as usual
        self.refused.append((fullname, importer))
        raise ModuleNotFoundError(f"No module named {fullname!r} (deferred)", name=fullname)


def _importing_module() -> str:
    """The module whose code runs the ``import`` being resolved (importlib's frames skipped)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = str(frame.f_globals.get("__name__", ""))
        if not name.startswith(("importlib", "_frozen_importlib", __name__)):
            return name
        frame = frame.f_back  # type: ignore[assignment]
    return ""


@contextlib.contextmanager
def defer_imports(modules: Iterable[str], importers: Iterable[str]) -> Iterator[list[str]]:
    """Within the block, ``importers`` see ``modules`` as not installed; nothing else changes.

    An ``import`` of one of ``modules`` (or a submodule) run by the code of one of ``importers``
    raises :class:`ModuleNotFoundError`, which that code handles as an optional dependency;
    the same import from any other module (in any thread) imports the module as usual. A module
    already imported is never refused (Python finds it in ``sys.modules`` first). Leaving the
    block removes the finder: later imports from anywhere get the real module.

    Yields:
        A list that, when the block ends, holds the importers that were refused
        (``["sklearn.utils.fixes"]``).
    """
    finder = _Deferrer(tuple(modules), tuple(importers))
    refused: list[str] = []
    sys.meta_path.insert(0, finder)
    try:
        yield refused
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
        refused.extend(sorted({importer for _, importer in finder.refused}))


@contextlib.contextmanager
def _scipy_docstrings_as_optimized() -> Iterator[None]:
    """Within the block, the docstrings SciPy rewrites at import read as empty (``python -OO``).

    SciPy's decorators (array API notes, ``axis``/``nan_policy`` parameters, deprecations)
    parse the numpydoc sections of each function they wrap, at import, to add to them. Under
    ``-OO`` docstrings are empty and SciPy runs the same code on nothing; here its parser is
    handed an empty docstring instead of reading the function's. Functions imported in the
    block get short docstrings; their behaviour and signatures do not change. Does nothing when
    SciPy is absent or its parser is not where it used to be.
    """
    try:
        from scipy._lib import _docscrape
    except ImportError:
        yield
        return
    numpy_doc = getattr(_docscrape, "NumpyDocString", None)
    function_doc = getattr(_docscrape, "FunctionDoc", None)
    if numpy_doc is None or function_doc is None:
        yield
        return
    init, function_init = numpy_doc.__init__, function_doc.__init__

    def empty(self: Any, docstring: str, config: Any = None) -> None:
        init(self, "", config)

    def function_empty(
        self: Any, func: Any, role: str = "func", doc: str | None = None, config: Any = None
    ) -> None:
        function_init(self, func, role, "" if doc is None else doc, config)

    numpy_doc.__init__, function_doc.__init__ = empty, function_empty
    try:
        yield
    finally:
        numpy_doc.__init__, function_doc.__init__ = init, function_init


def _import_skops_io() -> None:
    """Import ``skops.io`` with scikit-learn's estimator scan replaced by an empty list."""
    import sklearn.utils

    scan = getattr(sklearn.utils, "all_estimators", None)
    if scan is None:
        importlib.import_module("skops.io")
        return
    sklearn.utils.all_estimators = lambda *args, **kwargs: []
    try:
        importlib.import_module("skops.io")
    finally:
        sklearn.utils.all_estimators = scan


def import_skops_for_serving() -> None:
    """Import ``skops.io`` and scikit-learn for a model server's cold start (see the module).

    On import skops builds its default trust list from ``sklearn.utils.all_estimators()``,
    which imports every public scikit-learn module (pytest included). nbops does not need that
    list: :func:`nbops.registry.load_model` asks skops which types a file needs beyond it and
    judges those itself by module prefix (:mod:`nbops.registry._trust`), so every
    scikit-learn type a file needs is still checked. Without the list skops' *own* defaults are
    narrower (stricter) for the whole process. scikit-learn is imported with pandas deferred
    (:data:`SERVING_DEFERRED`) and SciPy's docstrings unparsed.

    Only for processes that load models through nbops alone (the model server). Does nothing
    when skops is already imported; if the import fails with the deferrals, it is retried
    without them (logged), so a library version this does not know only costs time.
    """
    with _lock:
        if "skops.io" in sys.modules:
            return
        try:
            import numpy  # noqa: F401 - imported first: nothing of numpy is deferred

            with (
                defer_imports(SERVING_DEFERRED, SERVING_DEFERRING_IMPORTERS) as refused,
                _scipy_docstrings_as_optimized(),
            ):
                _import_skops_io()
        except Exception as exc:  # noqa: BLE001 - missing, or a version this does not know
            first: Exception = exc
        else:
            logger.debug("deferred %s for %s", ", ".join(SERVING_DEFERRED), ", ".join(refused))
            return
        try:
            _import_skops_io()
        except ImportError:
            return  # skops or scikit-learn is missing: load_model says which extra to install
        logger.warning(
            "importing scikit-learn with deferred imports failed (%s); imported it fully", first
        )
