"""Endpoints learned from traffic: ``GET /api/articles/{id}`` from ``GET /api/articles/7``.

One route over ``/api/**`` mixes every endpoint; :class:`Endpoints` names each
request by method and path template so counts and match rates can be kept per
endpoint. A path segment becomes ``{id}`` when it looks like an id (digits, a
UUID, long hex, a slug with a number in it) or when its position has shown
more than :data:`LEARN_AFTER` distinct values under the same parent (a slug
like ``how-to-train-your-dragon``). Everything is bounded; the query string is
dropped. Nothing here does I/O.
"""

from __future__ import annotations

import re

LEARN_AFTER = 20
"""Distinct values at one position before it is taken for a parameter."""
_MAX_POSITIONS = 2000
_MAX_CACHE = 20_000
_ID = re.compile(
    r"\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{16,}|[A-Za-z0-9_-]{24,}"
    # a slug or key with a number in it: ``apples-1``, ``user_42``
    r"|(?=[^/]*\d)(?=[^/]*[A-Za-z])(?=[^/]*[-_])[A-Za-z0-9._~-]{6,}"
)
PARAM = "{id}"


class Endpoints:
    """Names requests ``METHOD /path/{id}``; learns which segments vary."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, int], set[str]] = {}
        """(parent template, position) -> distinct values, until it is a parameter."""
        self._params: set[tuple[str, int]] = set()
        self._cache: dict[tuple[str, str], str] = {}

    def of(self, method: str, target: str) -> str:
        key = (method, target)
        known = self._cache.get(key)
        if known is not None:
            return known
        path = target.split("?", 1)[0]
        parts = path.split("/")
        out: list[str] = []
        for i, part in enumerate(parts):
            if not part:
                out.append(part)
                continue
            parent = "/".join(out)
            position = (parent, i)
            if position in self._params or _ID.fullmatch(part):
                out.append(PARAM)
                continue
            seen = self._seen.get(position)
            if seen is None:
                if len(self._seen) >= _MAX_POSITIONS:
                    out.append(part)
                    continue
                seen = self._seen[position] = set()
            seen.add(part)
            if len(seen) > LEARN_AFTER:
                self._params.add(position)
                del self._seen[position]
                self._cache.clear()  # earlier names of this position were too specific
                out.append(PARAM)
            else:
                out.append(part)
        name = f"{method} {'/'.join(out) or '/'}"
        if len(self._cache) >= _MAX_CACHE:
            self._cache.clear()
        self._cache[key] = name
        return name
