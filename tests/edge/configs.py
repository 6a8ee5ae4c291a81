"""Route configs the edge tests share: legacy and new upstreams, and the routes on them."""

from __future__ import annotations

from typing import Any


def two_upstreams(legacy: str, new: str, *routes: dict[str, Any], **keys: Any) -> dict[str, Any]:
    """``legacy`` (the default) and ``new`` at these urls, with ``routes`` and other ``keys``."""
    return {
        "legacy": "legacy",
        **keys,
        "upstreams": {"legacy": {"url": legacy}, "new": {"url": new}},
        "routes": list(routes),
    }


def route(name: str, path: str, mode: str, **keys: Any) -> dict[str, Any]:
    """A route to ``new`` for ``path`` in ``mode``."""
    return {"name": name, "match": {"path": path}, "to": "new", "mode": mode, **keys}


def dark_canary(legacy: str, new: str, pin_header: str) -> dict[str, Any]:
    """``/api/orders/**`` a 0 % canary: only a pin (``pin_header: new``) reaches new."""
    orders = route("orders", "/api/orders/**", "canary", percent=0)
    return two_upstreams(legacy, new, orders, pin_header=pin_header)
