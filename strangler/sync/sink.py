"""The sink: applies change events to one target database, exactly once and in order.

One transaction per batch holds the rows, each written row's position, any dead
letters and parked events, and the source's offsets — so after a crash the target
and its resume point agree. The stale check against stored positions and truncate
floors, and the set-wise writes, are in ``execute.py``.

Bad events: an adapter failure or a database rejection is retried ``retries`` times
(each attempt in a savepoint), then the event is dead-lettered; later events for the
same source key are parked behind it while other keys go on. ``retry_dead`` replays
them in order. Records the source could not parse at all (``Batch.poison``) are stored
raw with the offsets; ``retry_dead`` re-parses them first. A lost connection is not
an event's fault: it raises ``SyncError`` and nothing of the batch is committed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Text,
    bindparam,
    cast,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy import text as sql_text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError

from strangler.errors import ChangeEventError
from strangler.sync import ledger, origin, rawletters, rowpos, watermark
from strangler.sync.adapters import AdapterSet, map_event
from strangler.sync.codec import event_from_json, key_text
from strangler.sync.db import db_error, is_connection_error, open_engine, safe_url
from strangler.sync.execute import Outcome, Planned, execute
from strangler.sync.highs import Highs, exclusive_tables, kept_tables, stream_sources
from strangler.sync.model import ChangeEvent, Op, Position, RowDelete, RowWrite
from strangler.sync.poison import Poison, parse_or_poison
from strangler.sync.schema import SchemaGuard, stopped_tables
from strangler.sync.writer import TableCache
from strangler.sync_config import SyncConfig

log = logging.getLogger("strangler.sync")

_SETUP_LOCK = 0x5772616E676C6572  # any fixed number: "Strangler"


@dataclass
class BatchResult:
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(source table, op, outcome) -> events."""
    last_ts_ms: int | None = None
    """source ``ts_ms`` of the last event this batch moved past (applied or not)."""
    poison_stored: set[str] = field(default_factory=set)
    """Locations of poison records this batch stored for the first time."""

    def add(self, event: ChangeEvent, outcome: Outcome) -> None:
        self.counts[(event.table, event.op, outcome)] += 1
        self.last_ts_ms = max(self.last_ts_ms or 0, event.ts_ms)

    def total(self, outcome: Outcome) -> int:
        return sum(n for (_, _, o), n in self.counts.items() if o == outcome)


class Sink:
    """One target database (``sync.targets[name]``)."""

    def __init__(
        self,
        name: str,
        url: str,
        adapters: AdapterSet,
        retries: int = 3,
        exclusive: Iterable[str] = (),
        kept: Mapping[str, str] | None = None,
        streams: Iterable[str] = (),
    ) -> None:
        self.name = name
        self.url = url
        self.adapters = adapters
        self.retries = retries
        self.engine: Engine = open_engine(url)
        self._tables = TableCache()
        self._schema = SchemaGuard(adapters, self._tables)
        self.highs = Highs(exclusive, kept, streams)
        """Bounds that spare the stale check's look-ups (``highs.py``; ``exclusive``: the
        tables one ordered stream alone writes; ``kept``: those of them the stream's
        offsets keep, with no per-row entries; ``streams``: the sources whose replays
        this target drops by its offsets)."""

    @classmethod
    def for_target(cls, name: str, config: SyncConfig, adapters: AdapterSet) -> Sink:
        """The sink of ``config.targets[name]``, with the bounds its tables allow."""
        return cls(
            name,
            config.targets[name],
            adapters,
            config.retries,
            exclusive_tables(config).get(name, ()),
            kept_tables(config).get(name),
            stream_sources(config),
        )

    def setup(self) -> None:
        """Create the bookkeeping tables if missing; workers starting together take turns."""
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(sql_text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SETUP_LOCK})
                for metadata in (
                    ledger.metadata,
                    rowpos.metadata,
                    origin.metadata,
                    watermark.metadata,
                ):
                    metadata.create_all(conn, checkfirst=True)
                moved = rowpos.migrate(conn)  # a target of an older version
                if moved:
                    log.info(
                        "target %s: %d row positions moved to the compact layout", self.name, moved
                    )
                origin.prune(conn)
        except SQLAlchemyError as exc:
            raise db_error(f"target {self.name} ({safe_url(self.url)})", exc) from exc

    def close(self) -> None:
        self.engine.dispose()

    def offsets(self, source: str) -> dict[str, int]:
        try:
            with self.engine.connect() as conn:
                return ledger.load_offsets(conn, source)
        except SQLAlchemyError as exc:
            raise db_error(f"target {self.name}", exc) from exc

    # ------------------------------------------------------------------ apply

    def apply(
        self,
        source: str,
        events: Sequence[ChangeEvent],
        offsets: Mapping[str, int],
        poison: Sequence[Poison] = (),
        refused: Sequence[tuple[ChangeEvent, str]] = (),
    ) -> BatchResult:
        """Apply a batch and store ``offsets`` with it, in one transaction.

        ``poison`` (records the source could not parse) go to the raw dead-letter table
        in that same transaction; they are not counted here (the caller counts them
        once, however many targets store them: see ``poison_stored``). ``refused``:
        events not to apply, dead-lettered with their reason (a non-owner's writes)."""

        # A method and its arguments, not a closure: compiled, a nested function and the
        # environment holding the batch reference each other, and the batch's events
        # then lived until the cycle collector found them (a tenth of the worker's CPU
        # went to collecting them under pgbench).
        batch = (source, events, offsets, poison, refused)
        try:
            try:
                return self._in_tx(self._apply_batch, *batch, True)
            except _EventFailed:
                self._tables.clear()  # a failed DDL-ish surprise may have changed a table
                return self._in_tx(self._apply_batch, *batch, False)
        except Exception:
            self.highs.forget()  # read the bounds again: nothing of the batch committed
            raise

    def _apply_batch(
        self,
        conn: Connection,
        source: str,
        events: Sequence[ChangeEvent],
        offsets: Mapping[str, int],
        poison: Sequence[Poison],
        refused: Sequence[tuple[ChangeEvent, str]],
        fast: bool,
    ) -> BatchResult:
        stored = {p.location for p in poison if rawletters.add_raw_dead_letter(conn, source, p)}
        result = self._apply(conn, source, events, offsets, fast=fast)
        for event, reason in refused:
            ledger.add_dead_letter(conn, event, reason, 0)
            result.add(event, "non_owner")
        result.poison_stored = stored
        return result

    def _in_tx(self, work: Callable[..., BatchResult], *args: Any) -> BatchResult:
        """``work(conn, *args)`` in one transaction of the target."""
        try:
            with self.engine.begin() as conn:
                # The worker's own writes are never captured back (see origin.py).
                origin.enter(conn)
                result = work(conn, *args)
                origin.leave(conn)
                return result
        except _EventFailed:
            raise
        except SQLAlchemyError as exc:
            raise db_error(f"target {self.name}", exc) from exc

    def _apply(
        self,
        conn: Connection,
        source: str,
        events: Sequence[ChangeEvent],
        offsets: Mapping[str, int],
        *,
        fast: bool,
    ) -> BatchResult:
        result = BatchResult()
        through = self.highs.through(conn, source) if events else None
        if through is not None:
            # A replay of what this target committed already (another target was behind,
            # or the stream restarted): its outcome is stored, whatever it was.
            fresh: list[ChangeEvent] = []
            for event in events:
                if event.position > through:
                    fresh.append(event)
                else:
                    result.add(event, "stale")
            events = fresh
        if events:
            for table in self._schema.resumable(conn, source):
                self._drain_table(conn, source, table, result)
        blocked, stopped, floors = _holds(conn, source) if events else (set(), {}, {})
        planned: list[Planned] = []
        for event in events:
            if event.table in stopped or (blocked and ledger.ident_of(event) in blocked):
                _park(conn, event, result)
                continue
            item, error = self._plan(event)
            if item is not None:
                item.writes, stop = self._schema.fit(conn, event, item.writes)
                item.fitted = stop is None
                if stop is not None:
                    # A column the mapping needs is missing: stop this table only, once,
                    # and keep its events in order until the target has the column.
                    self._schema.stop(conn, event, stop)
                    stopped[event.table] = stop.reason
                    _park(conn, event, result)
                    continue
            if item is None:
                self._dead_letter(conn, event, error, blocked, result)
            elif fast:
                planned.append(item)
            else:
                self._apply_alone(conn, item, blocked, result)
        if fast and planned:
            # No savepoint: a failure here rolls the whole transaction back and the
            # batch is redone event by event (``apply``), each in a savepoint of its own.
            try:
                outcomes = execute(
                    conn, self._tables, self._schema, planned, highs=self.highs,
                    floors={source: floors},
                )  # fmt: skip
            except (ChangeEventError, DBAPIError, StatementError) as exc:
                if is_connection_error(exc):
                    raise
                raise _EventFailed() from exc
            for item, outcome in zip(planned, outcomes, strict=True):
                result.add(item.event, outcome)
        ledger.save_offsets(conn, source, offsets)
        self.highs.applied(source, offsets)
        return result

    def _plan(self, event: ChangeEvent) -> tuple[Planned | None, str]:
        route = self.adapters.route(event.source, event.table)
        if route is None:
            return Planned(event, []), ""
        _, adapter = route
        error = ""
        for _attempt in range(self.retries + 1):
            try:
                if event.op == "t":
                    custom = getattr(adapter, "truncate", None)
                    if custom is None:
                        return Planned(event, [], truncate=True), ""
                    return Planned(event, list(custom(event))), ""
                writes = map_event(adapter, event)
                if event.old_key:
                    gone = replace(event, op="d", key=event.old_key, after=None, old_key=None)
                    gone = replace(gone, before={**(event.before or {}), **event.old_key})
                    old: list[RowWrite] = [
                        w for w in map_event(adapter, gone) if isinstance(w, RowDelete)
                    ]
                    writes = old + writes
                return Planned(event, writes), ""
            except ChangeEventError as exc:
                error = str(exc)
            except Exception as exc:  # a custom truncate hook: same treatment as map
                error = f"{type(exc).__name__}: {exc}"
        return None, error

    def _apply_alone(
        self, conn: Connection, item: Planned, blocked: set[ledger.Ident], result: BatchResult
    ) -> bool:
        """Apply one event in its own savepoint, retrying; dead-letter it if it keeps failing."""
        error = ""
        for _attempt in range(self.retries + 1):
            outcome, error = self._execute_one(conn, item)
            if outcome is not None:
                result.add(item.event, outcome)
                return True
            self._tables.clear()
            item.fitted = False  # fit again to the tables as they are now
        self._dead_letter(conn, item.event, error, blocked, result)
        return False

    def _execute_one(self, conn: Connection, item: Planned) -> tuple[Outcome | None, str]:
        """Apply one event in a savepoint: its outcome, or None and why the database
        refused it (a lost connection is no event's fault: it raises)."""
        try:
            with conn.begin_nested():
                (outcome,) = execute(conn, self._tables, self._schema, [item], highs=self.highs)
            return outcome, ""
        except (ChangeEventError, DBAPIError, StatementError) as exc:
            if is_connection_error(exc):
                raise
            return None, str(getattr(exc, "orig", None) or exc).strip()

    def _dead_letter(
        self,
        conn: Connection,
        event: ChangeEvent,
        error: str,
        blocked: set[ledger.Ident],
        result: BatchResult,
    ) -> None:
        log.warning("dead-lettered %s %s %s: %s", event.table, event.op, dict(event.key), error)
        ledger.add_dead_letter(conn, event, error, self.retries + 1)
        blocked.add(ledger.ident_of(event))
        result.add(event, "dead_letter")

    # ------------------------------------------------------------ dead letters

    def retry_dead(self, source: str | None = None) -> BatchResult:
        """Re-apply open dead letters (oldest first), each followed by its parked events."""
        total = BatchResult()
        with self.engine.connect() as conn:
            raw = rawletters.open_raw_dead_letters(conn, source)
        for letter_id, src, record in raw:
            total.counts.update(self._retry_raw(letter_id, src, record).counts)
        with self.engine.connect() as conn:
            letters = ledger.open_dead_letters(conn, source)
        for letter_id, text in letters:
            event = event_from_json(text)
            total.counts.update(self._retry_one(letter_id, event).counts)
        with self.engine.connect() as conn:
            orphans = ledger.orphan_parked_idents(conn)
        for src, ident in orphans:
            total.counts.update(self._in_tx(lambda c, s=src, i=ident: self._drain(c, s, i)).counts)
        return total

    def _retry_one(self, letter_id: int, event: ChangeEvent) -> BatchResult:
        def work(conn: Connection) -> BatchResult:
            ident = ledger.ident_of(event)
            item, error = self._plan(event)
            result = BatchResult()
            outcome: Outcome | None = None
            if item is not None:
                outcome, error = self._execute_one(conn, item)
            if outcome is None:
                ledger.note_retry_failure(conn, letter_id, error)
                result.add(event, "dead_letter")
                return result
            result.add(event, outcome)
            ledger.resolve_dead_letter(conn, letter_id)
            drained = self._drain(conn, event.source, ident)
            result.counts.update(drained.counts)
            return result

        return self._in_tx(work)

    def _retry_raw(self, letter_id: int, source: str, record: Poison) -> BatchResult:
        """Re-parse an unparseable record (the parser or type registry may be fixed now);
        still broken, it stays. Parsed, it takes the normal path: stale check, parking
        behind its key's dead letter, dead-lettering if the adapter rejects it."""

        def work(conn: Connection) -> BatchResult:
            result = BatchResult()
            value, key = record.raw()
            parsed = parse_or_poison(
                value, key, source=source, location=record.location, types=self.adapters.types
            )
            if isinstance(parsed, Poison):
                rawletters.note_raw_retry_failure(conn, letter_id, parsed.error)
                result.counts[(record.table, record.op, "dead_letter")] += 1
                return result
            rawletters.resolve_raw_dead_letter(conn, letter_id)
            if parsed is None:
                return result  # a tombstone / op=m after all: nothing to apply
            route = self.adapters.route(parsed.source, parsed.table)
            if route is None or route[0].target != self.name:
                # Not synced, or another target's table (that target holds its own copy).
                result.add(parsed, "ignored")
                return result
            blocked = ledger.blocked_idents(conn, source)
            if ledger.ident_of(parsed) in blocked:
                _park(conn, parsed, result)
                return result
            item, error = self._plan(parsed)
            if item is None:
                self._dead_letter(conn, parsed, error, blocked, result)
            else:
                self._apply_alone(conn, item, blocked, result)
            return result

        return self._in_tx(work)

    def _drain_table(self, conn: Connection, source: str, table: str, result: BatchResult) -> None:
        """A stopped table resumed: apply its parked events, key by key, in order."""
        for src, ident in ledger.orphan_parked_idents(conn):
            if src == source and ident[0] == table:
                result.counts.update(self._drain(conn, source, ident).counts)

    def _drain(self, conn: Connection, source: str, ident: ledger.Ident) -> BatchResult:
        """Apply a key's parked events in order until one fails (it becomes a dead letter)."""
        result = BatchResult()
        blocked: set[ledger.Ident] = set()
        for parked_id, text in ledger.parked_for(conn, source, ident):
            ledger.unpark(conn, parked_id)
            event = event_from_json(text)
            item, error = self._plan(event)
            if item is None:
                self._dead_letter(conn, event, error, blocked, result)
                return result
            if not self._apply_alone(conn, item, blocked, result):
                return result
        return result

    # ------------------------------------------------------------------ repair

    def repair(self, source_table: str, writes: Sequence[RowWrite]) -> int:
        """Force ``writes`` (from verify) through the normal write path, keeping each
        row's stored position so the next real change still applies."""

        def work(conn: Connection) -> BatchResult:
            result = BatchResult()
            items = []
            for write in writes:
                row_key = key_text(write.key)
                state = ledger.load_positions(conn, write.table, [row_key]).get(row_key)
                position = state.position if state else Position(0, 0)
                op: Op = "d" if isinstance(write, RowDelete) else "u"
                event = ChangeEvent("verify", source_table, op, write.key, None, None, position, 0)
                items.append(Planned(event, [write]))
            for item, outcome in zip(
                items,
                execute(conn, self._tables, self._schema, items, force=True, highs=self.highs),
                strict=True,
            ):
                result.add(item.event, outcome)
            return result

        return self._in_tx(work).total("applied")


def _holds_query() -> Any:
    """What holds a source's events back, in one round trip (it is read every batch):
    keys behind a dead letter or parked events, stopped tables, truncate floors (the
    dead letters that block: ``ledger.blocking_letters``, as ``blocked_idents`` reads)."""
    dead, held, floors = ledger.dead_letters, ledger.parked, ledger.truncate_floors
    no_text, no_int = cast(null(), Text), cast(null(), BigInteger)
    source: Any = bindparam("source")
    return union_all(
        select(literal("f"), floors.c.source_table, no_text, floors.c.pos_commit,
               floors.c.pos_seq).where(floors.c.source == source),
        select(literal("b"), dead.c.source_table, dead.c.event_key, no_int, no_int)
        .where(*ledger.blocking_letters(source)),
        select(literal("b"), held.c.source_table, held.c.event_key, no_int, no_int)
        .where(held.c.source == source).distinct(),
        select(literal("s"), stopped_tables.c.source_table, stopped_tables.c.reason, no_int,
               no_int).where(stopped_tables.c.source == source),
    )  # fmt: skip


_HOLDS = _holds_query()


def _holds(
    conn: Connection, source: str
) -> tuple[set[ledger.Ident], dict[str, str], dict[str, Position]]:
    """(blocked keys, stopped table -> reason, table -> truncate floor) of ``source``:
    what ``ledger.blocked_idents``, ``SchemaGuard.stopped`` and ``ledger.load_floors``
    read, in one statement."""
    blocked: set[ledger.Ident] = set()
    stopped: dict[str, str] = {}
    floors: dict[str, Position] = {}
    for kind, table, text, commit, seq in conn.execute(_HOLDS, {"source": source}):
        if kind == "b":
            blocked.add((table, text))
        elif kind == "s":
            stopped[table] = text
        else:
            floors[table] = Position(int(commit), int(seq))
    return blocked, stopped, floors


def _park(conn: Connection, event: ChangeEvent, result: BatchResult) -> None:
    """Hold ``event`` behind its key's dead letter (or its stopped table), in order."""
    ledger.park(conn, event)
    result.add(event, "parked")


class _EventFailed(Exception):
    """The fast path hit an event-level failure: redo the batch event by event."""
