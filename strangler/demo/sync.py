"""The demo's CDC worker: the real sync worker (``strangler sync``) as a task in the demo's loop.

It runs the ``sync:`` section of the demo's routes.yaml: the SQLite capture
source snapshots the monolith's ``customer`` table, then streams its changes
through ``adapters.customers:CustomerRows`` into the customers service's
database. Its status listener (``/api/sync``, ``/metrics``) is served on
``sync.listen`` like the standalone worker's. This module only starts, stops
and reads the worker; it never writes to either database itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from strangler.config import split_listen
from strangler.errors import SyncError
from strangler.metrics import Metrics
from strangler.sync.api import build_sync_app
from strangler.sync.direction import OwnerReader
from strangler.sync.drift import Report as VerifyReport
from strangler.sync.sources.sqlite import SqliteSourceOptions, change_count
from strangler.sync.verify import Verifier
from strangler.sync.worker import Worker
from strangler.sync_config import SyncConfig


class DemoSync:
    def __init__(
        self,
        config: SyncConfig,
        base_dir: Path,
        contexts: Mapping[str, Sequence[str]] | None = None,
        owners: OwnerReader | None = None,
    ) -> None:
        self.config = config
        self.base_dir = base_dir
        self.worker = Worker(
            config, base_dir=base_dir, metrics=Metrics(), contexts=contexts, owners=owners
        )
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        self._task = asyncio.create_task(self.worker.run(self._stop), name="demo-sync")
        app = build_sync_app(self.worker.status_document, self.worker.metrics)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        host, port = split_listen(self.config.listen)
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout=10)
        if self._runner is not None:
            await self._runner.cleanup()

    def _captured(self) -> dict[str, Path]:
        """Source name -> the SQLite file whose change table it drains."""
        out = {}
        for source in self.config.sources:
            options = source.parsed_options()
            if isinstance(options, SqliteSourceOptions):
                path = Path(options.database)
                out[source.name] = path if path.is_absolute() else self.base_dir / path
        return out

    async def wait_caught_up(self, timeout: float = 120.0) -> float:
        """Wait until every source has applied every change captured so far; returns seconds.

        "Caught up" is measured, not assumed. For the SQLite source: the worker's stored
        offset has reached the newest change id in the monolith's change table. For the
        other sources (whose log position the demo cannot read as cheaply): every source
        is idle and ``verify`` finds the service's rows equal to the monolith's."""
        started = time.monotonic()
        captured = self._captured()
        only_sqlite = len(captured) == len(self.worker.status)
        targets = {
            name: await asyncio.to_thread(change_count, path) for name, path in captured.items()
        }
        verified: Verified | None = None
        while time.monotonic() - started < timeout:
            if self._task is not None and self._task.done():
                raise SyncError(f"the sync worker stopped: {self._task.exception()!r}")
            statuses = self.worker.status
            done = all(s.caught_up for s in statuses.values()) and all(
                statuses[name].offsets.get("changes", -1) >= upto for name, upto in targets.items()
            )
            if done and only_sqlite:
                return time.monotonic() - started
            if done:
                verified = await self.verify(lag_window=0)
                if verified.aligned:
                    return time.monotonic() - started
            await asyncio.sleep(0.05 if only_sqlite else 1.0)
        drift = f"; verify still finds: {verified}" if verified is not None else ""
        raise SyncError(
            f"the sync worker did not catch up within {timeout:g}s: {self.status()}{drift}"
        )

    def status(self) -> dict[str, Any]:
        return self.worker.snapshot()

    async def api_status(self) -> dict[str, Any]:
        """The worker's status for the proxy's admin listener (``GET /api/sync``)."""
        return await self.worker.status_document()

    async def summary(self) -> list[str]:
        snap = await self.worker.status_document()
        lines = []
        for source in snap["sources"]:
            lines.append(
                f"sync source {source['name']} ({source['kind']}): {source['state']}, "
                f"applied {source['applied']}, stale {source['stale']}, "
                f"dead-lettered {source['dead_letter']}, lag {source['lag_seconds']}s"
            )
        return lines

    async def verify(self, lag_window: float = 1.0) -> Verified:
        """``strangler verify`` over the demo's sync config: monolith rows through the
        data adapter against the service's rows (in-flight rows re-checked after 1s)."""
        report = await asyncio.to_thread(
            Verifier(self.config, self.base_dir).run, lag_window=lag_window
        )
        return Verified(report)


@dataclass(frozen=True)
class Verified:
    report: VerifyReport

    @property
    def aligned(self) -> bool:
        return not self.report.drift and not self.report.unmappable

    def __str__(self) -> str:
        r = self.report
        text = (
            f"{r.compared:,} rows compared, {r.count('missing')} missing, "
            f"{r.count('extra')} extra, {r.count('different')} different"
        )
        if r.unmappable:
            text += f", {len(r.unmappable)} unmappable"
        if r.drift:
            text += "; first: " + "; ".join(str(d) for d in r.drift[:3])
        return text
