"""No ping-pong: every transaction the sync worker commits carries its origin.

With both directions running, the worker writes into databases that are also
captured (the monolith's while syncing back, the service's while syncing forward).
A change it wrote must never be captured back as if a person had made it, or it
would echo forever (or, judged by ownership, be reported as a non-owner's write).

- **SQLite** — the worker's transaction starts by inserting a row into
  ``strangler_sync_origin`` and ends by deleting it, so the row never commits; the
  capture triggers fire only ``WHEN NOT EXISTS (SELECT 1 FROM strangler_sync_origin)``.
  SQLite has one writer at a time, so no other writer's transaction can see the row:
  the worker's own changes are simply never written to the change table.
- **PostgreSQL** — the worker's transaction records its own transaction id in
  ``strangler_sync_txids`` (committed with the rows). Every Debezium event names its
  transaction (``source.txId``); the worker drops events whose transaction is one of
  its own, whichever topic or partition they come through, since the id was committed
  before any of that transaction's events could exist. PostgreSQL 15's ``pgoutput``
  cannot filter by replication origin (``origin=none`` needs 16), which is why this
  does not rely on one.

Nothing here commits; callers own the transaction.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Integer,
    MetaData,
    Table,
    delete,
    insert,
    select,
    text,
)

ORIGIN_TABLE = "strangler_sync_origin"
"""The SQLite marker table the capture triggers look at (never holds a committed row)."""

TRIGGER_GUARD = f"WHEN NOT EXISTS (SELECT 1 FROM {ORIGIN_TABLE})"
"""The WHEN clause of every SQLite capture trigger."""

XID_SPACE = 1 << 32
"""Debezium's ``txId`` is PostgreSQL's 32-bit transaction id."""

KEEP_SECONDS = 86_400.0
"""How long own transaction ids are kept (ids take ~weeks to wrap at any real rate)."""

metadata = MetaData()

origin = Table(ORIGIN_TABLE, metadata, Column("id", Integer, primary_key=True))

txids = Table(
    "strangler_sync_txids",
    metadata,
    Column("xid", BigInteger, primary_key=True),
    Column("at", Float, nullable=False),
)

ORIGIN_DDL = f"CREATE TABLE IF NOT EXISTS {ORIGIN_TABLE} (id INTEGER PRIMARY KEY)"


def enter(conn: Connection) -> None:
    """Mark the open transaction as the worker's (first statement of the transaction)."""
    if conn.dialect.name == "sqlite":
        conn.execute(delete(origin))  # a crashed writer cannot commit one, but be sure
        conn.execute(insert(origin).values(id=1))
    elif conn.dialect.name == "postgresql":
        conn.execute(
            text(
                "INSERT INTO strangler_sync_txids (xid, at)"
                " VALUES (txid_current() % 4294967296, :at)"
                " ON CONFLICT (xid) DO UPDATE SET at = EXCLUDED.at"
            ),
            {"at": time.time()},
        )


def leave(conn: Connection) -> None:
    """Unmark before commit (SQLite: the marker row must never commit)."""
    if conn.dialect.name == "sqlite":
        conn.execute(delete(origin))


def prune(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(delete(txids).where(txids.c.at < time.time() - KEEP_SECONDS))


def own_transactions(conn: Connection, xids: Iterable[int]) -> set[int]:
    """Those of ``xids`` (Debezium ``txId``) that the worker's own transactions had."""
    wanted = sorted({x % XID_SPACE for x in xids})
    if not wanted or conn.dialect.name != "postgresql":
        return set()
    rows = conn.execute(select(txids.c.xid).where(txids.c.xid.in_(wanted)))
    return {int(x) for (x,) in rows}
