"""Request ids and W3C trace context across the proxy, as the upstream and the client see them."""

from __future__ import annotations

from pathlib import Path

from .support import get, one, serve, wire_upstream

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACESTATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


def _legacy(url: str) -> dict[str, object]:
    return {"legacy": "legacy", "upstreams": {"legacy": {"url": url}}}


async def test_a_clients_request_id_goes_upstream_and_comes_back(tmp_path: Path) -> None:
    async with wire_upstream() as legacy, serve(tmp_path, _legacy(legacy.url)) as proxy:
        response = await one(proxy.port, get("/api/x", extra="X-Request-Id: req-7f3a\r\n"))
        seen = (await legacy.wait_for(1))[0]
    assert response.status == 200
    assert seen.all("x-request-id") == ["req-7f3a"]
    assert response.all("x-request-id") == ["req-7f3a"]


async def test_a_request_without_id_gets_one_upstream_and_back(tmp_path: Path) -> None:
    async with wire_upstream() as legacy, serve(tmp_path, _legacy(legacy.url)) as proxy:
        first = await one(proxy.port, get("/api/x"))
        second = await one(proxy.port, get("/api/y"))
        seen = await legacy.wait_for(2)
    ids = [s.header("x-request-id") for s in seen]
    assert ids[0] and ids[1] and ids[0] != ids[1], f"upstream saw request ids {ids}"
    assert [first.header("x-request-id"), second.header("x-request-id")] == ids


async def test_trace_context_is_passed_through_unchanged(tmp_path: Path) -> None:
    async with wire_upstream() as legacy, serve(tmp_path, _legacy(legacy.url)) as proxy:
        extra = f"traceparent: {TRACEPARENT}\r\ntracestate: {TRACESTATE}\r\n"
        response = await one(proxy.port, get("/api/x", extra=extra))
        seen = (await legacy.wait_for(1))[0]
    assert response.status == 200
    assert seen.all("traceparent") == [TRACEPARENT]
    assert seen.all("tracestate") == [TRACESTATE]
