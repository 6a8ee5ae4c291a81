"""A stream still behind an aborted cutover's watermark when the next cutover flips, on
real SQLite captures and a real state store: the watermark names its cutover, so the
stream takes *that* cutover's outcome (aborted: the owner stays) and flips only at the
later cutover's own watermark."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from strangler.control.ownership import Ownership
from strangler.control.state import MemoryStateStore
from strangler.sync.drain import drain_tables
from strangler.sync.source import build_source
from tests.sync.twoway import CONTEXTS, Paused, make_config, rows, running, until, write

ORDERS = 'SELECT ORD_NO, ST FROM "ORD_HDR" ORDER BY ORD_NO'


@pytest.mark.parametrize("settled", [True, False], ids=["b-after-a-passed", "b-right-after-a"])
async def test_a_stream_behind_an_aborted_cutovers_mark_keeps_the_owner_until_the_next_mark(
    tmp_path: Path, settled: bool
) -> None:
    """Legacy owns orders. The service's capture lags (paused) through two cutovers:
    A drains and aborts, B drains and flips to the service. On the service side a
    stray job writes order 8001 between A's and B's watermarks (legacy owned it then),
    and the service takes order 8002 after B's. On the monolith, order 1 is written
    between the cutovers (legacy's) and changed after B (the non-owner's). When the
    service's capture catches up, 8001 is reported as the non-owner's, never applied
    (a stream that took the latest outcome at A's watermark applied it); 8002 flows.

    ``settled``: B starts once the monolith's stream has passed A's watermark (order 1
    reached the service). Otherwise B holds right after A's abort, maybe before that
    stream got there: it must pass A's watermark by A's outcome, not wait at it for B
    (which waits for that stream: B's drain would time out)."""
    config = make_config(tmp_path)
    store = MemoryStateStore()
    svc = Paused(build_source(config.sources[1], config))
    async with running(config, store, {"svc": svc}) as run:
        svc.paused.set()
        # Cutover A: the hold, the drain (its watermarks on both sides), then an abort.
        a = Ownership("orders").holding("service", "cutover-a", "test").draining()
        await store.set_ownership(a)
        await drain_tables(
            config, "orders", CONTEXTS["orders"], "legacy", 30.0, cutover="cutover-a"
        )
        await store.set_ownership(a.kept("test"))
        # Between the cutovers: legacy's own order, and a stray write on the service side.
        write(tmp_path / "shop.db", ('INSERT INTO "ORD_HDR" VALUES (1, 1, ?, ?)', ("101", "O")))
        write(tmp_path / "customers.db",
              ("INSERT INTO orders VALUES (8001, 1, 5.00, 'open')", ()))  # fmt: skip
        if settled:
            order_1 = "SELECT id FROM orders WHERE id = 1"
            await until(lambda: bool(rows(tmp_path / "customers.db", order_1)), "order 1")
        # Cutover B flips the context to the service.
        b = (await store.ownerships())["orders"].holding("service", "cutover-b", "test")
        await store.set_ownership(b.draining())
        await drain_tables(
            config, "orders", CONTEXTS["orders"], "legacy", 30.0, cutover="cutover-b"
        )
        await store.set_ownership(b.draining().moved("test"))
        # After B: the new owner's order, and a cron job still writing the monolith.
        write(tmp_path / "customers.db",
              ("INSERT INTO orders VALUES (8002, 1, 6.00, 'open')", ()))  # fmt: skip
        write(tmp_path / "shop.db", ('UPDATE "ORD_HDR" SET ST = ? WHERE ORD_NO = 1', ("S",)))
        svc.paused.clear()
        await until(lambda: (8002, "O") in rows(tmp_path / "shop.db", ORDERS), "order 8002")
        await until(lambda: run.worker.status["shop"].counts["non_owner"] >= 1, "the cron report")
        await asyncio.sleep(0.3)
        status = run.worker.status

    owned = (await store.ownerships())["orders"]
    assert (owned.owner, owned.epoch) == ("service", 1)
    assert [o[:2] for o in owned.history] == [("cutover-b", "service"), ("cutover-a", "legacy")]
    # The monolith: its own order (the cron job changed it there), the service's order
    # after B; never the stray 8001.
    assert rows(tmp_path / "shop.db", ORDERS) == [(1, "S"), (8002, "O")]
    assert status["svc"].counts["non_owner"] == 1
    letters = rows(tmp_path / "shop.db", "SELECT source, error FROM strangler_dead_letters")
    assert [source for source, _ in letters] == ["svc"]
    assert "context orders is owned by legacy" in letters[0][1]
    # The service: legacy's order 1 applied (not reported), the cron job's change reported.
    assert rows(tmp_path / "customers.db", "SELECT id, status FROM orders ORDER BY id") == [
        (1, "open"),
        (8001, "open"),
        (8002, "open"),
    ]
    assert status["shop"].counts["non_owner"] == 1
    reported = rows(tmp_path / "customers.db", "SELECT source, error FROM strangler_dead_letters")
    assert [source for source, _ in reported] == ["shop"]
    assert "context orders is owned by service" in reported[0][1]
