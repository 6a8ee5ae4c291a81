"""Comparison paths as routes.yaml writes them, parsed once and validated.

``status``; ``header.<name>`` (case-insensitive; ``header.*`` any header);
``query.<name>`` (redaction only); ``body`` then any of ``.key``, ``.*`` (one
key), ``.**`` (any depth, zero or more keys or items), ``[*]`` (any list item),
``[3]`` (one item). :func:`parse` turns a path into a :class:`FieldPath` or
raises :class:`PathError` saying what is wrong, so ``strangler check`` rejects
``createdAt``, ``bodyx.id`` or ``body..id`` with the reason. :class:`PathTrie`
holds many compiled paths with a payload each and is stepped key by key while a
document is walked, so only the branches a rule names are followed.

This module lives beside ``config`` (which validates with it) and imports
nothing from the shadow package. Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Generic, TypeVar

ANY_KEY = "*"
ANY_ITEM = "[*]"
ANY_DEPTH = "**"

_TOKEN = re.compile(r"\.([^.\[\]]*)|\[([^\]]*)\]")
_ROOTS = ("body", "header", "query", "status")


class PathError(ValueError):
    """A comparison path that cannot be parsed; the message says what to write."""


@dataclass(frozen=True, slots=True)
class FieldPath:
    """One parsed path: ``root`` (body, header, query, status) and its segments.

    A segment is a key, ``*``, ``**``, ``[*]`` or ``[N]`` (indexes as ``[N]`` text)."""

    text: str
    root: str
    segments: tuple[str, ...]

    @property
    def header(self) -> str | None:
        """The lower-case header name of ``header.<name>``, else None."""
        return self.segments[0] if self.root == "header" else None


def parse(text: str) -> FieldPath:
    """``body.articles[*].slug`` -> FieldPath; :class:`PathError` when it is not one."""
    if not isinstance(text, str) or not text:
        raise PathError("a path is text like body.items[*].id or header.etag")
    if text == "body" or text.startswith(("body.", "body[")):
        root, rest = "body", text[4:]
    else:
        root, _, rest = text.partition(".")
    if root not in _ROOTS:
        raise PathError(
            f"{text!r} must start with body., header., query. or be status "
            f"(e.g. body.**.{text.rpartition('.')[2] or text})"
        )
    if root == "status":
        if rest:
            raise PathError(f"{text!r}: status has no parts below it")
        return FieldPath(text, root, ())
    if root in ("header", "query"):
        if not rest or "[" in rest or (root == "query" and "." in rest):
            raise PathError(f"{text!r}: write {root}.<name> (e.g. {root}.x-request-id)")
        return FieldPath(text, root, (rest.lower() if root == "header" else rest,))
    segments: list[str] = []
    tail = rest
    pos = 0
    while pos < len(tail):
        match = _TOKEN.match(tail, pos)
        if match is None:
            raise PathError(f"{text!r}: cannot read {tail[pos:]!r} (use .key, [*] or [N])")
        key, index = match.group(1), match.group(2)
        if key is not None:
            if not key:
                raise PathError(f"{text!r}: empty key (two dots, or a trailing dot)")
            if "*" in key and key not in (ANY_KEY, ANY_DEPTH):
                raise PathError(f"{text!r}: {key!r} mixes * with text; use * or ** alone")
            segments.append(key)
        else:
            assert index is not None
            if index != "*" and not index.isdigit():
                raise PathError(f"{text!r}: [{index}] is not [*] or a list index like [0]")
            segments.append(f"[{index}]")
        pos = match.end()
    for a, b in pairwise(segments):
        if a == b == ANY_DEPTH:
            raise PathError(f"{text!r}: ** twice in a row")
    return FieldPath(text, "body", tuple(segments))


def check(paths: Iterable[str]) -> tuple[str, ...]:
    """Validate every path (for config validators); returns them as given."""
    out = tuple(paths)
    for path in out:
        parse(path)
    return out


T = TypeVar("T")


class PathNode(Generic[T]):
    """One step of a :class:`PathTrie`: children by segment, payloads ending here."""

    __slots__ = ("children", "globstar", "payloads")

    def __init__(self) -> None:
        self.children: dict[str, PathNode[T]] = {}
        self.payloads: list[T] = []
        self.globstar = False
        """This node is a ``**``: it stays active on any segment."""


class PathTrie(Generic[T]):
    """Body paths with a payload each, stepped segment by segment.

    ``start()`` gives the active nodes at ``body``; ``step(nodes, key, wildcard)``
    the nodes after one key (``wildcard`` ``*``) or item (``[i]``, ``[*]``);
    ``payloads(nodes)`` what the active nodes carry."""

    def __init__(self, entries: Iterable[tuple[FieldPath, T]] = ()) -> None:
        self.root: PathNode[T] = PathNode()
        self.empty = True
        for path, payload in entries:
            self.add(path, payload)

    def add(self, path: FieldPath, payload: T) -> None:
        node = self.root
        for segment in path.segments:
            child = node.children.get(segment)
            if child is None:
                child = node.children[segment] = PathNode()
                child.globstar = segment == ANY_DEPTH
            node = child
        node.payloads.append(payload)
        self.empty = False

    def start(self) -> tuple[PathNode[T], ...]:
        return _closure((self.root,)) if not self.empty else ()

    @staticmethod
    def step(nodes: tuple[PathNode[T], ...], key: str, wildcard: str) -> tuple[PathNode[T], ...]:
        if not nodes:
            return nodes
        found: list[PathNode[T]] = []
        for node in nodes:
            if node.globstar:
                found.append(node)
            children = node.children
            if children:
                child = children.get(key)
                if child is not None:
                    found.append(child)
                child = children.get(wildcard)
                if child is not None:
                    found.append(child)
        return _closure(tuple(found)) if found else ()

    @staticmethod
    def payloads(nodes: tuple[PathNode[T], ...]) -> list[T]:
        return [p for n in nodes for p in n.payloads]

    def covers(self, concrete: str) -> bool:
        """``body.a[2].b`` is named by a path in the trie, or lies below one."""
        nodes = self.start()
        if any(n.payloads for n in nodes):
            return True
        for segment in concrete_segments(concrete):
            wildcard = ANY_ITEM if segment.startswith("[") else ANY_KEY
            nodes = self.step(nodes, segment, wildcard)
            if not nodes:
                return False
            if any(n.payloads for n in nodes):
                return True
        return False


def _closure(nodes: tuple[PathNode[T], ...]) -> tuple[PathNode[T], ...]:
    """Nodes plus the ``**`` children they reach without consuming a segment."""
    extra = [c for n in nodes if (c := n.children.get(ANY_DEPTH)) is not None and c not in nodes]
    if not extra:
        return nodes
    return _closure(nodes + tuple(extra))


_CONCRETE = re.compile(r"\.([^.\[]+)|(\[[^\]]*\])")


def concrete_segments(path: str) -> list[str]:
    """``body.a[2].b`` -> ``["a", "[2]", "b"]`` (the ``body`` root dropped)."""
    rest = path[4:] if path.startswith("body") else path
    return [m.group(1) or m.group(2) for m in _CONCRETE.finditer(rest)]
