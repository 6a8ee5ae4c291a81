"""Skipping the stale check's look-up where one ordered stream is a table's only writer.

The stale check reads the stored position of every row a batch writes (``execute.py``):
under load that read was the largest part of the sink's wait on PostgreSQL. For a
target table that only one slot-reading source (``debezium`` or ``pgoutput``) writes
(one replication slot: one reader, in commit order), every stored position of the
table is at most the highest position that stream has reached; so an event above it
cannot be stale, and only events at or below it (a replay after a restart) need their
rows' positions read. ``Highs`` keeps, per such table, a position no stored entry of it
exceeds:

- read once from the table's entries (the highest stored), when first needed;
- raised to each batch's highest position as the batch is written (before its commit:
  too high only means more look-ups, never a skipped one);
- forgotten, and read again, whenever the source starts or a batch fails.

A table is *exclusive* when every mapping that can write it is declarative (a Python
adapter may write any table), all of them take events of the same one source, that
source is of kind ``debezium`` or ``pgoutput``, and its target database is not the way
back of any mapping (reverse sync writes there too). Anything else keeps the look-up for every row.

Where that stream is ``pgoutput``, the table keeps no per-row entries at all: it is
*kept by the stream*. The batch's offsets, stored in the same transaction as its rows,
already say how far the target has applied that stream, and the stream is one total
order (``stream_position``): the reader starts after the least position the targets
stored, and each sink drops as a replay whatever is at or below its own (``through``,
every event of the source, whichever table) — so no event this target has seen
reaches the stale check again, and an event that reaches it cannot be older than
what its row holds. A row's entry would double the target's writes (the position row
beside the data row) for no judgement it makes. A table is kept when it is exclusive,
its source is ``pgoutput``, and exactly one declarative map of one mapping, whose
source table is named with its schema, writes it: a truncate of that source table then
empties the whole target table (``kept``), with nothing to look up. Parked events and
retried dead letters need no entries either: a key's later events are parked behind
them, in order, so nothing newer has touched their row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from sqlalchemy import Connection

from strangler.sync import ledger, rowpos
from strangler.sync.model import Position
from strangler.sync_config import SLOT_KINDS, ColumnMap, SyncConfig

STREAM_KINDS: Final = frozenset({"pgoutput"})
"""Source kinds whose offsets are one position in a total order (``stream_position``),
which the source itself resumes after."""
_COMMIT, _SEQ = "commit_lsn", "lsn"


def stream_offsets(position: Position) -> dict[str, int]:
    """The offsets that say a stream has been applied up to ``position``."""
    return {_COMMIT: position.commit, _SEQ: position.seq}


def stream_position(offsets: Mapping[str, int]) -> Position | None:
    """The position ``stream_offsets`` stored, or None (nothing stored yet)."""
    if _COMMIT in offsets and _SEQ in offsets:
        return Position(offsets[_COMMIT], offsets[_SEQ])
    return None


class Highs:
    """Per exclusive target table of one sink: a position no stored entry exceeds; per
    stream source: the position this target has applied it through."""

    def __init__(
        self,
        tables: Iterable[str] = (),
        kept: Mapping[str, str] | None = None,
        streams: Iterable[str] = (),
    ) -> None:
        self.tables = frozenset(tables)
        self.kept: Mapping[str, str] = dict(kept or {})
        """Target table -> its one source table, for the tables kept by the stream:
        no entry is read or written for their rows."""
        self.streams = frozenset(streams)
        """Sources of a ``STREAM_KINDS`` kind (``through`` knows them)."""
        self._top: dict[str, Position] = {}
        self._through: dict[str, Position | None] = {}

    def top(self, conn: Connection, table: str) -> Position | None:
        """The bound for ``table``, or None when its rows must all be looked up."""
        if table not in self.tables:
            return None
        found = self._top.get(table)
        if found is None:
            found = self._top[table] = rowpos.highest(conn, table)
        return found

    def raise_to(self, position: Position) -> None:
        """A batch reaching ``position`` is being written (any of its tables)."""
        for table, top in self._top.items():
            if position > top:
                self._top[table] = position

    def through(self, conn: Connection, source: str) -> Position | None:
        """The position this target has applied ``source`` through (its stored offsets),
        for a stream source; None for another, or when nothing is stored yet."""
        if source not in self.streams:
            return None
        if source not in self._through:
            self._through[source] = stream_position(ledger.load_offsets(conn, source))
        return self._through[source]

    def applied(self, source: str, offsets: Mapping[str, int]) -> None:
        """``offsets`` are being stored with a batch of ``source`` (before its commit:
        a failed batch must ``forget``)."""
        if source in self.streams:
            found = stream_position(offsets)
            if found is not None:
                self._through[source] = found

    def forget(self) -> None:
        self._top.clear()
        self._through.clear()


def _writers(
    config: SyncConfig,
) -> tuple[dict[tuple[str, str], list[tuple[str, list[str]]]], set[str]]:
    """(target, table) -> (source table, sources that may write through it) per
    declarative map into it; and the targets no table of which is exclusive (a Python
    adapter may write any of their tables; reverse sync writes the way back)."""
    forward = [s.name for s in config.sources if s.name not in config.reverse_sources()]
    writers: dict[tuple[str, str], list[tuple[str, list[str]]]] = {}
    unsafe_targets = {m.reverse.target for m in config.tables if m.reverse is not None}
    for mapping in config.tables:
        maps = mapping.adapter if isinstance(mapping.adapter, tuple) else (mapping.adapter,)
        if not all(isinstance(m, ColumnMap) for m in maps):
            unsafe_targets.add(mapping.target)
            continue
        sources = [mapping.from_source] if mapping.from_source else forward
        for cmap in maps:
            assert isinstance(cmap, ColumnMap)
            writers.setdefault((mapping.target, cmap.table), []).append((mapping.source, sources))
    return writers, unsafe_targets


def _one_source(feeds: list[tuple[str, list[str]]]) -> str | None:
    """The one source that may write through ``feeds``, or None (several, or one that
    cannot be named: a mapping without ``from_source`` among several sources)."""
    found = {sources[0] if len(sources) == 1 else None for _, sources in feeds}
    return found.pop() if len(found) == 1 else None


def exclusive_tables(config: SyncConfig) -> dict[str, frozenset[str]]:
    """Target name -> its tables that only one ``debezium`` or ``pgoutput`` source writes
    (see above)."""
    kinds = {s.name: s.kind for s in config.sources}
    writers, unsafe_targets = _writers(config)
    out: dict[str, set[str]] = {}
    for (target, table), feeds in writers.items():
        source = _one_source(feeds)
        if target not in unsafe_targets and source is not None and kinds.get(source) in SLOT_KINDS:
            out.setdefault(target, set()).add(table)
    return {target: frozenset(tables) for target, tables in out.items()}


def kept_tables(config: SyncConfig) -> dict[str, dict[str, str]]:
    """Target name -> its tables kept by the stream (see above) -> their source table."""
    kinds = {s.name: s.kind for s in config.sources}
    writers, unsafe_targets = _writers(config)
    out: dict[str, dict[str, str]] = {}
    for (target, table), feeds in writers.items():
        source = _one_source(feeds)
        if (
            target not in unsafe_targets
            and source is not None
            and kinds.get(source) in STREAM_KINDS
            and len(feeds) == 1
            and "." in feeds[0][0]
        ):
            out.setdefault(target, {})[table] = feeds[0][0]
    return out


def stream_sources(config: SyncConfig) -> frozenset[str]:
    """Sources of a ``STREAM_KINDS`` kind."""
    return frozenset(s.name for s in config.sources if s.kind in STREAM_KINDS)
