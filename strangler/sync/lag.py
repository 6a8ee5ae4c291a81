"""Honest lag: a heartbeat row written into the monolith and read back from the stream.

Every ``interval`` the worker bumps its row in ``strangler_heartbeat`` (a small table of
strangler's own in the monolith, captured like any table). The change travels through
the WAL behind every change committed before it, so when the worker applies a batch
holding it, everything committed before it was written has been applied. From that:

- **lag** is how old the oldest change still on its way is, by the monolith's clock:
  ``now - written`` of the oldest heartbeat not back yet; while the worker is applying
  changes older than that heartbeat (a backlog, e.g. after a restart), ``now - ts`` of
  the last change applied, which is larger. With every heartbeat back, the last
  heartbeat's own trip. Before the first heartbeat came back: unknown (None).
  Just after a start, before anything came back, it is at least the age of the last
  heartbeat the targets had applied (stored with the offsets as ``heartbeat_ms``).
- **caught_up** is true only when a heartbeat written since the worker started has
  come back and the lag is under ``CAUGHT_UP`` seconds — never merely because no
  event arrived for a while (Debezium goes quiet between its batches too).

The monolith's clock is read with every write (``clock_timestamp()``), so a skewed
worker clock does not skew the lag. ``Heartbeat`` does the I/O (a thread's job);
``LagTracker`` is pure bookkeeping. A drain can use the same write: the heartbeat
returned by ``write`` is applied once ``LagTracker.seen`` says so.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg

from strangler.errors import SyncError
from strangler.sync.keys import libpq_url
from strangler.sync.model import ChangeEvent

TABLE = "strangler_heartbeat"
QUALIFIED = f"public.{TABLE}"
HEARTBEAT_OFFSET = "heartbeat_ms"
"""Key of the last applied heartbeat's ``written_ms`` among a source's stored offsets."""
_BEAT_TABLES = frozenset({QUALIFIED, TABLE})
CAUGHT_UP = 1.0
"""Seconds of lag under which a source counts as caught up."""

_CREATE = f"""
CREATE TABLE IF NOT EXISTS public.{TABLE} (
    source text PRIMARY KEY,
    beat bigint NOT NULL,
    written_ms bigint NOT NULL
)"""

_BEAT = f"""
INSERT INTO public.{TABLE} (source, beat, written_ms)
VALUES (%s, 1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
ON CONFLICT (source) DO UPDATE
   SET beat = {TABLE}.beat + 1, written_ms = EXCLUDED.written_ms
RETURNING beat, written_ms"""


@dataclass(frozen=True)
class Beat:
    number: int
    written: float
    """When it was written, in the worker's clock (seconds since the epoch)."""


class Heartbeat:
    """Writes one source's heartbeat row in a PostgreSQL monolith (blocking calls)."""

    def __init__(self, source: str, url: str, interval: float) -> None:
        self.source = source
        self.url = libpq_url(url)
        self.interval = interval
        self.offset = 0.0
        """Monolith clock minus worker clock, seconds (measured at every write)."""
        self._conn: psycopg.Connection[Any] | None = None

    def ensure_table(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
                conn.execute(_CREATE)
        except psycopg.Error as exc:
            raise SyncError(f"heartbeat table in the monolith: {exc}".strip()) from exc

    def write(self) -> Beat:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            before = time.time()
            row = self._conn.execute(_BEAT, (self.source,)).fetchone()
            after = time.time()
        except psycopg.Error as exc:
            self.close()
            raise SyncError(f"heartbeat: {exc}".strip()) from exc
        assert row is not None
        self.offset = int(row[1]) / 1000 - (before + after) / 2
        return Beat(int(row[0]), int(row[1]) / 1000 - self.offset)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class LagTracker:
    """Lag and caught-up of one source from heartbeats and applied events (no I/O)."""

    def __init__(self, source: str, resumed_ms: int | None = None) -> None:
        self.source = source
        self.offset = 0.0
        self._resumed_ms = resumed_ms
        """``written_ms`` of the last heartbeat the targets applied before this start
        (stored with the offsets as ``heartbeat_ms``): everything older is applied."""
        self._outstanding: deque[Beat] = deque()
        self._seen_any = False
        self._trip = 0.0
        self._event_ts: float | None = None
        self._event_applied = 0.0

    def wrote(self, beat: Beat, offset: float) -> None:
        self.offset = offset
        self._outstanding.append(beat)

    def applied(self, events: Iterable[ChangeEvent], now: float | None = None) -> None:
        """A batch holding ``events`` is committed in the targets."""
        now = time.time() if now is None else now
        last_ts = 0
        for event in events:  # once per change: the test inlined, no call
            table = event.table
            if table in _BEAT_TABLES:
                if (event.after or {}).get("source") == self.source:
                    self.seen(int((event.after or {}).get("beat") or 0), now)
            elif event.ts_ms:
                last_ts = event.ts_ms
        if last_ts:
            self._event_ts = last_ts / 1000 - self.offset
            self._event_applied = now

    def seen(self, number: int, now: float) -> bool:
        """Heartbeat ``number`` came back: drop it and every older one."""
        found = False
        while self._outstanding and self._outstanding[0].number <= number:
            beat = self._outstanding.popleft()
            self._trip = max(0.0, now - beat.written)
            found = True
        self._seen_any = self._seen_any or found
        return found

    def lag(self, now: float | None = None) -> float | None:
        now = time.time() if now is None else now
        if not self._outstanding:
            if self._seen_any:
                return self._trip
            if self._resumed_ms is None:
                return None
            return max(0.0, now - self._resumed_ms / 1000 + self.offset)
        oldest = self._outstanding[0].written
        lag = now - oldest
        if self._event_ts is not None and self._event_applied >= oldest:
            # Still applying changes committed before that heartbeat: a backlog.
            lag = max(lag, now - self._event_ts)
        if not self._seen_any and self._resumed_ms is not None:
            # Just started: all we know is applied is what the targets had at the stop.
            reached = max(self._resumed_ms / 1000 - self.offset, self._event_ts or 0.0)
            lag = max(lag, now - reached)
        return max(0.0, lag)

    def caught_up(self, now: float | None = None) -> bool:
        lag = self.lag(now)
        return self._seen_any and lag is not None and lag < CAUGHT_UP


def heartbeat_ms(source: str, events: Iterable[ChangeEvent]) -> int | None:
    """``written_ms`` of the newest heartbeat of ``source`` among ``events``: stored
    with the batch's offsets so a restarted worker knows how far it had got."""
    found = [
        int((e.after or {}).get("written_ms") or 0)
        for e in events
        if e.table in _BEAT_TABLES and (e.after or {}).get("source") == source
    ]
    return max(found) if found else None
