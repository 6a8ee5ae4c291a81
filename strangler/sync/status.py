"""What ``GET /api/sync`` shows: each source's state, lag and counts, each target's
open dead letters, parked events, stopped tables and recent schema changes.

``SourceStatus`` is updated by the worker loop as it reads and applies; ``StatusBoard``
reads the targets' bookkeeping (at most every 2 s) and builds the document. Read-only
towards the databases.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from strangler.sync import ledger, rawletters, schema
from strangler.sync.lag import LagTracker
from strangler.sync.sink import Sink
from strangler.sync.source import Source

log = logging.getLogger("strangler.sync")

REFRESH = 2.0
"""Seconds between reads of the targets' bookkeeping for the status."""


@dataclass
class SourceStatus:
    name: str
    kind: str
    state: str = "starting"
    error: str | None = None
    last_ts_ms: int | None = None
    idle: bool = False
    """The source said it had nothing more (its last read returned no batch)."""
    offsets: dict[str, int] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    tracker: LagTracker | None = None
    """Heartbeat-based lag when the source has a heartbeat (``lag.py``)."""

    @property
    def caught_up(self) -> bool:
        """With a heartbeat: it came back and the lag is small (``lag.py``) — a source
        fed by heartbeats is never idle for long, so idleness says nothing. Without
        one: the source said it had nothing more."""
        return self.tracker.caught_up() if self.tracker is not None else self.idle

    def lag_seconds(self) -> float | None:
        if self.tracker is not None:
            return self.tracker.lag()
        if self.idle:
            return 0.0
        if self.last_ts_ms is None:
            return None
        return max(0.0, time.time() - self.last_ts_ms / 1000)

    def to_json(self) -> dict[str, Any]:
        lag = self.lag_seconds()
        return {
            "name": self.name,
            "kind": self.kind,
            "state": self.state,
            "error": self.error,
            "lag_seconds": None if lag is None else round(lag, 3),
            "lag_from": "heartbeat" if self.tracker is not None else "events",
            "caught_up": self.caught_up,
            "last_event_ts_ms": self.last_ts_ms,
            "offsets": dict(self.offsets),
            **{k: self.counts.get(k, 0) for k in _OUTCOMES},
            # DESIGN.md's names for the same count: events dead-lettered by this source.
            "rejected": self.counts.get("dead_letter", 0),
            "dead_lettered": self.counts.get("dead_letter", 0),
            # Of those, records that could not even be parsed (strangler_raw_dead_letters).
            "unparseable": self.counts.get("unparseable", 0),
        }


_OUTCOMES = (
    "applied",
    "stale",
    "filtered",
    "ignored",
    "parked",
    "dead_letter",
    "non_owner",
    "own_write",
)
"""``non_owner``: written by the side that does not own the context (dead-lettered);
``own_write``: the worker's own write captured back and dropped (PostgreSQL; the
SQLite triggers never capture them)."""


class StatusBoard:
    """The targets' side of the status document, cached for two seconds."""

    def __init__(self, sinks: Mapping[str, Sink]) -> None:
        self.sinks = sinks
        self._open: dict[str, dict[str, int]] = {}
        self._raw_open: dict[str, dict[str, int]] = {}
        """target -> source -> open raw dead letters (poison) it stores."""
        self._schema: dict[str, dict[str, list[dict[str, Any]]]] = {}
        """target -> stopped tables and recent schema changes (``schema.py``)."""
        self._open_checked = -REFRESH

    def refresh(self) -> None:
        """Read every target's open dead letters, parked events and schema changes
        (blocking: a running worker calls it in a thread, see ``Worker.status_document``)."""
        self._open_checked = time.monotonic()
        for name, sink in self.sinks.items():
            try:
                with sink.engine.connect() as conn:
                    self._open[name] = ledger.counts(conn)
                    self._raw_open[name] = rawletters.raw_counts_by_source(conn)
                    self._schema[name] = {
                        "stopped_tables": schema.stopped_list(conn),
                        "schema_changes": schema.recent(conn),
                    }
            except Exception:  # status must answer even when a target is down
                log.debug("cannot read open counts of %s", name, exc_info=True)

    def stale(self) -> bool:
        """The counts were read more than ``REFRESH`` seconds ago."""
        return time.monotonic() - self._open_checked > REFRESH

    def open_counts(self) -> dict[str, dict[str, int]]:
        """Open dead letters / parked events per target, as last read."""
        return dict(self._open)

    def snapshot(
        self, status: Mapping[str, SourceStatus], running: Mapping[str, Source]
    ) -> dict[str, Any]:
        """The ``GET /api/sync`` document."""
        targets = self.open_counts()
        sources = [s.to_json() for s in status.values()]
        for entry in sources:
            # Tables a source left out because capturing them would be unsafe.
            refused = getattr(running.get(entry["name"]), "refused", ())
            entry["refused_tables"] = [{"table": k.table, "problem": k.problem} for k in refused]
            # Stored, so it survives restarts; every target holds a copy of each poison
            # record, hence the largest rather than the sum.
            entry["unparseable_open"] = max(
                (c.get(entry["name"], 0) for c in self._raw_open.values()), default=0
            )
        return {
            "sources": sources,
            "targets": [
                {"name": n, **c, **self._schema.get(n, {})} for n, c in sorted(targets.items())
            ],
            "totals": {
                "applied": sum(s["applied"] for s in sources),
                "stale": sum(s["stale"] for s in sources),
                "rejected": sum(s["dead_letter"] for s in sources),
                "non_owner": sum(s["non_owner"] for s in sources),
                "own_write": sum(s["own_write"] for s in sources),
                "dead_lettered": sum(c.get("dead_lettered", 0) for c in targets.values()),
                "parked": sum(c.get("parked", 0) for c in targets.values()),
            },
        }
