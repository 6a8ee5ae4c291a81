"""SIGKILL one of two proxy replicas (real `strangler serve` processes, Redis state) in the
middle of a cutover: it completes or aborts, owner and routing agree on the survivor, and
every write held there is answered."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import aiohttp
import pytest

from tests.control.conftest import RedisServer
from tests.serve.support import ServeProcess, strangler_serve

from .stack import Sides, Site, call, context_view, cutover, sides, write, write_config


@pytest.fixture
async def found() -> AsyncIterator[Sides]:
    async with sides() as ups:
        yield ups


def _serve(site: Site) -> AbstractAsyncContextManager[ServeProcess]:
    return strangler_serve(site.config, site.port, site.admin_port, "--workers", "1")


async def _holding(session: aiohttp.ClientSession, site: Site) -> None:
    while (await context_view(session, site))["state"] == "steady":
        await asyncio.sleep(0.01)


async def test_killing_the_other_replica_mid_cutover(
    tmp_path: Path, found: Sides, redis_up: RedisServer, namespace: str
) -> None:
    extra = {"hold_timeout": "8s"}
    a = write_config(
        tmp_path, found, state=redis_up.url, namespace=namespace, name="a.yaml", context=extra
    )
    b = write_config(
        tmp_path, found, state=redis_up.url, namespace=namespace, name="b.yaml", context=extra
    )
    async with _serve(a), _serve(b) as killed, aiohttp.ClientSession() as session:
        found.delay["legacy"] = 3.0
        stuck = asyncio.create_task(write(session, b, "in-flight-on-b"))
        while not found.events:
            await asyncio.sleep(0.01)
        move = asyncio.create_task(cutover(session, a, "service"))
        await _holding(session, a)
        held = [asyncio.create_task(write(session, a, f"held-{i}")) for i in range(3)]
        await asyncio.sleep(0.2)
        os.killpg(killed.process.pid, signal.SIGKILL)
        status, body = await move
        assert status in (200, 409), body
        owner = body["owner"]
        expected = "customers" if owner == "service" else "monolith"
        assert sorted(await asyncio.gather(*held)) == [(200, expected)] * 3
        view = await context_view(session, a)
        assert (view["owner"], view["state"]) == (owner, "steady")
        assert await write(session, a, "after") == (200, expected)
        with pytest.raises(aiohttp.ClientError):
            await stuck  # that client was connected to the replica that died
        found.delay["legacy"] = 0.0


async def test_killing_the_replica_running_the_cutover(
    tmp_path: Path, found: Sides, redis_up: RedisServer, namespace: str
) -> None:
    extra = {"hold_timeout": "1s", "max_lag": "1s"}
    a = write_config(
        tmp_path, found, state=redis_up.url, namespace=namespace, name="a.yaml", context=extra
    )
    b = write_config(
        tmp_path, found, state=redis_up.url, namespace=namespace, name="b.yaml", context=extra
    )
    async with _serve(a) as killed, _serve(b), aiohttp.ClientSession() as session:
        found.delay["legacy"] = 0.5
        first = asyncio.create_task(write(session, b, "in-flight-on-b"))
        while not found.events:
            await asyncio.sleep(0.01)
        move = asyncio.create_task(cutover(session, a, "service"))
        await _holding(session, b)
        held = [asyncio.create_task(write(session, b, f"held-{i}")) for i in range(3)]
        await asyncio.sleep(0.05)
        os.killpg(killed.process.pid, signal.SIGKILL)  # before it can flip or abort
        assert await first == (200, "monolith")
        # Nobody flips: b's watchdog ends the hold as an abort; its writes go to legacy.
        answers = await asyncio.wait_for(asyncio.gather(*held), 30)
        view = await context_view(session, b)
        assert (view["owner"], view["state"], view["epoch"]) == ("legacy", "steady", 0)
        assert sorted(answers) == [(200, "monolith")] * 3
        _, audit = await call(session, b, "GET", "/api/audit")
        assert any(
            e["action"] == "cutover.aborted" and e["who"] == "watchdog" for e in audit["entries"]
        ), audit
        with pytest.raises(aiohttp.ClientError):
            await move  # its replica died before answering
