"""The immutable route table: compiled routes and the matcher.

``RouteTable.build(config, overrides)`` compiles every route once — pattern,
method and header constraints, effective mode/percent (an override wins over
routes.yaml), the adapter — and refuses ambiguous tables with a ConfigError
naming both routes. ``table.match(method, path, headers)`` then finds the most
specific route for a normalised path in time that does not grow with the
number of routes: exact patterns are one dict lookup, ``{param}`` and ``/**``
patterns live in a segment trie walked once per request.

Specificity, most specific first:

1. pattern class: exact (only literal segments) > ``{param}`` > ``/**`` subtree;
2. more segments before fewer (``/a/b/**`` before ``/a/**``);
3. a literal segment before a ``{param}`` in the leftmost place they differ;
4. more header constraints, then a ``methods`` list, before none.

Two routes equal on all four whose methods and headers could both accept one
request are a true tie: a config error, never a silent pick.

Nothing here does I/O or holds per-request data; a table is never mutated after
``build`` returns (the router swaps whole tables).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

from strangler.adapter import load_adapter
from strangler.config import Config
from strangler.errors import ConfigError, Problem
from strangler.override import Override
from strangler.ownership import Owner, Ownership
from strangler.routing.route import (
    SUBTREE,
    HeaderLookup,
    Route,
    compile_route,
    parse_pattern,
    writes_only,
)

__all__ = ["HeaderLookup", "Match", "Route", "RouteTable", "writes_only"]


class Match(NamedTuple):
    """A matched route and the ``{param}`` values captured from the path.

    A NamedTuple rather than a frozen dataclass: as immutable, and cheaper to
    build on every request (frozen dataclasses set each field through
    ``object.__setattr__``)."""

    route: Route
    params: Mapping[str, str]


_NO_PARAMS: Mapping[str, str] = MappingProxyType({})  # shared, so read-only


class _Node:
    """A trie node; ``routes`` end here, ``subtree`` routes cover this node and below."""

    __slots__ = ("literal", "param", "routes", "subtree")

    def __init__(self) -> None:
        self.literal: dict[str, _Node] = {}
        self.param: _Node | None = None
        self.routes: list[Route] = []
        self.subtree: list[Route] = []


def _overlap(a: Route, b: Route) -> bool:
    """Could one request satisfy both routes' method and header constraints?"""
    if a.methods is not None and b.methods is not None and not a.methods & b.methods:
        return False
    required = dict(a.headers)
    return all(required.get(name, value) == value for name, value in b.headers)


def _tie_key(shape: list[str | None], subtree: bool) -> tuple[str | None, ...]:
    return (*shape, SUBTREE if subtree else "")


# ------------------------------------------------------------------ the table


class RouteTable:
    """An immutable, compiled set of routes. Build with :meth:`build`."""

    __slots__ = ("_exact", "_root", "by_name", "config", "legacy", "pin_header", "routes")

    def __init__(
        self,
        config: Config,
        routes: tuple[Route, ...],
        exact: dict[str, list[Route]],
        root: _Node,
    ) -> None:
        self.config = config
        self.legacy = config.legacy
        self.pin_header = config.pin_header.lower() if config.pin_header else None
        self.routes = routes
        self.by_name: Mapping[str, Route] = {r.name: r for r in routes}
        self._exact = exact
        self._root = root

    @classmethod
    def build(
        cls,
        config: Config,
        overrides: Mapping[str, Override] | None = None,
        *,
        base_dir: Path | None = None,
        previous: RouteTable | None = None,
        ownerships: Mapping[str, Ownership] | None = None,
    ) -> RouteTable:
        """Compile ``config`` with ``overrides`` (by route name; unknown names ignored)
        and the contexts' ``ownerships`` (absent: legacy owns the context).

        ``previous`` lets adapters be reused when a route's adapter setting is
        unchanged, so an override flip does not re-instantiate them. Raises
        ConfigError listing every bad pattern and every ambiguous pair."""
        overrides = overrides or {}
        ownerships = ownerships or {}
        contexts: dict[str, tuple[str, Owner]] = {}
        for context_name, cc in config.contexts.items():
            owned = ownerships.get(context_name)
            for name in cc.routes:
                contexts[name] = (context_name, owned.owner if owned is not None else "legacy")
        problems: list[Problem] = []
        compiled: list[tuple[Route, list[str | None], bool]] = []
        for i, rc in enumerate(config.routes):
            try:
                shape, subtree, slots = parse_pattern(rc.match.path)
            except ValueError as exc:
                problems.append(Problem(f"routes[{i}].match.path", f"{rc.match.path!r}: {exc}"))
                continue
            adapter = None
            old = previous.by_name.get(rc.name) if previous is not None else None
            if old is not None and old.config.adapter == rc.adapter:
                adapter = old.adapter
            else:
                try:
                    adapter = load_adapter(rc.adapter, base_dir)
                except (ConfigError, ValueError, TypeError) as exc:
                    message = exc.problems[0].message if isinstance(exc, ConfigError) else str(exc)
                    problems.append(Problem(f"routes[{i}].adapter", message))
                    continue
            owned_by = contexts.get(rc.name)
            context = owned_by[0] if owned_by is not None else None
            owner = owned_by[1] if owned_by is not None else None
            route = compile_route(
                rc, overrides.get(rc.name), adapter, shape, subtree, slots, context, owner
            )
            compiled.append((route, shape, subtree))
        problems.extend(_ties(compiled, config))
        if problems:
            raise ConfigError(problems)

        exact: dict[str, list[Route]] = {}
        root = _Node()
        for route, shape, subtree in compiled:
            if not subtree and None not in shape:
                exact.setdefault("/" + "/".join(s for s in shape if s is not None), []).append(
                    route
                )
                continue
            node = root
            for part in shape:
                if part is None:
                    node.param = node.param or _Node()
                    node = node.param
                else:
                    node = node.literal.setdefault(part, _Node())
            (node.subtree if subtree else node.routes).append(route)
        for bucket in itertools.chain(exact.values(), _all_lists(root)):
            bucket.sort(key=lambda r: r.rank, reverse=True)
        return cls(config, tuple(r for r, _, _ in compiled), exact, root)

    def route(self, name: str) -> Route | None:
        return self.by_name.get(name)

    def match(self, method: str, path: str, headers: HeaderLookup) -> Match | None:
        """The most specific route accepting this request, or None. ``path`` is normalised."""
        key = (path.rstrip("/") or "/") if path.endswith("/") else path
        for route in self._exact.get(key, ()):
            if route.unconstrained or route.accepts(method, headers):
                return Match(route, _NO_PARAMS)
        # A normalised path has no empty segments, bar a trailing one (stripped in key).
        parts = key[1:].split("/") if key != "/" else []
        depth = len(parts)
        best: Route | None = None
        # Depth-first, literal child first; a {param} sibling is set aside and
        # visited after, so the common all-literal walk allocates nothing.
        pending: list[tuple[_Node, int]] = []
        node: _Node | None = self._root
        i = 0
        while node is not None:
            for route in node.subtree:
                if best is not None and route.rank <= best.rank:
                    break  # each list is sorted most specific first
                if route.unconstrained or route.accepts(method, headers):
                    best = route
                    break
            if i == depth:
                for route in node.routes:
                    if best is not None and route.rank <= best.rank:
                        break
                    if route.unconstrained or route.accepts(method, headers):
                        best = route
                        break
                node = None
            else:
                if node.param is not None:
                    pending.append((node.param, i + 1))
                node = node.literal.get(parts[i])
                i += 1
            if node is None and pending:
                node, i = pending.pop()
        if best is None:
            return None
        if not best.param_slots:
            return Match(best, _NO_PARAMS)
        return Match(best, {name: parts[at] for at, name in best.param_slots})


def _all_lists(node: _Node) -> Iterable[list[Route]]:
    yield node.routes
    yield node.subtree
    for child in node.literal.values():
        yield from _all_lists(child)
    if node.param is not None:
        yield from _all_lists(node.param)


def _ties(compiled: list[tuple[Route, list[str | None], bool]], config: Config) -> list[Problem]:
    """Every pair of routes with the same specificity that one request could match."""
    index = {rc.name: i for i, rc in enumerate(config.routes)}
    groups: dict[tuple[tuple[str | None, ...], tuple[int, ...]], list[Route]] = {}
    for route, shape, subtree in compiled:
        groups.setdefault((_tie_key(shape, subtree), route.rank), []).append(route)
    problems = []
    for group in groups.values():
        for a, b in itertools.combinations(group, 2):
            if _overlap(a, b):
                problems.append(
                    Problem(
                        f"routes[{index[b.name]}].match",
                        f"{b.config.match.path!r} ties with route {a.name!r} "
                        f"({a.config.match.path!r}): same specificity and a request could match "
                        "both; make the paths, methods or headers distinct",
                    )
                )
    return problems
