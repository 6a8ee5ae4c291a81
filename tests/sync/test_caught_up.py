"""``caught_up`` of a source with a heartbeat: from the heartbeat, not from silence.

A Debezium stream carrying the worker's heartbeat (every second) and the monolith's
traffic is hardly ever silent for the half second that made the worker call a source
idle. Found from outside: the demo on the local stack waited on that idleness and
timed out, its verify having run once, before the snapshot arrived. A source whose
heartbeats come back quickly is caught up however busy it is; one whose heartbeats
do not come back is not, however quiet.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from strangler.sync.lag import QUALIFIED, Beat
from strangler.sync.model import ChangeEvent, Position
from strangler.sync.source import Batch, ResumeLookup
from strangler.sync.worker import Worker
from strangler.sync_config import SyncConfig


class FakeHeartbeat:
    """The monolith's heartbeat row, kept in memory (``lag.Heartbeat``'s interface)."""

    def __init__(self) -> None:
        self.interval = 0.1
        self.offset = 0.0
        self.written: list[Beat] = []

    def write(self) -> Beat:
        beat = Beat(len(self.written) + 1, time.time())
        self.written.append(beat)
        return beat

    def close(self) -> None:
        pass


class BusySource:
    """Never returns an empty read: every 0.05 s a batch, carrying the newest heartbeat
    once ``delay`` seconds have passed since it was written (or nothing, then)."""

    def __init__(self, delay: float) -> None:
        self.name = "mono"
        self.heartbeat = FakeHeartbeat()
        self.delay = delay
        self.seq = 0

    async def start(self, resume: ResumeLookup) -> None:
        pass

    async def next_batch(self, max_events: int) -> Batch | None:
        await asyncio.sleep(0.05)
        self.seq += 1
        due = [b for b in self.heartbeat.written if time.time() - b.written >= self.delay]
        if not due:
            return Batch([], {"lsn": self.seq})
        beat = due[-1]
        after = {"source": "mono", "beat": beat.number, "written_ms": int(beat.written * 1000)}
        event = ChangeEvent("mono", QUALIFIED, "u", {"source": "mono"}, None, after,
                            Position(self.seq, self.seq), int(time.time() * 1000))  # fmt: skip
        return Batch([event], {"lsn": self.seq})

    async def ack(self, batch: Batch) -> None:
        pass

    async def close(self) -> None:
        pass


def config(tmp_path: Path) -> SyncConfig:
    return SyncConfig.model_validate({
        "sources": [{"name": "mono", "kind": "sqlite", "options": {"database": "unused.db",
                                                                  "tables": ["customers"]}}],
        "targets": {"svc": f"sqlite:///{tmp_path / 'svc.db'}"},
        "tables": [{"source": "customers", "target": "svc",
                    "adapter": {"table": "people", "key": ["id"]}}],
    })  # fmt: skip


async def sample(tmp_path: Path, delay: float, seconds: float) -> list[bool]:
    source = BusySource(delay)
    worker = Worker(config(tmp_path), sources={"mono": source})
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    seen: list[bool] = []
    try:
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            await asyncio.sleep(0.05)
            seen.append(worker.status["mono"].caught_up)
            assert worker.snapshot()["sources"][0]["caught_up"] == seen[-1]
    finally:
        stop.set()
        await task
    return seen


async def test_a_busy_source_whose_heartbeats_come_back_is_caught_up(tmp_path: Path) -> None:
    seen = await sample(tmp_path, delay=0.0, seconds=3.0)
    assert any(seen), "never caught up although every heartbeat came back at once"
    assert seen[-10:] == [True] * 10


async def test_a_source_whose_heartbeats_do_not_come_back_is_not(tmp_path: Path) -> None:
    seen = await sample(tmp_path, delay=60.0, seconds=1.5)
    assert not any(seen)
