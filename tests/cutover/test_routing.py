"""Who answers a context's requests: writes follow the owner, reads follow the mode."""

from __future__ import annotations

from strangler.config import parse_config
from strangler.control.ownership import Ownership
from strangler.routing.decision import decide
from strangler.routing.table import RouteTable


def _table(owner: str | None) -> RouteTable:
    config = parse_config(
        {
            "legacy": "monolith",
            "pin_header": "X-Pin",
            "upstreams": {"monolith": {"url": "http://127.0.0.1:9"}, "svc": {"url": "http://x:1"}},
            "routes": [
                # One route for reads and writes, in canary 0%: reads stay on legacy.
                {
                    "name": "mixed",
                    "match": {"path": "/c/**"},
                    "to": "svc",
                    "mode": "canary",
                    "percent": 0,
                },
                {
                    "name": "writes",
                    "match": {"path": "/w/**", "methods": ["POST", "PUT"]},
                    "to": "svc",
                    "mode": "new",
                },
                {"name": "outside", "match": {"path": "/o/**"}, "to": "svc", "mode": "legacy"},
            ],
            "contexts": {"ctx": {"routes": ["mixed", "writes"]}},
        }
    )
    owned = {} if owner is None else {"ctx": Ownership("ctx", owner, 1)}  # type: ignore[arg-type]
    return RouteTable.build(config, ownerships=owned)


def test_writes_follow_the_owner_whatever_the_mode_or_pin() -> None:
    for owner, upstream in ((None, "monolith"), ("legacy", "monolith"), ("service", "svc")):
        table = _table(owner)
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert decide(table, method, "/c/1", {}, None).upstream == upstream, (owner, method)
            pinned = decide(table, method, "/c/1", {"x-pin": "new"}, None)
            assert pinned.upstream == upstream
        assert decide(table, "GET", "/c/1", {}, None).upstream == "monolith"  # canary 0%
        # A write-only route shows the owner as its mode (routes.yaml's `new` is ignored).
        writes = table.route("writes")
        assert writes is not None and writes.source == "ownership"
        assert decide(table, "POST", "/w/1", {}, None).upstream == upstream
        # Outside the context nothing changes.
        assert decide(table, "POST", "/o/1", {}, None).upstream == "monolith"
        outside = table.route("outside")
        assert outside is not None and outside.context is None
