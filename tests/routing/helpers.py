"""Building small configs for routing tests from plain dicts, as routes.yaml would."""

from __future__ import annotations

from typing import Any

from strangler.config import Config, parse_config

UPSTREAMS = {
    "monolith": {"url": "http://127.0.0.1:9000"},
    "customers": {"url": "http://127.0.0.1:9101"},
    "orders": {"url": "http://127.0.0.1:9102"},
}


def route(name: str, path: str, **extra: Any) -> dict[str, Any]:
    match: dict[str, Any] = {"path": path}
    for key in ("methods", "headers"):
        if key in extra:
            match[key] = extra.pop(key)
    return {"name": name, "match": match, "to": extra.pop("to", "customers"), **extra}


def config(*routes: dict[str, Any], **top: Any) -> Config:
    return parse_config(
        {"legacy": "monolith", "upstreams": UPSTREAMS, "routes": list(routes), **top}
    )
