"""The sync worker killed in the middle of a cutover, on real SQLite captures: each
stream's owner is stored with its offsets, so the replay after a restart is judged by the
owner the stream had at that position, not by the store's (already flipped) owner."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from strangler.control.ownership import Ownership
from strangler.control.state import MemoryStateStore
from strangler.sync import watermark
from strangler.sync.drain import drain_tables
from strangler.sync.source import Batch, ResumeLookup, Source, build_source
from strangler.sync.worker import Worker
from tests.sync.twoway import (
    CONTEXTS,
    Paused,
    make_config,
    new_order,
    rows,
    running,
    until,
    write,
)


def _seen(path: Path) -> list[tuple[object, ...]]:
    return rows(path, f"SELECT source, seq FROM {watermark.seen.name}")


async def test_a_worker_killed_at_the_watermark_replays_by_the_owner_it_had_there(
    tmp_path: Path,
) -> None:
    """Legacy owns orders. On each side, changes before the drain's watermark, the
    watermark and a change after it arrive in one batch; the worker judges what
    precedes the watermark, reaches it and is killed while it waits there for the
    cutover to finish (its batches not committed). The cutover flips. After the restart
    both batches are read again, judged by the owner each stream had at its committed
    position: the monolith's orders apply again (idempotently), none reported as the
    non-owner's; the stray write made on the service side before the flip is reported,
    never applied; the changes after the watermark are judged by the new owner."""
    config = make_config(tmp_path)
    store = MemoryStateStore()
    shop = Paused(build_source(config.sources[0], config))
    svc = Paused(build_source(config.sources[1], config))
    worker = Worker(config, contexts=CONTEXTS, owners=store, sources={"shop": shop, "svc": svc})
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await until(lambda: all(s.caught_up for s in worker.status.values()), "the worker to start")
    shop.paused.set()
    svc.paused.set()
    for i in range(1, 6):
        write(tmp_path / "shop.db", *new_order(i, 1))
    # Someone's job writes the service's orders while legacy still owns them.
    write(tmp_path / "customers.db",
          ("INSERT INTO orders VALUES (8001, 1, 5.00, 'open')", ()))  # fmt: skip
    holding = Ownership("orders").holding("service", "c1", "test").draining()
    await store.set_ownership(holding)
    drain = asyncio.create_task(
        drain_tables(config, "orders", CONTEXTS["orders"], "legacy", 30.0, cutover="c1")
    )
    marks = "SELECT * FROM strangler_watermarks"
    await until(
        lambda: (
            len(rows(tmp_path / "shop.db", marks))
            == len(rows(tmp_path / "customers.db", marks))
            == 1
        ),
        "the watermarks on both sides",
    )
    # After the watermarks: a cron job writes the monolith (the non-owner's write once
    # the cutover completes) and the service takes an order (the new owner's).
    write(tmp_path / "shop.db", ('UPDATE "ORD_HDR" SET ST = ? WHERE ORD_NO = 1', ("S",)))
    write(tmp_path / "customers.db",
          ("INSERT INTO orders VALUES (8002, 1, 6.00, 'open')", ()))  # fmt: skip
    shop.paused.clear()
    svc.paused.clear()
    await drain  # the worker applied the orders and reached the monolith's watermark
    await until(lambda: ("svc", 1) in _seen(tmp_path / "shop.db"), "the service's watermark")
    assert rows(tmp_path / "customers.db", "SELECT COUNT(*) FROM orders") == [(7,)]
    await asyncio.sleep(0.2)  # both streams wait at their watermark for the cutover
    task.cancel()  # killed there: the rest of the batches (and their offsets) not committed
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert worker.status["shop"].counts["non_owner"] == 0
    assert worker.status["svc"].counts["non_owner"] == 1
    await store.set_ownership(holding.moved("test"))  # the cutover completes

    orders = 'SELECT ORD_NO FROM "ORD_HDR" ORDER BY ORD_NO'
    async with running(config, store) as run:
        await until(lambda: (8002,) in rows(tmp_path / "shop.db", orders), "the new owner's order")
        await until(lambda: run.worker.status["shop"].counts["non_owner"] >= 1, "the report")
        await asyncio.sleep(0.3)
        status = run.worker.status

    letters = rows(tmp_path / "customers.db", "SELECT source, error FROM strangler_dead_letters")
    assert status["shop"].counts["non_owner"] == 1, letters
    assert len(letters) == 1
    assert "context orders is owned by service" in letters[0][1]
    assert rows(tmp_path / "customers.db", "SELECT id, status FROM orders ORDER BY id") == [
        *((i, "open") for i in range(1, 6)),
        (8001, "open"),
        (8002, "open"),
    ]
    # The stray write made on the service side before the flip never reached the monolith.
    assert status["svc"].counts["non_owner"] == 1
    assert rows(tmp_path / "shop.db", orders) == [(i,) for i in range(1, 6)] + [(8002,)]
    assert ("shop", 1) in _seen(tmp_path / "customers.db")


class Rewound:
    """A real capture that starts from an older position than the targets committed, as
    the ``debezium`` kind does when killed between the target's commit and its own."""

    def __init__(self, inner: Source, changes: int) -> None:
        self.inner, self.name, self.changes = inner, inner.name, changes

    async def start(self, resume: ResumeLookup) -> None:
        await self.inner.start(lambda: {**resume(), "changes": self.changes})

    async def next_batch(self, max_events: int) -> Batch | None:
        return await self.inner.next_batch(max_events)

    async def ack(self, batch: Batch) -> None:
        await self.inner.ack(batch)

    async def close(self) -> None:
        await self.inner.close()


async def test_a_replay_from_before_the_cutover_is_judged_by_the_owner_at_each_position(
    tmp_path: Path,
) -> None:
    """The monolith takes five orders, the cutover moves orders to the service, the
    service takes one. The worker restarts and the monolith's capture resumes from
    before those orders (the targets hold offsets and owner past the watermark): the
    replayed orders are judged by legacy, the owner where they sit (stale, nothing
    reported), not by the stream's owner now."""
    config = make_config(tmp_path)
    store = MemoryStateStore()
    async with running(config, store) as run:
        before = run.worker.resume("shop").get("changes", 0)
        for i in range(1, 6):
            write(tmp_path / "shop.db", *new_order(i, 1))
        holding = Ownership("orders").holding("service", "c1", "test").draining()
        await store.set_ownership(holding)
        await drain_tables(config, "orders", CONTEXTS["orders"], "legacy", 30.0, cutover="c1")
        await store.set_ownership(holding.moved("test"))
        write(tmp_path / "customers.db",
              ("INSERT INTO orders VALUES (8002, 1, 6.00, 'open')", ()))  # fmt: skip
        orders = 'SELECT ORD_NO FROM "ORD_HDR"'
        await until(lambda: (8002,) in rows(tmp_path / "shop.db", orders), "the service's order")

    shop = Rewound(build_source(config.sources[0], config), before)
    async with running(config, store, {"shop": shop}) as run:
        # A probe's watermark through the monolith's stream: every replayed change judged.
        await drain_tables(config, "orders", CONTEXTS["orders"], "legacy", 30.0, probe=True)
        counts = run.worker.status["shop"].counts

    assert (counts["non_owner"], counts["stale"]) == (0, 5)
    assert rows(tmp_path / "customers.db", "SELECT COUNT(*) FROM strangler_dead_letters") == [(0,)]
    assert rows(tmp_path / "customers.db", "SELECT COUNT(*) FROM orders") == [(6,)]
