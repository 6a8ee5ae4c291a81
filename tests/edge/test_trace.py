"""Request ids and W3C trace context across the proxy, as the upstream and the client see them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from .configs import route, two_upstreams
from .support import Seen, get, one, serve, wire_upstream

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


def _answer(body: bytes) -> Callable[[Seen], bytes]:
    def answer(seen: Seen) -> bytes:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
        return head.encode() + body

    return answer


async def test_the_request_id_reaches_the_mirror_and_the_stored_sample(tmp_path: Path) -> None:
    shadowed = route("shadowed", "/api/shadow/**", "shadow", shadow={"methods": ["GET"]})
    async with (
        wire_upstream(_answer(b"legacy")) as legacy,
        wire_upstream(_answer(b"new")) as new,
        serve(tmp_path, two_upstreams(legacy.url, new.url, shadowed)) as proxy,
    ):
        await one(proxy.port, get("/api/shadow/1", extra="X-Request-Id: req-sample-1\r\n"))
        await one(proxy.port, get("/api/shadow/2"))
        legacy_seen, mirrored = await legacy.wait_for(2), await new.wait_for(2)
        generated = legacy_seen[1].header("x-request-id")
        assert [s.header("x-request-id") for s in mirrored] == ["req-sample-1", generated]
        samples: list[dict[str, Any]] = []
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                url = f"{proxy.admin}/api/routes/shadowed/shadow?samples=10"
                async with session.get(url) as response:
                    samples = (await response.json())["samples"]
                if len(samples) == 2:
                    break
                await asyncio.sleep(0.05)
    ids = sorted(
        value
        for sample in samples
        for name, value in _pairs(sample["request"]["headers"])
        if name.lower() == "x-request-id"
    )
    assert ids == sorted(["req-sample-1", generated]), samples


def _pairs(headers: Any) -> list[tuple[str, str]]:
    if isinstance(headers, dict):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]
