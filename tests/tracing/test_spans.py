"""Spans over OTLP (``tracing:``), as a collector receives them from a real `strangler serve`.

The collector is an in-process aiohttp server taking OTLP/HTTP protobuf on
``POST /v1/traces`` and decoding it with the opentelemetry-proto classes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from strangler.config import TracingConfig, parse_config
from strangler.errors import ConfigError, StranglerError
from strangler.tracing import Tracing
from tests.edge.support import config_text, get, one, serve, wire_upstream
from tests.support.net import free_port

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@dataclass
class Received:
    span: Span
    service: str

    @property
    def attributes(self) -> dict[str, Any]:
        return {a.key: _value(a.value) for a in self.span.attributes}


def _value(value: AnyValue) -> Any:
    return getattr(value, value.WhichOneof("value") or "string_value")


@dataclass
class Collector:
    url: str = ""
    spans: list[Received] = field(default_factory=list)
    posts: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        assert request.content_type == "application/x-protobuf", request.content_type
        export = ExportTraceServiceRequest.FromString(body)
        self.posts += 1
        for resource_spans in export.resource_spans:
            service = next(
                a.value.string_value
                for a in resource_spans.resource.attributes
                if a.key == "service.name"
            )
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(Received(span, service) for span in scope_spans.spans)
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.spans) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.spans

    def named(self, name: str) -> list[Received]:
        return [r for r in self.spans if r.span.name == name]


@contextlib.asynccontextmanager
async def collector() -> AsyncIterator[Collector]:
    received = Collector()
    app = web.Application()
    app.router.add_post("/v1/traces", received.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    received.url = f"http://127.0.0.1:{port}"
    try:
        yield received
    finally:
        await runner.cleanup()


async def test_spans_for_requests_upstream_tries_and_fallbacks_reach_the_collector(
    tmp_path: Path,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: the new upstream fails
    async with collector() as otlp, wire_upstream() as legacy:
        config = {
            "legacy": "legacy",
            "tracing": {"otlp_endpoint": otlp.url, "service_name": "edge-proxy"},
            "upstreams": {"legacy": {"url": legacy.url}, "new": {"url": dead}},
            "routes": [
                {
                    "name": "orders",
                    "match": {"path": "/api/orders/**"},
                    "to": "new",
                    "mode": "new",
                    "fallback": True,
                }
            ],
        }
        async with serve(tmp_path, config, "--workers", "1") as proxy:
            traced = await one(proxy.port, get("/api/x", extra=f"traceparent: {TRACEPARENT}\r\n"))
            fell = await one(proxy.port, get("/api/orders/7", extra="X-Request-Id: req-fb\r\n"))
            spans = await otlp.wait_for(5)
    assert (traced.status, fell.status) == (200, 200)
    assert {r.service for r in spans} == {"edge-proxy"}

    # The client's trace goes on: same trace id, the proxy's span a child of the client's.
    (request,) = otlp.named("GET")
    assert request.span.trace_id.hex() == TRACE_ID
    assert request.span.parent_span_id.hex() == PARENT_ID
    assert request.span.kind == Span.SPAN_KIND_SERVER
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["url.path"] == "/api/x"
    assert request.attributes["strangler.upstream"] == "legacy"
    assert request.attributes["strangler.request_id"] == traced.header("x-request-id")
    (tried,) = [r for r in otlp.named("upstream legacy") if r.span.trace_id.hex() == TRACE_ID]
    assert tried.span.parent_span_id == request.span.span_id
    assert tried.span.kind == Span.SPAN_KIND_CLIENT

    # The fallback: the request span, the failed try on new, then legacy's answer.
    (order,) = otlp.named("GET orders")
    assert order.span.trace_id.hex() != TRACE_ID and not order.span.parent_span_id
    assert order.attributes["strangler.request_id"] == "req-fb"
    assert order.attributes["strangler.decision"] == "new"
    assert order.attributes["strangler.upstream"] == "legacy"
    assert order.attributes["strangler.fallback"] is True
    assert order.attributes["error.type"] == "connect"
    (new_try,) = otlp.named("upstream new")
    assert new_try.span.parent_span_id == order.span.span_id
    assert new_try.span.status.code == new_try.span.status.STATUS_CODE_ERROR
    assert new_try.attributes["error.type"] == "connect"
    (fallback,) = otlp.named("fallback legacy")
    assert fallback.span.parent_span_id == order.span.span_id
    assert fallback.span.trace_id == order.span.trace_id
    assert fallback.attributes["http.response.status_code"] == 200


async def test_a_shadow_comparison_is_a_span(tmp_path: Path) -> None:
    async with collector() as otlp, wire_upstream() as legacy, wire_upstream() as new:
        config = {
            "legacy": "legacy",
            "tracing": {"otlp_endpoint": otlp.url + "/"},
            "upstreams": {"legacy": {"url": legacy.url}, "new": {"url": new.url}},
            "routes": [
                {"name": "items", "match": {"path": "/api/items/**"}, "to": "new", "mode": "shadow"}
            ],
        }
        async with serve(tmp_path, config, "--workers", "1") as proxy:
            answer = await one(proxy.port, get("/api/items/1"))
            await new.wait_for(1)
            deadline = time.monotonic() + 15
            while not otlp.named("shadow compare") and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
    assert answer.status == 200
    (compared,) = otlp.named("shadow compare")
    assert compared.service == "strangler"
    assert compared.attributes["strangler.route"] == "items"
    assert compared.attributes["strangler.shadow.matched"] is True
    assert compared.attributes["strangler.shadow.count"] == 1


async def test_tracing_without_the_otel_extra_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with pytest.raises(StranglerError, match=r"strangler\[otel\]"):
        Tracing(TracingConfig(otlp_endpoint="http://127.0.0.1:4318"))


async def test_serve_without_the_otel_extra_refuses_to_start(tmp_path: Path) -> None:
    """`strangler serve` with ``tracing:`` where opentelemetry's SDK does not import."""
    config = tmp_path / "routes.yaml"
    config.write_text(
        config_text(
            {
                "legacy": "legacy",
                "upstreams": {"legacy": {"url": "http://127.0.0.1:1"}},
                "tracing": {"otlp_endpoint": "http://127.0.0.1:4318"},
            },
            free_port(),
            free_port(),
        )
    )
    run = (
        "import sys; sys.modules['opentelemetry.sdk.trace'] = None\n"
        "from strangler.cli import main\n"
        f"sys.argv = ['strangler', 'serve', '-c', {str(config)!r}, '--workers', '1']\n"
        "sys.exit(main())\n"
    )
    repo = str(Path(__file__).resolve().parents[2])
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        run,
        env={**os.environ, "PYTHONPATH": repo},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert "tracing: needs the otel extra (pip install 'strangler[otel]')" in err.decode()


def test_a_bad_tracing_key_is_a_config_error() -> None:
    base = {"legacy": "legacy", "upstreams": {"legacy": {"url": "http://127.0.0.1:1"}}}
    with pytest.raises(ConfigError) as bad:
        parse_config({**base, "tracing": {"otlp_endpoint": "collector:4318", "sample": 2}})
    text = str(bad.value)
    assert "tracing.otlp_endpoint" in text and "tracing.sample" in text, text
    assert parse_config(base).tracing is None
