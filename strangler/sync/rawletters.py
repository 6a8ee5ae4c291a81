"""Queries on ``strangler_raw_dead_letters``: poison records stored with the offsets.

Like ``ledger`` (which defines the table with the other bookkeeping tables), every
function takes an open ``Connection`` inside the caller's transaction and never
commits. See ``poison.py`` for what a poison record is.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, func, select, update

from strangler.sync.ledger import insert_ignore, raw_dead_letters
from strangler.sync.poison import Poison


def add_raw_dead_letter(conn: Connection, source: str, poison: Poison) -> bool:
    """Store a poison record; False if it was already stored (a replay met it again)."""
    done = conn.execute(
        insert_ignore(conn, raw_dead_letters),  # type: ignore[call-overload]
        {
            "source": source,
            "location": poison.location[:500],
            "source_table": poison.table,
            "op": poison.op,
            "encoding": poison.encoding,
            "raw_key": poison.key,
            "raw_value": poison.value,
            "error": poison.error[:4000],
            "attempts": 1,
            "created_at": time.time(),
            "resolved_at": None,
        },
    )
    return bool(done.rowcount)


def open_raw_dead_letters(
    conn: Connection, source: str | None = None
) -> list[tuple[int, str, Poison]]:
    """(id, source, poison) of unresolved raw dead letters, oldest first."""
    t = raw_dead_letters
    query = select(
        t.c.id, t.c.source, t.c.location, t.c.raw_value, t.c.raw_key, t.c.error,
        t.c.encoding, t.c.source_table, t.c.op,
    ).where(t.c.resolved_at.is_(None))  # fmt: skip
    if source is not None:
        query = query.where(t.c.source == source)
    return [
        (int(i), str(src), Poison(*rest)) for i, src, *rest in conn.execute(query.order_by(t.c.id))
    ]


def resolve_raw_dead_letter(conn: Connection, letter_id: int) -> None:
    t = raw_dead_letters
    conn.execute(update(t).where(t.c.id == letter_id).values(resolved_at=time.time()))


def note_raw_retry_failure(conn: Connection, letter_id: int, error: str) -> None:
    t = raw_dead_letters
    conn.execute(
        update(t).where(t.c.id == letter_id).values(error=error[:4000], attempts=t.c.attempts + 1)
    )


def raw_counts_by_source(conn: Connection) -> dict[str, int]:
    """Open raw dead letters per source, for status."""

    t = raw_dead_letters
    rows = conn.execute(
        select(t.c.source, func.count()).where(t.c.resolved_at.is_(None)).group_by(t.c.source)
    )
    return {str(s): int(n) for s, n in rows}
