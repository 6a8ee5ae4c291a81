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
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from strangler.sync import rowpos
from strangler.sync.model import Position
from strangler.sync_config import SLOT_KINDS, ColumnMap, SyncConfig


class Highs:
    """Per exclusive target table of one sink: a position no stored entry exceeds."""

    def __init__(self, tables: Iterable[str] = ()) -> None:
        self.tables = frozenset(tables)
        self._top: dict[str, Position] = {}

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

    def forget(self) -> None:
        self._top.clear()


def exclusive_tables(config: SyncConfig) -> dict[str, frozenset[str]]:
    """Target name -> its tables that only one ``debezium`` or ``pgoutput`` source writes
    (see above)."""
    kinds = {s.name: s.kind for s in config.sources}
    forward = [s.name for s in config.sources if s.name not in config.reverse_sources()]
    writers: dict[tuple[str, str], set[str | None]] = {}
    """(target, table) -> the sources that may write it; None: one that cannot be named."""
    unsafe_targets = {m.reverse.target for m in config.tables if m.reverse is not None}
    for mapping in config.tables:
        maps = mapping.adapter if isinstance(mapping.adapter, tuple) else (mapping.adapter,)
        if not all(isinstance(m, ColumnMap) for m in maps):
            unsafe_targets.add(mapping.target)
            continue
        sources = [mapping.from_source] if mapping.from_source else forward
        for cmap in maps:
            assert isinstance(cmap, ColumnMap)
            slot = writers.setdefault((mapping.target, cmap.table), set())
            slot.update(sources if len(sources) == 1 else [None])
    out: dict[str, set[str]] = {}
    for (target, table), found in writers.items():
        if target in unsafe_targets or len(found) != 1:
            continue
        (source,) = found
        if source is not None and kinds.get(source) in SLOT_KINDS:
            out.setdefault(target, set()).add(table)
    return {target: frozenset(tables) for target, tables in out.items()}
