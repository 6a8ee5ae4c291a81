"""Writing planned events into one target: the heart of exactly-once apply.

Every write is checked against the position stored for its target row: an event not
newer than it is ``stale`` for that row and skipped (replays, redeliveries and
reordering cannot regress a row; a deleted row's position stays behind so an old
upsert cannot bring it back). A truncate raises its table's floor: a later-arriving
event older than it is stale too. The survivors are flushed set-wise
(``writer.flush``), their positions with them. A table kept by the stream
(``highs.py``: one ``pgoutput`` stream alone writes it) has no entries: its writes
apply in stream order, the sink having dropped replays by its stored offsets. Nothing
here commits: the sink owns the transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, delete

from strangler.sync import ledger
from strangler.sync.codec import key_from_text, key_text
from strangler.sync.highs import Highs
from strangler.sync.model import ChangeEvent, Position, RowDelete, RowWrite
from strangler.sync.rowpos import RowState
from strangler.sync.schema import SchemaGuard
from strangler.sync.writer import PendingWrites, TableCache, delete_keys, flush

Outcome = str
"""applied | stale | filtered | parked | dead_letter"""


@dataclass
class Planned:
    """An event and the writes its adapter made of it (or a default truncate)."""

    event: ChangeEvent
    writes: list[RowWrite]
    truncate: bool = False
    fitted: bool = False
    """``writes`` were fitted to the target's columns already (the live path)."""

    def __init__(
        self,
        event: ChangeEvent,
        writes: list[RowWrite],
        truncate: bool = False,
        fitted: bool = False,
    ) -> None:  # written out: compiled to plain stores (see events.py)
        self.event = event
        self.writes = writes
        self.truncate = truncate
        self.fitted = fitted


def execute(
    conn: Connection,
    tables: TableCache,
    schema: SchemaGuard,
    items: list[Planned],
    force: bool = False,
    highs: Highs | None = None,
    floors: dict[str, dict[str, Position]] | None = None,
) -> list[Outcome]:
    """Stale-check every write against stored positions, then write the survivors.

    ``highs``: where one ordered stream is a table's only writer, the rows of events
    above its bound are not looked up: none of them can have a later position stored.
    ``floors``: source -> table -> truncate floor, where the caller has read them
    (``ledger.load_floors``); read here for any other source."""
    for item in items:  # parked and retried events too: leave out unneeded new columns
        if not item.fitted:
            item.writes = schema.fit(conn, item.event, item.writes, note=False)[0]
    kept: Mapping[str, str] = highs.kept if highs is not None else {}
    """Tables kept by the stream (``highs.py``): no entries to read, none to write."""
    lowest: dict[str, dict[str, Position]] = {}
    """table -> row key -> the lowest position of an event of the batch writing it."""
    row_keys = [[key_text(w.key) for w in item.writes] for item in items]
    for item, keys in zip(items, row_keys, strict=True):
        position = item.event.position
        for write, row_key in zip(item.writes, keys, strict=True):
            if write.table in kept:
                continue
            seen = lowest.setdefault(write.table, {})
            if row_key not in seen or position < seen[row_key]:
                seen[row_key] = position
    known: dict[str, dict[str, RowState]] = {}
    for table, seen in lowest.items():
        top = None if highs is None else highs.top(conn, table)
        asked = list(seen) if top is None else [k for k, p in seen.items() if p <= top]
        known[table] = ledger.load_positions(conn, table, asked) if asked else {}
    if highs is not None and items:
        highs.raise_to(max(item.event.position for item in items))
    floors = {s: dict(f) for s, f in (floors or {}).items()}
    for item in items:
        if item.event.source not in floors:
            floors[item.event.source] = ledger.load_floors(conn, item.event.source)
    pending = PendingWrites()
    outcomes: list[Outcome] = []
    for item, keys in zip(items, row_keys, strict=True):
        event = item.event
        floor = floors[event.source].get(event.table)
        # Behind the table's last truncate (a row event from another partition
        # overtaken by it, or the same truncate sent to every partition): applying
        # it would resurrect a truncated row.
        if (
            not force
            and floor is not None
            and (event.position < floor or (event.op == "t" and event.position <= floor))
        ):
            outcomes.append("stale")
            continue
        if event.op == "t":
            floors[event.source][event.table] = event.position
            ledger.save_floor(conn, event.source, event.table, event.position)
        if item.truncate:
            flush(conn, tables, pending, kept)
            pending = PendingWrites()
            truncate(conn, tables, item.event, known, kept)
            outcomes.append("applied")
            continue
        applied = stale = 0
        for write, row_key in zip(item.writes, keys, strict=True):
            if write.table in kept:
                # In stream order, and never a replay (the sink dropped those): it applies.
                pending.add(write, row_key, item.event.position, item.event.table)
                applied += 1
                continue
            state = known.setdefault(write.table, {}).get(row_key)
            if not force and state is not None and item.event.position <= state.position:
                stale += 1
                continue
            pending.add(write, row_key, item.event.position, item.event.table)
            deleted = isinstance(write, RowDelete)
            known[write.table][row_key] = RowState(item.event.position, deleted)
            applied += 1
        outcomes.append("applied" if applied else "stale" if stale else "filtered")
    flush(conn, tables, pending, kept)
    return outcomes


def truncate(
    conn: Connection,
    tables: TableCache,
    event: ChangeEvent,
    known: dict[str, dict[str, RowState]],
    kept: Mapping[str, str],
) -> None:
    """Default truncate: delete every live target row that came from the table.

    A table kept by the stream has only that source table's rows, all older than the
    truncate (one ordered stream): it is emptied whole."""
    for table, source_table in kept.items():
        if source_table == event.table:
            conn.execute(delete(tables.get(conn, table)))
    doomed: dict[str, list[str]] = {}
    for table, row_key, position in ledger.live_rows_from(conn, event.table):
        if position < event.position and table not in kept:
            doomed.setdefault(table, []).append(row_key)
    for table, row_keys in doomed.items():
        delete_keys(conn, tables.get(conn, table), [key_from_text(k) for k in row_keys])
        ledger.save_positions(
            conn,
            [
                {
                    "target_table": table,
                    "row_key": k,
                    "pos_commit": event.position.commit,
                    "pos_seq": event.position.seq,
                    "deleted": True,
                    "source_table": event.table,
                }
                for k in row_keys
            ],
        )
        for k in row_keys:
            known.setdefault(table, {})[k] = RowState(event.position, True)
