"""Shadow test lab: real legacy and new upstreams on loopback, a real Router, the sink.

``front`` is a tiny aiohttp app that plays the data plane through the public
seams only (``decide()``, the mirror's ``wants/submit``): it answers from the
upstream the decision names and hands the shadow copy to the sink — so the
mirror is tested exactly as the proxy drives it, before and without the proxy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from strangler.config import Config, parse_config
from strangler.message import HttpRequest, HttpResponse, make_headers
from strangler.proxy.request import Framing, ProxyRequest, RequestBody
from strangler.proxy.shadowing import MARKER
from strangler.routing.decision import Decision, decide
from strangler.routing.router import Router
from strangler.shadow.copy import ShadowCopy
from strangler.shadow.mirror import ShadowMirror
from strangler.shadow.store import MemoryShadowStore, ShadowStore
from tests.support.net import free_port, serve_app


@dataclass
class Upstream:
    """A real upstream whose answers and delay the test controls; it records requests."""

    name: str
    body: Callable[[web.Request], Any] = lambda r: {"id": r.match_info.get("id"), "name": "Ada"}
    delay: float = 0.0
    seen: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.seen.append(
                {
                    "method": request.method,
                    "path": request.path_qs,
                    "headers": dict(request.headers),
                    "markers": request.headers.getall("X-Strangler-Shadow", []),
                    "body": await request.read(),
                }
            )
            if self.delay:
                await asyncio.sleep(self.delay)
            result = self.body(request)
            if isinstance(result, web.StreamResponse):
                return result
            return web.json_response(result)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app


def route_config(
    legacy: str, new: str, shadow: dict[str, Any] | None = None, **route: Any
) -> Config:
    data: dict[str, Any] = {
        "legacy": "monolith",
        "upstreams": {
            "monolith": {"url": legacy, "timeout": "5s"},
            "customers": {"url": new, "timeout": "5s"},
        },
        "routes": [
            {
                "name": "customers",
                "match": {"path": "/api/customers/**"},
                "to": "customers",
                "mode": "shadow",
                **route,
                **({"shadow": shadow} if shadow is not None else {}),
            }
        ],
    }
    return parse_config(data)


class Front:
    """Plays the data plane: decide, answer from the chosen upstream, hand to the sink."""

    def __init__(self, router: Router, sink: ShadowMirror | None) -> None:
        self.router = router
        self.sink = sink
        self.session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)

        async def start(_: web.Application) -> None:
            self.session = aiohttp.ClientSession()

        async def stop(_: web.Application) -> None:
            assert self.session is not None
            await self.session.close()

        app.on_startup.append(start)
        app.on_cleanup.append(stop)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        table = self.router.table
        decision = decide(table, request.method, request.path, request.headers, request.remote)
        body = await request.read()
        upstream = table.config.upstreams[decision.upstream]
        started = time.perf_counter()
        assert self.session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with self.session.request(
            request.method, upstream.url + request.path_qs, headers=headers, data=body or None
        ) as answer:
            data = await answer.read()
            status, answer_headers = answer.status, make_headers(answer.headers.items())
        duration = time.perf_counter() - started
        if self.sink is not None and self.sink.wants(decision, request.method):
            self.sink.submit(
                decision,
                copy_of(
                    decision,
                    HttpRequest(
                        headers=make_headers(request.headers.items()),
                        body=body,
                        method=request.method,
                        path=request.path,
                        query=request.query_string,
                    ),
                    HttpResponse(headers=answer_headers, body=data, status=status),
                    duration,
                ),
            )
        ctype = answer_headers.get("Content-Type", "application/json")
        return web.Response(
            status=status,
            body=data,
            headers={"Content-Type": ctype, "X-Strangler-Upstream": decision.upstream},
        )


def copy_of(
    decision: Decision, request: HttpRequest, primary: HttpResponse, duration: float
) -> ShadowCopy:
    """A complete shadow copy from values, as the data plane would have teed it."""
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()]
    req = ProxyRequest(
        request.method,
        request.target.encode("latin-1"),
        raw,
        True,
        RequestBody(None, True),
        Framing(len(request.body)),
    )
    req.shadowed = MARKER in request.headers
    copy = ShadowCopy(req, decision, max(len(request.body), len(primary.body)))
    copy.body = request.body
    copy.answered_with(primary)
    copy.duration = duration
    return copy


@dataclass
class Lab:
    legacy: Upstream
    new: Upstream
    store: ShadowStore
    outcomes: list[tuple[str, str]]
    comparisons: list[tuple[str, bool]]
    _stack: list[Any]

    async def start(
        self, config: Config, *, shadow: bool = True, max_in_flight: int = 512
    ) -> tuple[str, ShadowMirror, Router]:
        router = Router(config)
        lab = self

        class Metrics:
            def shadow(self, route: str, outcome: str, count: int = 1) -> None:
                lab.outcomes.extend([(route, outcome)] * count)

        mirror = ShadowMirror(
            lambda: router.table.config.upstreams,
            self.store,
            metrics=Metrics(),
            on_comparison=lambda route, matched, count: self.comparisons.extend(
                [(route, matched)] * count
            ),
            max_in_flight=max_in_flight,
        )
        front = Front(router, mirror if shadow else None)
        server = serve_app(front.app())
        url = await server.__aenter__()
        self._stack.append((server, mirror))
        return url, mirror, router


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    legacy, new = Upstream("monolith"), Upstream("customers")
    async with serve_app(legacy.app()) as legacy_url, serve_app(new.app()) as new_url:
        legacy.url, new.url = legacy_url, new_url
        made = Lab(legacy, new, MemoryShadowStore(), [], [], [])
        try:
            yield made
        finally:
            for server, mirror in reversed(made._stack):
                await mirror.close()
                await server.__aexit__(None, None, None)


async def drain(mirror: ShadowMirror, timeout: float = 10.0) -> None:
    """Wait until every mirror on its way is recorded, then flush to the store."""
    deadline = time.monotonic() + timeout
    while mirror.in_flight > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    await mirror.recorder.flush()


def dead_url() -> str:
    """A loopback URL nothing listens on (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"
