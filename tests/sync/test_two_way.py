"""Both directions at once on real SQLite databases (the demo's capture): writers on both
sides, each change applied once to the other side, none captured back (echoes counted:
0), a write from the side that does not own its context dead-lettered with its reason,
and the drain + flip of a cutover moving a context without losing or misjudging a
write."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from strangler.control.ownership import Ownership
from strangler.control.state import MemoryStateStore
from strangler.errors import StateStoreError
from strangler.sync.drain import DrainTimeout, drain_tables
from strangler.sync.source import Batch, ResumeLookup, Source, build_source
from strangler.sync.verify_back import WayBackVerifier
from strangler.sync.worker import Worker
from tests.sync.twoway import (
    CONTEXTS,
    changes,
    make_config,
    new_customer,
    new_order,
    own,
    rows,
    running,
    until,
    write,
)

N = 150


def _service_writer(folder: Path, start: int) -> None:
    for i in range(start, start + N):
        write(folder / "customers.db", *new_customer(i, f"svc-{i}"))
        if i % 3 == 0:
            write(
                folder / "customers.db",
                ("UPDATE customers SET name = ?, credit_limit = 99.99 WHERE id = ?", (f"r{i}", i)),
                ("UPDATE addresses SET city = 'Shelbyville' WHERE customer_id = ?", (i,)),
            )


def _monolith_writer(folder: Path, start: int) -> None:
    for i in range(start, start + N):
        write(folder / "shop.db", *new_order(i, 1))
        if i % 4 == 0:
            write(folder / "shop.db", ('UPDATE "ORD_HDR" SET ST = ? WHERE ORD_NO = ?', ("S", i)))


async def test_both_directions_with_writers_on_both_sides_and_no_echo(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    store = MemoryStateStore()
    await own(store, "customers", "service")  # the service owns customers; legacy owns orders
    async with running(config, store) as run:
        writers = [
            threading.Thread(target=_service_writer, args=(tmp_path, 1)),
            threading.Thread(target=_monolith_writer, args=(tmp_path, 1)),
        ]
        for thread in writers:
            thread.start()
        while any(t.is_alive() for t in writers):
            await asyncio.sleep(0.05)
        svc_changes, shop_changes = (
            sum(changes(tmp_path / "customers.db", t) for t in ("customers", "addresses")),
            changes(tmp_path / "shop.db", "ORD_HDR"),
        )
        status = run.worker.status
        await until(
            lambda: (
                status["svc"].counts["applied"] == svc_changes
                and status["shop"].counts["applied"] == shop_changes
            ),
            "both directions to apply every change",
        )
        await asyncio.sleep(0.5)  # anything echoed would be captured and counted by now

    # Every change applied exactly once, on the other side.
    assert status["svc"].counts["applied"] == svc_changes == N * 2 + (N // 3) * 2
    assert status["shop"].counts["applied"] == shop_changes == N + N // 4
    # Echoes: changes captured from rows the worker itself wrote. None.
    assert changes(tmp_path / "shop.db", "customer") == 0
    assert changes(tmp_path / "customers.db", "orders") == 0
    for name in ("svc", "shop"):
        assert status[name].counts["non_owner"] == 0
        assert status[name].counts["dead_letter"] == 0
    # The data agrees both ways.
    legacy = rows(
        tmp_path / "shop.db",
        "SELECT cust_id, cust_nm, status_cd, created_yyyymmdd, credit_limit_cents, addr_city"
        " FROM customer ORDER BY cust_id",
    )
    assert len(legacy) == N
    assert legacy[0] == (1, "svc-1", "A", "20261206", "250050", "Springfield")
    assert legacy[2] == (3, "r3", "A", "20261206", "9999", "Shelbyville")
    orders = rows(tmp_path / "customers.db", "SELECT id, total, status FROM orders ORDER BY id")
    assert len(orders) == N
    assert orders[3] == (4, 4.04, "shipped")


async def test_a_write_by_the_non_owner_is_dead_lettered_with_its_reason(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    store = MemoryStateStore()
    await own(store, "customers", "service")
    async with running(config, store) as run:
        write(tmp_path / "customers.db", *new_customer(7, "Ada"))
        names = "SELECT cust_nm FROM customer"
        await until(lambda: rows(tmp_path / "shop.db", names) == [("Ada",)], "Ada in the monolith")
        # Someone's old cron job still writes the monolith's CUSTOMER after the cutover.
        write(tmp_path / "shop.db", ("UPDATE customer SET cust_nm = 'cron' WHERE cust_id = 7", ()))
        await until(lambda: run.worker.status["shop"].counts["non_owner"] == 1, "the report")
        snapshot = run.worker.snapshot()
        # The owner's next write still flows back (nothing parked behind the report).
        write(tmp_path / "customers.db", ("UPDATE customers SET name = 'Ada L.' WHERE id = 7", ()))
        await until(
            lambda: rows(tmp_path / "shop.db", "SELECT cust_nm FROM customer") == [("Ada L.",)],
            "the owner's update in the monolith",
        )
        await asyncio.sleep(0.3)
        retried = run.worker.sinks["service"].retry_dead()

    assert snapshot["totals"]["non_owner"] == 1
    letters = rows(
        tmp_path / "customers.db",
        "SELECT source, source_table, error, resolved_at FROM strangler_dead_letters",
    )
    assert len(letters) == 1
    source, table, error, resolved = letters[0]
    assert (source, table, resolved) == ("shop", "main.customer", None)
    assert error.startswith("written by the non-owner: customer changed on the legacy side;")
    assert "context customers is owned by service" in error
    # Never applied (the service keeps its own value), never echoed, never retried into it.
    assert rows(tmp_path / "customers.db", "SELECT name FROM customers") == [("Ada L.",)]
    assert retried.total("applied") == 0
    assert changes(tmp_path / "shop.db", "customer") == 1  # the cron write only
    assert run.worker.status["svc"].counts["non_owner"] == 0


async def test_drain_then_flip_moves_a_context_without_losing_or_misjudging_a_write(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path)
    store = MemoryStateStore()
    tables = CONTEXTS["orders"]
    async with running(config, store) as run:
        writer = threading.Thread(target=_monolith_writer, args=(tmp_path, 1))
        writer.start()
        await asyncio.sleep(0.3)  # writes flow while the worker keeps up
        # The cutover: writes held (the writer stops), state draining, drain, flip.
        await asyncio.to_thread(writer.join)
        before = await store.ownerships()
        current = before.get("orders", Ownership("orders"))
        holding = current.holding("service", "c1", "test").draining()
        await store.set_ownership(holding)
        drained = await drain_tables(config, "orders", tables, "legacy", 30.0)
        # Everything the old owner committed before the drain is on the other side now.
        assert rows(tmp_path / "customers.db", "SELECT COUNT(*) FROM orders") == [(N,)]
        assert drained.position.startswith("shop@")
        # Released writes go to the new owner straight after the flip.
        await store.set_ownership(holding.moved("test"))
        write(tmp_path / "customers.db",
              ("INSERT INTO orders VALUES (9001, 1, 12.34, 'open')", ()))  # fmt: skip
        write(tmp_path / "shop.db", ('UPDATE "ORD_HDR" SET ST = ? WHERE ORD_NO = 1', ("S",)))
        await until(
            lambda: (
                rows(tmp_path / "shop.db", 'SELECT TOTAL_CENTS FROM "ORD_HDR" WHERE ORD_NO = 9001')
                == [("1234",)]
            ),
            "the new owner's write in the monolith",
        )
        await until(lambda: run.worker.status["shop"].counts["non_owner"] == 1, "the report")
        status = run.worker.status

    assert status["svc"].counts["non_owner"] == 0  # the new owner's write was not misjudged
    assert rows(tmp_path / "customers.db", "SELECT status FROM orders WHERE id = 1") == [("open",)]


class Polls:
    """A real capture, counting its polls (a SQLite poll that finds nothing sleeps
    ``poll_interval`` before it answers ``None``)."""

    def __init__(self, inner: Source) -> None:
        self.inner, self.name, self.count = inner, inner.name, 0

    async def start(self, resume: ResumeLookup) -> None:
        await self.inner.start(resume)

    async def next_batch(self, max_events: int) -> Batch | None:
        self.count += 1
        return await self.inner.next_batch(max_events)

    async def ack(self, batch: Batch) -> None:
        await self.inner.ack(batch)

    async def close(self) -> None:
        await self.inner.close()


async def test_a_capture_idle_across_the_flip_still_reports_the_non_owners_write(
    tmp_path: Path,
) -> None:
    """The service's capture polls every 5 s (as a lagging Debezium or Kafka capture
    delivers late): it is idle while a stray write lands on its side, the drain runs and
    the flip is written. That write was made while legacy owned the context: it is
    dead-lettered when it arrives, never applied; the new owner's write after it flows."""
    config = make_config(tmp_path, svc_poll=5.0)
    store = MemoryStateStore()
    svc = Polls(build_source(config.sources[1], config))
    async with running(config, store, {"svc": svc}) as run:
        polls = svc.count
        await until(lambda: svc.count > polls, "the service's capture to poll")
        await asyncio.sleep(0.2)  # it found nothing: it sleeps 5 s now
        polled = svc.count
        # Legacy owns orders; someone's job writes the service's orders table directly.
        write(tmp_path / "customers.db",
              ("INSERT INTO orders VALUES (8001, 1, 5.00, 'open')", ()))  # fmt: skip
        # The cutover's data steps (the proxy holds the context's writes meanwhile).
        holding = Ownership("orders").holding("service", "c1", "test").draining()
        await store.set_ownership(holding)
        await drain_tables(config, "orders", CONTEXTS["orders"], "legacy", 30.0)
        await store.set_ownership(holding.moved("test"))
        flipped_within_one_poll = svc.count == polled
        write(tmp_path / "customers.db",
              ("INSERT INTO orders VALUES (8002, 1, 6.00, 'open')", ()))  # fmt: skip
        await until(
            lambda: (8002,) in rows(tmp_path / "shop.db", 'SELECT ORD_NO FROM "ORD_HDR"'),
            "the new owner's order in the monolith",
        )
        await asyncio.sleep(0.3)
        status = run.worker.status

    assert flipped_within_one_poll, "the machine was too slow to hit the window; rerun"
    assert status["svc"].counts["non_owner"] == 1
    assert status["svc"].counts["applied"] == 1
    assert rows(tmp_path / "shop.db", 'SELECT ORD_NO, TOTAL_CENTS FROM "ORD_HDR"') == [
        (8002, "600")
    ]
    letters = rows(tmp_path / "shop.db", "SELECT source, error FROM strangler_dead_letters")
    assert [source for source, _ in letters] == ["svc"]
    assert letters[0][1].startswith("written by the non-owner: ORD_HDR changed on the service")
    assert "context orders is owned by legacy" in letters[0][1]


class Unreachable(MemoryStateStore):
    """A real memory store that does not answer until ``up`` is set (Redis restarting)."""

    def __init__(self) -> None:
        super().__init__()
        self.up = False
        self.asked = 0

    async def ownerships(self) -> dict[str, Ownership]:
        self.asked += 1
        if not self.up:
            raise StateStoreError("connection refused")
        return await super().ownerships()


async def test_a_worker_started_while_the_store_is_down_waits_for_the_owner(
    tmp_path: Path,
) -> None:
    """The service owns customers, but the worker starts while the store does not answer:
    it must not judge the service's writes by a guessed owner (legacy), which would
    report them as the non-owner's and never apply them; it waits for the store."""
    config = make_config(tmp_path)
    store = Unreachable()
    await own(store, "customers", "service")
    worker = Worker(config, contexts=CONTEXTS, owners=store)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        write(tmp_path / "customers.db", *new_customer(7, "Ada"))
        await until(lambda: store.asked > 5, "the worker to ask the store a few times")
        assert worker.status["svc"].counts["applied"] == 0  # waiting, nothing judged
        store.up = True
        names = "SELECT cust_nm FROM customer"
        await until(lambda: rows(tmp_path / "shop.db", names) == [("Ada",)], "Ada in the monolith")
    finally:
        stop.set()
        await task
    status = worker.status

    assert status["svc"].counts["non_owner"] == 0
    assert status["svc"].counts["dead_letter"] == 0


async def test_drain_times_out_when_the_worker_is_not_running(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    write(tmp_path / "shop.db", *new_order(1, 1))
    try:
        await drain_tables(config, "orders", CONTEXTS["orders"], "legacy", 0.5)
    except DrainTimeout as exc:
        assert "strangler sync" in str(exc)
    else:
        raise AssertionError("drain returned without a worker")


async def test_reverse_verify_finds_and_repairs_drift_in_the_monolith(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    store = MemoryStateStore()
    await own(store, "customers", "service")
    async with running(config, store):
        for i in (1, 2, 3):
            write(tmp_path / "customers.db", *new_customer(i, f"c{i}"))
        await until(
            lambda: rows(tmp_path / "shop.db", "SELECT COUNT(*) FROM customer") == [(3,)],
            "the service's customers in the monolith",
        )
    verifier = WayBackVerifier(config)
    assert verifier.run(lag_window=0).drift == []
    # Drift on the monolith's side: a changed name, a lost address, a row nobody owns.
    write(
        tmp_path / "shop.db",
        ("UPDATE customer SET cust_nm = 'tampered' WHERE cust_id = 1", ()),
        ("UPDATE customer SET addr_city = '' WHERE cust_id = 2", ()),
        ("INSERT INTO customer (cust_id, cust_nm, email_addr, created_yyyymmdd)"
         " VALUES (99, 'ghost', 'g@example.com', '20200101')", ()),
    )  # fmt: skip
    captured = changes(tmp_path / "shop.db", "customer")
    report = verifier.run(lag_window=0)
    lines = sorted(str(d) for d in report.drift)
    assert [line.split()[0] for line in lines] == ["different", "different", "extra"]
    assert "cust_nm: 'tampered' != 'c1'" in lines[0] + lines[1]
    assert "addr_city: '' != 'Springfield'" in lines[0] + lines[1]
    assert 'monolith.customer {"cust_id":99}' in lines[2]
    assert WayBackVerifier(config).run(repair=True, lag_window=0).repaired == 3
    assert WayBackVerifier(config).run(lag_window=0).drift == []
    assert rows(tmp_path / "shop.db", "SELECT cust_nm, addr_city FROM customer ORDER BY 1") == [
        ("c1", "Springfield"), ("c2", "Springfield"), ("c3", "Springfield")
    ]  # fmt: skip
    # The repair went through the worker's write path: nothing of it was captured.
    assert changes(tmp_path / "shop.db", "customer") == captured
