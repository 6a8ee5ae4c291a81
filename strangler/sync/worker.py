"""The CDC worker loop: each source -> adapters -> the sinks of its tables, batch by batch.

One asyncio task per source. A batch is split by target database and applied with
its offsets in one transaction per target (in a thread: SQLAlchemy is synchronous);
only then is it acknowledged to the source. On stop (SIGTERM) the batch being
applied is finished and committed, then the loop exits — never half a batch. A
database that is down fails the batch as a whole; the worker keeps it and retries
with backoff rather than dead-lettering events that did nothing wrong.

Status (``/api/sync``): per source its lag and ``caught_up`` (from a heartbeat row the
worker writes into the monolith and reads back, where the source has one — see
``lag.py``; otherwise now - ``source.ts_ms`` of the last event applied, 0 when the
source said it had nothing more) and counts; per target the open dead letters
and parked events. Metrics: ``strangler_sync_events_total{table,op,outcome}`` and
``strangler_sync_lag_seconds{source}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from strangler.errors import ConfigError, Problem, StranglerError, SyncError
from strangler.metrics import Metrics
from strangler.sync import origin, retention, watermark
from strangler.sync.adapters import AdapterSet
from strangler.sync.direction import Directions, OwnerReader
from strangler.sync.lag import HEARTBEAT_OFFSET, Heartbeat, LagTracker, heartbeat_ms
from strangler.sync.model import ChangeEvent
from strangler.sync.sink import BatchResult, Sink
from strangler.sync.source import Batch, Source, build_source
from strangler.sync.status import SourceStatus, StatusBoard
from strangler.sync.watermark import Watermark, is_watermark_table, watermark_of
from strangler.sync_config import SyncConfig

log = logging.getLogger("strangler.sync")

GC_YOUNG = 50_000
"""Allocations between collections of the youngest generation while streaming (see run)."""


class Worker:
    """Runs every configured source until ``stop`` is set."""

    def __init__(
        self,
        config: SyncConfig,
        *,
        base_dir: Path | None = None,
        metrics: Metrics | None = None,
        sources: Mapping[str, Source] | None = None,
        contexts: Mapping[str, Sequence[str]] | None = None,
        owners: OwnerReader | None = None,
    ) -> None:
        if not config.sources:
            raise ConfigError([Problem("sync.sources", "no sources to run")])
        self.config = config
        self.base_dir = base_dir
        self.metrics = metrics or Metrics()
        self.adapters = AdapterSet(config, base_dir)
        self.sinks = {n: Sink.for_target(n, config, self.adapters) for n in config.targets}
        self.sources: dict[str, Source] = dict(sources or {})
        for cfg in config.sources:
            if cfg.name not in self.sources:
                self.sources[cfg.name] = build_source(cfg, config, base_dir)
        kinds = {c.name: c.kind for c in config.sources}
        self.status = {n: SourceStatus(n, kinds.get(n, "custom")) for n in self.sources}
        self.board = StatusBoard(self.sinks)
        self.directions = Directions(self.adapters, contexts or {}, owners)
        """Who owns each context, and the owner each captured stream judges by."""

    # ------------------------------------------------------------------- run

    async def run(self, stop: asyncio.Event) -> None:
        for sink in self.sinks.values():
            await asyncio.to_thread(sink.setup)
        await self._refresh_owners()
        follow = asyncio.create_task(self._follow_owners(stop), name="sync-owners")
        try:
            tasks = [
                asyncio.create_task(self._run_source(s, stop), name=f"sync-{n}")
                for n, s in self.sources.items()
            ]
            tasks.append(asyncio.create_task(self._prune(stop), name="sync-graveyard"))
            await asyncio.gather(*tasks)
        finally:
            follow.cancel()
            for sink in self.sinks.values():
                sink.close()

    async def _refresh_owners(self) -> None:
        try:
            await self.directions.refresh()
        except StranglerError as exc:  # the store is down: keep judging by the last view
            log.warning("cannot read context ownership: %s", exc)

    async def _follow_owners(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await _sleep_or_stop(stop, 0.1)
            await self._refresh_owners()

    async def _prune(self, stop: asyncio.Event) -> None:
        """Every ten minutes, drop graveyard entries past ``graveyard_retention``."""
        while not stop.is_set():
            for name, sink in self.sinks.items():
                try:
                    await asyncio.to_thread(self._prune_one, sink)
                except Exception:  # a target down now is retried next round
                    log.warning("graveyard pruning of %s failed", name, exc_info=True)
            await _sleep_or_stop(stop, 600.0)

    def _prune_one(self, sink: Sink) -> None:
        while True:
            with sink.engine.begin() as conn:
                pruned = retention.prune_graveyard(conn, self.config.graveyard_retention)
            if pruned < retention.BATCH:
                return

    def resume(self, source: str) -> dict[str, int]:
        """The offsets every target agrees the source has reached (per key, the least)."""
        stored = [sink.offsets(source) for sink in self.sinks.values()]
        if not stored or any(not s for s in stored):
            return {}
        common = set(stored[0]).intersection(*stored[1:])
        return {key: min(s[key] for s in stored) for key in common}

    async def _run_source(self, source: Source, stop: asyncio.Event) -> None:
        status = self.status[source.name]
        delay = 0.5
        load: Callable[[], Any] | None = getattr(source, "initial_load", None)
        while not stop.is_set():
            try:
                if load is not None:
                    status.state = "loading"  # the bulk initial load (snapshot.py)
                    await asyncio.to_thread(load)
                    load = None
                    status.state = "starting"
                await source.start(lambda: self.resume(source.name))
                for sink in self.sinks.values():
                    sink.highs.forget()  # a stream (re)starting may replay: read them again
                # The owners the stream judged by at its committed position (direction.py).
                resumed = await asyncio.to_thread(self.resume, source.name)
                self.directions.restore(source.name, resumed)
                break
            except SyncError as exc:
                status.state, status.error = "error", str(exc)
                log.error("source %s cannot start: %s (retrying)", source.name, exc)
                await _sleep_or_stop(stop, delay)
                delay = min(delay * 2, 10.0)
        status.state, status.error = "running", None
        # What start-up made (modules, the JVM's proxies, reflected tables) lives as long
        # as the process: out of the collector's way, a full collection walks only what
        # the stream allocates. The stream's objects (events, rows, writes) form no
        # cycles and die with their batch, so the youngest generation is collected every
        # GC_YOUNG allocations instead of 700: at a few thousand changes a second the
        # default ran a collection every ~70 changes (a few percent of the worker's CPU).
        gc.freeze()
        gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
        beating: asyncio.Task[None] | None = None
        heartbeat: Heartbeat | None = getattr(source, "heartbeat", None)
        if heartbeat is not None:
            resumed = await asyncio.to_thread(self.resume, source.name)
            status.tracker = LagTracker(source.name, resumed.get(HEARTBEAT_OFFSET))
            beating = asyncio.create_task(_beat(heartbeat, status.tracker, stop))
        try:
            delay = 0.5
            while not stop.is_set():
                try:
                    batch = await source.next_batch(self.config.batch_size)
                except SyncError as exc:
                    # Source unreachable: stay here, visibly (status + log); nothing was
                    # acknowledged. (A record it cannot parse is not an error: it comes
                    # as ``batch.poison`` and is dead-lettered.)
                    status.state, status.error = "error", str(exc)
                    log.error("source %s: cannot read: %s (retrying)", source.name, exc)
                    for sink in self.sinks.values():
                        sink.highs.forget()  # another reader may have had the stream since
                    await _sleep_or_stop(stop, delay)
                    delay = min(delay * 2, 10.0)
                    continue
                delay = 0.5
                status.state, status.error = "running", None
                if batch is None:
                    status.idle = True
                    self._report_lag(status)
                    continue
                await self._process(source, batch, status, stop)
        finally:
            status.state = "stopped"
            if beating is not None:
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beating
            await source.close()

    async def _process(
        self, source: Source, batch: Batch, status: SourceStatus, stop: asyncio.Event
    ) -> None:
        """Drop the worker's own writes, judge each change by its context's owner, and
        apply; a drain's watermark splits the batch: what precedes it is committed and
        the watermark recorded before anything after it is judged. The batch's offsets
        (with the stream's owners) are committed only with its last part, after every
        watermark in it was passed: a batch ending in one commits an empty last part."""
        await self.directions.ready(stop)
        events = list(batch.events)
        own: set[int] = set()
        if self._captured_sink(source.name) is not None:  # else no thread hop per batch
            own = await asyncio.to_thread(self._own_writes, source.name, events)
        if own:
            events = [e for e in events if e.tx_id is None or e.tx_id % origin.XID_SPACE not in own]
            dropped = len(batch.events) - len(events)
            status.counts["own_write"] += dropped
            for event in batch.events:
                if event.tx_id is not None and event.tx_id % origin.XID_SPACE in own:
                    self.metrics.sync_event(event.table, event.op, "own_write")
        # Work per table where it can be (a batch holds thousands of changes to a few
        # tables): which may carry a watermark, which route where, how each is judged.
        segments: list[tuple[list[ChangeEvent], Watermark | None]] = [([], None)]
        if any(is_watermark_table(t) for t in {e.table for e in events}):
            for event in events:
                mark = watermark_of(event)
                if mark is None:
                    segments[-1][0].append(event)
                else:
                    segments[-1] = (segments[-1][0], mark)
                    segments.append(([], None))
        else:
            segments = [(events, None)]
        for i, (chunk, mark) in enumerate(segments):
            last = i == len(segments) - 1
            refused: list[tuple[ChangeEvent, str]] = []
            tables = {e.table for e in chunk}
            judged = self._judged(source.name, tables)  # after the last part's marker
            if len(judged) == len(tables) and all(r is None for r in judged.values()):
                accepted = chunk  # the usual case: every change applies
            else:
                accepted = []
                for event in chunk:
                    if event.table in judged:
                        reason = judged[event.table]
                    else:
                        route = self.adapters.route(source.name, event.table)
                        assert route is not None  # else judged
                        reason = self.directions.judge(source.name, route[0].source, event.position)
                    if reason is None:
                        accepted.append(event)
                    elif event.snapshot:
                        # A snapshot of the non-owner's side is the copy sync made, not a write.
                        status.counts["ignored"] += 1
                    else:
                        refused.append((event, reason))
            part = Batch(accepted, batch.offsets, batch.poison) if last else Batch(accepted)
            await self._apply_until_done(source, part, status, stop, refused, ack=last)
            if mark is not None:
                await asyncio.to_thread(self._record_mark, mark)
                await self.directions.pass_marker(mark, stop)

    def _judged(self, source: str, tables: Iterable[str]) -> dict[str, str | None]:
        """Source table -> the judgement of every change to it (None: it applies), for
        those of ``tables`` whose judgement no position changes: not routed, or no owner
        flip of their context to judge a replay by."""
        judged: dict[str, str | None] = {}
        for table in tables:
            route = self.adapters.route(source, table)
            if route is None:
                judged[table] = None
            elif self.directions.fixed(source, route[0].source):
                judged[table] = self.directions.judge(source, route[0].source)
        return judged

    def _captured_sink(self, source: str) -> Sink | None:
        """The target that is also the database ``source`` captures (reverse sync)."""
        target = self.config.captured_target(source)
        return None if target is None else self.sinks.get(target)

    def _own_writes(self, source: str, events: Sequence[ChangeEvent]) -> set[int]:
        """Transaction ids (mod 2**32) among ``events`` that the worker itself committed
        into the database ``source`` captures (see origin.py)."""
        sink = self._captured_sink(source)
        xids = [e.tx_id for e in events if e.tx_id is not None]
        if sink is None or not xids:
            return set()
        try:
            with sink.engine.connect() as conn:
                return origin.own_transactions(conn, xids)
        except Exception as exc:
            raise SyncError(
                f"target {sink.name}: cannot read the worker's own transactions: {exc}"
            ) from exc

    def _record_mark(self, mark: Watermark) -> None:
        for sink in self.sinks.values():
            try:
                with sink.engine.begin() as conn:
                    watermark.record(conn, mark)
            except Exception as exc:  # a target that is down does not hold up the others
                log.error("target %s: cannot record watermark %s: %s", sink.name, mark, exc)

    async def _apply_until_done(
        self,
        source: Source,
        batch: Batch,
        status: SourceStatus,
        stop: asyncio.Event,
        refused: Sequence[tuple[ChangeEvent, str]] = (),
        *,
        ack: bool = True,
    ) -> None:
        delay = 0.5
        while True:
            try:
                result = await asyncio.to_thread(self.apply_batch, source.name, batch, refused)
                break
            except SyncError as exc:
                if stop.is_set():
                    raise  # nothing of this batch was committed; it is read again on start
                status.state, status.error = "error", str(exc)
                log.error("source %s: batch failed, retrying: %s", source.name, exc)
                await _sleep_or_stop(stop, delay)
                delay = min(delay * 2, 10.0)
        if ack:
            await source.ack(batch)
        status.state, status.error = "running", None
        status.offsets.update(batch.offsets)
        status.idle = False
        if status.tracker is not None:
            status.tracker.applied(batch.events)
        if result.last_ts_ms is not None:
            status.last_ts_ms = result.last_ts_ms
        status.counts["unparseable"] += len(result.poison_stored)
        for (table, op, outcome), n in result.counts.items():
            status.counts[outcome] += n
            self.metrics.sync_event(table, op, outcome, n)
        self._report_lag(status)

    def apply_batch(
        self, source: str, batch: Batch, refused: Sequence[tuple[ChangeEvent, str]] = ()
    ) -> BatchResult:
        """Split by target and apply (each target: rows + offsets in one transaction);
        ``refused`` events are dead-lettered in their target with their reason."""
        per_target: dict[str, list[ChangeEvent]] = {name: [] for name in self.sinks}
        refused_in: dict[str, list[tuple[ChangeEvent, str]]] = {name: [] for name in self.sinks}
        for event, reason in refused:
            route = self.adapters.route(source, event.table)
            if route is not None:
                refused_in[route[0].target].append((event, reason))
        result = BatchResult()
        offsets = dict(batch.offsets)
        if offsets:
            # The owners this stream judged by, stored with its position (direction.py).
            offsets.update(self.directions.stored(source))
        beat = heartbeat_ms(source, batch.events)
        if beat is not None:
            offsets[HEARTBEAT_OFFSET] = beat  # how far this source had got, for lag
        targets: dict[str, str | None] = {}
        for table in {e.table for e in batch.events}:
            route = self.adapters.route(source, table)
            targets[table] = None if route is None else route[0].target
        found = set(targets.values())
        if len(found) == 1 and None not in found:
            per_target[str(found.pop())] = list(batch.events)  # one target: as they are
        else:
            for event in batch.events:
                target = targets[event.table]
                if target is None:
                    result.add(event, "ignored")
                else:
                    per_target[target].append(event)
        for name, sink in self.sinks.items():
            # Poison goes to every target: its table (so its target) is not known, and
            # each target's offsets must move past it only together with its record.
            applied = sink.apply(source, per_target[name], offsets, batch.poison, refused_in[name])
            result.counts.update(applied.counts)
            result.poison_stored |= applied.poison_stored
            if applied.last_ts_ms is not None:
                result.last_ts_ms = max(result.last_ts_ms or 0, applied.last_ts_ms)
        for record in batch.poison:
            # Counted once, when first stored: a replay meeting it again adds nothing.
            if record.location in result.poison_stored:
                result.counts[(record.table, record.op, "dead_letter")] += 1
        return result

    def _report_lag(self, status: SourceStatus) -> None:
        lag = status.lag_seconds()
        if lag is not None:
            self.metrics.sync_lag(status.name, lag)

    # ---------------------------------------------------------------- status

    def snapshot(self) -> dict[str, Any]:
        """The ``GET /api/sync`` document (``status.py``); reads the targets' counts
        when they are older than two seconds (blocking: not for the worker's loop)."""
        if self.board.stale():
            self.board.refresh()
        return self.board.snapshot(self.status, self.sources)

    async def status_document(self) -> dict[str, Any]:
        """``snapshot()`` for the loop: the targets are read in a thread, so a slow
        target never holds up the sources' tasks."""
        if self.board.stale():
            await asyncio.to_thread(self.board.refresh)
        return self.board.snapshot(self.status, self.sources)


async def _beat(heartbeat: Heartbeat, tracker: LagTracker, stop: asyncio.Event) -> None:
    """Write the source's heartbeat every interval until stopped (failures are logged:
    the lag then grows, which is the truth as far as anyone can tell)."""
    try:
        while not stop.is_set():
            try:
                beat = await asyncio.to_thread(heartbeat.write)
                tracker.wrote(beat, heartbeat.offset)
            except SyncError as exc:
                log.warning("source %s: %s", tracker.source, exc)
            await _sleep_or_stop(stop, heartbeat.interval)
    finally:
        await asyncio.to_thread(heartbeat.close)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
