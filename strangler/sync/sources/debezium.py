"""The ``debezium`` source: Debezium's PostgreSQL connector embedded in the worker.

The engine (``embedded_engine.DeferredEngine``, real Debezium over JPype) snapshots the
captured tables, then streams from the replication slot (pgoutput). Its thread parses
each batch and queues it for the asyncio side, then polls the next one while the worker
writes: a pipeline ``_AHEAD`` batches deep (the bounded queue is the back-pressure, with
Debezium's own queue behind it). Nothing is marked processed on delivery: only when the
worker has committed a batch in the target and called ``ack`` are its deliveries
committed to the engine, in order, which then commits its own offsets (in the target
database or a file) and confirms the slot. So a crash re-delivers only batches not yet
acknowledged (and up to ``offset_flush_ms`` of acknowledged ones), and the sink's
per-row positions reject those re-deliveries as stale.

This module never writes to a target and never parses envelopes itself (that is
``envelope.parse_envelope``, the same parser every source uses).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import queue
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from strangler.errors import ConfigError, Problem, SyncError
from strangler.sync.adapters import AdapterSet
from strangler.sync.db import db_error, open_engine
from strangler.sync.envelope import TypeRegistry, parse_envelope
from strangler.sync.keys import TableKey
from strangler.sync.lag import QUALIFIED, Heartbeat
from strangler.sync.model import ChangeEvent
from strangler.sync.poison import Poison, make_poison
from strangler.sync.snapshot import BulkLoad, LoadResult
from strangler.sync.source import Batch, ResumeLookup
from strangler.sync.sources.debezium_capture import CapturePlan, plan_capture
from strangler.sync.sources.debezium_config import DebeziumOptions, connector_properties
from strangler.sync.sources.embedded_engine import DeferredEngine, RawRecord, Ticket
from strangler.sync.sources.pg_types import catalog_types, merged
from strangler.sync.watermark import WATERMARK_DDL, WATERMARK_TABLE
from strangler.sync_config import SourceConfig, SyncConfig

log = logging.getLogger("strangler.sync")

_POLL = 0.5
"""Seconds a wait may block before it looks at stop requests and engine failures."""


_AHEAD = 2
"""Parsed deliveries that may wait for the worker while it writes: the pipeline's depth."""


@dataclass
class _Delivery:
    """One engine batch, parsed on the engine thread; ``ticket`` commits it to the engine."""

    events: list[ChangeEvent]
    poison: list[Poison]
    ticket: Ticket
    handed: int = 0
    """Events already handed out in batches."""


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
        self._handoff: queue.Queue[_Delivery] = queue.Queue(maxsize=_AHEAD)
        self._engine: DeferredEngine | None = None
        self._current: _Delivery | None = None
        """The delivery being handed out, when a batch ended inside it."""
        self._completing: deque[list[Ticket]] = deque()
        """Per batch handed out and not yet acknowledged: the deliveries it completes."""
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
        engine = DeferredEngine(
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
        if self._current is None:
            try:
                self._current = await asyncio.to_thread(self._handoff.get, True, _POLL)
            except queue.Empty:
                if not engine.running:
                    raise SyncError(
                        f"debezium source {self.name}: {engine.failure or 'engine stopped'}"
                    ) from None
                return None
        # Up to max_events from the deliveries already here: small deliveries (a quiet
        # source, or the engine polling while the worker wrote) make one transaction.
        events: list[ChangeEvent] = []
        poison: list[Poison] = []
        completed: list[Ticket] = []
        while (delivery := self._current) is not None:
            start = delivery.handed
            end = _batch_end(delivery.events, start, max(max_events - len(events), 1))
            events.extend(delivery.events[start:end])
            if start == 0:
                poison.extend(delivery.poison)  # unparseable records ride with its first batch
            delivery.handed = end
            if end < len(delivery.events):
                break
            completed.append(delivery.ticket)
            self._current = None
            if len(events) < max_events:
                with contextlib.suppress(queue.Empty):
                    self._current = self._handoff.get_nowait()
        self._completing.append(completed)
        return Batch(events, _offsets(events), poison)

    async def ack(self, batch: Batch) -> None:
        # The worker acknowledges batches in the order it got them.
        engine = self._engine
        if not self._completing:
            return
        for ticket in self._completing.popleft():
            if engine is not None:
                engine.commit(ticket)  # the engine may now commit its offsets up to it

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        self._current = None
        self._completing.clear()
        if engine is not None:
            await asyncio.to_thread(engine.stop)
        # A batch still waiting here was never acknowledged: the next engine re-reads it.
        while not self._handoff.empty():
            self._handoff.get_nowait()

    # -------------------------------------------------------------- internals

    def _on_batch(self, records: Sequence[RawRecord], ticket: Ticket) -> None:
        """On the engine thread: parse the batch and queue it; return without waiting
        for it to be written (``ack`` commits it to the engine later)."""
        engine = self._engine
        delivery = _Delivery(*self._parse(records), ticket)
        while True:
            if engine is not None and engine.stopping.is_set():
                raise SyncError("stopping")
            try:
                self._handoff.put(delivery, timeout=_POLL)
                return
            except queue.Full:
                continue

    def _parse(self, records: Sequence[RawRecord]) -> tuple[list[ChangeEvent], list[Poison]]:
        events: list[ChangeEvent] = []
        poison: list[Poison] = []
        for record in records:
            try:
                parsed = parse_envelope(
                    record.value, record.key, source=self.name, types=self.types
                )
            except Exception as exc:  # untrusted input: whatever it raises, it is poison
                where = _location(record)
                self.skipped += 1
                poison.append(
                    make_poison(record.value, record.key, f"{type(exc).__name__}: {exc}", where)
                )
                log.error("source %s: poison record %s: %s", self.name, where, exc)
                continue
            if parsed is not None:
                events.append(parsed)
        return events, poison


def _location(record: RawRecord) -> str:
    # The engine gives no offset per record; the content names it, so a batch
    # re-delivered after a crash dead-letters the same record only once.
    digest = hashlib.sha256(f"{record.key}\0{record.value}".encode()).hexdigest()[:16]
    return f"{record.destination}@{digest}"


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
