"""What must never move a context's writes, and the bounded hold queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from .stack import Sides, call, context_view, cutover, in_process, sides, write, write_config


@pytest.fixture
async def found() -> AsyncIterator[Sides]:
    async with sides() as ups:
        yield ups


async def test_a_write_route_cannot_be_overridden_only_cut_over(
    tmp_path: Path, found: Sides
) -> None:
    site = write_config(tmp_path, found)
    async with in_process(site), aiohttp.ClientSession() as session:
        path = "/api/routes/customer-writes/override"
        status, body = await call(session, site, "PUT", path, {"mode": "new"})
        assert status == 409 and body["field"] == "mode"
        assert "strangler cutover customers --to service" in body["error"]
        assert await write(session, site, "w1") == (200, "monolith")


async def test_automatic_rollback_never_sends_writes_to_the_old_owner(
    tmp_path: Path, found: Sides
) -> None:
    site = write_config(
        tmp_path,
        found,
        write_rollback={"error_rate": 0.2, "min_requests": 5, "window": "30s"},
    )
    async with in_process(site), aiohttp.ClientSession() as session:
        status, body = await cutover(session, site, "service")
        assert status == 200, body
        found.fail["new"] = True  # the service fails every write now
        for i in range(10):
            status, upstream = await write(session, site, f"w{i}")
            assert status >= 500 and upstream == "customers"

        async def refused() -> bool:
            _, audit = await call(session, site, "GET", "/api/audit")
            return any(e["action"] == "auto-rollback.refused" for e in audit["entries"])

        for _ in range(200):
            if await refused():
                break
            await asyncio.sleep(0.05)
        _, audit = await call(session, site, "GET", "/api/audit")
        entry = next(e for e in audit["entries"] if e["action"] == "auto-rollback.refused")
        assert entry["route"] == "customer-writes"
        assert "strangler cutover customers --to legacy" in entry["reason"]
        found.fail["new"] = False
        # Writes stayed with the owner's database: the service (once its breaker closes).
        for i in range(200):
            status, upstream = await write(session, site, f"after-{i}")
            assert upstream == "customers"
            if status == 200:
                break
            await asyncio.sleep(0.1)
        assert status == 200
        assert found.writes["legacy"] == []
        assert (await context_view(session, site))["owner"] == "service"


async def test_past_max_held_a_write_gets_503_and_the_rest_are_answered(
    tmp_path: Path, found: Sides
) -> None:
    site = write_config(tmp_path, found, context={"max_held": 2})
    async with in_process(site), aiohttp.ClientSession() as session:
        found.delay["legacy"] = 0.8
        first = asyncio.create_task(write(session, site, "in-flight"))
        while not found.events:
            await asyncio.sleep(0.005)
        move = asyncio.create_task(cutover(session, site, "service"))
        while (await context_view(session, site))["state"] == "steady":
            await asyncio.sleep(0.005)
        held = [asyncio.create_task(write(session, site, f"held-{i}")) for i in range(4)]
        answers = await asyncio.gather(*held)
        status, body = await move
        assert status == 200, body
        assert await first == (200, "monolith")
        assert sorted(answers) == [(200, "customers")] * 2 + [(503, "-")] * 2
