"""routes.yaml as parsed data plus where each key sits in the file.

``read_yaml(text, env)`` parses the text into plain Python data, remembering the
line of every mapping key and sequence item (``Source.line_of(path)``), and
expands ``${VAR}`` / ``${VAR:-default}`` in scalar *values* only, after parsing:
a ``${VAR}`` in a comment or a key is left alone. An unquoted value that is a
whole ``${PORT}`` is re-read as YAML would read it (``8080`` is a number, an empty
value is null). It never reads the process environment itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from strangler.errors import ConfigError, Problem

Path = tuple[str | int, ...]
"""A key path into the data: ``("routes", 0, "match", "path")``."""

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}\n]*))?\}")
# Each ${...} is swapped for a placeholder of plain-scalar characters before parsing,
# so ``{token: ${TOKEN}}`` stays valid YAML in a flow mapping; values get the
# expansion after parsing, keys and comments never do.
_HOLE = re.compile(r"__strangler_var_(\d+)__")
_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def interpolate(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Replace ``${VAR}`` / ``${VAR:-default}``; returns the text and the names unset."""
    missing: list[str] = []

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        missing.append(name)
        return ""

    return _VAR.sub(sub, text), missing


def parse_key(key: str) -> Path:
    """``"routes[1].match.path"`` -> ``("routes", 1, "match", "path")``."""
    return tuple(int(i) if i else name for i, name in _PART.findall(key))


@dataclass(frozen=True)
class Unset:
    """A ``${VAR}`` with no value and no default, and where it was used."""

    name: str
    path: Path
    line: int


@dataclass(frozen=True)
class Source:
    data: Any
    lines: Mapping[Path, int] = field(default_factory=dict)
    unset: tuple[Unset, ...] = ()

    def line_of(self, path: Path) -> int | None:
        """The line of ``path``, or of its nearest ancestor present in the file."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def locate(self, problems: tuple[Problem, ...] | list[Problem]) -> list[Problem]:
        """The problems with their line numbers filled in (from their key paths)."""
        return [
            p if p.line is not None else replace(p, line=self.line_of(parse_key(p.key)))
            for p in problems
        ]


class _Reader:
    def __init__(self, loader: yaml.SafeLoader, env: Mapping[str, str], holes: list[str]) -> None:
        self.loader = loader
        self.env = env
        self.holes = holes
        self.lines: dict[Path, int] = {}
        self.unset: list[Unset] = []

    def walk(self, node: yaml.Node, path: Path) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    key.value = self.restore(key.value)
                name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark)
                here = (*path, name)
                self.lines.setdefault(here, key.start_mark.line + 1)
                self.walk(value, here)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.lines.setdefault((*path, i), item.start_mark.line + 1)
                self.walk(item, (*path, i))
        elif isinstance(node, yaml.ScalarNode) and _HOLE.search(node.value):
            self.expand(node, path)

    def restore(self, text: str) -> str:
        return _HOLE.sub(lambda m: self.holes[int(m.group(1))], text)

    def expand(self, node: yaml.ScalarNode, path: Path) -> None:
        value, missing = interpolate(self.restore(node.value), self.env)
        line = node.start_mark.line + 1
        self.unset += [Unset(name, path, line) for name in missing]
        node.value = value
        if node.style is None:  # plain: read the result as YAML would have
            tag: str = self.loader.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
            node.tag = tag


def read_yaml(text: str, env: Mapping[str, str], source: str = "") -> Source:
    """Parse ``text``; raises ConfigError (with the line) if it is not valid YAML."""
    holes: list[str] = []

    def hole(match: re.Match[str]) -> str:
        holes.append(match.group(0))
        return f"__strangler_var_{len(holes) - 1}__"

    loader = yaml.SafeLoader(_VAR.sub(hole, text))
    try:
        node = loader.get_single_node()
        if node is None:
            return Source(None)
        reader = _Reader(loader, env, holes)
        reader.walk(node, ())
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        # one line: what is wrong and where (PyYAML's own text spans several lines)
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        what = " ".join(
            filter(None, [getattr(exc, "context", None), getattr(exc, "problem", None)])
        )
        where = f" (column {mark.column + 1})" if mark is not None else ""
        message = f"not valid YAML: {what or exc}{where}"
        raise ConfigError([Problem("", message, line)], source) from exc
    finally:
        loader.dispose()
    return Source(data, reader.lines, tuple(reader.unset))
