"""Row writes -> SQL: collapse a batch's writes per target row, then delete and upsert
with many rows per statement (``INSERT ... ON CONFLICT (key) DO UPDATE``).

Upserts only set the columns the adapter gave, so a column left out (an unchanged
TOAST value) keeps what the target has. Positions of every written row are saved in
the same call, but for the tables kept by the stream (``highs.py``), which have none.
Runs inside the sink's transaction; never commits, never decides what is stale — the
sink has done that before a write reaches here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, MetaData, Table, and_, delete, or_
from sqlalchemy.exc import NoSuchTableError

from strangler.errors import ChangeEventError
from strangler.sync.ledger import save_positions
from strangler.sync.model import Position, RowDelete, RowWrite
from strangler.sync.upsert import upsert

_CHUNK_ROWS = 500


@dataclass
class _Entry:
    key: dict[str, Any]
    values: dict[str, Any] | None  # None: the row ends deleted
    delete_first: bool
    position: Position
    source_table: str

    def __init__(
        self,
        key: dict[str, Any],
        values: dict[str, Any] | None,
        delete_first: bool,
        position: Position,
        source_table: str,
    ) -> None:  # written out: compiled to plain stores (see events.py)
        self.key = key
        self.values = values
        self.delete_first = delete_first
        self.position = position
        self.source_table = source_table


@dataclass
class PendingWrites:
    """The batch's net effect per (target table, row key), in first-seen table order."""

    rows: dict[tuple[str, str], _Entry] = field(default_factory=dict)

    def add(self, write: RowWrite, row_key: str, position: Position, source_table: str) -> None:
        slot = (write.table, row_key)
        entry = self.rows.get(slot)
        if isinstance(write, RowDelete):
            self.rows[slot] = _Entry(dict(write.key), None, False, position, source_table)
        elif entry is None:
            self.rows[slot] = _Entry(
                dict(write.key), dict(write.values), False, position, source_table
            )
        elif entry.values is None:
            # Deleted earlier in this batch, written again: replace the row whole.
            self.rows[slot] = _Entry(
                dict(write.key), dict(write.values), True, position, source_table
            )
        else:
            entry.values.update(write.values)
            entry.position = position
            entry.source_table = source_table

    def __bool__(self) -> bool:
        return bool(self.rows)


class TableCache:
    """Reflected target tables, by name (``schema.table`` allowed)."""

    def __init__(self) -> None:
        self._tables: dict[str, Table] = {}

    def get(self, conn: Connection, name: str) -> Table:
        table = self._tables.get(name)
        if table is None:
            schema, _, bare = name.rpartition(".")
            try:
                table = Table(bare, MetaData(), autoload_with=conn, schema=schema or None)
            except NoSuchTableError as exc:
                raise ChangeEventError(f"target table {name!r} does not exist") from exc
            self._tables[name] = table
        return table

    def clear(self) -> None:
        self._tables.clear()

    def forget(self, name: str) -> None:
        """Reflect ``name`` again next time (its columns may have changed)."""
        self._tables.pop(name, None)


def flush(
    conn: Connection,
    tables: TableCache,
    pending: PendingWrites,
    kept: Mapping[str, str] | None = None,
) -> None:
    """Apply the net writes: per table deletes first, then upserts; then positions,
    but for the tables in ``kept`` (kept by the stream: ``highs.py``)."""
    by_table: dict[str, list[tuple[str, _Entry]]] = {}
    for (table, row_key), entry in pending.rows.items():
        by_table.setdefault(table, []).append((row_key, entry))
    for name, entries in by_table.items():
        target = tables.get(conn, name)
        doomed = [e.key for _, e in entries if e.values is None or e.delete_first]
        delete_keys(conn, target, doomed)
        upserts = [e for _, e in entries if e.values is not None]
        _upsert_rows(conn, target, upserts)
    save_positions(
        conn,
        [
            {
                "target_table": table,
                "row_key": row_key,
                "pos_commit": e.position.commit,
                "pos_seq": e.position.seq,
                "deleted": e.values is None,
                "source_table": e.source_table,
            }
            for (table, row_key), e in pending.rows.items()
            if not kept or table not in kept
        ],
    )


def delete_keys(conn: Connection, table: Table, keys: list[dict[str, Any]]) -> None:
    for start in range(0, len(keys), _CHUNK_ROWS):
        chunk = keys[start : start + _CHUNK_ROWS]
        columns = sorted(chunk[0])
        if len(columns) == 1 and all(sorted(k) == columns for k in chunk):
            column = _column(table, columns[0])
            conn.execute(delete(table).where(column.in_([k[columns[0]] for k in chunk])))
        else:
            clauses = [and_(*(_column(table, c) == v for c, v in k.items())) for k in chunk]
            conn.execute(delete(table).where(or_(*clauses)))


def _upsert_rows(conn: Connection, table: Table, entries: list[_Entry]) -> None:
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[dict[str, Any]]] = {}
    for entry in entries:
        assert entry.values is not None
        keys = tuple(sorted(entry.key))
        row = {**entry.values, **entry.key}
        groups.setdefault((keys, tuple(sorted(row))), []).append(row)
    for (keys, columns), rows in groups.items():
        for name in columns:
            _column(table, name)
        for start in range(0, len(rows), _CHUNK_ROWS):
            # Rows are unique per key here, as one ON CONFLICT statement requires.
            upsert(conn, table, keys, rows[start : start + _CHUNK_ROWS])


def _column(table: Table, name: str) -> Any:
    try:
        return table.c[name]
    except KeyError:
        raise ChangeEventError(f"target table {table.name!r} has no column {name!r}") from None
