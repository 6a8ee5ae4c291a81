"""Mirroring seen from the wire: the mirror gets the same normalised target legacy gets,
and a client cannot pass itself off as a mirror (nor switch mirroring off) by sending
``X-Strangler-*`` headers."""

from __future__ import annotations

from pathlib import Path

from .configs import dark_canary, route, two_upstreams
from .support import Response, Seen, WireUpstream, one, serve, tags, wire_upstream


def _shadowed(legacy: str, new: str) -> dict[str, object]:
    shadow = {"percent": 100, "methods": ["GET"]}
    return two_upstreams(legacy, new, route("shadowed", "/api/shadow/**", "shadow", shadow=shadow))


async def _mirrored(tmp_path: Path, request: bytes) -> tuple[Response, WireUpstream, list[Seen]]:
    """``request`` to a route mirrored to new: the answer, legacy, and what new got."""
    async with (
        wire_upstream() as legacy,
        wire_upstream() as new,
        serve(tmp_path, _shadowed(legacy.url, new.url)) as proxy,
    ):
        response = await one(proxy.port, request)
        return response, legacy, await new.wait_for(1)


async def test_the_mirror_gets_the_normalised_target(tmp_path: Path) -> None:
    response, legacy, mirrored = await _mirrored(
        tmp_path, b"GET /internal/admin/../../api/shadow/1?x=1 HTTP/1.1\r\nHost: edge.test\r\n\r\n"
    )
    assert tags(response) == ("shadowed", "legacy")
    assert [s.target for s in legacy.requests] == ["/api/shadow/1?x=1"]
    assert [s.target for s in mirrored] == ["/api/shadow/1?x=1"]


async def test_client_strangler_headers_never_reach_an_upstream(tmp_path: Path) -> None:
    async with wire_upstream() as legacy:
        config = {"legacy": "legacy", "upstreams": {"legacy": {"url": legacy.url}}}
        async with serve(tmp_path, config) as proxy:
            response = await one(
                proxy.port,
                b"POST /api/orders HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 2\r\n"
                b"X-Strangler-Shadow: 1\r\nX-Strangler-Route: payments\r\n"
                b"x-strangler-upstream: new\r\n\r\n{}",
            )
            seen = (await legacy.wait_for(1))[0]
    assert response.status == 200
    assert seen.body == b"{}"
    forwarded = [(n, v) for n, v in seen.headers if n.lower().startswith("x-strangler-")]
    assert forwarded == [], "a client's real write reached the upstream looking like a mirror"


async def test_a_client_shadow_header_does_not_switch_mirroring_off(tmp_path: Path) -> None:
    response, _, mirrored = await _mirrored(
        tmp_path, b"GET /api/shadow/2 HTTP/1.1\r\nHost: edge.test\r\nX-Strangler-Shadow: 1\r\n\r\n"
    )
    assert tags(response) == ("shadowed", "legacy")
    assert [s.target for s in mirrored] == ["/api/shadow/2"]
    assert mirrored[0].all("x-strangler-shadow") == ["1"]  # the proxy's own marker, once


async def test_a_pin_header_is_read_for_the_decision_then_dropped(tmp_path: Path) -> None:
    async with wire_upstream() as legacy, wire_upstream() as new:
        config = dark_canary(legacy.url, new.url, "X-Canary")
        async with serve(tmp_path, config) as proxy:
            pinned = await one(
                proxy.port,
                b"GET /api/orders/1 HTTP/1.1\r\nHost: edge.test\r\nX-Canary: new\r\n\r\n",
            )
    assert tags(pinned) == ("orders", "new")
    assert [s.all("x-canary") for s in new.requests] == [[]]
