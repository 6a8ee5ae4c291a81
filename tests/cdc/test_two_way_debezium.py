"""Two-way sync on PostgreSQL 15, both directions capturing at once, one worker: with real
Debezium embedded (one engine on the monolith, one on the service's database), and with
the ``pgoutput`` source (the worker reading both slots itself).

The worker's own writes *are* captured here (no trigger to skip them, and PostgreSQL 15's
pgoutput cannot filter by origin): they must be recognised by their transaction id and
dropped — counted as ``own_write``, never applied back, never taken for a non-owner's
write. Then a context is drained and flipped, and a non-owner write is reported.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from strangler.control.ownership import Ownership
from strangler.control.state import MemoryStateStore
from strangler.devstack.localstack import LogicalPostgres
from strangler.sync.drain import drain_tables
from strangler.sync_config import SyncConfig
from tests.cdc.harness import WorkerThread, execute, rows, wait_until

pytestmark = pytest.mark.slow

MONOLITH = """
CREATE TABLE legacy_items (item_id INTEGER PRIMARY KEY, nm TEXT NOT NULL,
                           price_cents TEXT NOT NULL, st CHAR(1) NOT NULL);
CREATE TABLE legacy_orders (ord_no INTEGER PRIMARY KEY, item INTEGER NOT NULL,
                            qty INTEGER NOT NULL);
"""
SERVICE = """
CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price NUMERIC(12, 2) NOT NULL,
                    status TEXT NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL, quantity INTEGER NOT NULL);
"""
CONTEXTS = {"items": ("public.legacy_items",), "orders": ("public.legacy_orders",)}
N = 120


DATABASES = {"debezium": ("monolith_r", "service_r"), "pgoutput": ("monolith_rp", "service_rp")}


def config(pg: LogicalPostgres, kind: str = "debezium") -> dict[str, Any]:
    monolith, service = DATABASES[kind]

    def source(name: str, db: str, tables: list[str], offsets_in: str) -> dict[str, Any]:
        if kind == "pgoutput":
            # Slot names are cluster-wide: not the debezium run's (another database's).
            return {"name": name, "kind": "pgoutput", "options": {
                "database": pg.url(db, driver="postgresql"), "tables": tables,
                "slot": f"strangler_{name}_p"}}  # fmt: skip
        return {"name": name, "kind": "debezium", "options": {
            "database": pg.url(db, driver="postgresql"), "tables": tables,
            "offsets": "target", "offset_target": offsets_in, "poll_interval_ms": 50}}  # fmt: skip

    return {
        "sources": [
            source("shop_r", monolith, ["public.legacy_items", "public.legacy_orders"],
                   "service"),
            source("svc_r", service, ["public.items", "public.orders"], "monolith"),
        ],
        "targets": {"service": pg.url(service), "monolith": pg.url(monolith)},
        "tables": [
            {"source": "public.legacy_items", "target": "service", "from_source": "shop_r",
             "adapter": {"table": "items", "key": ["id"],
                         "rename": {"item_id": "id", "nm": "name", "price_cents": "price",
                                    "st": "status"},
                         "cast": {"price": "cents"},
                         "values": {"status": {"A": "active", "X": "retired"}}},
             "reverse": {"source": "svc_r", "target": "monolith"}},
            {"source": "public.legacy_orders", "target": "service", "from_source": "shop_r",
             "adapter": {"table": "orders", "key": ["id"],
                         "rename": {"ord_no": "id", "item": "item_id", "qty": "quantity"}},
             "reverse": {"source": "svc_r", "target": "monolith"}},
        ],
    }  # fmt: skip


class Stack:
    def __init__(self, pg: LogicalPostgres, kind: str) -> None:
        self.monolith = pg.dsn(DATABASES[kind][0])
        self.service = pg.dsn(DATABASES[kind][1])
        self.config = config(pg, kind)
        self.store = MemoryStateStore()
        self.worker = WorkerThread(self.config, CONTEXTS, self.store)

    def counts(self, source: str) -> dict[str, int]:
        return self.worker.counts(source)

    def set_owner(self, ownership: Ownership) -> None:
        asyncio.run(self.store.set_ownership(ownership))

    def drain(self, context: str, owner: str) -> str:
        sync = SyncConfig.model_validate(self.config)
        drained = asyncio.run(drain_tables(sync, context, CONTEXTS[context], owner, 60.0))  # type: ignore[arg-type]
        return drained.position


@pytest.fixture(scope="module", params=["debezium", "pgoutput"])
def stack(logical_pg: LogicalPostgres, request: pytest.FixtureRequest) -> Iterator[Stack]:
    s = Stack(logical_pg, request.param)
    execute(s.monolith, MONOLITH)
    execute(s.service, SERVICE)
    s.set_owner(Ownership("items", "service", 1))  # items: the service owns; orders: legacy
    s.worker.start()
    try:
        wait_until(lambda: s.worker.worker is not None
                   and all(st.caught_up for st in s.worker.worker.status.values()),
                   120, "both sources to start")  # fmt: skip
        # A watermark round trip on each side: both engines have snapshotted and stream.
        s.drain("items", "service")
        s.drain("orders", "legacy")
        yield s
    finally:
        s.worker.stop()
        assert s.worker.error is None, s.worker.error


def test_both_directions_at_once_drop_every_own_write_and_echo_nothing(stack: Stack) -> None:
    def service_writes() -> None:
        for i in range(1, N + 1):
            execute(stack.service, "INSERT INTO items VALUES (%s, %s, %s, 'active')",
                    params=(i, f"item{i}", f"{i}.25"))  # fmt: skip
            if i % 3 == 0:
                execute(stack.service, "UPDATE items SET status = 'retired' WHERE id = %s",
                        params=(i,))  # fmt: skip

    def monolith_writes() -> None:
        for i in range(1, N + 1):
            execute(stack.monolith, "INSERT INTO legacy_orders VALUES (%s, %s, %s)",
                    params=(i, i, i % 7 + 1))  # fmt: skip
            if i % 4 == 0:
                execute(stack.monolith, "UPDATE legacy_orders SET qty = 99 WHERE ord_no = %s",
                        params=(i,))  # fmt: skip

    writers = [threading.Thread(target=service_writes), threading.Thread(target=monolith_writes)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    svc_changes, shop_changes = N + N // 3, N + N // 4
    wait_until(
        lambda: (
            stack.counts("svc_r").get("applied") == svc_changes
            and stack.counts("shop_r").get("applied") == shop_changes
        ),
        120,
        "both directions to apply every change",
        lambda: stack.worker.worker.snapshot() if stack.worker.worker else None,
    )
    # A watermark round trip on every stream: whatever the worker's own writes produced
    # has been captured and judged by the time these return.
    stack.drain("items", "service")
    stack.drain("orders", "legacy")
    shop, svc = stack.counts("shop_r"), stack.counts("svc_r")

    assert (svc.get("applied"), shop.get("applied")) == (svc_changes, shop_changes)
    # The worker's writes came back through Debezium and were dropped as its own ...
    assert shop.get("own_write", 0) > 0 and svc.get("own_write", 0) > 0
    # ... and none of them was applied again or taken for a non-owner's write: 0 echoes.
    for counts in (shop, svc):
        assert counts.get("non_owner", 0) == 0
        assert counts.get("dead_letter", 0) == 0
    assert rows(stack.monolith, "SELECT count(*), sum(price_cents::int) FROM legacy_items") == [
        (N, sum(i * 100 + 25 for i in range(1, N + 1)))
    ]
    assert rows(stack.monolith, "SELECT count(*) FROM legacy_items WHERE st = 'X'") == [(N // 3,)]
    assert rows(stack.service, "SELECT count(*) FROM orders WHERE quantity = 99") == [(N // 4,)]


def test_drain_flip_and_a_non_owner_write_on_postgres(stack: Stack) -> None:
    before = stack.counts("shop_r").get("non_owner", 0)
    execute(stack.monolith, "INSERT INTO legacy_orders VALUES (5000, 1, 3)")
    current = Ownership("orders", "legacy", 0)
    holding = current.holding("service", "c1", "test").draining()
    stack.set_owner(holding)
    position = stack.drain("orders", "legacy")
    assert position.startswith("shop_r@")
    assert rows(stack.service, "SELECT quantity FROM orders WHERE id = 5000") == [(3,)]
    stack.set_owner(holding.moved("test"))
    # The new owner's write flows back; the old owner's table written directly is reported.
    execute(stack.service, "INSERT INTO orders VALUES (5001, 2, 4)")
    execute(stack.monolith, "UPDATE legacy_orders SET qty = 42 WHERE ord_no = 5000")
    wait_until(
        lambda: rows(stack.monolith, "SELECT qty FROM legacy_orders WHERE ord_no = 5001") == [(4,)],
        60,
        "the service's order in the monolith",
    )
    wait_until(lambda: stack.counts("shop_r").get("non_owner", 0) == before + 1, 60, "the report")
    errors = rows(stack.service, "SELECT error FROM strangler_dead_letters")
    assert len(errors) == 1
    assert errors[0][0].startswith("written by the non-owner: public.legacy_orders changed on")
    assert rows(stack.service, "SELECT quantity FROM orders WHERE id = 5000") == [(3,)]
    assert stack.counts("svc_r").get("non_owner", 0) == 0
