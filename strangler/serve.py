"""One proxy process, assembled: :func:`start_proxy` and the :class:`RunningProxy` it returns.

``start_proxy(config)`` builds the :class:`~strangler.runtime.Runtime` (router,
metrics listener), wires the control plane (overrides from the state store,
automatic rollback) and shadowing, then starts whichever listeners this
process serves: the data plane on a given or freshly bound socket, and the
admin app on ``admin.listen`` (or a given port). With a ``config_path`` it also
watches routes.yaml for hot reloads. ``RunningProxy.close()`` undoes all of it,
letting in-flight requests finish within a grace period. The admin app runs
on a thread of its own (:mod:`strangler.admin.server`).

It runs inside an existing event loop, so tests and ``strangler demo`` use it
in-process; :mod:`strangler.process` runs it in worker processes. It never
installs signal handlers or forks — that is the process runtime's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from strangler.admin.app import AdminExtension, SyncStatus, build_admin_app
from strangler.admin.contexts import contexts_extension
from strangler.admin.dashboard import dashboard_extension
from strangler.admin.server import AdminServer
from strangler.config import Config, split_listen
from strangler.control.cutover import Cutovers
from strangler.control.local_copy import LocalCopy, local_copy_path
from strangler.control.ownership import Owner
from strangler.control.plane import ControlPlane
from strangler.control.state import StateStore
from strangler.control.stores import open_store
from strangler.errors import StranglerError
from strangler.metrics import Metrics
from strangler.proxy.server import ProxyServer
from strangler.reload import ConfigWatcher
from strangler.routing.router import Router
from strangler.runtime import Runtime
from strangler.shadow import MatchRates, ShadowTaps, mirror_for
from strangler.shadow.api import admin_extension as shadow_admin
from strangler.shadow.store import ShadowStore
from strangler.shadow.store import open_store as open_shadow_store
from strangler.sync.drain import Drained, drain, lag_seconds
from strangler.tls import ListenerTls
from strangler.tracing import start_tracing

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 10.0
"""Seconds in-flight requests get to finish after a stop is asked for."""
ADMIN_GRACE = 3.0
"""Seconds an in-flight admin call gets to finish on stop."""
METRICS_FLUSH_EVERY = 1.0
"""Seconds between a worker's metric spool writes (the lag of summed /metrics)."""

Closer = Callable[[float], Awaitable[None]]


def bind_listener(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one), ready for any process.

    Raises StranglerError (the CLI prints it and exits 1) if the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise StranglerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


@dataclass
class RunningProxy:
    """A started proxy process part. ``close()`` stops it; safe to call twice."""

    config: Config
    runtime: Runtime
    metrics: Metrics
    control: ControlPlane
    proxy_address: tuple[str, int] | None = None
    admin_address: tuple[str, int] | None = None
    watcher: ConfigWatcher | None = None
    tls: ListenerTls | None = None
    _closers: list[Closer] = field(default_factory=list, repr=False)

    @property
    def router(self) -> Router:
        return self.runtime.router

    @property
    def proxy_url(self) -> str:
        assert self.proxy_address is not None, "this process does not serve the proxy"
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{_url_host(self.proxy_address[0])}:{self.proxy_address[1]}"

    @property
    def admin_url(self) -> str:
        assert self.admin_address is not None, "this process does not serve the admin app"
        return f"http://{_url_host(self.admin_address[0])}:{self.admin_address[1]}"

    def reload(self) -> None:
        """SIGHUP: reload routes.yaml and the listener's certificate now."""
        if self.watcher is not None:
            self.watcher.trigger()
        if self.tls is not None:
            self.tls.reload()

    async def close(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting, let in-flight requests finish (up to ``grace`` s), release all."""
        closers, self._closers = self._closers, []
        for closer in reversed(closers):
            try:
                await closer(grace)
            except Exception:  # keep closing the rest; a leak is worse than a log line
                log.exception("error while stopping %r", closer)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def start_proxy(
    config: Config,
    *,
    config_path: str | os.PathLike[str] | None = None,
    proxy: bool = True,
    proxy_sock: socket.socket | None = None,
    admin: bool = True,
    admin_port: int | None = None,
    spool_dir: Path | None = None,
    count_reloads: bool = True,
    admin_extensions: Sequence[AdminExtension] = (),
    state: StateStore | None = None,
    shadow_store: ShadowStore | None = None,
    sync_status: SyncStatus | None = None,
) -> RunningProxy:
    """Start this process's part of the proxy.

    ``proxy``/``admin`` choose the listeners; ``proxy_sock`` is a listening
    socket to serve on (else ``config.listen`` is bound); ``admin_port``
    overrides the port of ``admin.listen`` (0: a free one). ``config_path``
    enables hot reload. ``spool_dir`` shares metrics with sibling workers;
    ``count_reloads`` is off in workers so one reload is counted once.
    ``admin_extensions`` and ``sync_status`` go to the admin app (after the
    dashboard and the shadow API, which are always there). ``state`` is the state
    store to use instead of opening ``config.state`` (a ``--workers`` child gets
    the supervisor's), ``shadow_store`` likewise for shadow results."""
    tracing = start_tracing(config.tracing)  # first: without the otel extra, nothing opened
    base_dir = Path(config_path).resolve().parent if config_path is not None else None
    router = Router(config, base_dir=base_dir)
    metrics = Metrics(spool_dir)
    metrics.observe_table(router.table)
    router.on_swap.append(metrics.observe_table)
    if shadow_store is None:
        shadow_store = open_shadow_store(config.state.url, config.state.namespace)
    rates = MatchRates(shadow_store)
    store = state if state is not None else open_store(config.state)
    copy_path = local_copy_path(config.state, store.url) if store.shared else None
    control = ControlPlane(
        router,
        store,
        match_rate=rates,
        metrics=metrics,
        audit_entries=config.admin.audit_entries,
        local_copy=(LocalCopy(copy_path, store.url, config.state.namespace) if copy_path else None),
        on_source=metrics.state_source,
    )
    on_comparison: Callable[[str, bool, int], None] = control.rollback.record_comparison
    if tracing is not None:
        rollback_feed, span_feed = on_comparison, tracing.comparison

        def both(route: str, matched: bool, count: int) -> None:
            rollback_feed(route, matched, count)
            span_feed(route, matched, count)

        on_comparison = both
    mirror = mirror_for(router, shadow_store, metrics=metrics, on_comparison=on_comparison)
    runtime = Runtime(
        router,
        listeners=(metrics.listener, control.rollback.record),
        shadow=ShadowTaps(mirror),
        metrics=metrics,
        shadow_match_rate=rates,
        hold=control.hold,
        tracer=tracing,
    )
    running = RunningProxy(config, runtime, metrics, control)
    try:
        if tracing is not None:  # closed last: the spans of the last requests are exported
            closing = tracing

            async def stop_tracing(grace: float) -> None:
                await asyncio.to_thread(closing.close)

            running._closers.append(stop_tracing)
        await control.start()
        running._closers.append(lambda grace: control.stop())

        rates_task = asyncio.create_task(rates.run(), name="strangler-shadow-rates")
        results = shadow_store

        async def stop_shadow(grace: float) -> None:
            await _cancel(rates_task)
            await mirror.close()  # the last results are flushed to the store
            await results.close()

        running._closers.append(stop_shadow)

        if spool_dir is not None:
            flusher = asyncio.create_task(_flush_metrics(metrics), name="strangler-metrics")

            async def stop_flusher(grace: float) -> None:
                await _cancel(flusher)
                metrics.flush()

            running._closers.append(stop_flusher)

        if config_path is not None:
            watcher = ConfigWatcher(config_path, router, metrics if count_reloads else None)
            watcher.start()
            running.watcher = watcher
            running._closers.append(lambda grace: watcher.stop())

        if admin:
            host, port = split_listen(config.admin.listen)
            app = build_admin_app(
                runtime,
                control,
                metrics=metrics,
                extensions=[
                    dashboard_extension(),
                    shadow_admin(shadow_store),
                    contexts_extension(_cutovers(control, metrics, base_dir)),
                    *admin_extensions,
                ],
                sync_status=sync_status,
                plane_loop=asyncio.get_running_loop(),
            )
            admin_sock = bind_listener(host, port if admin_port is None else admin_port)
            # On its own thread and loop: no admin call can stall proxied requests. Admin
            # calls are short; do not let a stuck one hold up a stop for long.
            admin_server = AdminServer(app, admin_sock, shutdown_timeout=ADMIN_GRACE)
            await admin_server.start()
            running.admin_address = admin_sock.getsockname()[:2]
            running._closers.append(admin_server.stop)

        if proxy:
            if proxy_sock is None:
                proxy_sock = bind_listener(*split_listen(config.listen))
            tls = ListenerTls(config.tls, base_dir) if config.tls is not None else None
            server = ProxyServer(runtime)
            await server.start(proxy_sock, ssl=tls.context if tls is not None else None)
            running.proxy_address = proxy_sock.getsockname()[:2]
            running._closers.append(server.close)
            if tls is not None:
                running.tls = tls
                tls.start()
                running._closers.append(tls.stop)
    except BaseException:
        await running.close(0)
        raise
    return running


def _cutovers(control: ControlPlane, metrics: Metrics, base_dir: Path | None) -> Cutovers:
    """The cutover runner, draining through the databases ``sync:`` names (relative
    SQLite paths are relative to routes.yaml)."""

    async def drain_here(
        config: Config, context: str, owner: Owner, timeout: float, *, cutover: str
    ) -> Drained:
        return await drain(config, context, owner, timeout, base_dir=base_dir, cutover=cutover)

    async def lag_here(config: Config, context: str, owner: Owner) -> float:
        # Bounded just past max_lag: a stopped worker is refused quickly, not in 10 s.
        limit = config.contexts[context].max_lag + 0.5
        return await lag_seconds(config, context, owner, limit=limit, base_dir=base_dir)

    return Cutovers(control, drain_here, lag_here, metrics)


async def _flush_metrics(metrics: Metrics) -> None:
    while True:
        await asyncio.sleep(METRICS_FLUSH_EVERY)
        # In the loop thread on purpose: the counters are mutated here without a lock,
        # and a spool file is a few KB written to the page cache.
        metrics.flush()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
