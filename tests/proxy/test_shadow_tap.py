"""What the data plane hands the shadow sink: the client's request and legacy's answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp

from strangler.message import HttpRequest, HttpResponse
from strangler.proxy.shadowing import ShadowCopy
from strangler.routing.decision import Decision
from tests.proxy.conftest import run_proxy
from tests.proxy.echo import echo_app
from tests.support.net import serve_app


@dataclass
class RecordingSink:
    """A ShadowSink that remembers what it was given (the real one mirrors off-path)."""

    submitted: list[tuple[Decision, HttpRequest, HttpResponse | None, str | None]] = field(
        default_factory=list
    )
    skipped_reasons: list[str] = field(default_factory=list)

    def wants(self, decision: Decision, method: str) -> bool:
        return method in ("GET", "POST")

    def submit(self, decision: Decision, copy: ShadowCopy) -> None:
        self.submitted.append((decision, copy.request(), copy.primary(), copy.error))

    def skipped(self, decision: Decision, reason: str) -> None:
        self.skipped_reasons.append(reason)


def config(legacy: str) -> dict[str, Any]:
    return {
        "legacy": "legacy",
        "upstreams": {"legacy": {"url": legacy}, "new": {"url": "http://127.0.0.1:9"}},
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
        run_proxy(config(legacy), shadow=sink) as proxy,
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
        run_proxy(config(legacy), shadow=sink) as proxy,
        aiohttp.ClientSession() as s,
    ):
        async with s.post(proxy.url + "/orders/5", data=b"x" * 50_000) as r:
            assert (await r.json())["body_size"] == 50_000
        async with s.get(proxy.url + "/orders/big?pad=" + "y" * 10) as r:
            assert r.status == 200
    assert sink.skipped_reasons == ["body_too_large"]
    assert len(sink.submitted) == 1


async def test_a_mirrored_request_is_never_mirrored_again() -> None:
    sink = RecordingSink()
    async with (
        serve_app(echo_app()) as legacy,
        run_proxy(config(legacy), shadow=sink) as proxy,
        aiohttp.ClientSession() as s,
        s.get(proxy.url + "/orders/1", headers={"X-Strangler-Shadow": "1"}) as r,
    ):
        assert r.status == 200
    assert sink.submitted == [] and sink.skipped_reasons == []
