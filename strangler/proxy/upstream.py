"""Upstream connections and their pools: keep-alive HTTP/1.1 to each upstream.

``UpstreamConnection`` is an asyncio Protocol with an llhttp (``httptools``)
response parser. It carries one exchange at a time and hands what it parses to
a :class:`ResponseSink` through plain method calls, so a response streams to the
client from inside ``data_received`` without a coroutine hop. It switches to a
raw byte pipe after a ``101``.

``UpstreamPool`` holds idle connections per upstream (at most
``max_connections`` open) and opens new ones through
:mod:`strangler.proxy.upstream_target` (address, TLS, connect timeout and errors;
``strangler.proxy.registry`` keeps one pool per upstream name across reloads).
A :class:`Sweep` runs the upstream timeout: every ``timeout / 5`` (20 to 500 ms)
it fails an exchange in which no byte moved for ``timeout`` seconds (-> 504) —
except while the connection is ``held``, paused for a client that is not reading
(a stalled client is the client's problem, bounded by the client side, never an
upstream timeout). A ``101`` is accepted only on a
tunnel's handshake (``upgrading``); anywhere else it fails the exchange (502) and
the connection is dropped. Nothing here decides routing or fallback.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from time import monotonic
from typing import Protocol, cast

import httptools

from strangler.config import UpstreamConfig
from strangler.errors import UpstreamConnectError, UpstreamError, UpstreamTimeout
from strangler.proxy.circuit import CircuitBreaker
from strangler.proxy.headers import RawHeaders
from strangler.proxy.sweep import Sweep, sweep_interval
from strangler.proxy.upstream_target import UpstreamTarget, open_connection, set_nodelay


class ResponseSink(Protocol):
    def response_head(self, status: int, headers: RawHeaders, keep_alive: bool) -> None: ...
    def response_body(self, data: bytes) -> None: ...
    def response_end(self) -> None: ...
    def upstream_failed(self, error: UpstreamError) -> None: ...
    def flush(self) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.sink: ResponseSink | None = None
        self.raw: Callable[[bytes], None] | None = None
        """After a 101: where upstream bytes go (the client's transport)."""
        self.raw_buffer: list[bytes] | None = None
        """After a 101 and until ``raw`` is set: bytes that already arrived."""
        self.on_pause: Callable[[bool], None] | None = None
        """In a tunnel: pause/resume reading the client when this socket backs up."""
        self.uses = 0
        self.got_bytes = False
        self.reusable = True
        self.upgrading = False
        """A tunnel's handshake: a 101 is expected (anywhere else it is a bad answer)."""
        self.held = False
        """Paused for a client that is not reading: the upstream timeout does not run."""
        self.reason = b""
        """The reason phrase of the response being received."""
        self._headers: RawHeaders = []
        self._head_request = False
        self._headed = False
        self._reset_parser = False
        self._interim = False
        self._activity = 0
        self._deadline = 0.0
        self._seen = 0
        self._drain: asyncio.Future[None] | None = None
        self._paused = False

    # ---------------------------------------------------------------- exchange

    def start(self, sink: ResponseSink, head_request: bool) -> None:
        self.sink = sink
        self.uses += 1
        self.got_bytes = False
        self.held = False  # a pooled connection is never still held by a past client
        self.reason = b""
        self._headers = []
        self._headed = False
        self._head_request = head_request
        # No timer per exchange (a timer heap push and cancel cost more than the rest
        # of the request's bookkeeping): the pool's sweep checks ``busy`` connections.
        self._seen = self._activity
        self._deadline = monotonic() + self.pool.config.timeout
        self.pool.sweep.track(self)

    def write(self, data: bytes) -> None:
        self._activity += 1
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self) -> None:
        if self._paused:
            self._drain = self.pool.loop.create_future()
            await self._drain

    def finish(self) -> None:
        """The exchange is over (either way): stop its timer, forget its sink."""
        self.sink = None
        self.pool.busy.discard(self)

    def check_timeout(self, now: float) -> None:
        """Called by the sweep while busy: time out when nothing moved for ``timeout``."""
        if self._activity != self._seen or self.held:
            # A connection held for a stalled client is not the upstream's delay.
            self._seen = self._activity
            self._deadline = now + self.pool.config.timeout
            return
        if now < self._deadline:
            return
        self.pool.busy.discard(self)
        self.reusable = False
        sink = self.sink
        if sink is not None:
            sink.upstream_failed(
                UpstreamTimeout(self.pool.name, f"no answer within {self.pool.config.timeout:g}s")
            )
        if self.transport is not None:
            self.transport.abort()

    # ------------------------------------------------------------ asyncio side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        set_nodelay(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self.pool.busy.discard(self)
        sink = self.sink
        if (
            sink is not None
            and self._headed
            and self.raw is None
            and self.raw_buffer is None
            and until_close(self._headers)
        ):
            # A body delimited by the close (no Content-Length, not chunked) ends here:
            # httptools has no way to be told of the end of the stream.
            self._message_complete()
            sink = None
        if sink is not None:
            self.sink = None
            sink.upstream_failed(UpstreamConnectError(self.pool.name, "closed the connection"))
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self.pool.forget(self)

    def pause_writing(self) -> None:
        self._paused = True
        if self.on_pause is not None:
            self.on_pause(True)

    def resume_writing(self) -> None:
        self._paused = False
        self._activity += 1
        if self.on_pause is not None:
            self.on_pause(False)
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._activity += 1
        if self.raw is not None:
            self.raw(data)
            return
        if self.raw_buffer is not None:
            self.raw_buffer.append(data)
            return
        self.got_bytes = True
        sink = self.sink
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            if not self.upgrading:
                # An unsolicited 101 (already failed in on_headers_complete): the
                # connection speaks something else now; never reused.
                self.reusable = False
                assert self.transport is not None
                self.transport.abort()
                return
            offset = exc.args[0] if exc.args else len(data)
            self.raw_buffer = [data[offset:]]
        except httptools.HttpParserError as exc:
            self.reusable = False
            sink, self.sink = self.sink, None
            if sink is not None:
                sink.upstream_failed(
                    UpstreamConnectError(self.pool.name, f"sent a malformed response: {exc}")
                )
            assert self.transport is not None
            self.transport.abort()
            return
        if sink is not None:
            sink.flush()
        if self._reset_parser:
            self._reset_parser = False
            self.parser = httptools.HttpResponseParser(self)

    # -------------------------------------------------------- parser callbacks

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200 and status != 101:
            self._interim = True  # 1xx (e.g. 103): not forwarded; the final answer follows
            self._headers = []
            self.reason = b""
            return
        sink = self.sink
        if status == 101 and not self.upgrading:
            self.reusable = False
            self.sink = None
            self.pool.busy.discard(self)
            if sink is not None:
                sink.upstream_failed(
                    UpstreamConnectError(self.pool.name, "answered 101 to a request not upgrading")
                )
            return
        if sink is None:
            return
        self._headed = True
        keep_alive = self.parser.should_keep_alive()
        if not keep_alive:
            self.reusable = False
        sink.response_head(status, self._headers, keep_alive)
        if self._head_request and status != 101:
            # llhttp cannot be told a response answers HEAD: finish here and give
            # the connection a fresh parser so a Content-Length is not awaited.
            self._reset_parser = True
            self._message_complete()

    def on_body(self, body: bytes) -> None:
        sink = self.sink
        if sink is not None:
            sink.response_body(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if not self._reset_parser:
            self._message_complete()

    def _message_complete(self) -> None:
        sink = self.sink
        self.pool.busy.discard(self)
        if sink is not None:
            self.sink = None
            sink.response_end()


def until_close(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """An answer's body runs until the connection closes (no length, not chunked)."""
    return not any(n.lower() in (b"content-length", b"transfer-encoding") for n, _ in headers)


class UpstreamPool:
    """Idle keep-alive connections to one upstream, plus its circuit breaker.

    Pools made by :class:`~strangler.proxy.registry.Upstreams` share its sweep; a
    pool made on its own (the shadow client's) runs one of its own."""

    def __init__(
        self,
        name: str,
        config: UpstreamConfig,
        loop: asyncio.AbstractEventLoop,
        sweep: Sweep | None = None,
    ) -> None:
        self.name = name
        self._own_sweep = sweep is None
        self.sweep = sweep if sweep is not None else Sweep(sweep_interval(config.timeout))
        self.busy = self.sweep.busy
        self.config = config
        self.loop = loop
        self.target = target = UpstreamTarget(name, config)
        self.address = target.address
        self.ssl = target.ssl
        self.tls_error = target.tls_error
        self.host_header = target.host_header
        self.prefix = target.prefix
        self.origin = target.origin
        self.circuit = CircuitBreaker(config.circuit, loop.time)
        self.idle: list[UpstreamConnection] = []
        self.open = 0
        self.closed = False
        self._waiters: deque[asyncio.Future[None]] = deque()

    def tls_changed(self) -> bool:
        """The upstream's ``tls:`` files changed on disk since this pool loaded them."""
        return self.target.tls_changed()

    def take_idle(self) -> UpstreamConnection | None:
        """An idle pooled connection, or None (never connects)."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if conn.transport is not None and not conn.transport.is_closing():
                return conn
        return None

    async def acquire(self) -> UpstreamConnection:
        """A connected, idle connection (pooled or new). Raises UpstreamError."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if conn.transport is not None and not conn.transport.is_closing():
                return conn
        while self.open >= self.config.max_connections:
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            await waiter
            while idle:
                conn = idle.pop()
                if conn.transport is not None and not conn.transport.is_closing():
                    return conn
        return await self.connect()

    async def connect(self) -> UpstreamConnection:
        """A new connection, not taken from the pool (also used for tunnels)."""
        if self.tls_error is not None:
            raise UpstreamConnectError(self.name, f"cannot connect: {self.tls_error}")
        self.open += 1
        try:
            return await open_connection(self.loop, self.target, lambda: UpstreamConnection(self))
        except BaseException:
            self._closed_one()
            raise

    def release(self, conn: UpstreamConnection) -> None:
        """Give back a connection after a complete exchange (closes it if not reusable)."""
        conn.finish()
        transport = conn.transport
        if not conn.reusable or self.closed or transport is None or transport.is_closing():
            self.discard(conn)
            return
        self.idle.append(conn)
        if self._waiters:
            self._wake()

    def discard(self, conn: UpstreamConnection) -> None:
        conn.finish()
        conn.reusable = False
        if conn.transport is not None:
            conn.transport.abort()  # connection_lost -> forget()

    def forget(self, conn: UpstreamConnection) -> None:
        """Called once when a connection is gone."""
        if conn in self.idle:
            self.idle.remove(conn)
        self._closed_one()

    def _closed_one(self) -> None:
        self.open -= 1
        if self._waiters:
            self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        self.closed = True
        if self._own_sweep:
            self.sweep.close()
        for conn in list(self.idle):
            if conn.transport is not None:
                conn.transport.close()
        self.idle.clear()
