"""``strangler sync -c routes.yaml [--retry-dead]``: run the CDC worker, or drain dead letters.

The worker runs until SIGTERM/SIGINT, then finishes and commits the batch in hand
and exits 0. Its admin listener (``sync.listen``) serves ``/api/sync``, ``/metrics``
and ``/healthz``. ``--retry-dead`` re-applies every open dead letter (after the
adapter was fixed) and the events parked behind it, prints what happened and exits
1 if any are still dead.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from strangler.config import Config, load_config, split_listen
from strangler.control.stores import open_store
from strangler.errors import ConfigError, Problem, SyncError
from strangler.metrics import Metrics
from strangler.sync import ledger
from strangler.sync.adapters import AdapterSet
from strangler.sync.api import build_sync_app
from strangler.sync.sink import Sink
from strangler.sync.sources.embedded_engine import leave_if_jvm_started
from strangler.sync.worker import Worker
from strangler.sync_config import SyncConfig


def load_sync(path: str) -> tuple[SyncConfig, Path]:
    config = load_config(path)
    if config.sync is None:
        raise ConfigError([Problem("sync", "is required to run the CDC worker")], path)
    return config.sync, Path(path).resolve().parent


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    sync, base_dir = load_sync(args.config)
    if args.retry_dead:
        return retry_dead(sync, base_dir)
    config = load_config(args.config)
    asyncio.run(serve(sync, base_dir, config))
    leave_if_jvm_started(0)  # the engines are closed: no finalisation beside a live JVM
    return 0


def retry_dead(sync: SyncConfig, base_dir: Path) -> int:
    adapters = AdapterSet(sync, base_dir)
    still_dead = 0
    for name in sync.targets:
        sink = Sink.for_target(name, sync, adapters)
        try:
            sink.setup()
            result = sink.retry_dead()
            with sink.engine.connect() as conn:
                left = ledger.counts(conn)
        finally:
            sink.close()
        still_dead += left["dead_lettered"]
        print(
            f"{name}: applied {result.total('applied')}, stale {result.total('stale')}, "
            f"still dead {left['dead_lettered']}, parked {left['parked']}"
        )
    return 1 if still_dead else 0


async def serve(sync: SyncConfig, base_dir: Path, config: Config | None = None) -> None:
    metrics = Metrics()
    # Who owns each context lives in the proxy's state store: both directions run, and
    # each change is judged by its context's owner (strangler.sync.direction).
    contexts = {n: c.tables for n, c in config.contexts.items()} if config else {}
    store = open_store(config.state) if config and contexts else None
    worker = Worker(sync, base_dir=base_dir, metrics=metrics, contexts=contexts, owners=store)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(build_sync_app(worker.status_document, metrics), handle_signals=False)
    await runner.setup()
    host, port = split_listen(sync.listen)
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise SyncError(f"cannot listen on {sync.listen}: {exc.strerror}") from exc
    print(
        f"strangler sync: {len(worker.sources)} source(s), admin on http://{sync.listen}",
        file=sys.stderr,
        flush=True,
    )
    try:
        await worker.run(stop)
    finally:
        await runner.cleanup()
        if store is not None:
            await store.close()
