"""The sample migration, step by step: moving ``customers`` out of the monolith.

Each step drives the running stack the way an operator would (admin API,
routes.yaml reload, the ``strangler`` CLI) and real clients would (HTTP through
the proxy), then proves its claim from what it measured: row counts, verify
results, shares of answers by upstream, shadow counters, metrics. Nothing here
prints a figure it did not measure, and every claim is a :func:`check`.
"""

from __future__ import annotations

import asyncio
import json
import math
import time

from strangler.demo.admin import data_samples, mismatch_example, mismatched_fields, shadow_total
from strangler.demo.config import CIRCUIT_COOLDOWN
from strangler.demo.context import (
    ROUTE,
    SERVICE,
    Demo,
    pct,
    wait_answered_by,
    wait_route,
    wait_service_row,
)
from strangler.demo.ownership import back_and_forth, cutover
from strangler.demo.steps import Step, check
from strangler.demo.traffic import users

CANARY_USERS = 1000


def canary_tolerance(percent: float, users: int = CANARY_USERS) -> float:
    """Points the share of users on the new side may stray from ``percent``: four
    standard deviations of a binomial draw of ``users`` (at least 3 points). Users
    land by a hash of their id, so the draw is fixed per id, but any hash is a draw."""
    p = percent / 100
    return max(3.0, 400 * math.sqrt(p * (1 - p) / users))


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{table} {n:,} rows" for table, n in counts.items())


# ---------------------------------------------------------------------- steps


async def monolith_up(demo: Demo) -> None:
    r = demo.report
    counts = await demo.stack.monolith_counts()
    r.proof(f"monolith {demo.stack.monolith_url} on {demo.stack.monolith_db}")
    r.proof(f"seeded: {_fmt_counts(counts)}")
    check(all(n > 0 for n in counts.values()), f"a legacy table is empty: {counts}")
    demo.ids = await demo.stack.customer_ids()
    route = await demo.admin.route(ROUTE)
    reply = await demo.traffic.send("probe", "GET", f"/api/customers/{demo.ids[0]}")
    r.proof(
        f"proxy {demo.stack.proxy_url}: route {ROUTE} is {route['mode']} "
        f"(source {route['source']}); GET /api/customers/{demo.ids[0]} -> "
        f"{reply.status} from {reply.upstream}"
    )
    check(reply.status == 200, f"GET through the proxy answered {reply.status}")
    check(reply.upstream == demo.stack.legacy, f"answered by {reply.upstream}, not the monolith")


async def data_aligned(demo: Demo) -> None:
    r = demo.report
    sync = demo.stack.sync
    assert sync is not None
    waited = await sync.wait_caught_up()
    r.proof(
        f"snapshot complete ({waited:.1f}s into this step): service DB has "
        f"{_fmt_counts(await demo.stack.service_counts())} "
        f"(a CUSTOMER row -> a customers row, + an addresses row if it has an address)"
    )
    result = await sync.verify()
    r.proof(f"verify: {result}")
    check(result.aligned, f"verify found drift after the snapshot: {result}")
    # A legacy client creates a customer and changes one; writes go to the monolith
    # (the route only moves reads) and CDC must carry them to the service's database.
    created = await demo.traffic.send("clerk", "POST", "/api/customers", json=NEW_CUSTOMER)
    check(created.status == 201, f"POST /api/customers answered {created.status}")
    check(created.upstream == demo.stack.legacy, f"POST answered by {created.upstream}")
    cust_id = int(json.loads(created.body)["CUST_ID"])
    lag = await wait_service_row(demo, cust_id, lambda row: row is not None)
    r.proof(
        f"POST /api/customers -> monolith (CUST_ID {cust_id}); row in the service DB "
        f"{lag * 1000:.0f} ms after the monolith answered"
    )
    updated = await demo.traffic.send(
        "clerk", "PUT", f"/api/customers/{cust_id}", json={"STATUS_CD": "I"}
    )
    check(updated.status == 200, f"PUT /api/customers/{cust_id} answered {updated.status}")
    lag = await wait_service_row(
        demo, cust_id, lambda row: row is not None and row["status"] == "inactive"
    )
    r.proof(f"PUT STATUS_CD=I -> service row status 'inactive' after {lag * 1000:.0f} ms")
    demo.ids.append(cust_id)


NEW_CUSTOMER = {
    "CUST_NM": "Ada Lovelace",
    "EMAIL_ADDR": "ada@example.com",
    "PHONE_NO": "+44-20-7946-0018",
    "ADDR_LINE1": "12 St James's Sq",
    "ADDR_CITY": "London",
    "ADDR_ZIP": "SW1Y 4JH",
    "CREDIT_LIMIT_CENTS": "250050",
}


async def shadow(demo: Demo) -> None:
    r = demo.report
    await demo.flip("shadow")
    before = shadow_total(await demo.admin.shadow(ROUTE))
    sample = await demo.traffic.burst(users(200), demo.pick_customer(), per_user=2)
    check(not sample.errors, f"{len(sample.errors)} client errors in shadow mode")
    check(
        sample.share(demo.stack.legacy) == 1.0,
        f"shadow must answer from legacy, got {dict(sample.by_upstream())}",
    )
    await demo.settle_shadow(before, len(sample))
    data = await demo.admin.shadow(ROUTE)
    counts = data.get("counts", {})
    compared = shadow_total(data)
    matched = int(counts.get("match", 0))
    r.proof(
        f"{len(sample)} GETs answered by {demo.stack.legacy}; {compared} mirrored and compared: "
        f"{matched} match ({pct(matched / compared if compared else 0)})"
    )
    fields = mismatched_fields(data)
    check(compared > 0, "no shadow comparison was recorded")
    check(bool(fields), "expected the first adapter's mismatch, found none")
    for path, rate in fields.items():
        r.proof(f"mismatching field {path}: {pct(rate)} of comparisons")
    example = mismatch_example(data)
    if example:
        r.proof(example)
    check(len(fields) == 1, f"expected exactly one mismatching field, got {sorted(fields)}")
    check(EXPECTED_MISMATCH in fields, f"expected {EXPECTED_MISMATCH} to differ, got {fields}")
    r.note(MISMATCH_EXPLANATION)
    accepted = await demo.stack.use_adapter("fixed")
    r.proof(f"routes.yaml: adapter -> adapters.customers:CustomerApi; reload accepted: {accepted}")
    check(accepted, "the proxy rejected the fixed routes.yaml")
    baseline = await demo.quiet_shadow()
    before = shadow_total({"counts": baseline})
    before_match = baseline.get("match", 0)
    fresh = await demo.traffic.burst(users(200, "fresh"), demo.pick_customer(), per_user=2)
    after = await demo.settle_shadow(before, len(fresh))
    data = await demo.admin.shadow(ROUTE)
    new_compared = after - before
    new_matched = int(data.get("counts", {}).get("match", 0)) - before_match
    r.proof(
        f"fresh traffic after the fix: {new_compared} compared, {new_matched} match "
        f"({pct(new_matched / new_compared if new_compared else 0)})"
    )
    check(new_compared > 0, "no comparisons after the fix")
    check(new_matched == new_compared, f"{new_compared - new_matched} still mismatch after the fix")


EXPECTED_MISMATCH = "body.CREDIT_LIMIT_CENTS"
MISMATCH_EXPLANATION = (
    "why: the first adapter draft (CustomerApiWholeUnits) read the service's credit_limit "
    "as whole currency units, as the v2 API draft documented, so it rounds the cents "
    "away when it rebuilds CREDIT_LIMIT_CENTS; the fix (CustomerApi) keeps the cents"
)


async def canary(demo: Demo) -> None:
    r = demo.report
    pool = users(CANARY_USERS)
    for percent in (10.0, 50.0):
        await demo.flip("canary", percent)
        sample, fallbacks = await demo.burst(pool, per_user=2)
        check(not sample.errors, f"{len(sample.errors)} client errors at canary {percent:g}%")
        on_new = sample.users_on(SERVICE)
        share = len(on_new) / len(pool) * 100
        # A canary user sees legacy only when the service failed their request and legacy
        # answered instead (a fallback, counted by the proxy); anything more is not sticky.
        drift = sample.non_sticky_users()
        tolerance = canary_tolerance(percent)
        r.proof(
            f"canary {percent:g}%: {len(sample)} GETs from {len(pool)} users; "
            f"{len(on_new)} users ({share:.1f}%, allowed {percent:g} ± {tolerance:.1f}) served "
            f"by {SERVICE}, request share {pct(sample.share(SERVICE))}; "
            f"users seeing both sides: {len(drift)}"
            + (f" (fallbacks to legacy: {fallbacks:g})" if fallbacks else "")
        )
        check(
            abs(share - percent) <= tolerance,
            f"{share:.1f}% of users on {SERVICE}, expected {percent:g}% ± {tolerance:.1f}",
        )
        check(
            len(drift) <= fallbacks,
            f"{len(drift)} users were answered by both sides, only {fallbacks:g} fallbacks: "
            "not sticky",
        )
        demo.canary_users[percent] = on_new
    moved_back = demo.canary_users[10.0] - demo.canary_users[50.0]
    r.proof(
        f"raising 10% -> 50%: {len(demo.canary_users[10.0])} users on {SERVICE} at 10%, "
        f"{len(moved_back)} of them moved back to legacy"
    )
    check(not moved_back, f"{len(moved_back)} users moved back when the percent rose")


async def new(demo: Demo) -> None:
    r = demo.report
    await demo.flip("new")
    before = await demo.quiet_shadow()
    sample, fallbacks = await demo.burst(users(200), per_user=2)
    demo.served_by_new(sample, fallbacks)
    # The route keeps its shadow: block, so in `new` every GET is mirrored back to the
    # monolith and the two answers compared: the proxy checks what clients now get.
    await demo.settle_shadow(shadow_total({"counts": before}), len(sample))
    after = (await demo.admin.shadow(ROUTE)).get("counts", {})
    delta = {
        k: int(after.get(k, 0)) - int(before.get(k, 0)) for k in ("match", "mismatch", "error")
    }
    r.proof(
        f"mirrored back to {demo.stack.legacy} and compared: {sum(delta.values())} compared, "
        f"{delta['match']} match, {delta['mismatch']} mismatch, {delta['error']} error"
    )
    errors = [
        x.get("error") for x in data_samples(await demo.admin.shadow(ROUTE)) if x.get("error")
    ]
    check(
        delta["match"] > 0 and delta["mismatch"] == 0 and delta["error"] == 0,
        f"shadow comparisons in new mode: {delta}"
        + (f"; latest error: {errors[0]}" if errors else ""),
    )
    same, differing = await compare_with_legacy(demo, demo.ids[:200])
    r.proof(
        f"legacy clients: {same} of {same + len(differing)} customers get identical "
        f"JSON via the proxy ({SERVICE}) and straight from the monolith"
    )
    check(not differing, f"answers differ for customers {differing[:5]}")


async def compare_with_legacy(demo: Demo, ids: list[int]) -> tuple[int, list[int]]:
    same, differing = 0, []
    for cust_id in ids:
        path = f"/api/customers/{cust_id}"
        via_proxy = await demo.traffic.send("compare", "GET", path)
        check(via_proxy.upstream == SERVICE, f"{path} answered by {via_proxy.upstream}")
        direct = await demo.traffic.send_to(demo.stack.monolith_url, "GET", path)
        if json.loads(via_proxy.body) == json.loads(direct.body):
            same += 1
        else:
            differing.append(cust_id)
    return same, differing


async def failure(demo: Demo) -> None:
    r = demo.report
    fallbacks_before = await demo.admin.metric("strangler_fallbacks_total", route=ROUTE)
    demo.stack.break_service(500)
    r.note(f"the {SERVICE} service now answers every request with 500 (a bad deploy)")
    sample = await demo.traffic.burst(users(100, "during-outage"), demo.pick_customer(), 2)
    fallbacks = await demo.admin.metric("strangler_fallbacks_total", route=ROUTE)
    r.proof(
        f"{len(sample)} GETs during the outage: {len(sample.errors)} errors seen by clients, "
        f"answered by {dict(sample.by_upstream())}; fallbacks counted "
        f"+{fallbacks - fallbacks_before:g}"
        + (
            " (the rollback landed mid-burst; later GETs went straight to legacy)"
            if fallbacks - fallbacks_before < len(sample)
            else ""
        )
    )
    check(not sample.errors, f"clients saw {len(sample.errors)} errors on GET")
    check(fallbacks > fallbacks_before, "no fallback was counted")
    route = await wait_route(demo, lambda x: x["source"] == "auto-rollback", timeout=10)
    reason = (route.get("override") or {}).get("reason")
    r.proof(f"route {ROUTE}: mode {route['mode']}, source {route['source']}, reason: {reason}")
    check(route["source"] == "auto-rollback", f"no automatic rollback (source {route['source']})")
    check(route["mode"] == "legacy", f"rolled back to {route['mode']}, not legacy")
    after = await demo.traffic.burst(users(50, "after-rollback"), demo.pick_customer())
    r.proof(f"after the rollback: {pct(after.share(demo.stack.legacy))} served by legacy")
    check(after.share(demo.stack.legacy) == 1.0, "legacy does not answer after the rollback")


async def flip_back(demo: Demo) -> None:
    r = demo.report
    demo.stack.break_service(None)
    r.note(f"the {SERVICE} service is fixed; an operator clears the rollback with the CLI")
    # The breaker opened during the outage. Flipping before its cooldown has run out would
    # send reads to a breaker that still refuses them: each refusal counts as a failure of
    # the new service and can roll the route back again (an operator waits it out too).
    await asyncio.sleep(CIRCUIT_COOLDOWN)
    for argv in (["flip", ROUTE, "--reset"], ["flip", ROUTE, "new"]):
        code, output = await demo.stack.cli(argv)
        r.proof(f"$ strangler {' '.join(argv)}  -> exit {code}")
        for line in output.strip().splitlines():
            r.proof(f"  {line}")
        check(code == 0, f"strangler {' '.join(argv)} exited {code}")
        expected = "config" if "--reset" in argv else "override"
        started = time.monotonic()
        route = await demo.admin.route(ROUTE)
        # With a shared state store the proxy applies the change when its notice arrives.
        while route["source"] != expected and time.monotonic() - started < 5:
            await asyncio.sleep(0.005)
            route = await demo.admin.route(ROUTE)
        r.proof(
            f"route {ROUTE}: mode {route['mode']}, source {route['source']} "
            f"(proxy showed it {(time.monotonic() - started) * 1000:.0f} ms after the CLI exited)"
        )
        check(route["source"] == expected, f"source is {route['source']}, expected {expected}")
    # The breaker opened during the outage; the first request after its cooldown is the
    # half-open probe that closes it. Until then GETs are (correctly) answered by legacy.
    waited = await wait_answered_by(demo, SERVICE, timeout=10)
    r.proof(f"first answer from {SERVICE} {waited:.1f}s after the flip (circuit closed again)")
    sample, fallbacks = await demo.burst(users(50))
    demo.served_by_new(sample, fallbacks)
    code, output = await demo.stack.cli(["status"])
    for line in output.strip().splitlines():
        r.proof(f"  {line}")
    check(code == 0, f"strangler status exited {code}")


async def verified(demo: Demo) -> None:
    r = demo.report
    sync = demo.stack.sync
    assert sync is not None
    await sync.wait_caught_up()
    for line in await sync.summary():
        r.proof(line)
    api = await demo.admin.sync()
    r.proof(
        f"GET {demo.stack.admin_url}/api/sync: applied {api['totals']['applied']}, "
        f"dead-lettered {api['totals']['dead_lettered']}, parked {api['totals']['parked']}"
    )
    check(api["totals"]["dead_lettered"] == 0, "the worker dead-lettered events")
    result = await sync.verify()
    r.proof(f"verify: {result}")
    check(result.aligned, f"drift between monolith and service: {result}")


MIGRATION: tuple[Step[Demo], ...] = (
    Step("monolith", "Monolith up and seeded; proxy in front (customers: legacy)", monolith_up),
    Step("sync", "CDC: snapshot, then streaming into the service's database", data_aligned),
    Step("shadow", "Shadow: mirror GETs to the new service and compare field by field", shadow),
    Step("canary", "Canary 10% then 50%: sticky users, monotonic growth", canary),
    Step("new", "New: the service answers everyone; legacy clients see no change", new),
    Step("failure", "The new service fails: fallback, then automatic rollback", failure),
    Step("flip", "Operator clears the rollback and flips back with `strangler flip`", flip_back),
    Step("verify", "Data still aligned: `verify` over monolith and service", verified),
)
OWNERSHIP: tuple[Step[Demo], ...] = (
    Step(
        "cutover",
        "Cutover: the service takes the context's writes and data, writers keep writing",
        cutover,
    ),
    Step("back", "Back to the monolith and over again; data aligned both ways", back_and_forth),
)
STEPS = MIGRATION + OWNERSHIP
"""Every step; a backend without the way back (``Backend.way_back``) runs MIGRATION only."""
