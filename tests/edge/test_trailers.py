"""Chunked trailer fields arrive after the body: they are never routing input, never a
pin, and never turn into header fields upstream."""

from __future__ import annotations

from pathlib import Path

from .configs import dark_canary, route, two_upstreams
from .support import one, serve, tags, wire_upstream


def _chunked(path: str, trailer: str = "", header: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: edge.test\r\n{header}"
        f"Transfer-Encoding: chunked\r\n\r\n"
        f"5\r\nhello\r\n0\r\n{trailer}\r\n"
    ).encode()


async def test_a_trailer_does_not_match_a_header_route(tmp_path: Path) -> None:
    async with wire_upstream() as legacy, wire_upstream() as new:
        acme = route("acme-orders", "/api/orders/**", "new")
        acme["match"]["headers"] = {"X-Tenant": "acme"}
        config = two_upstreams(legacy.url, new.url, acme)
        async with serve(tmp_path, config) as proxy:
            # the route works for a real header (so the trailer case below is meaningful)
            by_header = await one(
                proxy.port, _chunked("/api/orders/1", header="X-Tenant: acme\r\n")
            )
            by_trailer = await one(
                proxy.port, _chunked("/api/orders/2", trailer="X-Tenant: acme\r\n")
            )
    assert tags(by_header) == ("acme-orders", "new")
    assert tags(by_trailer) == ("-", "legacy")
    sent = [s for s in legacy.requests + new.requests if s.target == "/api/orders/2"]
    assert [s.all("x-tenant") for s in sent] == [[]], "a trailer became a header upstream"


async def test_a_trailer_does_not_pin(tmp_path: Path) -> None:
    async with wire_upstream() as legacy, wire_upstream() as new:
        config = dark_canary(legacy.url, new.url, "X-Strangler-Pin")
        async with serve(tmp_path, config) as proxy:
            pinned = await one(
                proxy.port, _chunked("/api/orders/1", header="X-Strangler-Pin: new\r\n")
            )
            trailed = await one(
                proxy.port, _chunked("/api/orders/2", trailer="X-Strangler-Pin: new\r\n")
            )
    assert tags(pinned) == ("orders", "new")  # the pin header itself works
    assert tags(trailed) == ("orders", "legacy")
