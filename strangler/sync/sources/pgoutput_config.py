"""Options of the ``pgoutput`` source: PostgreSQL's own logical replication stream,
read by the worker itself (no Java, no Kafka).

The ``options:`` mapping of a ``kind: pgoutput`` source in the ``sync:`` section.
Pure values: nothing here connects anywhere.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from strangler.sync.sources.pg_options import SlotOptions
from strangler.units import Duration


class PgoutputOptions(SlotOptions):
    """``options:`` of a ``kind: pgoutput`` source (``database`` and ``tables``: see
    ``SlotOptions``)."""

    slot: str | None = None
    """Replication slot name (default ``strangler_<source name>``)."""
    publication: str | None = None
    """Publication name (default ``strangler_<source name>``; created for the safe tables)."""
    snapshot: Literal["bulk", "never"] = "bulk"
    """``bulk``: strangler's initial load (COPY, parallel chunks; ``snapshot.py``) before
    streaming; ``never``: stream changes from the slot's start only."""
    load_parallel: int = Field(2, ge=1, le=32)
    """With ``snapshot: bulk``: chunks loaded at once."""
    load_chunk_rows: int = Field(100_000, ge=1000)
    """With ``snapshot: bulk``: rows per chunk (the unit of progress after a crash)."""
    max_batch_size: int = Field(4096, ge=1)
    """Changes read ahead of the worker at most: with this many waiting, the reader
    stops reading until the worker takes them (batches are ``sync.batch_size``)."""
    poll_interval_ms: int = Field(20, ge=0, le=10_000)
    """Once a change is there, how long the worker waits for more before it writes a
    batch (fewer, larger transactions in the target for a few ms of lag; 0: none)."""
    heartbeat: Duration = 1.0
    """How often the worker bumps its row in the monolith's ``strangler_heartbeat`` to
    measure lag honestly (0: off; then lag is only known while events flow)."""
    status_interval: Duration = 10.0
    """Seconds between standby status messages to the server when nothing else is sent
    (keep it under the server's ``wal_sender_timeout``)."""
