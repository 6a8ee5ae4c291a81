"""What the data plane hands the shadow sink: the client's request and legacy's answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from strangler.message import HttpRequest, HttpResponse
from strangler.routing.decision import Decision
from strangler.shadow.copy import ShadowCopy, ShadowTaps
from tests.proxy.conftest import run_proxy
from tests.proxy.echo import echo_app
from tests.support.net import free_port, raw_upstream, serve_app


@dataclass
class RecordingSink:
    """A mirror that remembers what it was given (the real one mirrors off-path)."""

    submitted: list[tuple[Decision, HttpRequest, HttpResponse | None, str | None]] = field(
        default_factory=list
    )
    skipped_reasons: list[str] = field(default_factory=list)
    copies: list[ShadowCopy] = field(default_factory=list)

    def wants(self, decision: Decision, method: str) -> bool:
        return method in ("GET", "POST")

    def submit(self, decision: Decision, copy: ShadowCopy) -> None:
        self.submitted.append((decision, copy.request(), copy.primary(), copy.error))
        self.copies.append(copy)

    def skipped(self, decision: Decision, reason: str) -> None:
        self.skipped_reasons.append(reason)


def config(legacy: str, new: str = "http://127.0.0.1:9") -> dict[str, Any]:
    return {
        "legacy": "legacy",
        "upstreams": {"legacy": {"url": legacy}, "new": {"url": new}},
        "routes": [
            {
                "name": "orders",
                "match": {"path": "/orders/**"},
                "to": "new",
                "mode": "shadow",
                "shadow": {"max_body": 2000, "methods": ["GET", "POST"]},
            }
        ],
    }


async def test_shadowed_request_and_primary_response_are_submitted() -> None:
    sink = RecordingSink()
    async with (
        serve_app(echo_app()) as legacy,
        run_proxy(config(legacy), shadow=ShadowTaps(sink)) as proxy,
        aiohttp.ClientSession() as s,
    ):
        async with s.post(proxy.url + "/orders/5?q=1", data=b'{"a":1}') as r:
            assert r.status == 200
            answer = await r.read()
        async with s.get(proxy.url + "/elsewhere") as r:
            assert r.status == 200
    assert len(sink.submitted) == 1
    decision, request, primary, error = sink.submitted[0]
    assert decision.shadow_to == "new"
    assert (request.method, request.path, request.query, request.body) == (
        "POST",
        "/orders/5",
        "q=1",
        b'{"a":1}',
    )
    assert primary is not None and error is None
    assert primary.status == 200 and primary.body == answer
    assert primary.json()["upstream"] == "legacy"


async def test_bodies_over_the_shadow_limit_are_skipped_not_buffered() -> None:
    sink = RecordingSink()
    async with (
        serve_app(echo_app()) as legacy,
        run_proxy(config(legacy), shadow=ShadowTaps(sink)) as proxy,
        aiohttp.ClientSession() as s,
    ):
        async with s.post(proxy.url + "/orders/5", data=b"x" * 50_000) as r:
            assert (await r.json())["body_size"] == 50_000
        async with s.get(proxy.url + "/orders/big?pad=" + "y" * 10) as r:
            assert r.status == 200
    assert sink.skipped_reasons == ["body_too_large"]
    assert len(sink.submitted) == 1


async def test_a_clients_shadow_marker_does_not_switch_mirroring_off() -> None:
    """Issue 14: ``X-Strangler-*`` is the proxy's namespace; a client sending the mirror
    marker is still mirrored, and the marker never reaches the upstream."""
    sink = RecordingSink()
    async with (
        serve_app(echo_app()) as legacy,
        run_proxy(config(legacy), shadow=ShadowTaps(sink)) as proxy,
        aiohttp.ClientSession() as s,
        s.get(proxy.url + "/orders/1", headers={"X-Strangler-Shadow": "1"}) as r,
    ):
        assert r.status == 200
        seen = await r.json()
        await submitted(sink, 1)
    assert len(sink.submitted) == 1 and sink.skipped_reasons == []
    assert "x-strangler-shadow" not in seen["headers"]


async def submitted(sink: RecordingSink, count: int, timeout: float = 5.0) -> None:
    """Wait (generously) for ``count`` copies: the task path submits just after the
    client's write, the fast path in the same callback."""
    deadline = asyncio.get_running_loop().time() + timeout
    while len(sink.copies) < count:
        assert asyncio.get_running_loop().time() < deadline, "sink never got the copy"
        await asyncio.sleep(0.01)


def varying_app() -> web.Application:
    """Answers that differ per request: the path and a counter, a 404 with a body,
    and a chunked answer in several writes."""
    count = 0

    async def answer(request: web.Request) -> web.StreamResponse:
        nonlocal count
        count += 1
        peer = request.transport.get_extra_info("peername") if request.transport else None
        port = peer[1] if peer else 0
        if request.path.endswith("/missing"):
            return web.Response(status=404, text=f"no such thing: {request.path} #{count}")
        if request.path.endswith("/chunked"):
            response = web.StreamResponse(headers={"X-Peer": str(port)})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for i in range(4):
                await response.write(f"part{i}-{count};".encode())
            await response.write_eof()
            return response
        text = f"{request.method} {request.path_qs} #{count}"
        return web.Response(text=text, headers={"X-Peer": str(port)})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


async def test_keep_alive_requests_each_submit_what_the_client_got() -> None:
    """On one client connection the upstream connection is pooled from the second
    request on (fast path): every copy is submitted once, in order, with its own body."""
    sink = RecordingSink()
    paths = ["/orders/1", "/orders/2?x=y", "/orders/3/chunked", "/orders/4", "/orders/9/missing"]
    got: list[tuple[int, bytes]] = []
    peers: set[str] = set()
    connector = aiohttp.TCPConnector(limit=1)
    async with (
        serve_app(varying_app()) as legacy,
        run_proxy(config(legacy), shadow=ShadowTaps(sink)) as proxy,
        aiohttp.ClientSession(connector=connector) as s,
    ):
        for i, path in enumerate(paths):
            async with s.get(proxy.url + path) as r:
                got.append((r.status, await r.read()))
                if r.status == 200:
                    peers.add(r.headers["X-Peer"])
            await submitted(sink, i + 1)
            copy = sink.copies[i]
            primary = copy.primary()
            assert primary is not None and copy.error is None
            assert (copy.status, primary.status, primary.body) == (*got[i][:1], *got[i])
            assert copy.response_body == got[i][1]
            request = copy.request()
            assert (request.method, request.target) == ("GET", path)
    # One upstream connection served them all: requests 2.. took the pooled one.
    assert len(peers) == 1
    assert [status for status, _ in got] == [200, 200, 200, 200, 404]
    assert got[0][1] == b"GET /orders/1 #1" and got[1][1] == b"GET /orders/2?x=y #2"
    assert got[2][1] == b"part0-3;part1-3;part2-3;part3-3;"
    assert got[4][1] == b"no such thing: /orders/9/missing #5"
    assert len(sink.copies) == len(paths) and sink.skipped_reasons == []


async def test_a_pooled_404_with_a_body_is_submitted_as_such() -> None:
    sink = RecordingSink()
    async with (
        serve_app(varying_app()) as legacy,
        run_proxy(config(legacy), shadow=ShadowTaps(sink)) as proxy,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as s,
    ):
        for i, path in enumerate(("/orders/1/missing", "/orders/2/missing")):
            async with s.get(proxy.url + path) as r:
                assert r.status == 404
                body = await r.read()
            await submitted(sink, i + 1)
            copy = sink.copies[-1]
            primary = copy.primary()
            assert copy.status == 404 and copy.error is None
            assert primary is not None and (primary.status, primary.body) == (404, body)
            assert body.startswith(b"no such thing: " + path.encode())
    assert [c.path for c in sink.copies] == ["/orders/1/missing", "/orders/2/missing"]


@asynccontextmanager
async def one_answer_per_connection() -> AsyncIterator[tuple[str, list[bytes], asyncio.Server]]:
    """A raw upstream that answers the first request on each connection (body naming the
    request line and the connection's number) and silently closes the connection when a
    second request arrives on it: a pooled keep-alive connection gone stale."""
    answered: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            body = head.split(b"\r\n", 1)[0] + b" on connection %d" % (len(answered) + 1)
            answered.append(body)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
                % len(body)
                + body
            )
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async with raw_upstream(handle) as (url, server):
        yield url, answered, server


async def test_a_retried_stale_connection_submits_the_retried_answer() -> None:
    sink = RecordingSink()
    async with (
        one_answer_per_connection() as (legacy, answered, _),
        run_proxy(config(legacy), shadow=ShadowTaps(sink)) as proxy,
        aiohttp.ClientSession() as s,
    ):
        bodies = []
        for path in ("/orders/1", "/orders/2", "/orders/3"):
            async with s.get(proxy.url + path) as r:
                assert r.status == 200
                bodies.append(await r.read())
            await submitted(sink, len(bodies))
    # Requests 2 and 3 each found the pooled connection dead and were retried afresh.
    assert bodies == [
        b"GET /orders/1 HTTP/1.1 on connection 1",
        b"GET /orders/2 HTTP/1.1 on connection 2",
        b"GET /orders/3 HTTP/1.1 on connection 3",
    ]
    assert answered == bodies
    assert len(sink.copies) == 3
    for copy, body in zip(sink.copies, bodies, strict=True):
        primary = copy.primary()
        assert copy.error is None and primary is not None
        assert (primary.status, primary.body) == (200, body)
    assert all(r.error is None and r.status == 200 for r in proxy.records)


async def test_a_primary_that_cannot_be_reached_submits_a_failed_copy() -> None:
    sink = RecordingSink()
    nobody = f"http://127.0.0.1:{free_port()}"
    async with (
        run_proxy(config(nobody), shadow=ShadowTaps(sink)) as proxy,
        aiohttp.ClientSession() as s,
    ):
        async with s.get(proxy.url + "/orders/7?q=1") as r:
            assert r.status == 502
            answer = await r.json()
        await submitted(sink, 1)
    assert answer["route"] == "orders"
    copy = sink.copies[0]
    assert copy.status is None and copy.primary() is None
    assert copy.error  # "status is None when the primary failed (error says why)"
    assert copy.response_body == b""
    assert (copy.request().method, copy.request().target) == ("GET", "/orders/7?q=1")
    assert len(sink.copies) == 1


async def test_a_pooled_primary_gone_for_good_submits_a_failed_copy() -> None:
    """The fast path's pooled connection is stale and the retry is refused: recover()
    answers 502 and the copy says the primary failed."""
    sink = RecordingSink()
    async with (
        one_answer_per_connection() as (legacy, _, upstream),
        run_proxy(config(legacy), shadow=ShadowTaps(sink)) as proxy,
        aiohttp.ClientSession() as s,
    ):
        async with s.get(proxy.url + "/orders/1") as r:
            assert r.status == 200
            first = await r.read()
        await submitted(sink, 1)
        upstream.close()  # no new connections; the pooled one dies on its next request
        await upstream.wait_closed()
        async with s.get(proxy.url + "/orders/2") as r:
            assert r.status == 502
            await r.read()
        await submitted(sink, 2)
    primary = sink.copies[0].primary()
    assert primary is not None and primary.body == first
    failed = sink.copies[1]
    assert failed.path == "/orders/2"
    assert failed.status is None and failed.primary() is None and failed.error
    assert failed.response_body == b""
    assert len(sink.copies) == 2


def flaky_new() -> tuple[web.Application, list[int]]:
    """A "new" service whose answers are 200 until told to fail with a 503 and a body."""
    failing: list[int] = []

    async def answer(request: web.Request) -> web.Response:
        if failing:
            return web.Response(status=503, text="new is down " * 50)
        return web.Response(text=f"new {request.path}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app, failing


async def test_a_fallback_answer_is_what_gets_submitted() -> None:
    """mode new + shadow block + fallback: the warm connection to new answers 503 (held),
    legacy answers; the copy holds legacy's answer, none of the held 503's body."""
    sink = RecordingSink()
    app, failing = flaky_new()
    async with (
        serve_app(varying_app()) as legacy,
        serve_app(app) as new,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as s,
    ):
        cfg = config(legacy, new)
        cfg["routes"][0].update(mode="new", fallback=True)
        async with run_proxy(cfg, shadow=ShadowTaps(sink)) as proxy:
            async with s.get(proxy.url + "/orders/1") as r:
                assert (r.status, await r.read()) == (200, b"new /orders/1")
            await submitted(sink, 1)
            failing.append(1)
            async with s.get(proxy.url + "/orders/2") as r:
                assert r.status == 200
                body = await r.read()
            await submitted(sink, 2)
    assert body.startswith(b"GET /orders/2 #")
    assert proxy.records[-1].fallback and proxy.records[-1].upstream == "legacy"
    decision, _, _, _ = sink.submitted[1]
    assert decision.shadow_to == "legacy"
    copy = sink.copies[1]
    primary = copy.primary()
    assert primary is not None and (primary.status, primary.body) == (200, body)


async def test_a_fallback_after_a_broken_adapter_submits_legacys_answer() -> None:
    sink = RecordingSink()
    async with serve_app(echo_app()) as legacy, serve_app(echo_app(name="new")) as new:
        cfg = config(legacy, new)
        cfg["routes"][0].update(
            mode="new", fallback=True, adapter="tests.proxy.sample_adapters:Broken"
        )
        async with (
            run_proxy(cfg, shadow=ShadowTaps(sink)) as proxy,
            aiohttp.ClientSession() as session,
            session.get(proxy.url + "/orders/1") as resp,
        ):
            assert (resp.status, resp.headers["X-Strangler-Upstream"]) == (200, "legacy")
            answer = await resp.read()
            await submitted(sink, 1)
    copy = sink.copies[0]
    assert (copy.status, copy.error, copy.response_body) == (200, None, answer)
