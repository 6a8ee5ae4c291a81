"""Change events and row writes: the values that flow through CDC.

A source turns Debezium envelopes into ``ChangeEvent``s; a ``RowAdapter`` maps one
legacy row change into zero or more writes to the service's model; the sink applies
them. Compiled with the per-event path (mypyc); import these from ``model.py``, which
adds the adapter protocol. Nothing here does I/O.

Each is made once per event or write, so each is built for that: dataclasses with a
written ``__init__`` (and ``Position`` its comparisons), which mypyc compiles to plain
stores and reads (a frozen dataclass's generated ``__init__`` sets each field through
``object.__setattr__``: 5.5 µs for a ``ChangeEvent``; its generated comparisons build
tuples). They are not frozen, so nothing stops an assignment at run time; none is
ever changed after it is made (the sink relies on it): make a changed copy with
``dataclasses.replace``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Op = Literal["c", "u", "d", "r", "t"]


@dataclass(eq=False)
class Position:
    """Where an event sits in its source's order; compares across one source only.

    For PostgreSQL sources ``(commit_lsn, lsn)``; for Kafka ``(partition-local offset)``
    is kept separately as the resume point while rows keep the source order.
    Ordered by ``commit``, then ``seq``; equal positions hash alike.
    """

    commit: int
    seq: int

    def __init__(self, commit: int, seq: int) -> None:
        self.commit = commit
        self.seq = seq

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Position):
            return NotImplemented
        return self.commit == other.commit and self.seq == other.seq

    def __hash__(self) -> int:
        return hash((self.commit, self.seq))

    def __lt__(self, other: Position) -> bool:
        return self.commit < other.commit or (self.commit == other.commit and self.seq < other.seq)

    def __le__(self, other: Position) -> bool:
        return self.commit < other.commit or (self.commit == other.commit and self.seq <= other.seq)

    def __gt__(self, other: Position) -> bool:
        return other < self

    def __ge__(self, other: Position) -> bool:
        return other <= self

    def __str__(self) -> str:
        return f"{self.commit}/{self.seq}"


@dataclass
class ChangeEvent:
    source: str
    """Name of the source in the ``sync:`` config."""
    table: str
    """Fully qualified source table, e.g. ``public.customer``."""
    op: Op
    key: Mapping[str, Any]
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    position: Position
    ts_ms: int
    tx_id: int | None = None
    snapshot: bool = False
    old_key: Mapping[str, Any] | None = None
    """For a primary-key change: the key the row had before (``__debezium.oldkey``
    header, or an update whose ``before`` key differs); the sink deletes it in the
    same transaction as it writes the new key."""
    unavailable: frozenset[str] = frozenset()
    """Columns whose value Debezium did not send (unchanged TOAST); they are absent
    from ``after`` and must be left alone in the target, never overwritten."""

    def __init__(
        self,
        source: str,
        table: str,
        op: Op,
        key: Mapping[str, Any],
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        position: Position,
        ts_ms: int,
        tx_id: int | None = None,
        snapshot: bool = False,
        old_key: Mapping[str, Any] | None = None,
        unavailable: frozenset[str] = frozenset(),
    ) -> None:
        self.source = source
        self.table = table
        self.op = op
        self.key = key
        self.before = before
        self.after = after
        self.position = position
        self.ts_ms = ts_ms
        self.tx_id = tx_id
        self.snapshot = snapshot
        self.old_key = old_key
        self.unavailable = unavailable

    @property
    def row(self) -> Mapping[str, Any]:
        """The row's latest image (``after``, or ``before`` for a delete)."""
        return self.after if self.after is not None else (self.before or {})


@dataclass
class RowUpsert:
    table: str
    key: Mapping[str, Any]
    values: Mapping[str, Any]
    """Columns to write (not including the key). Omitted columns are left alone."""

    def __init__(self, table: str, key: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        self.table = table
        self.key = key
        self.values = values


@dataclass
class RowDelete:
    table: str
    key: Mapping[str, Any]

    def __init__(self, table: str, key: Mapping[str, Any]) -> None:
        self.table = table
        self.key = key


RowWrite = RowUpsert | RowDelete
