"""Immutable HTTP request/response values that adapters and shadow comparison work on.

The streaming data plane does not build these for every request: only routes
with an adapter (which buffer bodies up to the body limit) or a shadow copy do.
JSON bodies are parsed once, lazily, and cached. Nothing here does I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Self

from multidict import CIMultiDict, CIMultiDictProxy

Headers = CIMultiDictProxy[str]


def make_headers(items: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> Headers:
    pairs = items.items() if isinstance(items, Mapping) else items
    return CIMultiDictProxy(CIMultiDict(pairs))


_UNPARSED: Any = object()


@dataclass(frozen=True, eq=False)
class _Message:
    headers: Headers = field(default_factory=make_headers)
    body: bytes = b""
    _json: Any = field(default=_UNPARSED, repr=False, compare=False)

    @property
    def is_json(self) -> bool:
        ctype = self.headers.get("Content-Type", "")
        return "json" in ctype.lower()

    def json(self) -> Any:
        """The body parsed as JSON (cached); raises ValueError if it is not JSON."""
        if self._json is _UNPARSED:
            object.__setattr__(self, "_json", json.loads(self.body) if self.body else None)
        return self._json

    def replace(self, **changes: Any) -> Self:
        if "body" in changes:
            changes.setdefault("_json", _UNPARSED)
        return replace(self, **changes)

    def with_json(self, data: Any) -> Self:
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        headers = CIMultiDict(self.headers)
        headers["Content-Type"] = headers.get("Content-Type", "application/json")
        headers.popall("Content-Length", None)
        return replace(self, body=body, headers=CIMultiDictProxy(headers), _json=data)

    def with_headers(self, **changes: str | None) -> Self:
        """``with_headers(X_Api_Version="2", Cookie=None)``: set or remove headers."""
        headers = CIMultiDict(self.headers)
        for name, value in changes.items():
            key = name.replace("_", "-")
            headers.popall(key, None)
            if value is not None:
                headers[key] = value
        return replace(self, headers=CIMultiDictProxy(headers))


@dataclass(frozen=True, eq=False)
class HttpRequest(_Message):
    """A request as the client sent it (or as an adapter rewrote it)."""

    method: str = "GET"
    path: str = "/"
    query: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    """Path parameters captured by the route's ``{param}`` segments."""

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


@dataclass(frozen=True, eq=False)
class HttpResponse(_Message):
    """A response from an upstream (or as an adapter reshaped it)."""

    status: int = 200
