"""``.nbopsignore``: files inside dep and out folders that are not part of their hash.

Gitignore syntax (``#`` comments, ``!`` negation, ``*``, ``?``, ``**``, ``[...]``, a trailing
``/`` for folders only, a ``/`` inside a pattern anchoring it to the project root). Notebook
checkpoints, bytecode caches and Finder files are ignored by default.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

IGNORE_FILE = ".nbopsignore"
DEFAULT_PATTERNS = (".ipynb_checkpoints/", "__pycache__/", ".DS_Store")


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def _translate(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("/.*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def _rule(line: str) -> _Rule | None:
    line = line.rstrip("\n").rstrip()
    if not line or line.startswith("#"):
        return None
    negate = line.startswith("!")
    if negate:
        line = line[1:]
    if line.startswith("\\"):
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    body = _translate(line.lstrip("/"))
    regex = re.compile(("" if anchored else "(?:.*/)?") + body + r"\Z")
    return _Rule(regex, negate, dir_only)


@dataclass(frozen=True)
class IgnoreRules:
    """The rules of one project; paths are matched relative to ``root``."""

    root: Path | None = None
    rules: tuple[_Rule, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, lines: list[str], root: Path | None = None) -> IgnoreRules:
        """Rules from the default patterns followed by ``lines``."""
        parsed = [_rule(line) for line in [*DEFAULT_PATTERNS, *lines]]
        return cls(root, tuple(r for r in parsed if r is not None))

    @classmethod
    def load(cls, root: Path) -> IgnoreRules:
        """The default patterns plus ``<root>/.nbopsignore`` when there is one."""
        try:
            lines = (root / IGNORE_FILE).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        return cls.parse(lines, root)

    def relative(self, path: Path) -> str | None:
        """``path`` relative to the project root, or None when it lies outside."""
        if self.root is None:
            return None
        try:
            rel = os.path.relpath(os.path.abspath(path), os.path.abspath(self.root))
        except ValueError:
            return None
        return None if rel.startswith("..") else Path(rel).as_posix()

    def ignored(self, rel: str, *, is_dir: bool) -> bool:
        """Whether the path ``rel`` (posix, relative to the root) is ignored; last rule wins."""
        verdict = False
        for rule in self.rules:
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.match(rel):
                verdict = not rule.negate
        return verdict
