"""The proxy's public listener: ``ProxyServer`` serves HTTP/1.1 on a bound socket.

The process runtime (``strangler serve``) binds the socket (shared between
workers), builds a :class:`~strangler.runtime.Runtime` (the data plane's
:class:`~strangler.proxy.exchange.Host`), and calls
``await ProxyServer(runtime).start(sock)``; on SIGTERM it calls
``await server.close(grace)``. Everything per request happens in
:mod:`strangler.proxy.connection` (parsing), :mod:`strangler.proxy.dispatch`
(routing, strategies) and :mod:`strangler.proxy.forwarding` (policy); this
module only owns the listener, the set of live connections, the idle sweep
(``limits.client_idle_timeout``) and graceful shutdown.

It never reads files or the environment; the config comes from
``runtime.router.config`` and follows reloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from ssl import SSLContext
from time import monotonic

from strangler.config import Config, LimitsConfig
from strangler.proxy.accesslog import AccessLog
from strangler.proxy.connection import ClientConnection
from strangler.proxy.dispatch import Dispatcher
from strangler.proxy.exchange import Host
from strangler.proxy.forwarding import Forwarder
from strangler.proxy.request import ProxyRequest

SWEEP_INTERVAL = 1.0


class ProxyServer:
    def __init__(self, runtime: Host) -> None:
        self.runtime = runtime
        self.connections: set[ClientConnection] = set()
        self.closing = False
        self._server: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._forwarder: Forwarder | None = None
        self.dispatch: Callable[[ClientConnection, ProxyRequest], None] = _not_started
        """Where connections hand parsed requests: the dispatcher's ``start``."""
        self.access_log: AccessLog | None = None
        """One JSON line per request when ``access_log:`` is set (read at start)."""

    @property
    def config(self) -> Config:
        """The current config (follows reloads): upstreams, limits, legacy."""
        return self.runtime.router.config

    @property
    def limits(self) -> LimitsConfig:
        return self.runtime.router.table.config.limits

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "ProxyServer.start() first"
        return self._loop

    @property
    def forwarder(self) -> Forwarder:
        assert self._forwarder is not None, "ProxyServer.start() first"
        return self._forwarder

    @property
    def port(self) -> int:
        """The port the listener is bound to (handy with port 0)."""
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, sock: socket.socket, ssl: SSLContext | None = None) -> None:
        """Serve on an already-bound (listening or not) TCP socket (TLS with ``ssl``)."""
        self._loop = asyncio.get_running_loop()
        self._forwarder = Forwarder(self._loop)
        self.dispatch = Dispatcher(self.runtime, self._forwarder).start
        target = self.config.access_log
        if target is not None:
            self.access_log = AccessLog(target, self._loop)
        sock.setblocking(False)
        self._server = await self._loop.create_server(
            lambda: ClientConnection(self), sock=sock, backlog=1024, ssl=ssl
        )
        self._sweeper = self._loop.create_task(self._sweep())

    async def _sweep(self) -> None:
        """Close keep-alive connections idle for longer than ``client_idle_timeout``."""
        while True:
            timeout = self.limits.client_idle_timeout
            await asyncio.sleep(min(SWEEP_INTERVAL, max(timeout / 4, 0.05)))
            now = monotonic()
            for conn in list(self.connections):
                conn.close_if_idle(now, timeout)

    async def close(self, grace: float = 10.0) -> None:
        """Stop accepting; let in-flight requests finish for up to ``grace`` seconds.
        A request still waiting for its answer then gets a 503 (never a cut connection
        when nothing of an answer went out yet); the rest are closed."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        deadline = self.loop.time() + grace
        while True:
            busy = False
            for conn in list(self.connections):
                if conn.active is None and conn.tunnel is None:
                    conn.close_if_idle(float("inf"), 0.0)
                else:
                    busy = True
            if not busy or self.loop.time() >= deadline:
                break
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.shut_down()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._forwarder is not None:
            self._forwarder.upstreams.close()
        if self.access_log is not None:
            self.access_log.close()
            self.access_log = None
        if self._server is not None:
            await self._server.wait_closed()


def _not_started(client: ClientConnection, req: ProxyRequest) -> None:
    raise RuntimeError("ProxyServer.start() first")


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket (SO_REUSEPORT when several workers share the port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock
