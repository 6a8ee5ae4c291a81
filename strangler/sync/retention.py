"""Graveyard retention: how long a deleted row's position is kept.

A deleted target row keeps its position in ``strangler_positions`` (``deleted_at``
set) so that an older change delivered again — a Kafka replay, a rebalance, Debezium
re-sending its last second — cannot bring the row back. Such a replay can only come
from events still held upstream, so the position is needed only as long as they may
be replayed: keep ``sync.graveyard_retention`` (default 7 days) at least as long as
the source topics' retention (Kafka) or the longest a worker may stay stopped (a slot
keeps WAL). Older graveyard entries are deleted by the worker, a bounded batch at a
time (found through a partial index on ``deleted_at``); live rows' positions are
never touched. Runs inside the caller's transaction.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, delete, select, tuple_

from strangler.sync.rowpos import positions

BATCH = 10_000
"""Graveyard entries deleted per call (keeps each transaction short)."""


def prune_graveyard(conn: Connection, retention: float, now: float | None = None) -> int:
    """Delete up to ``BATCH`` deleted rows' positions older than ``retention`` seconds."""
    cutoff = (time.time() if now is None else now) - retention
    doomed = (
        select(positions.c.tbl, positions.c.row_key)
        .where(positions.c.deleted_at.is_not(None))
        .where(positions.c.deleted_at < cutoff)
        .limit(BATCH)
    )
    pair = tuple_(positions.c.tbl, positions.c.row_key)
    result = conn.execute(delete(positions).where(pair.in_(doomed.scalar_subquery())))
    return int(result.rowcount or 0)
