"""Schema changes without harm: new source columns, columns the target lacks.

A change event can carry a column the target table does not have (the monolith ran
``ALTER TABLE ... ADD COLUMN``). What happens depends on whether the mapping *needs* it:

- **not used by the mapping** (a declarative mapping carrying every column, and this
  one is not named in its ``key``/``rename``/``cast``/``values``/``include``): the
  column is left out of the write and the change is recorded once — or, with
  ``sync.tables[].new_columns: add``, added to the target table (typed from the first
  non-null value) and written from then on;
- **needed** (named by the mapping, or written by a Python adapter): the source table is
  *stopped* — its events are parked in order, nothing of them is dead-lettered, every
  other table goes on — with one alert (log line, ``stopped_tables`` in ``/api/sync``).
  Once the column exists in the target the table resumes by itself: its parked events
  are applied first, in order, then the stream.

Recorded in the target, in the sink's transaction: ``strangler_schema_changes`` (each
new or missing column once, with what was done) and ``strangler_stopped_tables``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    select,
    text,
)

from strangler.errors import ChangeEventError
from strangler.sync.adapters import AdapterSet, DeclarativeAdapter
from strangler.sync.ledger import insert_ignore, metadata
from strangler.sync.model import ChangeEvent, Position, RowUpsert, RowWrite
from strangler.sync.writer import TableCache

log = logging.getLogger("strangler.sync")

schema_changes = Table(
    "strangler_schema_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(200), nullable=False),
    Column("source_table", String(300), nullable=False),
    Column("target_table", String(300), nullable=False),
    Column("column_name", String(300), nullable=False),
    Column("action", String(20), nullable=False),  # ignored | added | stopped | resumed
    Column("detail", Text, nullable=False),
    Column("at", Float, nullable=False),
    UniqueConstraint("source", "source_table", "target_table", "column_name", "action"),
)

stopped_tables = Table(
    "strangler_stopped_tables",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("source_table", String(300), primary_key=True),
    Column("target_table", String(300), nullable=False),
    Column("column_name", String(300), nullable=False),
    Column("reason", Text, nullable=False),
    Column("since", Float, nullable=False),
)

RECHECK = 2.0
"""Seconds between looks at whether a stopped table's target has the column now."""


@dataclass(frozen=True)
class Stop:
    target_table: str
    column: str
    reason: str


class SchemaGuard:
    """Fits writes to the target tables' columns; decides when a table must stop."""

    def __init__(self, adapters: AdapterSet, tables: TableCache) -> None:
        self.adapters = adapters
        self.tables = tables
        self._checked = 0.0
        self._fits: dict[str, set[str]] = {}
        """table -> columns that writes found in it (cleared when a table may have
        changed): a write naming only these fits, with nothing to look up."""
        self._recorded: set[tuple[str, str, str, str, str]] = set()
        """Schema changes already recorded by this process (one insert each, not one
        per event; at worst a change is recorded again after a restart)."""

    def fit(
        self, conn: Connection, event: ChangeEvent, writes: Sequence[RowWrite], note: bool = True
    ) -> tuple[list[RowWrite], Stop | None]:
        """``writes`` without the columns nobody needs; a Stop if a needed one is missing.

        ``note``: record what was left out or added (the live path); retries only fit."""
        route = self.adapters.route(event.source, event.table)
        if route is None:
            return list(writes), None
        mapping, adapter = route
        out: list[RowWrite] = []
        for write in writes:
            if not isinstance(write, RowUpsert):
                out.append(write)
                continue
            known = self._fits.get(write.table)
            if known is not None and known.issuperset(write.values) and known.issuperset(write.key):
                out.append(write)  # these columns all exist: nothing to look at
                continue
            try:
                target = self.tables.get(conn, write.table)
            except ChangeEventError as exc:
                return list(writes), Stop(write.table, "", str(exc))
            present = set(target.c.keys())
            unknown = [c for c in [*write.key, *write.values] if c not in present]
            if not unknown:
                self._fits.setdefault(write.table, set()).update(write.key, write.values)
                out.append(write)
                continue
            named = _named(adapter, write.table)
            needed = [c for c in unknown if named is None or c in named]
            if needed:
                return list(writes), Stop(
                    write.table,
                    needed[0],
                    f"target table {write.table!r} has no column {needed[0]!r}, which the "
                    f"mapping of {event.table} needs: add it to the target; the table "
                    "resumes by itself",
                )
            if mapping.new_columns == "add" and note:
                for column in unknown:
                    value = write.values.get(column)
                    if value is not None:
                        self._add_column(conn, target, column, value, event)
                        present.add(column)
            dropped = [c for c in unknown if c not in present]
            for column in dropped:
                slot = (event.source, event.table, write.table, column, "ignored")
                if note and slot not in self._recorded:
                    self._recorded.add(slot)
                    record(conn, event, write.table, column, "ignored",
                           "new source column not used by the mapping: left out")  # fmt: skip
            values = {c: v for c, v in write.values.items() if c not in dropped}
            out.append(replace(write, values=values))
        return out, None

    def _add_column(
        self, conn: Connection, target: Table, column: str, value: Any, event: ChangeEvent
    ) -> None:
        kind = _SQL_TYPES.get(type(value), "text")
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            kind = "timestamptz" if conn.dialect.name == "postgresql" else "timestamp"
        quote = conn.dialect.identifier_preparer
        conn.execute(
            text(
                f"ALTER TABLE {quote.format_table(target)} ADD COLUMN {quote.quote(column)} {kind}"
            )
        )
        name = f"{target.schema}.{target.name}" if target.schema else target.name
        self.tables.forget(name)
        self._fits.clear()
        record(
            conn, event, name, column, "added", f"new source column added to the target as {kind}"
        )
        log.warning("sync added column %s.%s (%s)", name, column, kind)

    # ------------------------------------------------------------ stop, resume

    def stop(self, conn: Connection, event: ChangeEvent, stop: Stop) -> None:
        row = {
            "source": event.source,
            "source_table": event.table,
            "target_table": stop.target_table,
            "column_name": stop.column,
            "reason": stop.reason,
            "since": time.time(),
        }
        conn.execute(insert_ignore(conn, stopped_tables), row)  # type: ignore[call-overload]
        record(conn, event, stop.target_table, stop.column, "stopped", stop.reason)
        log.error("sync stopped %s (source %s): %s", event.table, event.source, stop.reason)

    def resumable(self, conn: Connection, source: str) -> list[str]:
        """Stopped source tables whose target has the column now (checked every
        ``RECHECK`` seconds); their stop is lifted here, the caller drains them."""
        now = time.monotonic()
        if now - self._checked < RECHECK:
            return []
        self._checked = now
        rows: Any = conn.execute(
            select(
                stopped_tables.c.source_table,
                stopped_tables.c.target_table,
                stopped_tables.c.column_name,
            ).where(stopped_tables.c.source == source)
        ).all()
        lifted: list[str] = []
        for source_table, target_table, column in rows:
            self.tables.forget(target_table)
            self._fits.clear()
            try:
                target = self.tables.get(conn, target_table)
            except ChangeEventError:
                continue
            if column and column not in target.c:
                continue
            conn.execute(
                delete(stopped_tables)
                .where(stopped_tables.c.source == source)
                .where(stopped_tables.c.source_table == source_table)
            )
            event = ChangeEvent(source, source_table, "u", {}, None, None, Position(0, 0), 0)
            record(conn, event, target_table, column, "resumed", "the target has it now")
            log.warning("sync resumed %s (source %s)", source_table, source)
            lifted.append(str(source_table))
        return lifted


def record(
    conn: Connection, event: ChangeEvent, target_table: str, column: str, action: str, detail: str
) -> None:
    """Note a schema change once per (source table, target table, column, action)."""
    row = {
        "source": event.source,
        "source_table": event.table,
        "target_table": target_table,
        "column_name": column,
        "action": action,
        "detail": detail[:2000],
        "at": time.time(),
    }
    conn.execute(insert_ignore(conn, schema_changes), row)  # type: ignore[call-overload]


def recent(conn: Connection, limit: int = 20) -> list[dict[str, Any]]:
    """The latest schema changes, newest first (for ``/api/sync``)."""
    newest = select(schema_changes).order_by(schema_changes.c.id.desc()).limit(limit)
    rows: Any = conn.execute(newest)
    return [{k: v for k, v in row._mapping.items() if k != "id"} for row in rows]


def stopped_list(conn: Connection) -> list[dict[str, Any]]:
    rows: Any = conn.execute(select(stopped_tables).order_by(stopped_tables.c.since))
    return [dict(row._mapping) for row in rows]


def _named(adapter: Any, table: str) -> set[str] | None:
    """Columns a declarative mapping names for ``table``; None: every column is needed."""
    if not isinstance(adapter, DeclarativeAdapter):
        return None
    named: set[str] = set()
    for cmap in adapter.maps:
        if cmap.table != table:
            continue
        if cmap.include is not None:
            return None  # an explicit list: every column in it is wanted
        named |= set(cmap.key) | set(cmap.rename.values()) | set(cmap.cast) | set(cmap.values)
    return named


_SQL_TYPES: Mapping[type, str] = {
    bool: "boolean",
    int: "bigint",
    float: "double precision",
    Decimal: "numeric",
    str: "text",
    bytes: "bytea",
    dt.datetime: "timestamp",
    dt.date: "date",
    dt.time: "time",
}
