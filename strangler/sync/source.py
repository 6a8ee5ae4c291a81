"""The Source protocol: where change events come from, and how a source resumes;
``build_source`` makes a configured one through its kind (``sync_config.SOURCE_KINDS``).

A source yields ``Batch``es of ``ChangeEvent``s in source order. Each batch carries
``offsets``: the resume point *after* it (Kafka ``"topic/partition" -> next offset``,
an LSN, the SQLite change id). The sink stores those offsets in the target database
in the same transaction as the batch's rows; only after that commit does the worker
call ``ack`` (e.g. commit the Kafka group offset, tell Debezium the records are
processed). On start, and on every Kafka rebalance, a source asks ``resume()`` for the
stored offsets and seeks there — the group's or engine's own bookkeeping is a hint
at best, never the truth.

A record a source cannot parse is never skipped: it travels in ``Batch.poison``
(see ``poison.py``) and is dead-lettered with the offsets that move past it.

A source must never write to a target, and must never split a primary-key change
(a delete carrying ``new_key`` followed by its create carrying ``old_key``) across
two batches when both are already in hand.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from strangler.errors import SyncError
from strangler.sync.envelope import TypeRegistry
from strangler.sync.model import ChangeEvent
from strangler.sync.poison import Poison
from strangler.sync_config import SOURCE_KINDS, SourceConfig, SyncConfig

ResumeLookup = Callable[[], Mapping[str, int]]
"""Returns the offsets stored in the target(s) for this source (empty: start fresh).

Synchronous and cheap enough to call from a Kafka rebalance callback."""


@dataclass(frozen=True)
class Batch:
    """Events in source order plus the resume point after the last of them.

    ``events`` may be empty when only offsets moved (tombstones, heartbeats, ``op=m``).
    ``poison``: records of this stretch that could not be parsed; the sink dead-letters
    them with the offsets (a source never skips one)."""

    events: Sequence[ChangeEvent]
    offsets: Mapping[str, int] = field(default_factory=dict)
    poison: Sequence[Poison] = ()


@runtime_checkable
class Source(Protocol):
    """One configured source (``sync.sources[].name``). Used by one worker task."""

    name: str

    async def start(self, resume: ResumeLookup) -> None:
        """Connect and seek to ``resume()``; snapshot first if it is empty and the
        source supports snapshots. Raises ``SyncError`` if the source is unreachable."""
        ...

    async def next_batch(self, max_events: int) -> Batch | None:
        """Up to ``max_events`` events; ``None`` when nothing arrived within a short
        poll interval (at most about a second, so a stop request is honoured soon)."""
        ...

    async def ack(self, batch: Batch) -> None:
        """The batch and its offsets are committed in the target; release it upstream."""
        ...

    async def close(self) -> None: ...


def type_registry(config: SyncConfig) -> TypeRegistry:
    """Source table -> column kinds declared in ``sync.tables[].types``."""
    return {m.source: m.types for m in config.tables if m.types}


def build_source(config: SourceConfig, sync: SyncConfig, base_dir: Path | None = None) -> Source:
    """Build a configured source through its kind's module (``SOURCE_KINDS``)."""
    try:
        module = importlib.import_module(SOURCE_KINDS[config.kind].module)
    except ImportError as exc:
        raise SyncError(
            f"source {config.name}: kind {config.kind} is not available: {exc}"
        ) from exc
    source: Source = module.build(config, sync=sync, base_dir=base_dir, types=type_registry(sync))
    return source
