"""A two-way sync stack for the reverse-sync tests: the sample monolith's SQLite database
and the customers service's SQLite database, each captured by triggers and each a
target, with two contexts — ``customers`` (CUSTOMER <-> customers + addresses, through
``adapters.customers:CustomerRows``) and ``orders`` (ORD_HDR <-> orders, a declarative
map that inverts itself) — and the worker running in-process against a real
``MemoryStateStore`` for ownership."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from sample_monolith import db as monolith_db
from sample_services.customers import db as service_db
from strangler.control.ownership import Ownership
from strangler.control.state import MemoryStateStore
from strangler.sync.source import Batch, ResumeLookup, Source
from strangler.sync.worker import Worker
from strangler.sync_config import SyncConfig

CONTEXTS = {"customers": ("customer",), "orders": ("ORD_HDR",)}

ORDERS_LEGACY = (
    'CREATE TABLE "ORD_HDR" (ORD_NO INTEGER PRIMARY KEY, CUST INTEGER NOT NULL,'
    " TOTAL_CENTS TEXT NOT NULL, ST TEXT NOT NULL)"
)
ORDERS_SERVICE = (
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL,"
    " total NUMERIC(12, 2) NOT NULL, status TEXT NOT NULL)"
)


def make_config(
    folder: Path, *, poll: float = 0.02, batch_size: int = 500, svc_poll: float | None = None
) -> SyncConfig:
    for url, metadata in ((folder / "shop.db", monolith_db.metadata),
                          (folder / "customers.db", service_db.metadata)):  # fmt: skip
        engine = create_engine(f"sqlite:///{url}")
        metadata.create_all(engine)
        engine.dispose()
    with sqlite3.connect(folder / "shop.db") as db:
        db.execute(ORDERS_LEGACY)
    with sqlite3.connect(folder / "customers.db") as db:
        db.execute(ORDERS_SERVICE)
    return SyncConfig.model_validate({
        "batch_size": batch_size,
        "sources": [
            {"name": "shop", "kind": "sqlite", "options": {
                "database": str(folder / "shop.db"), "tables": ["customer", "ORD_HDR"],
                "poll_interval": poll}},
            {"name": "svc", "kind": "sqlite", "options": {
                "database": str(folder / "customers.db"),
                "tables": ["customers", "addresses", "orders"],
                "poll_interval": poll if svc_poll is None else svc_poll}},
        ],
        "targets": {"service": f"sqlite:///{folder / 'customers.db'}",
                    "monolith": f"sqlite:///{folder / 'shop.db'}"},
        "tables": [
            {"source": "customer", "target": "service", "from_source": "shop",
             "adapter": "adapters.customers:CustomerRows",
             "reverse": {"source": "svc", "target": "monolith"}},
            {"source": "ORD_HDR", "target": "service", "from_source": "shop",
             "adapter": {"table": "orders", "key": ["id"],
                         "rename": {"ORD_NO": "id", "CUST": "customer_id",
                                    "TOTAL_CENTS": "total", "ST": "status"},
                         "cast": {"total": "cents"},
                         "values": {"status": {"O": "open", "S": "shipped"}}},
             "reverse": {"source": "svc", "target": "monolith"}},
        ],
    })  # fmt: skip


async def own(store: MemoryStateStore, context: str, owner: str, epoch: int = 1) -> None:
    await store.set_ownership(Ownership(context, owner, epoch))  # type: ignore[arg-type]


@dataclass
class Running:
    worker: Worker
    stop: asyncio.Event
    task: asyncio.Task[None]


@contextlib.asynccontextmanager
async def running(
    config: SyncConfig, store: MemoryStateStore, sources: Mapping[str, Source] | None = None
) -> AsyncIterator[Running]:
    worker = Worker(config, contexts=CONTEXTS, owners=store, sources=sources)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        # Capturing (triggers installed, snapshots taken) before the test writes anything.
        await until(lambda: all(s.caught_up for s in worker.status.values()), "the worker to start")
        yield Running(worker, stop, task)
    finally:
        stop.set()
        await task


async def until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(check):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def rows(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
        return list(db.execute(sql, args))


def write(path: Path, *statements: tuple[str, tuple[Any, ...]]) -> None:
    """One transaction on a database, as an application would write it."""
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db, db:
        for sql, args in statements:
            db.execute(sql, args)


def new_customer(cid: int, name: str) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """The customers service creating a customer with its primary address."""
    return (
        ("INSERT INTO customers (id, name, email, status, created_at, phone, credit_limit)"
         " VALUES (?, ?, ?, 'active', '2026-12-06', NULL, 2500.5)",
         (cid, name, f"c{cid}@example.com")),
        ("INSERT INTO addresses (customer_id, kind, line1, city, zip)"
         " VALUES (?, 'primary', '1 Main St', 'Springfield', '12345')", (cid,)),
    )  # fmt: skip


def new_order(ord_no: int, cust: int) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """The monolith taking an order."""
    return (('INSERT INTO "ORD_HDR" VALUES (?, ?, ?, ?)', (ord_no, cust, str(ord_no * 101), "O")),)


def changes(path: Path, table: str) -> int:
    """How many changes the capture triggers recorded for ``table`` in a database."""
    return int(rows(path, "SELECT COUNT(*) FROM strangler_changes WHERE tbl = ?", table)[0][0])


class Paused:
    """A real capture that reads nothing while ``paused`` is set (a capture lagging
    behind), so the test decides which changes arrive in one batch."""

    def __init__(self, inner: Source) -> None:
        self.inner, self.name = inner, inner.name
        self.paused = asyncio.Event()

    async def start(self, resume: ResumeLookup) -> None:
        await self.inner.start(resume)

    async def next_batch(self, max_events: int) -> Batch | None:
        if self.paused.is_set():
            await asyncio.sleep(0.02)
            return None
        return await self.inner.next_batch(max_events)

    async def ack(self, batch: Batch) -> None:
        await self.inner.ack(batch)

    async def close(self) -> None:
        await self.inner.close()
