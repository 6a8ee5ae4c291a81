"""The demo's last half: moving the customers context's writes and data to the service.

``cutover`` runs ``strangler cutover customers --to service`` (the real CLI) while
a writer keeps POSTing and PUTting through the proxy, then proves: no write
failed, the writes after it were answered by the service, a customer created
through the service shows up in the monolith's own screens and takes an order
there (reverse sync), and the hold time. ``back_and_forth`` cuts back to legacy
and over again under the same writer, then verifies the databases agree.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass, field

from strangler.demo.context import ROUTE, SERVICE, Demo
from strangler.demo.steps import check
from strangler.demo.traffic import Reply

CONTEXT = "customers"


@dataclass
class Writer:
    """One legacy client that keeps creating customers and renaming them, through the proxy."""

    demo: Demo
    replies: list[tuple[float, Reply]] = field(default_factory=list)
    created: list[int] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="demo-writer")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        for n in itertools.count():
            if self._stop.is_set():
                return
            if self.created and n % 3 == 2:
                ident = self.created[n % len(self.created)]
                reply = await self.demo.traffic.send(
                    "writer", "PUT", f"/api/customers/{ident}", {"PHONE_NO": f"555-{n:04d}"}
                )
            else:
                body = {"CUST_NM": f"Writer {n}", "EMAIL_ADDR": f"writer.{n}@example.com"}
                reply = await self.demo.traffic.send("writer", "POST", "/api/customers", body)
                if reply.status == 201:
                    self.created.append(int(json.loads(reply.body)["CUST_ID"]))
            self.replies.append((time.monotonic(), reply))
            await asyncio.sleep(0.01)

    def failed(self) -> list[Reply]:
        return [r for _, r in self.replies if r.status not in (200, 201)]

    def answered_by(self, since: float = 0.0) -> Counter[str]:
        return Counter(r.upstream for at, r in self.replies if at >= since)


async def _cut(demo: Demo, to: str) -> float:
    """``strangler cutover customers --to TO`` as a subprocess; returns when it exited."""
    r = demo.report
    code, output = await demo.stack.cli(["cutover", CONTEXT, "--to", to])
    r.proof(f"$ strangler cutover {CONTEXT} --to {to}  -> exit {code}")
    for line in output.strip().splitlines():
        r.proof(f"  {line}")
    check(code == 0, f"strangler cutover --to {to} exited {code}")
    view = (await demo.admin.contexts())["contexts"][0]
    check(view["owner"] == to, f"context owner is {view['owner']}, expected {to}")
    last = view["last_cutover"] or {}
    r.proof(
        f"GET /api/contexts: {CONTEXT} owned by {view['owner']} (epoch {view['epoch']}); "
        f"writes held {float(last.get('held_seconds', 0)) * 1000:.0f} ms, drained to "
        f"{last.get('position')}"
    )
    return time.monotonic()


async def _while_writing(demo: Demo, moves: list[str]) -> Writer:
    writer = Writer(demo)
    writer.start()
    try:
        await asyncio.sleep(0.5)
        for to in moves:
            await _cut(demo, to)
            await asyncio.sleep(0.5)
    finally:
        await writer.stop()
    return writer


async def _reads_on_the_service(demo: Demo) -> None:
    """The cutover's first precondition. If automatic rollback moved the reads back since
    step 7 (errors counted while the breaker was still open), the operator sees why and
    puts them back, as they would before a cutover: reset (clears the evidence), new."""
    route = await demo.admin.route(ROUTE)
    if route["mode"] == "new":
        return
    demo.report.note(
        f"route {ROUTE} is {route['mode']} ({route['source']}: {route.get('reason')}); "
        "the reads go back to the service first"
    )
    for argv in (["flip", ROUTE, "--reset"], ["flip", ROUTE, "new"]):
        code, _ = await demo.stack.cli(argv)
        demo.report.proof(f"$ strangler {' '.join(argv)}  -> exit {code}")
        check(code == 0, f"strangler {' '.join(argv)} exited {code}")
    started = time.monotonic()
    while (await demo.admin.route(ROUTE))["mode"] != "new":
        check(time.monotonic() - started < 5, f"route {ROUTE} is not new")
        await asyncio.sleep(0.01)


async def cutover(demo: Demo) -> None:
    r = demo.report
    await _reads_on_the_service(demo)
    r.note("a legacy client keeps POSTing new customers and PUTting changes through the proxy")
    writer = Writer(demo)
    writer.start()
    try:
        await asyncio.sleep(0.5)
        before = writer.answered_by()
        moved_at = await _cut(demo, "service")
        await asyncio.sleep(1.0)
    finally:
        await writer.stop()
    after = writer.answered_by(moved_at)
    failed = writer.failed()
    r.proof(
        f"writer: {len(writer.replies)} writes, {len(failed)} failed; before the cutover "
        f"answered by {dict(before)}, after it by {dict(after)}"
    )
    check(not failed, f"writes failed during the cutover: {failed[:3]}")
    check(set(after) == {SERVICE}, f"writes after the cutover answered by {dict(after)}")

    # A customer created through the service appears in the monolith's own screens (the
    # way back), and the monolith's orders module can sell to it.
    body = {"CUST_NM": "Grace Hopper", "EMAIL_ADDR": "grace@example.com"}
    created = await demo.traffic.send("writer", "POST", "/api/customers", body)
    check(created.status == 201, f"POST answered {created.status}")
    ident = int(json.loads(created.body)["CUST_ID"])
    r.proof(f"POST /api/customers -> {created.upstream} (CUST_ID {ident})")
    check(created.upstream == SERVICE, f"answered by {created.upstream}")
    started = time.monotonic()
    page = None
    while time.monotonic() - started < 10:
        page = await demo.traffic.send_to(demo.stack.monolith_url, "GET", f"/customers/{ident}")
        if page.status == 200 and b"Grace Hopper" in page.body:
            break
        await asyncio.sleep(0.02)
    check(
        page is not None and page.status == 200 and b"Grace Hopper" in page.body,
        "the new customer never reached the monolith",
    )
    r.proof(
        f"monolith screen /customers/{ident} shows Grace Hopper "
        f"{(time.monotonic() - started) * 1000:.0f} ms after the service answered (reverse sync)"
    )
    products = await demo.traffic.send_to(demo.stack.monolith_url, "GET", "/api/products")
    product = next(
        int(p["PROD_ID"])
        for p in json.loads(products.body)["PRODUCTS"]
        if p.get("ACTIVE_FLG", "Y") == "Y"
    )
    order = await demo.traffic.send_to(
        demo.stack.monolith_url,
        "POST",
        "/api/orders",
        {"CUST_ID": ident, "LINES": [{"PROD_ID": product, "QTY": 2}]},
    )
    check(order.status == 201, f"the monolith's orders refused the customer: {order.body!r}")
    number = str(json.loads(order.body).get("ORD_ID"))
    page = await demo.traffic.send_to(demo.stack.monolith_url, "GET", f"/customers/{ident}")
    check(
        page.status == 200 and f"/orders/{number}".encode() in page.body,
        f"order {number} is not on the monolith's page of customer {ident}",
    )
    r.proof(
        f"monolith POST /api/orders for CUST_ID {ident} -> order {number}, listed on the "
        "monolith's page of the customer (its orders module joins the synced copy)"
    )


async def back_and_forth(demo: Demo) -> None:
    r = demo.report
    writer = await _while_writing(demo, ["legacy", "service"])
    failed = writer.failed()
    r.proof(
        f"writer: {len(writer.replies)} writes, {len(failed)} failed, answered by "
        f"{dict(writer.answered_by())}"
    )
    check(not failed, f"writes failed: {failed[:3]}")
    sync = demo.stack.sync
    assert sync is not None
    await sync.wait_caught_up()
    api = await demo.admin.sync()
    totals = api["totals"]
    r.proof(
        f"GET /api/sync: applied {totals['applied']}, written by the non-owner "
        f"{totals.get('non_owner', 0)}, the worker's own writes dropped "
        f"{totals.get('own_write', 0)}"
    )
    check(totals.get("non_owner", 0) == 0, "a write reached the side that did not own it")
    result = await sync.verify()
    r.proof(f"verify: {result}")
    check(result.aligned, f"drift between monolith and service: {result}")
