"""The ``sqlite`` source: change capture for a SQLite monolith, by triggers.

``install_capture`` (re)creates, per captured table, AFTER INSERT/UPDATE/DELETE
triggers that write the change as a Debezium-shaped envelope — the same JSON the
PostgreSQL connector writes (``op``, ``before``, ``after``, ``source`` with ``ts_ms``,
a monotonically increasing ``lsn`` and ``sequence``) — into a change table. SQLite
serialises writers, so change ids follow commit order.

The source first snapshots existing rows (``op=r``) inside one read transaction,
recording how far the change table had got, then drains the change table from there
in id order. BLOB values arrive as upper-case hex text. The resume offsets
(``snapshot_*`` while snapshotting, then ``changes``) live in the target with the
rows. It writes only its triggers and change table. The triggers skip the sync
worker's own transactions (``origin.py``) and also capture the drain's watermarks.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from strangler.errors import SyncError
from strangler.schema import Section
from strangler.sync.envelope import TypeRegistry
from strangler.sync.model import ChangeEvent
from strangler.sync.origin import ORIGIN_DDL, TRIGGER_GUARD
from strangler.sync.poison import Poison, parse_or_poison
from strangler.sync.source import Batch, ResumeLookup
from strangler.sync.watermark import WATERMARK_TABLE, ensure_sqlite
from strangler.sync_config import SourceConfig, SyncConfig
from strangler.units import Duration


class SqliteSourceOptions(Section):
    database: str
    """Path of the monolith's SQLite file (relative to routes.yaml's folder)."""
    tables: tuple[str, ...] = Field(min_length=1)
    change_table: str = "strangler_changes"
    poll_interval: Duration = 0.2

    @field_validator("change_table")
    @classmethod
    def _ident(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(f"{value!r} is not a plain SQL identifier")
        return value


_NEXT_ID = "(SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '{ct}'), 0) + 1)"
_TS_MS = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _json_safe(expression: str) -> str:
    # json_object() raises on a BLOB, which would abort the monolith's own write:
    # BLOBs are captured as hex text instead (the snapshot does the same).
    return f"CASE typeof({expression}) WHEN 'blob' THEN hex({expression}) ELSE {expression} END"


def table_columns(conn: sqlite3.Connection, table: str) -> tuple[list[str], list[str]]:
    """(all columns, primary-key columns in key order) of a table."""
    rows = conn.execute(f"PRAGMA table_info({_quote(table)})").fetchall()
    if not rows:
        raise SyncError(f"sqlite source: table {table!r} does not exist")
    columns = [r[1] for r in rows]
    key = [r[1] for r in sorted((r for r in rows if r[5]), key=lambda r: r[5])]
    if not key:
        raise SyncError(f"sqlite source: table {table!r} has no primary key to capture by")
    return columns, key


def install_capture(conn: sqlite3.Connection, tables: tuple[str, ...], change_table: str) -> None:
    """Create the change table and (re)create the capture triggers, in one transaction."""
    # An explicit write transaction: between DROP TRIGGER and CREATE TRIGGER no
    # monolith write may slip through uncaptured (``with conn`` alone does not BEGIN
    # on an autocommit connection).
    in_tx = conn.in_transaction
    if not in_tx:
        conn.execute("BEGIN IMMEDIATE")
    try:
        _install(conn, tables, change_table)
    except BaseException:
        if not in_tx:
            conn.execute("ROLLBACK")
        raise
    if not in_tx:
        conn.execute("COMMIT")


def _install(conn: sqlite3.Connection, tables: tuple[str, ...], change_table: str) -> None:
    ct = _quote(change_table)
    next_id = _NEXT_ID.format(ct=change_table)
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {ct} (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " tbl TEXT NOT NULL, key TEXT NOT NULL, envelope TEXT NOT NULL)"
    )
    # The sync worker's own writes are never captured (origin.py), and the drain's
    # watermarks are, in order with everything else (watermark.py).
    conn.execute(ORIGIN_DDL)
    ensure_sqlite(conn)
    for table in (*tables, WATERMARK_TABLE):
        columns, key = table_columns(conn, table)
        for verb, op, before, after, key_row in (
            ("INSERT", "c", None, "NEW", "NEW"),
            ("UPDATE", "u", "OLD", "NEW", "NEW"),
            ("DELETE", "d", "OLD", None, "OLD"),
        ):
            trigger = _quote(f"{change_table}_{table}_{verb.lower()}")

            def image(row: str | None, cols: list[str]) -> str:
                if row is None:
                    return "NULL"
                pairs = ", ".join(
                    f"{_literal(c)}, {_json_safe(f'{row}.{_quote(c)}')}" for c in cols
                )
                return f"json_object({pairs})"

            source = (
                f"json_object('version', 'strangler', 'connector', 'sqlite', 'name', 'sqlite',"
                f" 'db', 'main', 'schema', 'main', 'table', {_literal(table)},"
                f" 'ts_ms', {_TS_MS}, 'snapshot', 'false', 'lsn', {next_id},"
                f" 'sequence', '[\"' || {next_id} || '\",\"' || {next_id} || '\"]')"
            )
            envelope = (
                f"json_object('op', {_literal(op)}, 'before', {image(before, columns)},"
                f" 'after', {image(after, columns)}, 'source', {source}, 'ts_ms', {_TS_MS})"
            )
            conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
            conn.execute(
                f"CREATE TRIGGER {trigger} AFTER {verb} ON {_quote(table)} {TRIGGER_GUARD} BEGIN"
                f" INSERT INTO {ct} (id, tbl, key, envelope) VALUES ({next_id},"
                f" {_literal(table)}, {image(key_row, key)}, {envelope}); END"
            )


class SqliteSource:
    """Snapshot then drain; see the module docstring."""

    def __init__(
        self,
        name: str,
        options: Mapping[str, Any] | SqliteSourceOptions,
        *,
        base_dir: Path | None = None,
        types: TypeRegistry | None = None,
    ) -> None:
        self.name = name
        try:
            self.options = (
                options
                if isinstance(options, SqliteSourceOptions)
                else SqliteSourceOptions.model_validate(dict(options))
            )
        except ValidationError as exc:
            raise SyncError(f"sqlite source {name}: {exc}") from exc
        path = Path(self.options.database)
        self.path = path if path.is_absolute() or base_dir is None else base_dir / path
        self.types = types or {}
        self._conn: sqlite3.Connection | None = None
        self._last_change = 0
        self._snapshot: dict[str, int] | None = None  # upto, table, rowid, seq while snapshotting

    # --------------------------------------------------------------- protocol

    async def start(self, resume: ResumeLookup) -> None:
        stored = dict(resume())
        await asyncio.to_thread(self._open, stored)

    async def next_batch(self, max_events: int) -> Batch | None:
        batch = await asyncio.to_thread(self._read, max_events)
        if batch is None:
            await asyncio.sleep(self.options.poll_interval)
        return batch

    async def ack(self, batch: Batch) -> None:
        return None  # the offsets in the target are the only bookkeeping

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.to_thread(conn.close)

    # -------------------------------------------------------------- internals

    def _open(self, stored: Mapping[str, int]) -> None:
        if not self.path.exists():
            raise SyncError(f"sqlite source {self.name}: {self.path} does not exist")
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=10000")
            install_capture(conn, self.options.tables, self.options.change_table)
        except sqlite3.Error as exc:
            raise SyncError(f"sqlite source {self.name}: {exc}") from exc
        self._conn = conn
        if "changes" in stored:
            self._last_change = stored["changes"]
            return
        # Snapshot: pin a read transaction so every row is read as of one moment.
        conn.execute("BEGIN")
        upto = self._max_change_id()
        if "snapshot_upto" in stored:
            self._snapshot = {
                "snapshot_upto": stored["snapshot_upto"],
                "snapshot_table": stored.get("snapshot_table", 0),
                "snapshot_rowid": stored.get("snapshot_rowid", 0),
                "snapshot_seq": stored.get("snapshot_seq", 0),
            }
        else:
            self._snapshot = {
                "snapshot_upto": upto,
                "snapshot_table": 0,
                "snapshot_rowid": 0,
                "snapshot_seq": 0,
            }

    def _max_change_id(self) -> int:
        assert self._conn is not None
        ct = _quote(self.options.change_table)
        row = self._conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {ct}").fetchone()
        return int(row[0])

    def _read(self, max_events: int) -> Batch | None:
        if self._conn is None:
            raise SyncError(f"sqlite source {self.name} is not started")
        try:
            if self._snapshot is not None:
                return self._read_snapshot(max_events)
            return self._read_changes(max_events)
        except sqlite3.Error as exc:
            raise SyncError(f"sqlite source {self.name}: {exc}") from exc

    def _read_snapshot(self, max_events: int) -> Batch | None:
        assert self._conn is not None and self._snapshot is not None
        snap = self._snapshot
        tables = self.options.tables
        events: list[ChangeEvent] = []
        poison: list[Poison] = []
        while snap["snapshot_table"] < len(tables) and len(events) < max_events:
            table = tables[snap["snapshot_table"]]
            _, key = table_columns(self._conn, table)
            cursor = self._conn.execute(
                f"SELECT rowid, * FROM {_quote(table)} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (snap["snapshot_rowid"], max_events - len(events)),
            )
            rows = cursor.fetchall()
            if not rows:
                snap["snapshot_table"] += 1
                snap["snapshot_rowid"] = 0
                continue
            names = [d[0] for d in cursor.description][1:]
            now = int(time.time() * 1000)
            for rowid, *values in rows:
                snap["snapshot_seq"] += 1
                row = {n: v.hex().upper() if isinstance(v, bytes) else v
                       for n, v in zip(names, values, strict=True)}  # fmt: skip
                envelope = {
                    "op": "r",
                    "before": None,
                    "after": row,
                    "source": {
                        "connector": "sqlite",
                        "db": "main",
                        "schema": "main",
                        "table": table,
                        "ts_ms": now,
                        "snapshot": "true",
                        "lsn": snap["snapshot_seq"],
                    },
                    "ts_ms": now,
                }
                parsed = parse_or_poison(
                    envelope,
                    {k: row[k] for k in key},
                    source=self.name,
                    location=f"snapshot:{table}#{rowid}",
                    types=self.types,
                )
                if isinstance(parsed, Poison):
                    poison.append(parsed)
                elif parsed is not None:
                    events.append(parsed)
                snap["snapshot_rowid"] = rowid
        if snap["snapshot_table"] >= len(tables):
            self._conn.execute("COMMIT")
            self._last_change = snap["snapshot_upto"]
            self._snapshot = None
            return Batch(events, {"changes": self._last_change}, poison)
        return Batch(events, dict(snap), poison)

    def _read_changes(self, max_events: int) -> Batch | None:
        assert self._conn is not None
        ct = _quote(self.options.change_table)
        rows = self._conn.execute(
            f"SELECT id, key, envelope FROM {ct} WHERE id > ? ORDER BY id LIMIT ?",
            (self._last_change, max_events),
        ).fetchall()
        if not rows:
            return None
        events: list[ChangeEvent] = []
        poison: list[Poison] = []
        for change_id, key, envelope in rows:
            parsed = parse_or_poison(
                envelope, key, source=self.name, location=f"changes#{change_id}", types=self.types
            )
            if isinstance(parsed, Poison):
                poison.append(parsed)  # dead-lettered with this batch's offset, never skipped
            elif parsed is not None:
                events.append(parsed)
        self._last_change = int(rows[-1][0])
        return Batch(events, {"changes": self._last_change}, poison)


def change_count(path: str | Path, change_table: str = "strangler_changes") -> int:
    """How many changes the triggers have recorded (for tests and the demo)."""
    with sqlite3.connect(path) as conn:
        try:
            row = conn.execute(
                f"SELECT COALESCE(MAX(id), 0) FROM {_quote(change_table)}"
            ).fetchone()
        except sqlite3.OperationalError:
            return 0
        return int(row[0])


def build(
    config: SourceConfig,
    *,
    sync: SyncConfig,
    base_dir: Path | None = None,
    types: TypeRegistry | None = None,
) -> SqliteSource:
    """The worker's factory for ``kind: sqlite`` (see ``sync_config.SOURCE_KINDS``)."""
    return SqliteSource(config.name, config.options, base_dir=base_dir, types=types)
