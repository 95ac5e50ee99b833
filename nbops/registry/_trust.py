"""Which types a model file may construct when it is loaded.

A skops file names every type and function it will construct. Loading trusts skops' own
default-trusted types (primitives, containers, scikit-learn estimators it knows) plus the types of
the libraries nbops ships support for, matched by module prefix; a few modules inside those
libraries that can run code or read files are excluded. Anything else is refused with the list of
untrusted types unless the caller names them in ``trusted=[...]``.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Module prefixes whose types a model file may use without the caller trusting them explicitly.
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "skops.", "xgboost.", "lightgbm.")
#: Standard-library containers a model may hold (no code runs when they are built).
TRUSTED_NAMES = frozenset({"collections.OrderedDict", "collections.Counter"})
#: Modules inside the trusted prefixes that can run code, spawn processes or read files.
DENIED_PREFIXES = (
    "numpy.testing.",
    "numpy.distutils.",
    "numpy.f2py.",
    "numpy.lib.npyio.",
    "numpy.load",
    "numpy.save",
    "numpy.fromfile",
    "numpy.memmap",
    "scipy._lib._testutils.",
    "scipy.io.",
    "sklearn.utils._testing.",
    "sklearn.externals.",
    "sklearn.datasets.",
)


def is_trusted_type(name: str) -> bool:
    """True when ``name`` (``module.Qualname``) is on nbops' allow-list and not excluded."""
    if any(name == p.rstrip(".") or name.startswith(p) for p in DENIED_PREFIXES):
        return False
    return name in TRUSTED_NAMES or name.startswith(TRUSTED_PREFIXES)


def untrusted(needed: Iterable[str], trusted: Iterable[str] = ()) -> list[str]:
    """The types of ``needed`` that neither the allow-list nor ``trusted`` cover, sorted."""
    extra = set(trusted)
    return sorted({t for t in needed if t not in extra and not is_trusted_type(t)})
