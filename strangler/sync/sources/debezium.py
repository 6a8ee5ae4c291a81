"""The ``debezium`` source: Debezium's PostgreSQL connector embedded in the worker.

The engine (``embedded_engine.EmbeddedEngine``, real Debezium over JPype) snapshots the
captured tables, then streams from the replication slot (pgoutput). Its thread hands
each batch to the asyncio side through a one-slot queue and then *waits*: only when
the worker has committed the batch in the target and called ``ack`` does the engine
mark the records processed and commit its own offsets (in the target database or a
file) and confirm the slot. So a crash re-delivers at most the batch in flight, and
the sink's per-row positions reject those re-deliveries as stale. The one-slot queue
is the back-pressure: Debezium reads no further ahead than its own queue.

This module never writes to a target and never parses envelopes itself (that is
``envelope.parse_envelope``, the same parser every source uses).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from strangler.errors import ConfigError, Problem, SyncError
from strangler.sync.adapters import AdapterSet
from strangler.sync.db import db_error, open_engine
from strangler.sync.envelope import TypeRegistry
from strangler.sync.keys import TableKey
from strangler.sync.lag import QUALIFIED, Heartbeat
from strangler.sync.model import ChangeEvent
from strangler.sync.poison import Poison, parse_or_poison
from strangler.sync.snapshot import BulkLoad, LoadResult
from strangler.sync.source import Batch, ResumeLookup
from strangler.sync.sources.debezium_capture import CapturePlan, plan_capture
from strangler.sync.sources.debezium_config import DebeziumOptions, connector_properties
from strangler.sync.sources.embedded_engine import EmbeddedEngine, RawRecord
from strangler.sync.sources.pg_types import catalog_types, merged
from strangler.sync.watermark import WATERMARK_DDL, WATERMARK_TABLE
from strangler.sync_config import SourceConfig, SyncConfig

log = logging.getLogger("strangler.sync")

_POLL = 0.5
"""Seconds a wait may block before it looks at stop requests and engine failures."""


@dataclass
class _Delivery:
    """One engine batch, waiting on the Java thread until ``done`` is set."""

    records: Sequence[RawRecord]
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class _InHand:
    delivery: _Delivery
    events: list[ChangeEvent]
    poison: list[Poison] = field(default_factory=list)
    """Unparseable records of the delivery; they ride with its first batch."""
    handed: int = 0
    """Events already handed out in batches."""
    unacked: int = 0
    """Batches handed out and not yet acknowledged."""
    handed_all: bool = False


class DebeziumSource:
    """See the module docstring. ``properties`` are the engine's (``connector_properties``)."""

    def __init__(
        self,
        name: str,
        properties: Mapping[str, str],
        *,
        types: TypeRegistry | None = None,
        log_level: str = "WARN",
        jvm_opts: Sequence[str] = (),
        database: str | None = None,
        prepare: Callable[[], CapturePlan] | None = None,
        user_keys: Sequence[str] = (),
        heartbeat: Heartbeat | None = None,
        initial_load: Callable[[], LoadResult] | None = None,
        column_types: Callable[[Sequence[str]], dict[str, dict[str, str]]] | None = None,
    ) -> None:
        self.name = name
        self.database = database
        """The captured database's URL: its watermark table is created before capture."""
        self.properties = dict(properties)
        self._prepare = prepare
        """Checks the tables and creates the publication (``debezium_capture.py``)."""
        self.heartbeat = heartbeat
        """Written by the worker into the monolith and read back for lag (``lag.py``)."""
        self.initial_load = initial_load
        """``snapshot: bulk``: the worker runs this before ``start`` (``snapshot.py``)."""
        self._column_types = column_types
        """Schemas off: reads the captured tables' column kinds (``pg_types``)."""
        self.refused: tuple[TableKey, ...] = ()
        """Tables left out because capturing them would be unsafe (see ``keys.py``)."""
        self.types = types or {}
        self._log_level = log_level
        self._jvm_opts = tuple(jvm_opts)
        self._user_keys = frozenset(user_keys)
        """Properties the user set in ``options.properties``: they win over ``prepare``."""
        self._handoff: queue.Queue[_Delivery] = queue.Queue(maxsize=1)
        self._engine: EmbeddedEngine | None = None
        self._in_hand: _InHand | None = None
        self.skipped = 0
        """Records that were not change events we could parse (handed on as poison)."""

    # --------------------------------------------------------------- protocol

    async def start(self, resume: ResumeLookup) -> None:
        # Debezium resumes from its own offset store, committed only after the target
        # committed; the target's offsets are informational here (see docstring).
        if self._engine is not None:
            return
        if self._prepare is not None:
            # The plan creates the watermark table too (captured with the tables).
            plan = await asyncio.to_thread(self._prepare)
            self.refused = plan.refused
            if self._column_types is not None:
                found = await asyncio.to_thread(self._column_types, plan.captured)
                self.types = merged(found, self.types)
            # The user's own ``properties:`` still win over the plan.
            user = {k: v for k, v in self.properties.items() if k in self._user_keys}
            self.properties.update(plan.properties)
            self.properties.update(user)
        elif self.database is not None and "table.include.list" in self.properties:
            # A filtered publication only takes tables that exist when it is created.
            await asyncio.to_thread(_ensure_watermarks, self.database)
        engine = EmbeddedEngine(
            self.properties,
            self._on_batch,
            name=self.name,
            log_level=self._log_level,
            jvm_opts=self._jvm_opts,
        )
        await asyncio.to_thread(engine.start)
        self._engine = engine

    async def next_batch(self, max_events: int) -> Batch | None:
        engine = self._engine
        if engine is None:
            raise SyncError(f"debezium source {self.name} is not started")
        if self._in_hand is None:
            try:
                delivery = await asyncio.to_thread(self._handoff.get, True, _POLL)
            except queue.Empty:
                if not engine.running:
                    raise SyncError(
                        f"debezium source {self.name}: {engine.failure or 'engine stopped'}"
                    ) from None
                return None
            self._in_hand = _InHand(delivery, *self._parse(delivery.records))
        in_hand = self._in_hand
        if in_hand.handed_all:
            await asyncio.sleep(_POLL / 10)  # all handed out; the acks are still to come
            return None
        start = in_hand.handed
        end = _batch_end(in_hand.events, start, max_events)
        events = in_hand.events[start:end]
        in_hand.handed = end
        in_hand.handed_all = end >= len(in_hand.events)
        in_hand.unacked += 1
        return Batch(events, _offsets(events), in_hand.poison if start == 0 else ())

    async def ack(self, batch: Batch) -> None:
        in_hand = self._in_hand
        if in_hand is None:
            return
        in_hand.unacked -= 1
        if in_hand.unacked <= 0 and in_hand.handed_all:
            self._in_hand = None
            in_hand.delivery.done.set()  # the engine thread may now commit its offsets

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        self._in_hand = None
        if engine is not None:
            await asyncio.to_thread(engine.stop)
        # A batch still waiting here was never acknowledged: the next engine re-reads it.
        while not self._handoff.empty():
            self._handoff.get_nowait()

    # -------------------------------------------------------------- internals

    def _on_batch(self, records: Sequence[RawRecord]) -> None:
        """On the engine thread: hand the batch over, return once it is committed."""
        engine = self._engine
        delivery = _Delivery(records)
        while True:
            if engine is not None and engine.stopping.is_set():
                raise SyncError("stopping")
            try:
                self._handoff.put(delivery, timeout=_POLL)
                break
            except queue.Full:
                continue
        while not delivery.done.wait(_POLL):
            if engine is None or engine.stopping.is_set():
                raise SyncError("stopping before the batch was committed")

    def _parse(self, records: Sequence[RawRecord]) -> tuple[list[ChangeEvent], list[Poison]]:
        events: list[ChangeEvent] = []
        poison: list[Poison] = []
        for record in records:
            # The engine gives no offset per record; the content names it, so a batch
            # re-delivered after a crash dead-letters the same record only once.
            digest = hashlib.sha256(f"{record.key}\0{record.value}".encode()).hexdigest()[:16]
            where = f"{record.destination}@{digest}"
            parsed = parse_or_poison(
                record.value, record.key, source=self.name, location=where, types=self.types
            )
            if isinstance(parsed, Poison):
                self.skipped += 1
                poison.append(parsed)
                log.error("source %s: poison record %s: %s", self.name, where, parsed.error)
            elif parsed is not None:
                events.append(parsed)
        return events, poison


def _batch_end(events: Sequence[ChangeEvent], start: int, max_events: int) -> int:
    end = min(len(events), start + max_events)
    # Keep a primary-key change (delete + create of one transaction) in one batch.
    while (
        end < len(events)
        and events[end - 1].op == "d"
        and events[end].op == "c"
        and events[end].tx_id == events[end - 1].tx_id
    ):
        end += 1
    return end


def _offsets(events: Sequence[ChangeEvent]) -> dict[str, int]:
    if not events:
        return {}
    last = events[-1].position
    return {"commit_lsn": last.commit, "lsn": last.seq}


def build(
    config: SourceConfig,
    *,
    sync: SyncConfig,
    base_dir: Path | None = None,
    types: TypeRegistry | None = None,
) -> DebeziumSource:
    """The worker's factory for ``kind: debezium`` (see ``sync_config.SOURCE_KINDS``)."""
    where = f"sync.sources[{config.name}].options"
    options = DebeziumOptions.parse(config.options, where)
    offsets_url: str | None = None
    if options.offsets == "target":
        offsets_url = _offset_target(options, sync, where)
    elif (
        options.offset_file and base_dir is not None and not Path(options.offset_file).is_absolute()
    ):
        options = options.model_copy(update={"offset_file": str(base_dir / options.offset_file)})
    properties = connector_properties(config.name, options, offsets_url)
    heartbeat = (
        Heartbeat(config.name, options.database, options.heartbeat) if options.heartbeat else None
    )

    def prepare() -> CapturePlan:
        # strangler's own tables, always safe to capture: the drain's watermarks (in the
        # captured tables' schema, ordered with them: watermark.py) and the heartbeat.
        _ensure_watermarks(options.database)
        schema = options.tables[0].rpartition(".")[0] if options.tables else ""
        own: tuple[str, ...] = (f"{schema or 'public'}.{WATERMARK_TABLE}",)
        if heartbeat is not None:
            heartbeat.ensure_table()
            own += (QUALIFIED,)
        return plan_capture(config.name, options, sync, extra=own)

    def initial_load() -> LoadResult:
        plan = prepare()  # the publication must exist before the slot is created
        adapters = AdapterSet(sync, base_dir)
        return BulkLoad(
            config.name,
            options.database,
            properties["slot.name"],
            plan.captured,
            adapters,
            dict(sync.targets),
            chunk_rows=options.load_chunk_rows,
            parallel=options.load_parallel,
            offset_table=options.offset_table,
        ).run()

    return DebeziumSource(
        config.name,
        properties,
        types=types,
        log_level=options.log_level,
        jvm_opts=options.jvm_opts,
        database=options.database,
        prepare=prepare,
        user_keys=tuple(options.properties),
        heartbeat=heartbeat,
        initial_load=initial_load if options.snapshot == "bulk" else None,
        column_types=(
            None if options.schemas else lambda tables: catalog_types(options.database, tables)
        ),
    )


def _ensure_watermarks(url: str) -> None:
    engine = open_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(WATERMARK_DDL))
    except SQLAlchemyError as exc:
        raise db_error("debezium source: creating the watermark table", exc) from exc
    finally:
        engine.dispose()


def _offset_target(options: DebeziumOptions, sync: SyncConfig, where: str) -> str:
    targets: Mapping[str, Any] = sync.targets
    name = options.offset_target
    if name is None:
        if len(targets) != 1:
            raise ConfigError(
                [Problem(f"{where}.offset_target", "name one of sync.targets for the offsets")]
            )
        name = next(iter(targets))
    if name not in targets:
        raise ConfigError([Problem(f"{where}.offset_target", f"{name!r} is not one of targets")])
    return str(targets[name])
