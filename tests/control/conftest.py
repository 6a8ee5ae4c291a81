"""Control-plane fixtures: a private redis-server we can stop and restart, configs, planes."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from strangler.config import Config, parse_config
from strangler.control.plane import ControlPlane
from strangler.control.redis_store import RedisStateStore
from strangler.control.state import StateStore
from strangler.metrics import Metrics
from strangler.routing.router import Router
from strangler.routing.table import Route
from strangler.runtime import Runtime
from strangler.serve import RunningProxy
from strangler.shadow import MatchRates, ShadowTaps
from strangler.shadow.results import Batch
from tests.support.net import free_port, wait_for_port


class RedisServer:
    """A redis-server of our own on a free port (never the machine's shared one)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_up(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The module's Redis, restarted after the test if the test stopped it."""
    yield redis_server
    if redis_server.process is None:
        redis_server.start()


def make_config(**route: Any) -> Config:
    """One upstream pair and one route ``customers`` (keys override the route's)."""
    base: dict[str, Any] = {
        "name": "customers",
        "match": {"path": "/api/customers/**"},
        "to": "customers",
        "mode": "legacy",
    }
    base.update(route)
    return parse_config(
        {
            "legacy": "monolith",
            "admin": {"token": "s3cret"},
            "upstreams": {
                "monolith": {"url": "http://127.0.0.1:9"},
                "customers": {"url": "http://127.0.0.1:9"},
            },
            "routes": [base],
        }
    )


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait until ``check()`` is truthy (awaiting it if it is a coroutine function)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if isinstance(result, Awaitable):
                result = await result
            if result:
                return
        except AssertionError as exc:
            last = exc
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met in {timeout}s: {last or check}")


@dataclass
class Replica:
    """One proxy's control side: runtime (with its router), metrics, control plane."""

    runtime: Runtime
    metrics: Metrics
    plane: ControlPlane

    def route(self, name: str = "customers") -> Route:
        route = self.runtime.router.table.route(name)
        assert route is not None
        return route


@asynccontextmanager
async def replica(
    config: Config, store: StateStore, *, flush_every: float = 0.1
) -> AsyncIterator[Replica]:
    router = Router(config)
    metrics = Metrics()
    plane = ControlPlane(router, store, metrics=metrics, flush_every=flush_every)
    runtime = Runtime(router, listeners=(metrics.listener, plane.rollback.record))
    await plane.start()
    try:
        yield Replica(runtime, metrics, plane)
    finally:
        await plane.stop()


async def compared(running: RunningProxy, route: str, matches: int, mismatches: int) -> None:
    """Record shadow comparisons for ``route`` in the proxy's shadow store, as the mirror
    would, and refresh the match rates the admin API reads."""
    taps, rates = running.runtime.shadow, running.runtime.shadow_match_rate
    assert isinstance(taps, ShadowTaps) and isinstance(rates, MatchRates)
    batch = Batch(counts=Counter({"match": matches, "mismatch": mismatches}))
    await taps.mirror.store.merge(route, batch)
    await rates.refresh()


@pytest.fixture
def namespace() -> str:
    return "t" + uuid.uuid4().hex[:8]


@pytest.fixture
def redis_store(redis_up: RedisServer, namespace: str) -> Callable[[], RedisStateStore]:
    return lambda: RedisStateStore(redis_up.url, namespace)
