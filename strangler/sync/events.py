"""Change events and row writes: the values that flow through CDC.

A source turns Debezium envelopes into ``ChangeEvent``s; a ``RowAdapter`` maps one
legacy row change into zero or more writes to the service's model; the sink applies
them. Compiled with the per-event path (mypyc); import these from ``model.py``, which
adds the adapter protocol. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Op = Literal["c", "u", "d", "r", "t"]


@dataclass(frozen=True, order=True)
class Position:
    """Where an event sits in its source's order; compares across one source only.

    For PostgreSQL sources ``(commit_lsn, lsn)``; for Kafka ``(partition-local offset)``
    is kept separately as the resume point while rows keep the source order.
    """

    commit: int
    seq: int

    def __str__(self) -> str:
        return f"{self.commit}/{self.seq}"


@dataclass(frozen=True)
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

    @property
    def row(self) -> Mapping[str, Any]:
        """The row's latest image (``after``, or ``before`` for a delete)."""
        return self.after if self.after is not None else (self.before or {})


@dataclass(frozen=True)
class RowUpsert:
    table: str
    key: Mapping[str, Any]
    values: Mapping[str, Any]
    """Columns to write (not including the key). Omitted columns are left alone."""


@dataclass(frozen=True)
class RowDelete:
    table: str
    key: Mapping[str, Any]


RowWrite = RowUpsert | RowDelete
