"""One client connection: llhttp request parsing, keep-alive, pipelining, back-pressure.

``ClientConnection`` is the asyncio Protocol behind the public listener. The
``httptools`` parser calls back as bytes arrive; when a request head is
complete it becomes a :class:`ProxyRequest` and is handed to the dispatcher.
Requests on one connection are answered strictly in order (pipelined heads wait
in a short queue).

What is refused while parsing (431, 400, 413, and the bad ``Host``, HTTP/0.9,
trailers, ``X-Strangler-*`` and ``X-Request-Id`` rules) is
:mod:`strangler.proxy.parsing`'s, which this class inherits; it is answered here,
in order, and never sent upstream.

It never decides routing and never buffers a body itself (``RequestBody`` does,
bounded). Idle keep-alive connections, and clients that stopped reading their
answer for longer than ``limits.client_idle_timeout``, are closed by the
server's sweep.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from time import monotonic
from typing import Any, Protocol, cast

import httptools

from strangler.config import LimitsConfig
from strangler.proxy.accesslog import AccessLog
from strangler.proxy.parsing import RequestParsing
from strangler.proxy.request import ProxyRequest
from strangler.proxy.responses import CONTINUE, error_response
from strangler.proxy.upstream import UpstreamConnection
from strangler.proxy.upstream_target import set_nodelay

log = logging.getLogger(__name__)

_MAX_PIPELINED = 32


class Listener(Protocol):
    """What a client connection needs from the server that accepted it."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def limits(self) -> LimitsConfig: ...

    closing: bool
    connections: set[ClientConnection]
    access_log: AccessLog | None
    dispatch: Callable[[ClientConnection, ProxyRequest], None]
    """Start answering a parsed request (the connection's active one)."""


class InFlight(Protocol):
    """A request answered on callbacks only (the fast path): told when its client leaves."""

    def client_gone(self) -> None: ...


class ClientConnection(RequestParsing, asyncio.Protocol):
    def __init__(self, server: Listener) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.ip = ""
        self.ip_bytes = b""
        self.scheme = b"http"
        """How the client reached the listener (``https`` over TLS): X-Forwarded-Proto."""
        self.last_active = 0.0
        self.active: ProxyRequest | None = None
        self._task: asyncio.Task[None] | None = None
        self.fast: InFlight | None = None
        self._pending: deque[ProxyRequest] = deque()
        self._ready: list[ProxyRequest] = []
        self._upstream: UpstreamConnection | None = None
        self._write_paused = False
        self._broken = False
        self.closed = False
        # raw mode (after an Upgrade request): bytes for the tunnel
        self.tunnel: Callable[[bytes], None] | None = None
        self.tunnel_buffer: list[bytes] | None = None
        self.on_close: Callable[[], None] | None = None
        self._init_parsing(server.limits)
        self._paused_at = 0.0
        self.sent = 0
        """Bytes written to the client for the active request (0: the shutdown's 503 can)."""

    @property
    def limits(self) -> LimitsConfig:
        return self.server.limits

    # ------------------------------------------------------------ asyncio side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        set_nodelay(transport)
        peer = transport.get_extra_info("peername")
        self.ip = str(peer[0]) if peer else ""
        self.ip_bytes = self.ip.encode("latin-1")
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = b"https"
        self.last_active = monotonic()
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        for req in (self._parsing, self.active, *self._pending):
            if req is not None:
                req.body.abort()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self.fast is not None:
            self.fast.client_gone()
            self.fast = None
        if self.on_close is not None:
            self.on_close()

    def pause_writing(self) -> None:
        # The upstream is paused for this client: it is held by the client, and its
        # timeout does not run (a stalled client is bounded by the client-side sweep).
        self._write_paused = True
        self._paused_at = monotonic()
        upstream = self._upstream
        if upstream is not None and upstream.transport is not None:
            upstream.held = True
            upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        upstream = self._upstream
        if upstream is not None and upstream.transport is not None:
            upstream.held = False
            upstream.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        # ``last_active`` moves only when an answer completes: a client that dribbles
        # a request head for longer than the idle timeout is closed like an idle one.
        if self.tunnel is not None:
            self.tunnel(data)
            return
        if self.tunnel_buffer is not None:
            self.tunnel_buffer.append(data)
            return
        if self._broken:
            return
        self._feed(data)

    def _send_continue(self) -> None:
        req = self.active
        if req is not None and not req.body.complete and self.transport is not None:
            self.transport.write(CONTINUE)

    # ------------------------------------------------------------ dispatching

    def _dispatch(self, req: ProxyRequest) -> None:
        if self.active is None and not self._pending:
            self._start(req)
            return
        self._pending.append(req)
        if len(self._pending) > _MAX_PIPELINED and self.transport is not None:
            self.transport.pause_reading()

    def _start(self, req: ProxyRequest) -> None:
        self.active = req
        self.sent = 0
        self.server.dispatch(self, req)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Continue the active request in a task; ``request_done`` follows when it ends."""
        task = self.loop.create_task(coro)
        self._task = task
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None
        if not task.cancelled() and task.exception() is not None:
            log.error("request handling failed", exc_info=task.exception())
            self.abort()
        self.request_done()

    def request_done(self) -> None:
        """The active request has its answer: close, or go on with the next one."""
        if self._task is not None and not self._task.done():
            return  # a fast path that handed over to a task: the task reports
        req = self.active
        self.active = None
        self.last_active = monotonic()
        transport = self.transport
        if self.closed or transport is None or transport.is_closing() or self.tunnel is not None:
            return
        if req is not None and req.reject is not None:
            self._linger(transport)
            return
        if req is None or self.must_close(req) or not req.body.complete:
            transport.close()
            return
        if self._pending:
            # Not from inside the upstream's callbacks: the next request starts afresh.
            self.loop.call_soon(self._next)

    def _next(self) -> None:
        if self.active is None and self._pending and not self.closed:
            nxt = self._pending.popleft()
            if len(self._pending) <= _MAX_PIPELINED and self.transport is not None:
                self.transport.resume_reading()
            self._start(nxt)

    def _linger(self, transport: asyncio.Transport) -> None:
        """After a refusal: half-close and discard input for a moment before closing.

        Closing at once with unread request bytes makes the kernel send a reset,
        which can destroy the error response before the client reads it."""
        self._broken = True
        if transport.can_write_eof():
            transport.write_eof()
        transport.resume_reading()
        self.loop.call_later(2.0, transport.close)

    # ------------------------------------------------------- used by forwarding

    def must_close(self, req: ProxyRequest | None = None) -> bool:
        """Should the connection close after the current response?"""
        req = req or self.active
        return (
            req is None
            or not req.keep_alive
            or req.reject is not None
            or req.upgrade is not None
            or self.server.closing
        )

    @property
    def head_only(self) -> bool:
        return self.active is not None and self.active.method == "HEAD"

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.sent += len(data)
            self.transport.write(data)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def attach(self, conn: UpstreamConnection | None) -> None:
        """Link the upstream connection whose response is streaming to this client."""
        old = self._upstream
        self._upstream = conn
        if self._write_paused:
            if conn is not None and conn.transport is not None:
                conn.held = True
                conn.transport.pause_reading()
            if old is not None and old.transport is not None and not old.transport.is_closing():
                old.held = False
                old.transport.resume_reading()

    def close_if_idle(self, now: float, idle_timeout: float) -> None:
        transport = self.transport
        if transport is None:
            return
        if self.active is None and self.tunnel is None:
            if now - self.last_active > idle_timeout:
                transport.close()
        elif self._write_paused and now - self._paused_at > idle_timeout:
            # Stopped reading its answer: the client's fault, a 499, never the upstream's.
            transport.abort()

    def shut_down(self) -> None:
        """The shutdown grace is over: a request still waiting for its answer gets a 503
        (nothing of an answer went out yet), then the connection closes."""
        req = self.active
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if req is not None and not self.sent and self.tunnel is None:
            self.write(
                error_response(
                    503,
                    "the proxy is shutting down; retry",
                    close=True,
                    request_id=req.request_id,
                )
            )
            transport.close()
        else:
            transport.abort()
