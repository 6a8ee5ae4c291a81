"""`strangler serve --workers 2` with `state: memory://`: the supervisor owns the state.

Which worker served is read from the kernel (/proc), see :mod:`tests.serve.workers`.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import aiohttp

from tests.control.conftest import eventually
from tests.serve.workers import (
    HEADERS,
    both_serving,
    burst,
    gets_on_each,
    pinned,
    raw_get,
    two_workers,
)


async def test_a_flip_through_the_admin_api_reaches_both_workers(tmp_path: Path) -> None:
    async with two_workers(tmp_path) as (serve, seen), aiohttp.ClientSession() as admin:
        workers = await both_serving(serve, seen)
        assert {side for _, side in seen.answers} == {"legacy"}

        async with admin.put(
            serve.admin + "/api/routes/customers/override", json={"mode": "new"}, headers=HEADERS
        ) as response:
            assert response.status == 200, await response.text()
        flipped_at = len(seen.answers)

        def both_on_new() -> bool:
            after = seen.answers[flipped_at:]
            return all(
                any(w == worker and side == "new" for w, side in after) for worker in workers
            )

        async def send_and_check() -> bool:
            await burst(serve)
            return both_on_new()

        await eventually(send_and_check, timeout=20)
        # Once a worker answered from new, it never went back to legacy.
        for worker in workers:
            sides = [side for w, side in seen.answers[flipped_at:] if w == worker]
            assert "legacy" not in sides[sides.index("new") :], sides

        async with admin.get(serve.admin + "/api/routes") as response:
            body = await response.json()
        (route,) = body["routes"]
        assert (route["mode"], route["source"]) == ("new", "override")
        assert body["state"]["url"] == "memory://" and body["state"]["connected"]

        # Back to routes.yaml, again on both workers.
        async with admin.delete(
            serve.admin + "/api/routes/customers/override", headers=HEADERS
        ) as response:
            assert response.status == 200
        cleared_at = len(seen.answers)

        async def both_back() -> bool:
            await burst(serve)
            after = seen.answers[cleared_at:]
            return all(
                any(w == worker and side == "legacy" for w, side in after) for worker in workers
            )

        await eventually(both_back, timeout=20)
        serve.send(signal.SIGTERM)
        assert await serve.wait() == 0


async def test_rollback_counts_from_both_workers_add_up(tmp_path: Path) -> None:
    """20 failing requests, 10 through each worker, roll the route back at min_requests
    20: neither worker saw 20 alone, so the counts met in the supervisor's state."""
    rollback = "    rollback: {error_rate: 0.5, min_requests: 20, window: 60s}\n"
    async with (
        two_workers(tmp_path, mode="new", new_status=500, route_keys=rollback) as (serve, seen),
        aiohttp.ClientSession() as admin,
    ):
        # Connections held by each worker, opened on an unmatched path (legacy: not
        # counted by the route's rollback); then 10 failing requests through each.
        held = await pinned(serve, 2, "/elsewhere")
        warmed = len(seen.answers)

        statuses = await gets_on_each(held, 5)
        # 500 from the service, or 502 once a worker's circuit breaker opened: all failures.
        assert all(status in (500, 502) for status in statuses), statuses
        assert set(Counter(w for w, _ in seen.answers[warmed:])) == set(held)

        async def rolled_back() -> bool:
            async with admin.get(serve.admin + "/api/routes") as response:
                (route,) = (await response.json())["routes"]
            return bool(route["source"] == "auto-rollback" and route["mode"] == "legacy")

        await eventually(rolled_back, timeout=20)

        # Every worker now answers from legacy (each asked on a connection it holds).
        async def both_on_legacy() -> bool:
            heads = [(await raw_get(cs[0], "/api/customers/9"))[1] for cs in held.values()]
            return all("x-strangler-upstream: monolith" in h.lower() for h in heads)

        await eventually(both_on_legacy, timeout=20)
        async with admin.get(serve.admin + "/api/audit") as response:
            entries = (await response.json())["entries"]
        assert [e["action"] for e in entries] == ["auto-rollback"]


async def test_a_cutover_holds_and_moves_writes_on_both_workers(tmp_path: Path) -> None:
    """Context owners and hold acknowledgements live in the supervisor's state too: the
    cutover waits for every worker's acknowledgement, then both send writes to the service."""
    routes = (
        "  - name: customer-writes\n"
        "    match: {path: /api/customers/**, methods: [POST]}\n"
        "    to: customers\n"
        "contexts:\n"
        "  customers: {routes: [customers, customer-writes], hold_timeout: 5s}\n"
    )
    async with (
        two_workers(tmp_path, mode="new", route_keys=routes) as (serve, seen),
        aiohttp.ClientSession() as admin,
    ):
        workers = await both_serving(serve, seen)
        async with admin.post(
            serve.admin + "/api/contexts/customers/cutover", json={"to": "service"}, headers=HEADERS
        ) as response:
            body = await response.json()
            assert response.status == 200, body
        async with admin.get(serve.admin + "/api/contexts") as response:
            (context,) = (await response.json())["contexts"]
        assert (context["owner"], context["state"]) == ("service", "steady")

        start = len(seen.answers)
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as client:

            async def write(i: int) -> None:
                async with client.post(f"{serve.proxy}/api/customers/{i}", json={}) as response:
                    assert response.status == 200

            for _ in range(20):
                await asyncio.gather(*(write(i) for i in range(20)))
                if {w for w, _ in seen.answers[start:]} == workers:
                    break
        after = seen.answers[start:]
        assert {w for w, _ in after} == workers
        assert {side for _, side in after} == {"new"}
