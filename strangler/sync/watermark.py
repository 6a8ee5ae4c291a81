"""Watermarks: a position in a captured database that the sync worker reports reaching.

The drain (``drain.py``) writes a row into ``strangler_watermarks`` in the old
owner's database (and the new owner's). That table is captured like any other, so
its change event sits after every write committed before it. When the worker meets
one, it has applied everything before it; it records the watermark in its targets
(``strangler_watermarks_seen``) and only then goes on: the drain reads that record to
know it is done. The worker also holds that stream at the watermark until the
context's ownership is steady again, so what follows is judged by the owner after
the cutover (or after its abort), never by a guess about timing. A watermark names
its cutover (``cutover``, empty for the lag probe's marks): a stream that reaches it
late, after that cutover aborted and a later one flipped, takes the outcome of the
cutover that wrote it (``direction.py``).

Nothing here commits; callers own the transaction.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, Float, MetaData, String, Table, select, text

from strangler.sync.model import ChangeEvent, Position
from strangler.sync.upsert import upsert

WATERMARK_TABLE = "strangler_watermarks"

WATERMARK_DDL = (
    f"CREATE TABLE IF NOT EXISTS {WATERMARK_TABLE} (context VARCHAR(200) PRIMARY KEY,"
    " seq BIGINT NOT NULL, epoch BIGINT NOT NULL, written_at DOUBLE PRECISION NOT NULL,"
    " cutover VARCHAR(64) NOT NULL DEFAULT '')"
)
"""The captured table in each captured database (the same DDL for SQLite and PostgreSQL)."""

CUTOVER_COLUMN = f"ALTER TABLE {WATERMARK_TABLE} ADD COLUMN cutover VARCHAR(64) NOT NULL DEFAULT ''"
"""A table created before watermarks named their cutover gains the column (``ensure``)."""

metadata = MetaData()

seen = Table(
    "strangler_watermarks_seen",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("context", String(200), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("position", String(200), nullable=False),
    Column("seen_at", Float, nullable=False),
)


@dataclass(frozen=True)
class Watermark:
    source: str
    context: str
    seq: int
    epoch: int
    position: str
    cutover: str = ""
    """The cutover whose drain wrote it (empty: a probe's, or written before marks named it)."""
    at: Position | None = None
    """Where it sits in its stream (``position`` parsed)."""


def is_watermark_table(table: str) -> bool:
    """Whether changes to ``table`` (``schema.table`` or bare) may carry watermarks."""
    return table.rpartition(".")[2] == WATERMARK_TABLE


def watermark_of(event: ChangeEvent) -> Watermark | None:
    """The watermark an event carries, or None if it is an ordinary change."""
    if not is_watermark_table(event.table) or event.after is None:
        return None
    row: dict[str, Any] = dict(event.after)
    return Watermark(
        event.source,
        str(row["context"]),
        int(row["seq"]),
        int(row.get("epoch") or 0),
        str(event.position),
        str(row.get("cutover") or ""),
        event.position,
    )


def ensure(conn: Connection) -> None:
    """Create the watermark table, or add the ``cutover`` column to an older one."""
    conn.execute(text(WATERMARK_DDL))
    if conn.dialect.name == "postgresql":
        found = conn.execute(
            text(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
                " AND table_name = :table AND column_name = 'cutover'"
            ),
            {"table": WATERMARK_TABLE},
        ).first()
        columns = set() if found is None else {"cutover"}
    else:
        rows = conn.execute(text(f"PRAGMA table_info({WATERMARK_TABLE})"))
        columns = {str(r[1]) for r in rows}
    if "cutover" not in columns:
        conn.execute(text(CUTOVER_COLUMN))


def ensure_sqlite(conn: sqlite3.Connection) -> None:
    """``ensure`` for the SQLite capture's own connection (before its triggers are
    made from the table's columns)."""
    conn.execute(WATERMARK_DDL)
    columns = {str(r[1]) for r in conn.execute(f"PRAGMA table_info({WATERMARK_TABLE})")}
    if "cutover" not in columns:
        conn.execute(CUTOVER_COLUMN)


def write(conn: Connection, context: str, epoch: int, cutover: str = "") -> int:
    """Write the next watermark of ``context`` (by cutover ``cutover``) into a captured
    database; its number."""
    ensure(conn)
    row = conn.execute(
        text(
            f"INSERT INTO {WATERMARK_TABLE} (context, seq, epoch, written_at, cutover)"
            " VALUES (:context, 1, :epoch, :at, :cutover)"
            f" ON CONFLICT (context) DO UPDATE SET seq = {WATERMARK_TABLE}.seq + 1,"
            " epoch = EXCLUDED.epoch, written_at = EXCLUDED.written_at,"
            " cutover = EXCLUDED.cutover RETURNING seq"
        ),
        {"context": context, "epoch": epoch, "at": time.time(), "cutover": cutover},
    ).one()
    return int(row[0])


def record(conn: Connection, mark: Watermark) -> None:
    """The worker reached ``mark`` (everything before it is applied) — in a target."""
    upsert(
        conn,
        seen,
        ["source", "context"],
        [
            {
                "source": mark.source,
                "context": mark.context,
                "seq": mark.seq,
                "position": mark.position,
                "seen_at": time.time(),
            }
        ],
    )


def reached(conn: Connection, source: str, context: str) -> tuple[int, str] | None:
    """(seq, position) of the last watermark of ``context`` the worker reached from
    ``source``, as recorded in this target; None if none yet."""
    found = conn.execute(
        select(seen.c.seq, seen.c.position).where(
            seen.c.source == source, seen.c.context == context
        )
    ).first()
    return None if found is None else (int(found[0]), str(found[1]))
