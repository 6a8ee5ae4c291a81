"""Shared pieces of the CDC end-to-end tests: schemas, a worker on its own thread,
SQL helpers and polling."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import psycopg

from strangler.sync.direction import OwnerReader
from strangler.sync.worker import Worker
from strangler.sync_config import SyncConfig

MONOLITH_DDL = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, nm TEXT, st TEXT, cents TEXT, city TEXT,
                        note TEXT);
ALTER TABLE customers ALTER COLUMN note SET STORAGE EXTERNAL;
CREATE TABLE payments (id INTEGER PRIMARY KEY, amount NUMERIC(18, 6), paid_at TIMESTAMPTZ,
                       booked DATE, local_at TIMESTAMP(6));
CREATE TABLE tags (id INTEGER PRIMARY KEY, label TEXT);
"""
"""``note`` is stored out of line uncompressed, so a long note is TOASTed and an update
that leaves it alone sends Debezium's unavailable-value placeholder instead of it."""

SERVICE_DDL = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, status TEXT,
                        balance NUMERIC(12, 2), note TEXT);
CREATE TABLE addresses (customer_id INTEGER PRIMARY KEY, city TEXT);
CREATE TABLE payments (id INTEGER PRIMARY KEY, amount NUMERIC(18, 6), paid_at TIMESTAMPTZ,
                       booked DATE, local_at TIMESTAMP(6));
CREATE TABLE tags (id INTEGER PRIMARY KEY, label TEXT);
CREATE TABLE write_audit (tbl TEXT NOT NULL, id INTEGER NOT NULL);
CREATE FUNCTION audit_write() RETURNS trigger AS $$
BEGIN INSERT INTO write_audit VALUES (TG_TABLE_NAME, NEW.id); RETURN NEW; END $$
LANGUAGE plpgsql;
CREATE TRIGGER audit_customers AFTER INSERT OR UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION audit_write();
CREATE TRIGGER audit_payments AFTER INSERT OR UPDATE ON payments
    FOR EACH ROW EXECUTE FUNCTION audit_write();
"""
"""``write_audit`` gets a row per write, so a test can prove nothing was applied twice."""

TABLES = ("public.customers", "public.payments", "public.tags")


def mappings(target: str) -> list[dict[str, Any]]:
    return [
        {"source": "public.customers", "target": target,
         "adapter": "tests.cdc.adapters:CustomerRows"},
        {"source": "public.payments", "target": target,
         "adapter": {"table": "payments", "key": ["id"]}},
        {"source": "public.tags", "target": target, "adapter": {"table": "tags", "key": ["id"]}},
    ]  # fmt: skip


def execute(dsn: str, *statements: str, params: Sequence[Any] | None = None) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement, params)  # type: ignore[arg-type]


def rows(dsn: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return list(conn.execute(query).fetchall())  # type: ignore[arg-type]


def wait_until(
    check: Callable[[], bool],
    timeout: float = 60.0,
    what: str = "",
    explain: Callable[[], object] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    detail = f": {explain()}" if explain is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or check}{detail}")


def service_diff(monolith: str, service: str) -> list[str]:
    """How the service's tables differ from the monolith's (mapped); empty when aligned."""
    status = {"A": "active", "I": "inactive"}
    pairs = [
        (
            "customers",
            [
                (i, nm, status[st], Decimal(int(cents)).scaleb(-2), note)
                for i, nm, st, cents, note in rows(
                    monolith, "SELECT id, nm, st, cents, note FROM customers ORDER BY id"
                )
            ],
            rows(service, "SELECT id, name, status, balance, note FROM customers ORDER BY id"),
        ),
        (
            "addresses",
            rows(monolith, "SELECT id, city FROM customers ORDER BY id"),
            rows(service, "SELECT customer_id, city FROM addresses ORDER BY customer_id"),
        ),
        (
            "payments",
            rows(monolith, "SELECT * FROM payments ORDER BY id"),
            rows(service, "SELECT * FROM payments ORDER BY id"),
        ),
        (
            "tags",
            rows(monolith, "SELECT * FROM tags ORDER BY id"),
            rows(service, "SELECT * FROM tags ORDER BY id"),
        ),
    ]
    out = []
    for table, expected, got in pairs:
        missing = [r for r in expected if r not in got]
        extra = [r for r in got if r not in expected]
        if missing or extra:
            out.append(f"{table}: missing {missing[:5]} extra {extra[:5]}")
    return out


def service_matches(monolith: str, service: str) -> bool:
    """The service's customers/addresses/payments/tags equal the monolith's, mapped."""
    return not service_diff(monolith, service)


class WorkerThread:
    """``strangler sync``'s worker, in-process on its own thread and event loop."""

    def __init__(
        self,
        config: dict[str, Any],
        contexts: Mapping[str, Sequence[str]] | None = None,
        owners: OwnerReader | None = None,
    ) -> None:
        self.config = SyncConfig.model_validate(config)
        self.contexts = contexts
        self.owners = owners
        self.worker: Worker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None

    def start(self) -> WorkerThread:
        self._thread = threading.Thread(target=self._main, name="sync-worker", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        return self

    def _main(self) -> None:
        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self.worker = Worker(self.config, contexts=self.contexts, owners=self.owners)
            self._ready.set()
            await self.worker.run(self._stop)

        try:
            asyncio.run(run())
        except BaseException as exc:  # surfaced by the tests through .error
            self.error = exc
        finally:
            self._ready.set()

    def counts(self, source: str) -> dict[str, int]:
        assert self.worker is not None
        return dict(self.worker.status[source].counts)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(60)
            assert not self._thread.is_alive(), "the worker did not stop within 60 s"
        self._thread = None
