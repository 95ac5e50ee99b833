"""The gate between a server's predictions and its first import of pandas.

A server process starts without pandas (``nbops.registry.import_skops_for_serving``) and
imports it when something first needs it: the ``pandas`` codec, a model fitted on a DataFrame,
the prediction log. Python puts a module in ``sys.modules`` before running it, and scikit-learn
looks pandas up there on every ``predict`` (is ``X`` a DataFrame?): a prediction on another
thread while pandas is half imported fails with "partially initialized module 'pandas' has no
attribute 'DataFrame'". So that first import runs alone: it waits for the predictions in
progress and holds new ones back until it is done (a few hundred milliseconds, once).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from types import ModuleType


class Gate:
    """Any number of ``shared()`` holders at once, or one ``alone()``; a waiting ``alone()``
    goes before new ``shared()`` callers. Not reentrant: never ask for ``alone()`` while holding
    either."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._alone = False
        self._waiting = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._alone or self._waiting:
                self._cond.wait()
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                if not self._shared:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            try:
                while self._alone or self._shared:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._alone = True
        try:
            yield
        finally:
            with self._cond:
                self._alone = False
                self._cond.notify_all()


#: The gate of this process: predictions hold it shared until pandas is fully imported.
GATE = Gate()
#: Whether pandas is fully imported. A process that imported it before serving (a notebook
#: calling ``create_app``) needs no gate at all; a server process sets it on its first import.
_pandas_ready = "pandas" in sys.modules


def pandas_ready() -> bool:
    """Whether pandas is fully imported, so predictions need no gate any more."""
    return _pandas_ready


def import_pandas() -> ModuleType:
    """``pandas``; the first call imports it alone (no prediction runs meanwhile)."""
    global _pandas_ready
    if not _pandas_ready:
        with GATE.alone():
            import pandas  # noqa: F401 - the import is the point

            _pandas_ready = True
    return sys.modules["pandas"]


@contextlib.contextmanager
def predicting(first: bool = False) -> Iterator[None]:
    """Hold the gate around a model call; ``first``: a model's first call runs alone, since it
    may import pandas itself (a pipeline with ``set_output(transform="pandas")``)."""
    global _pandas_ready
    if _pandas_ready:
        yield
    elif not first:
        with GATE.shared():
            yield
    else:
        with GATE.alone():
            yield
            _pandas_ready = "pandas" in sys.modules  # imported in full by now: nothing ran beside
