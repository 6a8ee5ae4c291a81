"""The cutover through the admin API of a real proxy: refusals, the hold, the flip, abort."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from .stack import (
    Sides,
    call,
    context_view,
    cutover,
    in_process,
    sides,
    write,
    write_config,
)


@pytest.fixture
async def found() -> AsyncIterator[Sides]:
    async with sides() as ups:
        yield ups


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_contexts_are_listed_owned_by_legacy_at_first(
    tmp_path: Path, found: Sides, session: aiohttp.ClientSession
) -> None:
    site = write_config(tmp_path, found)
    async with in_process(site):
        view = await context_view(session, site)
        assert (view["name"], view["owner"], view["state"], view["epoch"]) == (
            "customers",
            "legacy",
            "steady",
            0,
        )
        assert [r["name"] for r in view["routes"]] == ["customers", "customer-writes"]
        assert view["last_cutover"] is None
        assert await write(session, site, "w1") == (200, "monolith")


async def test_cutover_needs_the_token_and_a_known_context(
    tmp_path: Path, found: Sides, session: aiohttp.ClientSession
) -> None:
    site = write_config(tmp_path, found)
    async with in_process(site):
        path = "/api/contexts/customers/cutover"
        status, body = await call(session, site, "POST", path, {"to": "service"}, token=None)
        assert status == 401 and "bearer token" in body["error"]
        status, body = await call(session, site, "POST", path, {"to": "service"}, token="nope")
        assert status == 401
        assert (await context_view(session, site))["owner"] == "legacy"  # nothing changed
        status, body = await cutover(session, site, "service", context="orders")
        assert status == 404 and "no context named 'orders'" in body["error"]
        status, body = await call(session, site, "POST", path, {"to": "elsewhere"})
        assert status == 400 and body["field"] == "to"
        assert await write(session, site, "w1") == (200, "monolith")


async def test_moves_writes_to_the_service_and_back(
    tmp_path: Path, found: Sides, session: aiohttp.ClientSession
) -> None:
    site = write_config(tmp_path, found)
    async with in_process(site):
        status, body = await cutover(session, site, "service")
        assert status == 200, body
        assert (body["result"], body["owner"], body["epoch"]) == ("done", "service", 1)
        assert body["held_seconds"] >= 0
        assert await write(session, site, "w1") == (200, "customers")
        assert await write(session, site, "w2", "PUT") == (200, "customers")
        view = await context_view(session, site)
        assert (view["owner"], view["epoch"], view["last_cutover"]["result"]) == (
            "service",
            1,
            "done",
        )
        writes = next(r for r in view["routes"] if r["name"] == "customer-writes")
        assert (writes["mode"], writes["source"]) == ("new", "ownership")

        status, body = await cutover(session, site, "service")
        assert status == 409 and "already owned by service" in body["error"]

        status, body = await cutover(session, site, "legacy")
        assert status == 200 and body["owner"] == "legacy" and body["epoch"] == 2
        assert await write(session, site, "w3") == (200, "monolith")
        assert found.writes == {"legacy": ["w3"], "new": ["w1", "w2"]}

        status, audit = await call(session, site, "GET", "/api/audit")
        actions = [(e["action"], e["route"]) for e in audit["entries"]]
        assert actions[:2] == [("cutover", "customers"), ("cutover", "customers")]

        async with session.get(site.admin + "/metrics") as response:
            text = await response.text()
        assert (
            'strangler_cutovers_total{context="customers",result="done",to="service"} 1.0' in text
        )
        assert 'strangler_cutover_hold_seconds_count{context="customers"} 2.0' in text


async def test_refused_while_the_reads_are_not_on_the_service(
    tmp_path: Path, found: Sides, session: aiohttp.ClientSession
) -> None:
    site = write_config(tmp_path, found, read_mode="canary")
    async with in_process(site):
        status, body = await cutover(session, site, "service")
        assert status == 409
        assert "read route 'customers' is canary 50%, not new (or canary 100%)" in body["error"]
        assert (await context_view(session, site))["owner"] == "legacy"
        async with session.get(site.admin + "/metrics") as response:
            text = await response.text()
        assert (
            'strangler_cutovers_total{context="customers",result="refused",to="service"} 1.0'
            in text
        )
        assert await write(session, site, "w1") == (200, "monolith")


async def test_refused_while_the_service_fails_over_the_rollback_threshold(
    tmp_path: Path, found: Sides, session: aiohttp.ClientSession
) -> None:
    failing = write_config(
        tmp_path, found, rollback={"error_rate": 0.5, "min_requests": 5, "window": "60s"}
    )
    failing.config.write_text(
        failing.config.read_text().replace(found.new, "http://127.0.0.1:9"), encoding="utf-8"
    )
    async with in_process(failing):
        for _ in range(6):
            async with session.get(failing.proxy + "/api/customers/1") as response:
                await response.read()
        status, body = await cutover(session, failing, "service")
        assert status == 409, body
        assert (
            "read route 'customers' is legacy (auto-rollback: error rate 100.0% above"
            in (body["error"])
        )
        assert await write(session, failing, "w1") == (200, "monolith")


async def test_refused_while_the_shadow_mismatch_rate_is_over_the_rollback_threshold(
    tmp_path: Path, found: Sides, session: aiohttp.ClientSession
) -> None:
    # Reads are new and mirrored back to legacy; the two sides never agree. Too few
    # comparisons for the rollback monitor to act (min_requests), but the cutover reads
    # the route's match rate and refuses.
    site = write_config(
        tmp_path,
        found,
        shadow={"percent": 100},
        rollback={"mismatch_rate": 0.1, "min_requests": 1000, "window": "60s"},
    )
    async with in_process(site):
        for _ in range(5):
            async with session.get(site.proxy + "/api/customers/1") as response:
                assert (await response.json())["side"] == "new"
        rate = None
        for _ in range(400):  # the comparisons are made off the request path
            _, routes = await call(session, site, "GET", "/api/routes")
            rate = next(r for r in routes["routes"] if r["name"] == "customers")[
                "shadow_match_rate"
            ]
            if rate is not None:
                break
            await asyncio.sleep(0.05)
        assert rate == 0.0
        status, body = await cutover(session, site, "service")
        assert status == 409, body
        assert (
            "route 'customers': shadow mismatch rate 100.0% above rollback.mismatch_rate"
            in (body["error"])
        )
        assert (await context_view(session, site))["owner"] == "legacy"
        assert await write(session, site, "w1") == (200, "monolith")


async def test_in_flight_writes_finish_on_the_old_owner_then_held_ones_go_to_the_new(
    tmp_path: Path, found: Sides, session: aiohttp.ClientSession
) -> None:
    site = write_config(tmp_path, found)
    async with in_process(site):
        found.delay["legacy"] = 0.6
        first = asyncio.create_task(write(session, site, "in-flight"))
        while not found.events:
            await asyncio.sleep(0.005)
        move = asyncio.create_task(cutover(session, site, "service"))
        while (await context_view(session, site))["state"] == "steady":
            await asyncio.sleep(0.005)
        held = [asyncio.create_task(write(session, site, f"held-{i}")) for i in range(5)]
        # A route outside the context is not held: it answers while the hold lasts.
        async with session.get(site.proxy + "/api/orders/1") as response:
            assert response.status == 200
        assert not move.done()
        # One cutover per context at a time: a second one is refused, nothing touched.
        again, refused = await cutover(session, site, "service")
        assert again == 409 and "a cutover of 'customers' is already running" in refused["error"]
        assert await first == (200, "monolith")
        status, body = await move
        assert status == 200 and body["owner"] == "service", body
        assert sorted(await asyncio.gather(*held)) == [(200, "customers")] * 5
        # The in-flight write ended on legacy before any held write reached the service.
        end_first = found.events.index(("end", "legacy", "in-flight"))
        starts_new = [i for i, e in enumerate(found.events) if e[:2] == ("start", "new")]
        assert starts_new and min(starts_new) > end_first
        assert body["held_seconds"] > 0


async def test_abort_sends_the_held_writes_to_the_old_owner(
    tmp_path: Path, found: Sides, session: aiohttp.ClientSession
) -> None:
    # A write in flight longer than hold_timeout: the hold is never confirmed -> abort.
    site = write_config(tmp_path, found, context={"hold_timeout": "300ms"})
    async with in_process(site):
        found.delay["legacy"] = 1.0
        first = asyncio.create_task(write(session, site, "slow"))
        while not found.events:
            await asyncio.sleep(0.005)
        move = asyncio.create_task(cutover(session, site, "service"))
        while (await context_view(session, site))["state"] == "steady":
            await asyncio.sleep(0.005)
        held = asyncio.create_task(write(session, site, "held"))
        status, body = await move
        assert status == 409, body
        assert body["result"] == "aborted" and body["owner"] == "legacy"
        assert "did not confirm the hold" in body["error"]
        assert await held == (200, "monolith")
        assert await first == (200, "monolith")
        view = await context_view(session, site)
        assert (view["owner"], view["state"], view["epoch"]) == ("legacy", "steady", 0)
        assert view["last_cutover"]["result"] == "aborted"
        assert found.writes["new"] == []
