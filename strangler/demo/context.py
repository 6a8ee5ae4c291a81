"""What every demo step works with: the running stack, the admin API, clients, the report.

Also the waits the steps share. Each wait polls something a person could look at
(the service's own database, the proxy's answers, ``/api/routes``) until it shows
the expected state or a timeout passes; a timeout fails the step with what was seen.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from strangler.demo.admin import AdminApi, shadow_total
from strangler.demo.report import Report
from strangler.demo.stack import DemoStack
from strangler.demo.steps import check
from strangler.demo.traffic import Sample, Traffic, users

ROUTE = "customers"
SERVICE = "customers"
"""Upstream name of the customers service (the route's ``to``)."""


@dataclass
class Demo:
    stack: DemoStack
    admin: AdminApi
    traffic: Traffic
    report: Report
    ids: list[int] = field(default_factory=list)
    canary_users: dict[float, set[str]] = field(default_factory=dict)

    def pick_customer(self) -> Callable[[random.Random], str]:
        """A path picker for :class:`Traffic`: GET one of the monolith's customers."""
        ids = self.ids

        def pick(rng: random.Random) -> str:
            return f"/api/customers/{rng.choice(ids)}"

        return pick

    async def flip(self, mode: str, percent: float | None = None) -> None:
        """Set the route's override through the admin API, then wait until the proxy
        routes by it (with a shared state store the table is swapped asynchronously,
        when the change notice arrives) and report how long that took."""
        started = time.monotonic()
        await self.admin.flip(ROUTE, mode, percent)
        while True:
            route = await self.admin.route(ROUTE)
            if route["mode"] == mode and (percent is None or route["percent"] == percent):
                break
            check(time.monotonic() - started < 5, f"the proxy still routes by {route['mode']}")
            await asyncio.sleep(0.005)
        label = f"{mode} {percent:g}%" if percent is not None else mode
        self.report.proof(
            f"PUT /api/routes/{ROUTE}/override ({label}): in effect after "
            f"{(time.monotonic() - started) * 1000:.0f} ms (source {route['source']})"
        )

    async def burst(self, pool: list[str], per_user: int = 1) -> tuple[Sample, float]:
        """GET random customers as ``pool``; also returns how many of those requests the
        proxy answered from legacy because the new side failed (its fallback counter)."""
        before = await self.admin.metric("strangler_fallbacks_total", route=ROUTE)
        sample = await self.traffic.burst(pool, self.pick_customer(), per_user=per_user)
        after = await self.admin.metric("strangler_fallbacks_total", route=ROUTE)
        return sample, after - before

    def served_by_new(self, sample: Sample, fallbacks: float) -> None:
        """Prove every answer came from the service, except (counted) fallbacks."""
        by = sample.by_upstream()
        note = f" ({fallbacks:g} answered by legacy as fallbacks)" if fallbacks else ""
        self.report.proof(
            f"{len(sample)} GETs: {pct(sample.share(SERVICE))} served by {SERVICE}{note}"
        )
        check(not sample.errors, f"{len(sample.errors)} client errors")
        check(
            len(sample) - by[SERVICE] <= fallbacks,
            f"answers came from {dict(by)} with only {fallbacks:g} fallbacks",
        )

    async def quiet_shadow(self, timeout: float = 5.0) -> dict[str, int]:
        """The shadow counts once comparisons still in flight (or batched for the store)
        have landed: two reads 0.6 s apart agree. A baseline for counting fresh traffic."""
        deadline = time.monotonic() + timeout
        counts = dict((await self.admin.shadow(ROUTE)).get("counts", {}))
        while time.monotonic() < deadline:
            await asyncio.sleep(0.6)
            again = dict((await self.admin.shadow(ROUTE)).get("counts", {}))
            if again == counts:
                break
            counts = again
        return {k: int(v) for k, v in counts.items()}

    async def settle_shadow(self, before: int, expected: int, timeout: float = 10.0) -> int:
        """Wait until the off-path comparisons of a burst are counted; returns the count."""
        deadline = time.monotonic() + timeout
        compared = before
        while time.monotonic() < deadline:
            compared = shadow_total(await self.admin.shadow(ROUTE))
            if compared - before >= expected:
                break
            await asyncio.sleep(0.05)
        return compared


def pct(x: float) -> str:
    return f"{x * 100:.1f}%"


async def wait_service_row(demo: Demo, cust_id: int, ok: Any, timeout: float = 10.0) -> float:
    """Seconds until the service's own row for ``cust_id`` satisfies ``ok``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if ok(await demo.stack.service_customer(cust_id)):
            return time.monotonic() - started
        await asyncio.sleep(0.005)
    check(False, f"customer {cust_id} did not reach the service DB within {timeout:g}s")
    return timeout


async def wait_route(demo: Demo, ok: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    route = await demo.admin.route(ROUTE)
    while not ok(route) and time.monotonic() < deadline:
        # keep traffic flowing: the rollback monitor judges a window of requests
        await demo.traffic.burst(users(20, "probe"), demo.pick_customer())
        await asyncio.sleep(0.1)
        route = await demo.admin.route(ROUTE)
    return route


async def wait_answered_by(demo: Demo, upstream: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        reply = await demo.traffic.send("probe", "GET", f"/api/customers/{demo.ids[0]}")
        if reply.upstream == upstream:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    check(False, f"{upstream} did not answer within {timeout:g}s")
    return timeout
