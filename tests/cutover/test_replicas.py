"""Cutover across proxy replicas sharing a real Redis: one hold, one flip, state that lasts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.control.conftest import RedisServer

from .stack import Sides, context_view, cutover, in_process, sides, write, write_config


@pytest.fixture
async def found() -> AsyncIterator[Sides]:
    async with sides() as ups:
        yield ups


async def test_redis_unreachable_refuses_before_anything_is_held(
    tmp_path: Path, found: Sides, redis_up: RedisServer, namespace: str
) -> None:
    site = write_config(tmp_path, found, state=redis_up.url, namespace=namespace)
    async with in_process(site), aiohttp.ClientSession() as session:
        redis_up.stop()
        status, body = await cutover(session, site, "service")
        assert status == 503, body
        assert "not started, nothing held" in body["error"] and "unreachable" in body["error"]
        # Writes keep flowing to the owner the proxy knows; none is held.
        assert await write(session, site, "w1") == (200, "monolith")
        redis_up.start()
        view = await context_view(session, site)
        assert (view["owner"], view["state"]) == ("legacy", "steady")


async def test_two_replicas_hold_together_and_follow_the_flip(
    tmp_path: Path, found: Sides, redis_up: RedisServer, namespace: str
) -> None:
    a = write_config(tmp_path, found, state=redis_up.url, namespace=namespace, name="a.yaml")
    b = write_config(tmp_path, found, state=redis_up.url, namespace=namespace, name="b.yaml")
    async with in_process(a), in_process(b), aiohttp.ClientSession() as session:
        found.delay["legacy"] = 0.6
        # A write in flight on replica b: the cutover run by replica a must wait for it.
        first = asyncio.create_task(write(session, b, "in-flight-on-b"))
        while not found.events:
            await asyncio.sleep(0.005)
        move = asyncio.create_task(cutover(session, a, "service"))
        while (await context_view(session, b))["state"] == "steady":
            await asyncio.sleep(0.005)
        held = [
            asyncio.create_task(write(session, site, f"held-{site.port}-{i}"))
            for site in (a, b)
            for i in range(3)
        ]
        status, body = await move
        assert status == 200, body
        assert await first == (200, "monolith")
        assert sorted(await asyncio.gather(*held)) == [(200, "customers")] * 6
        end_first = found.events.index(("end", "legacy", "in-flight-on-b"))
        assert min(i for i, e in enumerate(found.events) if e[1] == "new") > end_first
        for site in (a, b):
            assert (await context_view(session, site))["owner"] == "service"

    # A replica started later (or restarted) reads the owner from the store.
    c = write_config(tmp_path, found, state=redis_up.url, namespace=namespace, name="c.yaml")
    async with in_process(c), aiohttp.ClientSession() as session:
        assert await write(session, c, "after-restart") == (200, "customers")
        status, body = await cutover(session, c, "legacy")
        assert status == 200 and body["epoch"] == 2
        assert await write(session, c, "back") == (200, "monolith")
