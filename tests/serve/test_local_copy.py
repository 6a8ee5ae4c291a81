"""A replica started while Redis is down serves the last state it saw, says so, and
reconciles when Redis is back (real `strangler serve`, real redis-server)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from strangler.control.redis_store import RedisStateStore
from strangler.override import Override
from tests.control.conftest import RedisServer, eventually
from tests.serve.conftest import routes_yaml
from tests.serve.support import Upstreams, side, strangler_serve, upstreams
from tests.support.net import free_port

HEADERS = {"Authorization": "Bearer secret"}


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def write_routes(tmp_path: Path, port: int, admin_port: int, state: str, up: Upstreams) -> Path:
    """routes.yaml for one replica on these ports, with this ``state:`` and the upstreams."""
    path = tmp_path / "routes.yaml"
    path.write_text(
        routes_yaml(
            port=port, admin_port=admin_port, state=state, legacy_url=up.legacy, new_url=up.new
        )
    )
    return path


async def routes(session: aiohttp.ClientSession, admin: str) -> dict[str, object]:
    async with session.get(admin + "/api/routes") as response:
        body: dict[str, object] = await response.json()
        return body


async def metric_line(session: aiohttp.ClientSession, admin: str, name: str) -> list[str]:
    async with session.get(admin + "/metrics") as response:
        return [line for line in (await response.text()).splitlines() if line.startswith(name)]


async def test_a_replica_started_with_redis_down_serves_its_last_state(
    tmp_path: Path, redis: RedisServer
) -> None:
    port, admin_port = free_port(), free_port()
    namespace = f"copy-{uuid.uuid4().hex[:8]}"
    copy = tmp_path / "state" / "copy.json"
    async with upstreams() as up, aiohttp.ClientSession() as session:
        state = f"{{url: '{redis.url}', namespace: {namespace}}}"
        path = write_routes(tmp_path, port, admin_port, state, up)
        url = "/api/customers/1"
        args = ("--workers", "1", "--local-copy", str(copy))

        # 1. Redis up: a person flips the route to new; the replica keeps a copy.
        async with strangler_serve(path, port, admin_port, *args) as serve:
            async with session.put(
                serve.admin + "/api/routes/customers/override",
                json={"mode": "new"},
                headers=HEADERS,
            ) as response:
                assert response.status == 200
            assert await side(session, serve.proxy + url) == "new"

            def copied() -> bool:
                return copy.is_file() and "customers" in json.loads(copy.read_text())["overrides"]

            await eventually(copied)
            serve.send(signal.SIGTERM)
            assert await serve.wait() == 0

        # 2. Redis down (and empty when it comes back): the restarted replica serves the copy.
        redis.stop()
        async with strangler_serve(path, port, admin_port, *args) as serve:
            assert await side(session, serve.proxy + url) == "new"
            body = await routes(session, serve.admin)
            state = body["state"]
            assert isinstance(state, dict)
            assert state["connected"] is False and state["source"] == "local_copy"
            assert state["local_copy"]["path"] == str(copy)
            assert "serving the local copy" in state["notice"]
            status = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "strangler", "status", "--admin", serve.admin],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert "serving the local copy" in status.stdout, status.stdout + status.stderr
            (route,) = body["routes"]  # type: ignore[misc]
            assert (route["mode"], route["source"]) == ("new", "override")
            assert await metric_line(session, serve.admin, "strangler_state_source") == [
                'strangler_state_source{source="store"} 0.0',
                'strangler_state_source{source="local_copy"} 1.0',
                'strangler_state_source{source="config"} 0.0',
            ]
            async with session.get(serve.admin + "/") as response:
                assert "serving the local copy" in await response.text()
            # Changes need the store: refused, nothing changed.
            async with session.put(
                serve.admin + "/api/routes/customers/override",
                json={"mode": "legacy"},
                headers=HEADERS,
            ) as response:
                assert response.status == 503

            # 3. Redis is back, where someone has since set the route to shadow: the
            #    store wins over the copy.
            redis.start()
            store = RedisStateStore(redis.url, namespace)
            try:
                await store.set_override("customers", Override(mode="shadow", by="elsewhere"))
            finally:
                await store.close()

            async def reconciled() -> bool:
                body = await routes(session, serve.admin)
                state = body["state"]
                (route,) = body["routes"]  # type: ignore[misc]
                return bool(
                    state["source"] == "store"  # type: ignore[index]
                    and state["connected"]  # type: ignore[index]
                    and state["notice"] is None  # type: ignore[index]
                    and route["mode"] == "shadow"
                )

            await eventually(reconciled, timeout=15)
            assert await side(session, serve.proxy + url) == "legacy"  # shadow: legacy answers
            assert 'strangler_state_source{source="store"} 1.0' in await metric_line(
                session, serve.admin, "strangler_state_source"
            )
            # The copy follows the store again.
            await eventually(
                lambda: json.loads(copy.read_text())["overrides"]["customers"]["mode"] == "shadow"
            )


async def test_without_a_copy_a_replica_started_with_redis_down_says_routes_yaml(
    tmp_path: Path,
) -> None:
    port, admin_port = free_port(), free_port()
    async with upstreams() as up, aiohttp.ClientSession() as session:
        state = f"{{url: 'redis://127.0.0.1:{free_port()}/0', local_copy: false}}"
        path = write_routes(tmp_path, port, admin_port, state, up)
        async with strangler_serve(path, port, admin_port, "--workers", "1") as serve:
            body = await routes(session, serve.admin)
            state = body["state"]
            assert isinstance(state, dict)
            assert state["source"] == "config" and state["local_copy"] is None
            assert "unreachable" in state["notice"]
