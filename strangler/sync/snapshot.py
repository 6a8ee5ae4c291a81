"""The bulk initial load: copy a PostgreSQL monolith's tables into the targets, fast,
then let streaming resume exactly at the load's consistent point.

1. The replication slot is created here, exporting its snapshot: the rows the load
   reads are exactly the database at the slot's consistent point ``L``, and the slot
   streams every change committed after ``L``.
2. Each table is cut into key ranges (``chunks``), planned once and stored in the
   target (``strangler_initial_loads``). Several chunks run in parallel threads; each
   reads its range through a server-side cursor in the exported snapshot, maps the
   rows through the adapter in batches (as snapshot events at position ``(0, L)``),
   COPYs the result into a temporary staging table and merges it into the target
   set-wise (``INSERT ... SELECT ... ON CONFLICT``), with the rows' positions (one per
   row; a chunk COPYed straight into an empty key range records the range instead:
   ``strangler_loaded_ranges``, see ``rowpos``), and marks the chunk done — all in
   one transaction, so a crash loses at most chunks in flight.
3. After a crash the done chunks are kept; the rest are read in a fresh snapshot.
   The slot still starts at ``L``, so the changes between ``L`` and the new snapshot
   are streamed again over the rows loaded from the new snapshot too: full row images,
   applied in order, so those rows end right, but until the stream passes the new
   snapshot's point they may show older versions (only rows of chunks loaded after a
   crash; the chunks of the first run never step back).
4. When every chunk is done the source streams from the slot (Debezium's
   ``snapshot.mode=no_data``): the first change it delivers is the first after ``L``.

Memory is bounded by ``batch`` rows per thread, whatever the table size. Never loads
over a target that has streamed already (it has offsets for the source).
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import BigInteger, Boolean, Column, Float, Integer, String, Table, Text

from strangler.errors import ChangeEventError, SyncError
from strangler.sync.adapters import AdapterSet, map_event
from strangler.sync.codec import key_text
from strangler.sync.keys import libpq_url, split_table
from strangler.sync.ledger import metadata
from strangler.sync.model import ChangeEvent, Position, RowAdapter, RowUpsert
from strangler.sync.staging import Stage, compile_mapping, key_range, passthrough

log = logging.getLogger("strangler.sync")

loads = Table(
    "strangler_initial_loads",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("source_table", String(300), primary_key=True),
    Column("chunk", Integer, primary_key=True),
    Column("low", Text, nullable=True),
    Column("high", Text, nullable=True),
    Column("lsn", BigInteger, nullable=False),
    Column("done", Boolean, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("finished_at", Float, nullable=True),
)


@dataclass(frozen=True)
class Chunk:
    table: str
    number: int
    low: int | None
    high: int | None


@dataclass(frozen=True)
class LoadResult:
    rows: int
    seconds: float
    lsn: int
    skipped: bool = False


class BulkLoad:
    """Loads ``tables`` of the monolith at ``url`` for source ``source`` (see module doc)."""

    def __init__(
        self,
        source: str,
        url: str,
        slot: str,
        tables: Sequence[str],
        adapters: AdapterSet,
        targets: dict[str, str],
        *,
        chunk_rows: int = 100_000,
        batch: int = 10_000,
        parallel: int = 2,
        offset_table: str = "strangler_debezium_offsets",
        streamed: Callable[[], bool] | None = None,
    ) -> None:
        self.source = source
        self.url = libpq_url(url)
        self.slot = slot
        self.adapters = adapters
        self.tables = [t for t in tables if adapters.route(source, _qualified(t)) is not None]
        self.targets = {n: libpq_url(u) for n, u in targets.items()}
        self.chunk_rows = chunk_rows
        self.batch = batch
        self.parallel = parallel
        self.offset_table = offset_table
        self._streamed = streamed
        """Whether the source has streamed into the targets already (default: Debezium
        offsets for it in ``offset_table``)."""

    # ------------------------------------------------------------------ run

    def run(self) -> LoadResult:
        started = time.monotonic()
        if self._streamed_before():
            return LoadResult(0, 0.0, 0, skipped=True)
        replication: psycopg.Connection[Any] | None = None
        snapshot: str | None = None
        position = Position(0, 0)
        try:
            lsn = self._slot_lsn()
            if lsn is None:
                replication, lsn, snapshot = self._create_slot(self.slot)
                position = Position(0, lsn)  # every change after it streams: newer
            chunks = self._plan(lsn)
            pending = [c for c in chunks if c is not None]
            if pending and snapshot is None:
                # Resumed after a crash: the rows still to load come from a newer
                # snapshot (exported by a temporary slot); the slot streams from ``lsn``
                # again, and those rows get ``lsn``'s position too, so every change since
                # is applied over them in order (the ones already in the snapshot
                # included: the rows end right, though they may step back meanwhile).
                # Debezium's event positions name the previous commit, not their own,
                # so no position can say exactly which changes the new snapshot holds.
                name = f"{self.slot}_resume_{os.getpid()}"
                replication, _point, snapshot = self._create_slot(name, temporary=True)
                position = Position(0, lsn)
            exported = snapshot or ""  # set whenever a chunk is pending
            with ThreadPoolExecutor(max_workers=self.parallel) as pool:
                counts = list(pool.map(lambda c: self._load(c, position, exported), pending))
        finally:
            if replication is not None:
                replication.close()  # releases the exported snapshot
        rows = sum(counts)
        seconds = time.monotonic() - started
        log.info("initial load of %s: %d rows in %.1f s", self.source, rows, seconds)
        return LoadResult(rows, seconds, lsn)

    # ------------------------------------------------------------- the slot

    def _slot_lsn(self) -> int | None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT confirmed_flush_lsn - '0/0'::pg_lsn FROM pg_replication_slots"
                " WHERE slot_name = %s",
                (self.slot,),
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def _create_slot(
        self, name: str, temporary: bool = False
    ) -> tuple[psycopg.Connection[Any], int, str]:
        conn = psycopg.connect(self.url, autocommit=True, replication="database")
        kind = "TEMPORARY LOGICAL" if temporary else "LOGICAL"
        command = f"CREATE_REPLICATION_SLOT {name} {kind} pgoutput EXPORT_SNAPSHOT"
        result = conn.pgconn.exec_(command.encode())
        if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
            message = (result.error_message or b"").decode(errors="replace").strip()
            conn.close()
            raise SyncError(f"initial load: cannot create slot {name}: {message}")
        point = (result.get_value(0, 1) or b"0/0").decode()
        name = (result.get_value(0, 2) or b"").decode()
        high, _, low = point.partition("/")
        return conn, (int(high, 16) << 32) + int(low, 16), name

    # ---------------------------------------------------------- the plan

    def _streamed_before(self) -> bool:
        if self._streamed is not None:
            return self._streamed()
        for url in self.targets.values():
            with psycopg.connect(url, autocommit=True) as conn:
                found = conn.execute("SELECT to_regclass(%s)", (self.offset_table,)).fetchone()
                if found and found[0]:
                    query = sql.SQL("SELECT 1 FROM {} WHERE id LIKE %s LIMIT 1").format(
                        sql.Identifier(self.offset_table)
                    )
                    # Debezium's JDBC store keys rows by an id; any row of ours means
                    # streaming began already.
                    try:
                        if conn.execute(query, (f"%{self.source}%",)).fetchone():
                            return True
                    except psycopg.Error:
                        continue
        return False

    def _plan(self, lsn: int) -> list[Chunk | None]:
        """Every chunk still to load (planned once; done chunks come back as None)."""
        out: list[Chunk | None] = []
        target = self._offsets_url()
        with psycopg.connect(target, autocommit=True) as conn:
            for table in self.tables:
                stored = conn.execute(
                    "SELECT chunk, low, high, done FROM strangler_initial_loads"
                    " WHERE source = %s AND source_table = %s ORDER BY chunk",
                    (self.source, table),
                ).fetchall()
                if not stored:
                    stored = [(n, lo, hi, False) for n, (lo, hi) in enumerate(self._ranges(table))]
                    with conn.transaction():
                        for n, lo, hi, _ in stored:
                            conn.execute(
                                "INSERT INTO strangler_initial_loads VALUES"
                                " (%s, %s, %s, %s, %s, %s, false, 0, NULL)",
                                (self.source, table, n, _text(lo), _text(hi), lsn),
                            )
                for n, lo, hi, done in stored:
                    out.append(None if done else Chunk(table, n, _int(lo), _int(hi)))
        return out

    def _ranges(self, table: str) -> list[tuple[int | None, int | None]]:
        """Key ranges of about ``chunk_rows`` rows (integer keys); one range otherwise."""
        key = self._key(table)
        with psycopg.connect(self.url, autocommit=True) as conn:
            kind = conn.execute(
                "SELECT format_type(atttypid, NULL) FROM pg_attribute"
                " WHERE attrelid = %s::regclass AND attname = %s",
                (_qualified(table), key[0]),
            ).fetchone()
            if len(key) != 1 or not kind or kind[0] not in ("integer", "bigint", "smallint"):
                return [(None, None)]
            low, high, count = conn.execute(
                sql.SQL("SELECT min({k}), max({k}), count(*) FROM {t}").format(
                    k=sql.Identifier(key[0]), t=sql.Identifier(*split_table(table))
                )
            ).fetchone() or (None, None, 0)
        if low is None or not count:
            return [(None, None)]
        step = max(1, (int(high) - int(low) + 1) * self.chunk_rows // int(count))
        cuts = list(range(int(low) + step, int(high) + 1, step))
        edges: list[int | None] = [None, *cuts, None]
        return list(itertools.pairwise(edges))

    def _key(self, table: str) -> list[str]:
        mapping = self.adapters.config.mapping_for(self.source, _qualified(table))
        if mapping is not None and mapping.source_key:
            return list(mapping.source_key)
        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
                " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass"
                " AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
                (_qualified(table),),
            ).fetchall()
        if not rows:
            raise SyncError(f"initial load: {table} has no primary key")
        return [str(r[0]) for r in rows]

    def _offsets_url(self) -> str:
        return next(iter(self.targets.values()))

    # ----------------------------------------------------------- one chunk

    def _load(self, chunk: Chunk, position: Position, snapshot: str) -> int:
        route = self.adapters.route(self.source, _qualified(chunk.table))
        if route is None:
            return 0
        mapping, adapter = route
        key = self._key(chunk.table)
        target_url = self.targets[mapping.target]
        rows = 0
        with (
            psycopg.connect(self.url) as src,
            psycopg.connect(target_url) as dst,
        ):
            src.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            src.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            event_table = _qualified(chunk.table)
            stage = Stage(dst, event_table, position, self.source, target_url)
            plan = passthrough(adapter, src, dst, chunk.table)
            if plan is not None:  # values that need no converting: COPY to COPY
                rows = stage.pipe(plan, src, chunk.low, chunk.high)
            else:
                rows = self._convert(src, chunk, key, adapter, stage)
            stage.merge()
            dst.execute(
                "UPDATE strangler_initial_loads SET done = true, rows = %s, finished_at = %s"
                " WHERE source = %s AND source_table = %s AND chunk = %s",
                (rows, time.time(), self.source, chunk.table, chunk.number),
            )
            dst.commit()
        return rows

    def _convert(
        self,
        src: psycopg.Connection[Any],
        chunk: Chunk,
        key: list[str],
        adapter: RowAdapter,
        stage: Stage,
    ) -> int:
        """Read the chunk into Python, map it through the adapter, stage it; rows read."""
        rows = 0
        event_table = _qualified(chunk.table)
        for names, batch in self._read(src, chunk, key):
            fast = compile_mapping(adapter, names)
            if fast is not None:
                # A rename-only declarative mapping, applied to the whole batch.
                stage.add_rows(fast.table, fast.keys, fast.columns, [fast.row(r) for r in batch])
            else:
                for values in batch:
                    row = dict(zip(names, values, strict=True))
                    event = ChangeEvent(self.source, event_table, "r",
                                        {k: row[k] for k in key}, None, row,
                                        stage.position, 0, snapshot=True)  # fmt: skip
                    try:
                        writes = map_event(adapter, event)
                    except ChangeEventError as exc:
                        raise SyncError(
                            f"initial load: {chunk.table} {key_text(event.key)}: {exc}"
                        ) from exc
                    for write in writes:
                        if isinstance(write, RowUpsert):
                            stage.add(write)
            rows += len(batch)
            stage.flush()
        return rows

    def _read(
        self, conn: psycopg.Connection[Any], chunk: Chunk, key: list[str]
    ) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        query = sql.SQL("SELECT * FROM {}").format(sql.Identifier(*split_table(chunk.table)))
        query = query + key_range(key[0], chunk.low, chunk.high)
        with conn.cursor(name=f"strangler_load_{chunk.number}") as cursor:
            cursor.itersize = self.batch
            cursor.execute(query)
            while True:
                found = cursor.fetchmany(self.batch)
                if not found:
                    return
                yield [d.name for d in cursor.description or ()], found


def _qualified(table: str) -> str:
    schema, name = split_table(table)
    return f"{schema}.{name}"


def _text(value: int | None) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
