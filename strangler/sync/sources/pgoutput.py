"""The ``pgoutput`` source: PostgreSQL's logical replication stream, read by the worker.

The same stream Debezium's PostgreSQL connector reads (the ``pgoutput`` plugin over a
replication slot and strangler's publication), without the JVM, the Connect records
and the JSON between them: a reader thread speaks the streaming replication protocol
through libpq (psycopg's ``pq`` layer), decodes each message (``pgoutput_decode.py``)
and hands the changes to the asyncio side at each commit, through one buffer
(``_Handoff``): the worker takes whatever arrived while it wrote the last batch (and,
once a change is there, waits ``poll_interval_ms`` for more: up to three times that
while the stream is busy), so batches stay small
(and lag low) while it keeps up and grow while it is behind. At
``max_batch_size`` changes waiting the reader stops reading (the back-pressure: the
server waits behind it).

Exactly-once, as with every source: the worker stores each batch's rows with their
positions and the batch's offsets in the target, in one transaction, and only then
calls ``ack``; the reader then confirms to the server (standby status ``flush``) the
end of the last transaction wholly acknowledged. After a crash the server streams
again from the slot's confirmed point; the decoder drops what the stored offsets say
was applied, and the sink's per-row positions reject anything else re-sent.

Before streaming: the capture plan checks the tables and creates the publication for
the safe ones (``debezium_capture.plan_capture``: keyless tables refused, nothing
altered), then either the bulk initial load creates the slot and copies the tables
at its consistent point (``snapshot: bulk``), or the slot is created here
(``snapshot: never``). The reader never writes to the monolith or a target.
"""

from __future__ import annotations

import asyncio
import logging
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from struct import Struct
from typing import Final

import psycopg
from psycopg import pq, sql

from strangler.errors import SyncError
from strangler.sync.adapters import AdapterSet
from strangler.sync.envelope import TypeRegistry
from strangler.sync.highs import stream_offsets, stream_position
from strangler.sync.keys import TableKey, libpq_url
from strangler.sync.lag import QUALIFIED, Heartbeat
from strangler.sync.model import ChangeEvent
from strangler.sync.poison import Poison, make_poison
from strangler.sync.snapshot import BulkLoad, LoadResult
from strangler.sync.source import Batch, ResumeLookup
from strangler.sync.sources.debezium_capture import CapturePlan, plan_capture
from strangler.sync.sources.pg_options import default_name
from strangler.sync.sources.pgoutput_config import PgoutputOptions
from strangler.sync.sources.pgoutput_decode import Decoder, Undecodable
from strangler.sync.watermark import WATERMARK_DDL, WATERMARK_TABLE
from strangler.sync_config import SourceConfig, SyncConfig

log = logging.getLogger("strangler.sync")

_POLL: Final = 0.5
"""Seconds a wait may block before it looks at stop requests and reader failures."""
_WAIT: Final = 0.1
"""Seconds the reader waits on the socket before it looks at acknowledgements."""

_GATHER: Final = 0.005
"""Seconds the reader lets data gather once the socket is readable again (a few ms of
lag against the worker's 20 ms batch fill: the reader's CPU per change fell by a third)."""
_FILLS: Final = 3
"""Lingers a batch may fill for at most (``poll_interval_ms`` each): the next one only
while the last brought at least ``_BUSY`` changes."""
_BUSY: Final = 64
"""Changes per linger (3,200 a second at the default 20 ms) above which a batch fills
on: the per-batch cost (a transaction, the holds query, a statement per table and the
bookkeeping's, ~1.5 ms of CPU between worker and target) is then worth sharing among
more changes; below it, lag wins."""
_XLOG: Final = Struct(">QQq")
_KEEPALIVE: Final = Struct(">Qq?")
_STATUS: Final = Struct(">cQQQqB")
_PG_EPOCH_US: Final = 946_684_800_000_000
_SESSION: Final = "-c datestyle=ISO,YMD -c intervalstyle=postgres -c extra_float_digits=3"
"""The replication session's output settings psycopg's loaders parse."""


class _Handoff:
    """Changes read and not yet taken by the worker: one growing buffer, not a queue of
    deliveries, so whatever arrived while the worker wrote becomes its next batch.

    ``put`` waits while ``limit`` changes are waiting (the back-pressure: the server
    waits behind it). Each put marks the LSN the server may forget once everything
    put so far is applied (``confirm``); ``take`` hands out the changes with the mark
    of the last put it empties."""

    def __init__(self, limit: int, linger: float = 0.0) -> None:
        self.limit = limit
        self.linger = linger
        """Seconds ``take`` waits for more once a change is there (``poll_interval_ms``)."""
        self.ready = threading.Condition()
        self.events: list[ChangeEvent] = []
        self.poison: list[Poison] = []
        self.marks: deque[tuple[int, int]] = deque()
        """(changes put in all up to this put, its confirm LSN), oldest first."""
        self.put_total = 0
        self.taken_total = 0
        self.put_items = 0
        """Changes and poison put in all (the reader compares it with what was applied)."""
        self.waiting = False
        """The worker waits in ``take``: a put wakes it (else the reader may hold on)."""

    def put(self, events: list[ChangeEvent], poison: list[Poison], confirm: int) -> bool:
        """Add; False if the buffer is full (the caller waits and tries again)."""
        with self.ready:
            if len(self.events) >= self.limit:
                return False
            self.events.extend(events)
            self.poison.extend(poison)
            self.put_total += len(events)
            self.put_items += len(events) + len(poison)
            self.marks.append((self.put_total, confirm))
            if self.waiting:
                self.ready.notify()
            return True

    def take(self, max_events: int, timeout: float) -> tuple[list[ChangeEvent], list[Poison], int]:
        """Up to ``max_events`` changes (waits up to ``timeout`` for any) and the LSN
        that may be confirmed once they are applied (0: none yet)."""
        with self.ready:
            self.waiting = True
            try:
                if not self.events and not self.poison:
                    self.ready.wait(timeout)
                if self.events and self.linger > 0:
                    # Let a batch fill for a moment: each batch costs a transaction and a
                    # few round trips in the target, which a few changes at a time multiply.
                    # While changes keep coming fast (the stream is busy, CPU is scarce)
                    # the fill goes on, up to _FILLS lingers: fewer, bigger batches.
                    for _ in range(_FILLS):
                        before = len(self.events)
                        until = time.monotonic() + self.linger
                        while (
                            len(self.events) < max_events and (left := until - time.monotonic()) > 0
                        ):
                            self.ready.wait(left)
                        if len(self.events) >= max_events or len(self.events) - before < _BUSY:
                            break
            finally:
                self.waiting = False
            events = self.events[:max_events]
            del self.events[:max_events]
            poison, self.poison = self.poison, []
            self.taken_total += len(events)
            confirm = 0
            while self.marks and self.marks[0][0] <= self.taken_total:
                confirm = self.marks.popleft()[1]
            return events, poison, confirm

    def clear(self) -> None:
        with self.ready:
            self.events.clear()
            self.poison.clear()
            self.marks.clear()
            self.put_total = self.taken_total = self.put_items = 0


class _Reader(threading.Thread):
    """Reads the slot into the handoff; owns the replication connection (libpq is not
    shared between threads: acknowledgements reach it through ``confirm``)."""

    def __init__(self, source: PgoutputSource, decoder: Decoder) -> None:
        super().__init__(name=f"pgoutput-{source.name}", daemon=True)
        self.source = source
        self.decoder = decoder
        self.stopping = threading.Event()
        self.failure: str | None = None
        self.confirm = 0
        """Highest LSN the worker has committed in its targets (set by ``ack``)."""
        self.acked = 0
        """Changes and poison the worker has stored; equal to the handoff's ``put_items``:
        nothing is in flight."""
        self._sent = 0
        self._sent_at = 0.0
        self._poison: list[Poison] = []
        self._pgconn: pq.abc.PGconn | None = None

    def run(self) -> None:
        source = self.source
        try:
            conn = psycopg.connect(
                source.url, autocommit=True, replication="database", options=_SESSION
            )
        except psycopg.Error as exc:
            self.failure = f"cannot connect for replication: {exc}".strip()
            return
        try:
            self._stream(conn.pgconn)
        except Exception as exc:
            if self.stopping.is_set():
                return  # closing: whatever was cut short is streamed again next time
            self.failure = f"{type(exc).__name__}: {exc}".strip()
            log.error("source %s: replication stream failed: %s", source.name, self.failure)
        finally:
            conn.close()

    def _stream(self, pgconn: pq.abc.PGconn) -> None:
        source = self.source
        command = sql.SQL(
            "START_REPLICATION SLOT {} LOGICAL 0/0 (proto_version '1', publication_names {})"
        ).format(sql.Identifier(source.slot), sql.Literal(source.publication))
        pgconn.send_query(command.as_bytes(None))
        result = pgconn.get_result()
        if result is None or result.status != pq.ExecStatus.COPY_BOTH:
            detail = result.error_message if result is not None else pgconn.error_message
            raise SyncError(f"START_REPLICATION on slot {source.slot}: {_text(detail)}")
        pgconn.nonblocking = 1
        self._pgconn = pgconn
        socket = pgconn.socket
        decoder = self.decoder
        limit = source.max_batch_size
        handoff = source.handoff
        pending: list[ChangeEvent] = []
        decoder.events = pending  # the decoder appends each change here
        count = 0
        while True:
            size, buffer = pgconn.get_copy_data(1)
            if size > 0:
                count += 1
                if not count & 255:  # under a steady stream: now and then
                    if self.stopping.is_set():
                        return
                    self._status(pgconn, reply=False)
                data = bytes(buffer)
                tag = data[0]
                if tag == 119:  # w: XLogData
                    start, _end, _sent = _XLOG.unpack_from(data, 1)
                    try:
                        decoder.decode(start, data, 25)
                    except Undecodable as exc:
                        self._poisoned(start, data, exc)
                    # Hand over at a commit if the worker waits for changes (else keep
                    # reading: it takes them all when it comes back), or at ``limit``.
                    if pending and (
                        len(pending) >= limit or (handoff.waiting and not decoder.in_transaction)
                    ):
                        self._deliver(pending, decoder)
                        pending = decoder.events = []
                elif tag == 107:  # k: keepalive
                    end, _sent, reply = _KEEPALIVE.unpack_from(data, 1)
                    if (
                        not pending
                        and not self._poison
                        and not decoder.in_transaction
                        and handoff.put_items == self.acked
                    ):
                        # Everything sent before ``end`` is here and applied.
                        self.confirm = max(self.confirm, end)
                    self._status(pgconn, reply=reply)
                continue
            if size == 0:
                if self.stopping.is_set():
                    return
                self._status(pgconn, reply=False)
                if pending or self._poison:
                    self._deliver(pending, decoder)
                    pending = decoder.events = []
                readable, _, _ = select.select([socket], [], [], _WAIT)
                if readable:
                    # Let a little more arrive: one read then brings many messages, not
                    # a system call and a GIL hand-over per message.
                    time.sleep(_GATHER)
                    pgconn.consume_input()
                continue
            final = pgconn.get_result()
            raise SyncError(
                "replication stream ended: "
                + _text(final.error_message if final is not None else pgconn.error_message)
            )

    def _deliver(self, events: list[ChangeEvent], decoder: Decoder) -> None:
        """Hand ``events`` over; waits while the worker is ``max_batch_size`` behind."""
        # Every transaction that committed by ``decoder.committed`` is in these events or
        # earlier ones, even when they end inside the next transaction: once they are
        # applied (in order), the server need never send those transactions again.
        while not self.source.handoff.put(events, self._poison, decoder.committed):
            if self.stopping.wait(_WAIT):
                raise SyncError("stopping")
            # Still here for the server: a status message now and then, or it drops
            # the connection after ``wal_sender_timeout``.
            if self._pgconn is not None:
                self._status(self._pgconn, reply=False)
        self._poison = []

    def _status(self, pgconn: pq.abc.PGconn, *, reply: bool) -> None:
        now = time.monotonic()
        confirm = self.confirm
        if not reply and confirm <= self._sent and now - self._sent_at < self.source.interval:
            return
        clock = int(time.time() * 1_000_000) - _PG_EPOCH_US
        message = _STATUS.pack(b"r", confirm, confirm, confirm, clock, 0)
        if pgconn.put_copy_data(message) == 1:
            pgconn.flush()
        self._sent, self._sent_at = confirm, now

    def _poisoned(self, lsn: int, data: bytes, exc: Undecodable) -> None:
        where = f"{self.source.slot}@{lsn}"
        self.source.skipped += 1
        shown = exc.document if exc.document is not None else {"pgoutput": data[25:].hex()}
        self._poison.append(make_poison(shown, None, str(exc), where))
        log.error("source %s: poison message %s: %s", self.source.name, where, exc)


class PgoutputSource:
    """See the module docstring."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        slot: str,
        publication: str,
        prepare: Callable[[], CapturePlan],
        create_slot: bool = False,
        heartbeat: Heartbeat | None = None,
        initial_load: Callable[[], LoadResult] | None = None,
        max_batch_size: int = 4096,
        status_interval: float = 10.0,
        linger: float = 0.0,
    ) -> None:
        self.name = name
        self.url = libpq_url(url)
        self.slot = slot
        self.publication = publication
        self._prepare = prepare
        self._create_slot = create_slot
        self.heartbeat = heartbeat
        """Written by the worker into the monolith and read back for lag (``lag.py``)."""
        self.initial_load = initial_load
        """``snapshot: bulk``: the worker runs this before ``start`` (``snapshot.py``)."""
        self.max_batch_size = max_batch_size
        self.interval = status_interval
        self.refused: tuple[TableKey, ...] = ()
        """Tables left out because capturing them would be unsafe (see ``keys.py``)."""
        self.types: TypeRegistry = {}
        self.skipped = 0
        """Messages that could not be decoded (handed on as poison)."""
        self.handoff = _Handoff(max_batch_size, linger)
        self._reader: _Reader | None = None
        self._resume: ResumeLookup | None = None
        self._keys: dict[str, tuple[str, ...]] = {}
        self._completing: deque[tuple[int, int]] = deque()
        """Per batch handed out and not acknowledged: (its changes and poison, the LSN to
        confirm)."""

    # --------------------------------------------------------------- protocol

    async def start(self, resume: ResumeLookup) -> None:
        if self._reader is not None:
            return
        plan = await asyncio.to_thread(self._prepare)
        self.refused = plan.refused
        self._keys = plan.keys
        if self._create_slot:
            await asyncio.to_thread(_ensure_slot, self.url, self.slot)
        self._resume = resume
        await self._open()

    async def _open(self) -> None:
        """Start a reader from the slot, dropping what the targets' offsets hold."""
        assert self._resume is not None
        stored = await asyncio.to_thread(self._resume)
        after = stream_position(stored)
        reader = _Reader(self, Decoder(self.name, self._keys, after))
        reader.start()
        self._reader = reader

    async def next_batch(self, max_events: int) -> Batch | None:
        reader = self._reader
        if reader is None:
            if self._resume is None:
                raise SyncError(f"pgoutput source {self.name} is not started")
            await self._open()  # the last stream failed: read the slot again
            return None
        events, poison, confirm = await asyncio.to_thread(self.handoff.take, max_events, _POLL)
        if not events and not poison:
            if not reader.is_alive():
                failure = reader.failure or "replication stream stopped"
                await self._stop_reader()
                raise SyncError(f"pgoutput source {self.name}: {failure}") from None
            return None
        self._completing.append((len(events) + len(poison), confirm))
        return Batch(events, _offsets(events), poison)

    async def ack(self, batch: Batch) -> None:
        reader = self._reader
        if not self._completing or reader is None:
            return
        applied, confirm = self._completing.popleft()
        if confirm:
            reader.confirm = max(reader.confirm, confirm)
        reader.acked += applied

    async def close(self) -> None:
        self._resume = None
        await self._stop_reader()

    async def _stop_reader(self) -> None:
        reader, self._reader = self._reader, None
        self._completing.clear()
        if reader is not None:
            reader.stopping.set()
            await asyncio.to_thread(reader.join, 10.0)
        # What waits here was never acknowledged: the server streams it again.
        self.handoff.clear()


def _offsets(events: list[ChangeEvent]) -> dict[str, int]:
    return stream_offsets(events[-1].position) if events else {}


def _text(message: bytes | str | None) -> str:
    if isinstance(message, bytes):
        return message.decode(errors="replace").strip()
    return (message or "").strip()


def _ensure_slot(url: str, slot: str, *, create: bool = True) -> None:
    """Check the slot is a pgoutput slot of this database; create it if missing."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            found = conn.execute(
                "SELECT plugin, database, current_database() FROM pg_replication_slots"
                " WHERE slot_name = %s",
                (slot,),
            ).fetchone()
            if found is None:
                if create:
                    conn.execute(
                        "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,)
                    )
                return
            plugin, database, here = found
            if database != here:
                raise SyncError(
                    f"replication slot {slot} belongs to database {database}, not {here}"
                    " (slots are named cluster-wide): name another in options.slot"
                )
            if plugin != "pgoutput":
                raise SyncError(f"replication slot {slot} uses the {plugin} plugin, not pgoutput")
    except psycopg.Error as exc:
        raise SyncError(f"replication slot {slot}: {exc}".strip()) from exc


def _streamed(source: str, targets: Mapping[str, str]) -> Callable[[], bool]:
    """Whether any target holds stream offsets of ``source`` (then never bulk-load)."""

    def streamed() -> bool:
        for url in targets.values():
            with psycopg.connect(libpq_url(url), autocommit=True) as conn:
                found = conn.execute("SELECT to_regclass('strangler_sync_offsets')").fetchone()
                if found and found[0]:
                    row = conn.execute(
                        "SELECT 1 FROM strangler_sync_offsets WHERE source = %s"
                        " AND partition = 'commit_lsn' AND \"offset\" > 0 LIMIT 1",
                        (source,),
                    ).fetchone()
                    if row is not None:
                        return True
        return False

    return streamed


def build(
    config: SourceConfig,
    *,
    sync: SyncConfig,
    base_dir: Path | None = None,
    types: TypeRegistry | None = None,
) -> PgoutputSource:
    """The worker's factory for ``kind: pgoutput`` (see ``sync_config.SOURCE_KINDS``)."""
    where = f"sync.sources[{config.name}].options"
    options = PgoutputOptions.parse(config.options, where)
    default = default_name(config.name)
    slot = options.slot or default
    publication = options.publication or default
    options = options.model_copy(update={"publication": publication})
    heartbeat = (
        Heartbeat(config.name, options.database, options.heartbeat) if options.heartbeat else None
    )

    def prepare() -> CapturePlan:
        # strangler's own tables, always safe to capture: the drain's watermarks (in the
        # captured tables' schema, ordered with them: watermark.py) and the heartbeat.
        _ensure_watermarks(options.database)
        _ensure_slot(libpq_url(options.database), slot, create=False)  # another's is refused
        schema = options.tables[0].rpartition(".")[0] if options.tables else ""
        own: tuple[str, ...] = (f"{schema or 'public'}.{WATERMARK_TABLE}",)
        if heartbeat is not None:
            heartbeat.ensure_table()
            own += (QUALIFIED,)
        return plan_capture(config.name, options, sync, extra=own)

    def initial_load() -> LoadResult:
        plan = prepare()  # the publication must exist before the slot is created
        return BulkLoad(
            config.name,
            options.database,
            slot,
            plan.captured,
            AdapterSet(sync, base_dir),
            dict(sync.targets),
            chunk_rows=options.load_chunk_rows,
            parallel=options.load_parallel,
            streamed=_streamed(config.name, sync.targets),
        ).run()

    return PgoutputSource(
        config.name,
        options.database,
        slot=slot,
        publication=publication,
        prepare=prepare,
        create_slot=True,
        heartbeat=heartbeat,
        initial_load=initial_load if options.snapshot == "bulk" else None,
        max_batch_size=options.max_batch_size,
        status_interval=options.status_interval,
        linger=options.poll_interval_ms / 1000,
    )


def _ensure_watermarks(url: str) -> None:
    try:
        with psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=10) as conn:
            conn.execute(WATERMARK_DDL)
    except psycopg.Error as exc:
        raise SyncError(f"pgoutput source: creating the watermark table: {exc}".strip()) from exc
