"""YAML as ML users write it: YAML 1.2 numbers (``1e-3`` is the float 0.001, not a string as
in PyYAML's YAML 1.1) and duplicate keys refused instead of the last one silently winning."""

from __future__ import annotations

import re
from typing import Any

_FLOAT_TAG = "tag:yaml.org,2002:float"
# YAML 1.2 core schema floats, plus PyYAML's 1.1 forms that 1.2 also reads as floats
_FLOAT = re.compile(
    r"""^(?:
        [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
      | [-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
      | [-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
      | [-+]?\.(?:inf|Inf|INF)
      | \.(?:nan|NaN|NAN)
    )$""",
    re.X,
)


class DuplicateKeyError(ValueError):
    """A mapping names the same key twice."""

    def __init__(self, key: Any, line: int, first: int) -> None:
        self.key = key
        self.line = line
        self.first = first
        super().__init__(f"{key!r} is defined twice (lines {first} and {line})")


_loader: Any = None


def _make_loader() -> Any:
    import yaml
    from yaml.constructor import ConstructorError

    class Loader(yaml.SafeLoader):
        """SafeLoader with YAML 1.2 floats and no duplicate keys."""

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for key_node, _value in node.value:
                    try:
                        key = self.construct_object(key_node, deep=True)
                        hash(key)
                    except (TypeError, ConstructorError):
                        continue
                    line = key_node.start_mark.line + 1
                    if key in seen and key != "<<":
                        raise DuplicateKeyError(key, line, seen[key])
                    seen[key] = line
            return super().construct_mapping(node, deep=deep)

    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != _FLOAT_TAG]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(_FLOAT_TAG, _FLOAT, list("-+0123456789."))
    return Loader


def yaml_load(text: str) -> Any:
    """Parse YAML text safely with YAML 1.2 numbers; raise :class:`DuplicateKeyError` on a key
    given twice and ``yaml.YAMLError`` on invalid YAML."""
    import yaml

    global _loader
    if _loader is None:
        _loader = _make_loader()
    return yaml.load(text, Loader=_loader)  # noqa: S506 (a SafeLoader subclass)
