"""Automatic rollback, decided once across two replicas sharing a real Redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strangler.control.redis_store import RedisStateStore
from strangler.proxy.outcome import Failure
from strangler.runtime import RequestRecord

from .conftest import Replica, eventually, make_config, replica

ROLLBACK: dict[str, Any] = {"error_rate": 0.2, "window": "60s", "min_requests": 20}


def served(replica: Replica, n: int, *, failing: int = 0) -> None:
    """``n`` requests answered through ``to`` on this replica, ``failing`` of them 5xx."""
    for i in range(n):
        failed = i < failing
        replica.runtime.record(
            RequestRecord(
                route="customers",
                upstream="customers",
                status=500 if failed else 200,
                duration=0.001,
                to_new=True,
                error=Failure.STATUS if failed else None,
            )
        )


def rollbacks(metrics_text: bytes) -> float:
    total = 0.0
    for line in metrics_text.decode().splitlines():
        if line.startswith("strangler_rollbacks_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_failing_canary_is_rolled_back_exactly_once_across_replicas(
    redis_store: Callable[[], RedisStateStore],
) -> None:
    config = make_config(mode="canary", percent=50, rollback=ROLLBACK)
    async with replica(config, redis_store()) as a, replica(config, redis_store()) as b:
        # Neither replica alone reaches min_requests; together they do, both failing.
        served(a, 12, failing=6)
        served(b, 12, failing=6)
        await eventually(lambda: a.route().mode == "legacy" and b.route().mode == "legacy")
        for r in (a, b):
            assert r.route().source == "auto-rollback"
            assert r.route().override is not None
            assert "error rate 50.0% above 20.0%" in (r.route().override.reason or "")

        # More failures already in flight change nothing: it stays rolled back, once.
        served(a, 30, failing=30)
        served(b, 30, failing=30)
        await _rounds(a, 3)
        await _rounds(b, 3)
        entries = await a.plane.audit.latest()
        assert [e["action"] for e in entries] == ["auto-rollback"]
        assert entries[0]["who"] == "auto-rollback"
        assert entries[0]["previous"] is None and entries[0]["current"]["mode"] == "legacy"

        def total() -> float:
            return rollbacks(a.metrics.render()[0]) + rollbacks(b.metrics.render()[0])

        await eventually(lambda: total() >= 1)
        await _rounds(a, 2)
        assert total() == 1
        assert 'reason="error_rate"' in (a.metrics.render()[0] + b.metrics.render()[0]).decode()


async def test_errors_below_the_threshold_do_not_roll_back(
    redis_store: Callable[[], RedisStateStore],
) -> None:
    config = make_config(mode="canary", percent=50, rollback=ROLLBACK)
    async with replica(config, redis_store()) as a, replica(config, redis_store()) as b:
        served(a, 50, failing=5)
        served(b, 50, failing=5)  # 10% < 20%
        # Give both monitors several flush rounds to (not) act.
        await _rounds(a, 5)
        assert a.route().mode == b.route().mode == "canary"
        assert await a.plane.audit.latest() == []


async def test_too_few_requests_do_not_roll_back(
    redis_store: Callable[[], RedisStateStore],
) -> None:
    config = make_config(mode="canary", percent=50, rollback=ROLLBACK)
    async with replica(config, redis_store()) as a:
        served(a, 19, failing=19)
        await _rounds(a, 5)
        assert a.route().mode == "canary"


async def test_shadow_mismatches_roll_back_a_canary(
    redis_store: Callable[[], RedisStateStore],
) -> None:
    rollback = {"mismatch_rate": 0.05, "window": "60s", "min_requests": 20}
    config = make_config(mode="canary", percent=10, rollback=rollback)
    async with replica(config, redis_store()) as a:
        for i in range(30):
            a.plane.rollback.record_comparison("customers", matched=i % 3 != 0)
        await eventually(lambda: a.route().mode == "legacy")
        assert "shadow mismatch rate" in (a.route().override.reason or "")  # type: ignore[union-attr]
        await eventually(lambda: b'reason="mismatch_rate"' in a.metrics.render()[0])


async def test_comparisons_reported_in_bulk_count_each(
    redis_store: Callable[[], RedisStateStore],
) -> None:
    """The shadow mirror reports a loop turn's byte-identical matches as one call with a
    count: 60 matches in bulk keep 2 mismatches under 5%; 57 more mismatches do not."""
    rollback = {"mismatch_rate": 0.05, "window": "60s", "min_requests": 20}
    config = make_config(mode="canary", percent=10, rollback=rollback)
    async with replica(config, redis_store()) as a:
        a.plane.rollback.record_comparison("customers", True, 60)
        for _ in range(2):
            a.plane.rollback.record_comparison("customers", False)
        await _rounds(a, 3)
        assert a.route().mode == "canary"  # 2 of 62: 3.2%
        a.plane.rollback.record_comparison("customers", False, 57)
        await eventually(lambda: a.route().mode == "legacy")


async def test_it_stays_rolled_back_until_a_person_clears_it(
    redis_store: Callable[[], RedisStateStore],
) -> None:
    config = make_config(mode="canary", percent=50, rollback=ROLLBACK)
    async with replica(config, redis_store()) as a:
        served(a, 20, failing=20)
        await eventually(lambda: a.route().mode == "legacy")
        await _rounds(a, 3)
        assert a.route().source == "auto-rollback"

        await a.plane.clear_override("customers", who="token:ops")
        assert a.route().mode == "canary"
        # Old evidence was dropped: healthy traffic keeps the canary.
        served(a, 30)
        await _rounds(a, 3)
        assert a.route().mode == "canary"
        # Fresh failures roll it back again.
        served(a, 30, failing=30)
        await eventually(lambda: a.route().mode == "legacy")


async def _rounds(replica: Replica, n: int) -> None:
    for _ in range(n):
        await replica.plane.rollback.flush()


async def test_a_persons_flip_is_judged_on_evidence_gathered_after_it(
    redis_store: Callable[[], RedisStateStore],
) -> None:
    # The demo's step 7 rolled back again right after an operator flipped the healed
    # service to `new`: failures counted before the flip (3 of 54) tipped the new window.
    config = make_config(mode="canary", percent=50, rollback=ROLLBACK)
    async with replica(config, redis_store()) as a:
        served(a, 10, failing=10)  # below min_requests: nothing decided yet
        await _rounds(a, 2)
        assert a.route().mode == "canary"

        await a.plane.set_override("customers", "new", None, who="token:ops")
        served(a, 15)  # healthy after the flip; with the old 10 failures: 40% of 25
        await _rounds(a, 3)
        assert a.route().mode == "new" and a.route().source == "override"

        # Failures after the flip still roll it back.
        served(a, 30, failing=30)
        await eventually(lambda: a.route().mode == "legacy")
