"""Proxy tests: a real ProxyServer on a free loopback port in front of real aiohttp apps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from strangler.config import parse_config
from strangler.proxy.server import ProxyServer, bind
from strangler.routing.router import Router
from strangler.runtime import RequestRecord, Runtime, ShadowSink


@dataclass
class RunningProxy:
    url: str
    port: int
    server: ProxyServer
    runtime: Runtime
    records: list[RequestRecord] = field(default_factory=list)


@asynccontextmanager
async def run_proxy(
    config: dict[str, Any], shadow: ShadowSink | None = None
) -> AsyncIterator[RunningProxy]:
    """Start the real proxy on a free port for ``config`` (a routes.yaml mapping)."""
    records: list[RequestRecord] = []
    runtime = Runtime(Router(parse_config(config)), listeners=(records.append,), shadow=shadow)
    server = ProxyServer(runtime)
    await server.start(bind("127.0.0.1", 0))
    try:
        yield RunningProxy(f"http://127.0.0.1:{server.port}", server.port, server, runtime, records)
    finally:
        await server.close(1.0)


def one_upstream(url: str, **extra: Any) -> dict[str, Any]:
    """A config with a single legacy upstream and no routes."""
    return {"legacy": "legacy", "upstreams": {"legacy": {"url": url, **extra}}}


Handler = Callable[..., Any]
