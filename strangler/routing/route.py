"""One compiled route: what routes.yaml, an override and the context's owner make of it.

``compile_route`` turns a :class:`~strangler.config.RouteConfig` into an immutable
:class:`Route` (effective mode and percent, sticky keys, constraints, specificity
rank); :mod:`strangler.routing.table` indexes the routes and matches requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from strangler.adapter import HttpAdapter
from strangler.config import DEFAULT_SHADOW, SAFE_METHODS, Mode, RouteConfig
from strangler.override import Override
from strangler.ownership import Owner
from strangler.routing.paths import BadPath, normalize, segments

HeaderLookup = Mapping[str, str]
"""Request headers as the matcher reads them: ``.get(name)`` with a lower-case name
must find the header (a dict with lower-case keys, or a case-insensitive multidict)."""

SUBTREE = "**"


@dataclass(frozen=True, slots=True, eq=False)
class Route:
    """One compiled route. Immutable; shared by every request that matches it."""

    name: str
    config: RouteConfig
    mode: Mode
    """Effective mode: the override's if there is one, else routes.yaml's."""
    percent: float
    """Effective share (0..100) answered by ``to``: 0 for legacy/shadow, 100 for new."""
    source: str
    """``config``, ``override`` or ``auto-rollback``: where ``mode``/``percent`` came from."""
    override: Override | None
    adapter: HttpAdapter | None
    threshold: int
    """``percent`` in buckets of 1/10000: ``to`` answers when ``bucket < threshold``."""
    hash_prefix: bytes
    """Cohort (or route name) bytes the sticky key is hashed with."""
    sticky: tuple[tuple[str, str], ...]
    """Parsed sticky keys: ("header", lower-name) | ("cookie", name) | ("ip", "")."""
    methods: frozenset[str] | None
    headers: tuple[tuple[str, str], ...]
    """Required headers as (lower-case name, exact value)."""
    param_slots: tuple[tuple[int, str], ...]
    """(segment index, parameter name) for each ``{param}`` in the pattern."""
    rank: tuple[int, ...] = field(repr=False)
    """Sort key: larger is more specific (see the module docstring)."""
    needs_bucket: bool = field(default=True, repr=False)
    """Canary or mirrored: the sticky bucket matters (else decide() skips the hash)."""
    unconstrained: bool = field(default=True, repr=False)
    """No methods and no headers required, so ``accepts`` need not be called."""
    context: str | None = None
    """The bounded context the route belongs to (``contexts:``), or None."""
    owner: Owner | None = None
    """The context's owner: its writes (non-safe methods) go to ``to`` when ``service``,
    to legacy when ``legacy``, whatever the mode. None outside a context."""
    shadow_max_body: int = field(default=DEFAULT_SHADOW.max_body, repr=False)
    """The most body a shadow copy of this route's requests holds (``shadow.max_body``),
    as a plain int: read on every mirrored request, where a config model's attribute
    costs a ``__getattr__`` hook."""

    @property
    def to(self) -> str:
        return self.config.to

    def accepts(self, method: str, headers: HeaderLookup) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return all(headers.get(name) == value for name, value in self.headers)


def parse_pattern(pattern: str) -> tuple[list[str | None], bool, tuple[tuple[int, str], ...]]:
    """``/a/{id}/**`` -> ([a, None], subtree=True, ((1, "id"),)); ValueError if malformed.

    The pattern is normalised like a request path, so ``/a/%7Eb`` matches ``/a/~b``."""
    try:
        parts = segments(normalize(pattern))
    except BadPath as exc:
        raise ValueError(str(exc)) from None
    subtree = bool(parts) and parts[-1] == SUBTREE
    if subtree:
        parts = parts[:-1]
    shape: list[str | None] = []
    slots: list[tuple[int, str]] = []
    for i, part in enumerate(parts):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            if not name.isidentifier():
                raise ValueError(f"{part!r} is not a {{param}} segment (use letters, digits, _)")
            if any(n == name for _, n in slots):
                raise ValueError(f"{{{name}}} appears twice")
            slots.append((i, name))
            shape.append(None)
        elif "*" in part or "{" in part or "}" in part:
            raise ValueError(f"{part!r}: use a whole {{param}} segment, or /** as the last segment")
        else:
            shape.append(part)
    return shape, subtree, tuple(slots)


def rank_of(shape: list[str | None], subtree: bool, route: RouteConfig) -> tuple[int, ...]:
    kind = 0 if subtree else (1 if None in shape else 2)
    literal_mask = tuple(0 if s is None else 1 for s in shape)
    headers = len(route.match.headers or {})
    # Masks only get compared between patterns of the same length (the field before).
    return (kind, len(shape), *literal_mask, headers, int(route.match.methods is not None))


def writes_only(route: RouteConfig) -> bool:
    """The route accepts writes only (its ``methods`` list no safe method)."""
    methods = route.match.methods
    return methods is not None and not SAFE_METHODS.intersection(methods)


def _effective(
    route: RouteConfig, override: Override | None, owner: Owner | None
) -> tuple[Mode, float, str]:
    if owner is not None and writes_only(route):
        # A context's write route follows the owner, never an override: writes must
        # reach the database that owns the data (strangler cutover moves them).
        return ("new", 100.0, "ownership") if owner == "service" else ("legacy", 0.0, "ownership")
    if override is None:
        mode, percent, source = route.mode, route.percent, "config"
    else:
        mode, percent, source = override.mode, override.percent, override.source
        if mode == "canary" and percent is None:
            percent = route.percent
    if mode == "new":
        return mode, 100.0, source
    if mode == "canary":
        return mode, float(percent or 0.0), source
    return mode, 0.0, source


def compile_route(
    route: RouteConfig,
    override: Override | None,
    adapter: HttpAdapter | None,
    shape: list[str | None],
    subtree: bool,
    slots: tuple[tuple[int, str], ...],
    context: str | None = None,
    owner: Owner | None = None,
) -> Route:
    mode, percent, source = _effective(route, override, owner)
    sticky = []
    for key in route.sticky:
        kind, _, name = key.partition(":")
        sticky.append((kind, name.lower() if kind == "header" else name))
    return Route(
        name=route.name,
        config=route,
        mode=mode,
        percent=percent,
        source=source,
        override=override,
        adapter=adapter,
        threshold=round(percent * 100),
        hash_prefix=(route.cohort or route.name).encode() + b"\x00",
        sticky=tuple(sticky),
        methods=frozenset(route.match.methods) if route.match.methods is not None else None,
        headers=tuple((k.lower(), v) for k, v in (route.match.headers or {}).items()),
        param_slots=slots,
        rank=rank_of(shape, subtree, route),
        # The bucket decides a canary's side and the shadow sample (unless it is 100%).
        needs_bucket=mode == "canary" or (route.shadow is not None and route.shadow.percent < 100),
        shadow_max_body=(route.shadow or DEFAULT_SHADOW).max_body,
        unconstrained=route.match.methods is None and not route.match.headers,
        context=context,
        owner=owner,
    )
