"""The sink's bookkeeping tables in each target database, and their queries.

``strangler_sync_offsets``      source, partition -> resume offset (written with the rows)
``strangler_positions``         target table, row key -> position that last wrote it
                                (compact: see ``rowpos``), the graveyard with it
``strangler_dead_letters``      events that failed after retries, with the error
``strangler_raw_dead_letters``  source records that could not even be parsed (poison):
                                raw text, where they sat (topic/partition@offset ...), error
                                (queries in ``rawletters``)
``strangler_parked``            later events for a dead-lettered key, held in order
``strangler_truncate_floors``   source, source table -> position of the last truncate
                                applied; older events for that table are stale

Every function takes an open ``Connection`` inside the caller's transaction and never
commits: the sink decides the transaction boundary, so rows, positions and offsets
land together or not at all.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    delete,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from strangler.sync import rowpos
from strangler.sync.codec import event_to_json, key_text
from strangler.sync.model import ChangeEvent, Position
from strangler.sync.rowpos import RowState
from strangler.sync.upsert import upsert

metadata = MetaData()

offsets = Table(
    "strangler_sync_offsets",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("partition", String(300), primary_key=True),
    Column("offset", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=False),
)


def _held_event() -> list[Any]:
    """The columns of an event held back (a dead letter, a parked event): where from,
    its key, its position and the event itself, stored once per event."""
    return [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("source", String(200), nullable=False),
        Column("source_table", String(300), nullable=False),
        Column("event_key", Text, nullable=False),
        Column("pos_commit", BigInteger, nullable=False),
        Column("pos_seq", BigInteger, nullable=False),
        Column("event", Text, nullable=False),
        UniqueConstraint("source", "source_table", "event_key", "pos_commit", "pos_seq"),
    ]


dead_letters = Table(
    "strangler_dead_letters",
    metadata,
    *_held_event(),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("resolved_at", Float, nullable=True),
)

parked = Table(
    "strangler_parked",
    metadata,
    *_held_event(),
    Column("created_at", Float, nullable=False),
)

raw_dead_letters = Table(
    "strangler_raw_dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(200), nullable=False),
    Column("location", String(500), nullable=False),
    Column("source_table", String(300), nullable=False),
    Column("op", String(20), nullable=False),
    Column("encoding", String(20), nullable=False),
    Column("raw_key", Text, nullable=True),
    Column("raw_value", Text, nullable=True),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("resolved_at", Float, nullable=True),
    # A replay from an older offset meets the same record again: stored once.
    UniqueConstraint("source", "location"),
)

truncate_floors = Table(
    "strangler_truncate_floors",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("source_table", String(300), primary_key=True),
    Column("pos_commit", BigInteger, nullable=False),
    Column("pos_seq", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=False),
)

NON_OWNER = "written by the non-owner"
"""The error of a dead letter that reports a write to a table its context's owner did
not make (e.g. an old cron job writing the monolith's table after the cutover). Such a
letter is a report: it parks nothing behind it and ``--retry-dead`` never applies it."""

Ident = tuple[str, str]
"""(source table, key text): what dead letters and parking are keyed by."""


def ident_of(event: ChangeEvent) -> Ident:
    return (event.table, key_text(event.key))


def _upsert_many(
    conn: Connection, table: Table, keys: list[str], rows: list[dict[str, object]]
) -> None:
    for start in range(0, len(rows), 1000):
        upsert(conn, table, keys, rows[start : start + 1000])


def insert_ignore(conn: Connection, table: Table) -> object:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


# ------------------------------------------------------------------ offsets


def save_offsets(conn: Connection, source: str, values: Mapping[str, int]) -> None:
    if not values:
        return
    now = time.time()
    rows = [
        {"source": source, "partition": p, "offset": o, "updated_at": now}
        for p, o in values.items()
    ]
    _upsert_many(conn, offsets, ["source", "partition"], rows)


def load_offsets(conn: Connection, source: str) -> dict[str, int]:
    rows = conn.execute(
        select(offsets.c.partition, offsets.c.offset).where(offsets.c.source == source)
    )
    return {p: int(o) for p, o in rows}


# ---------------------------------------------------------------- positions


def load_positions(conn: Connection, table: str, keys: Iterable[str]) -> dict[str, RowState]:
    """Stored state of the rows of ``table`` among ``keys`` (``key_text``) that have one."""
    found = rowpos.load(conn, table, keys)
    return {k: RowState(position, deleted) for k, (position, deleted) in found.items()}


def save_positions(conn: Connection, rows: list[dict[str, object]]) -> None:
    """rows: target_table, row_key, pos_commit, pos_seq, deleted, source_table."""
    rowpos.save(conn, rows)


def live_rows_from(conn: Connection, source_table: str) -> list[tuple[str, str, Position]]:
    """(target table, row key, position) of every live target row that came from a table."""
    return rowpos.live_rows_from(conn, source_table)


# ---------------------------------------------------------- truncate floors


def load_floors(conn: Connection, source: str) -> dict[str, Position]:
    """source table -> position of the last truncate applied from it."""
    rows = conn.execute(
        select(
            truncate_floors.c.source_table, truncate_floors.c.pos_commit, truncate_floors.c.pos_seq
        ).where(truncate_floors.c.source == source)
    )
    return {t: Position(int(c), int(s)) for t, c, s in rows}


def save_floor(conn: Connection, source: str, source_table: str, position: Position) -> None:
    """Raise (never lower) a table's floor; the caller checked it is higher."""
    row: dict[str, object] = {
        "source": source,
        "source_table": source_table,
        "pos_commit": position.commit,
        "pos_seq": position.seq,
        "updated_at": time.time(),
    }
    upsert(conn, truncate_floors, ["source", "source_table"], [row])


# ----------------------------------------------------- dead letters, parking


def blocking_letters(source: Any) -> list[ColumnElement[bool]]:
    """The conditions of ``source``'s dead letters that park their key's new events:
    unresolved, and not a non-owner report (also read by ``sink._holds``)."""
    return [
        dead_letters.c.source == source,
        dead_letters.c.resolved_at.is_(None),
        dead_letters.c.error.not_like(NON_OWNER + "%"),
    ]


def blocked_idents(conn: Connection, source: str) -> set[Ident]:
    """Keys with an unresolved dead letter or parked events: new events for them park."""
    dead = conn.execute(
        select(dead_letters.c.source_table, dead_letters.c.event_key).where(
            *blocking_letters(source)
        )
    )
    held = conn.execute(
        select(parked.c.source_table, parked.c.event_key)
        .where(parked.c.source == source)
        .distinct()
    )
    return {(t, k) for t, k in dead} | {(t, k) for t, k in held}


def _hold(conn: Connection, table: Table, event: ChangeEvent, **extra: object) -> None:
    """Store ``event`` in a table of :func:`_held_event` columns (once: a replay is ignored)."""
    source_table, key = ident_of(event)
    conn.execute(
        insert_ignore(conn, table),  # type: ignore[call-overload]
        {
            "source": event.source,
            "source_table": source_table,
            "event_key": key,
            "pos_commit": event.position.commit,
            "pos_seq": event.position.seq,
            "event": event_to_json(event),
            "created_at": time.time(),
            **extra,
        },
    )


def add_dead_letter(conn: Connection, event: ChangeEvent, error: str, attempts: int) -> None:
    _hold(conn, dead_letters, event, error=error[:4000], attempts=attempts, resolved_at=None)


def park(conn: Connection, event: ChangeEvent) -> None:
    _hold(conn, parked, event)


def open_dead_letters(conn: Connection, source: str | None = None) -> list[tuple[int, str]]:
    """(id, event JSON) of unresolved dead letters, oldest first."""
    query = select(dead_letters.c.id, dead_letters.c.event).where(
        dead_letters.c.resolved_at.is_(None), dead_letters.c.error.not_like(NON_OWNER + "%")
    )
    if source is not None:
        query = query.where(dead_letters.c.source == source)
    return [(int(i), str(e)) for i, e in conn.execute(query.order_by(dead_letters.c.id))]


def resolve_dead_letter(conn: Connection, letter_id: int) -> None:
    conn.execute(
        update(dead_letters).where(dead_letters.c.id == letter_id).values(resolved_at=time.time())
    )


def note_retry_failure(conn: Connection, letter_id: int, error: str) -> None:
    conn.execute(
        update(dead_letters)
        .where(dead_letters.c.id == letter_id)
        .values(error=error[:4000], attempts=dead_letters.c.attempts + 1)
    )


def parked_for(conn: Connection, source: str, ident: Ident) -> list[tuple[int, str]]:
    rows = conn.execute(
        select(parked.c.id, parked.c.event)
        .where(and_(parked.c.source == source, parked.c.source_table == ident[0]))
        .where(parked.c.event_key == ident[1])
        .order_by(parked.c.pos_commit, parked.c.pos_seq, parked.c.id)
    )
    return [(int(i), str(e)) for i, e in rows]


def orphan_parked_idents(conn: Connection) -> list[tuple[str, Ident]]:
    """Parked keys with no unresolved dead letter in front (a race with --retry-dead)."""
    live = select(
        dead_letters.c.source, dead_letters.c.source_table, dead_letters.c.event_key
    ).where(dead_letters.c.resolved_at.is_(None))
    rows = conn.execute(
        select(parked.c.source, parked.c.source_table, parked.c.event_key)
        .where(tuple_(parked.c.source, parked.c.source_table, parked.c.event_key).not_in(live))
        .distinct()
    )
    return [(s, (t, k)) for s, t, k in rows]


def unpark(conn: Connection, parked_id: int) -> None:
    conn.execute(delete(parked).where(parked.c.id == parked_id))


def counts(conn: Connection) -> dict[str, int]:
    """Open dead letters and parked events, for status."""
    dead = conn.execute(
        select(func.count()).select_from(dead_letters).where(dead_letters.c.resolved_at.is_(None))
    ).scalar_one()
    held = conn.execute(select(func.count()).select_from(parked)).scalar_one()
    raw = conn.execute(
        select(func.count())
        .select_from(raw_dead_letters)
        .where(raw_dead_letters.c.resolved_at.is_(None))
    ).scalar_one()
    return {"dead_lettered": int(dead) + int(raw), "parked": int(held), "unparseable": int(raw)}


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, object]]) -> None:
    conn.execute(insert(table), rows)
