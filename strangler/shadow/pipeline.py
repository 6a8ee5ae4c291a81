"""Pipelined HTTP/1.1 to a shadow target: the mirrored GETs of one loop turn in one write.

A mirrored request is a second upstream exchange, and on a busy proxy one
``send()`` and one read per mirror cost about as much as the proxy's whole
work for the client's request. :class:`ShadowChannel` instead queues the GETs
mirrored during one event-loop turn on one connection and writes them in one
go; the target answers in order (HTTP/1.1 pipelining), usually several answers
per read, and each is handed to its callback straight from the parser — no
task, no future.

Pipelined requests are answered one after another, so a connection takes a
batch only while the target answers fast (recent answers within ``FAST``,
less the proxy's own loop pace);
a slow target gets one request per connection, as the one-at-a-time client
does. Only GET is sent here: it is safe to send once more when a connection
closes with answers still owed (a keep-alive limit), which is done once. A
target that keeps closing connections after a single answer without saying so
(``Connection: close``) does not take pipelining: after ``STRIKES`` such
closes the channel sends one request per connection for good, and says so.

Every request ends in exactly one call of its ``on_answer`` (:data:`Answer`): an answer,
or an error (refused, timeout — no byte for the upstream's ``timeout`` —, a
malformed answer, a body over ``limit``: :data:`TOO_LARGE`). The channel shares
the shadow pool's circuit breaker, so a dead target costs a clock read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from functools import partial
from time import monotonic
from typing import Any, Protocol, cast

import httptools

from strangler.proxy.circuit import CLOSED
from strangler.proxy.headers import RawHeaders
from strangler.proxy.sweep import sweep_interval
from strangler.proxy.upstream import UpstreamPool, set_nodelay, until_close

log = logging.getLogger(__name__)

Done = Callable[[int, RawHeaders, bytes, "str | None", float], None]
"""``(status, headers, body, error, seconds)``: ``error`` is None for an answer."""

TOO_LARGE = "too_large"
"""The ``error`` of an answer whose body is over the request's ``limit``."""

MAX_DEPTH = 32
"""Requests written together on one connection, at most."""
FAST = 0.05
"""A target whose recent answers took less than this (s) gets pipelined batches
(counted from our write to our read, less our own loop's pace)."""
STRIKES = 3
"""Unannounced closes after at most one answer, with more owed, before pipelining stops."""


Fields = dict[bytes, bytes]
"""An answer's headers as the parser gave them: raw names, the first value of each."""


Answer = Callable[[Any, int, Fields, bytes, "str | None", float], None]
"""``(request, status, fields, body, error, seconds)``: what a :class:`Request`'s
``on_answer`` is called with, exactly once. ``error`` is None for an answer;
``fields`` is the parser's own dict, valid during the call only: copy what you keep."""


class Request(Protocol):
    """One encoded GET on its way; the channel calls its ``on_answer`` exactly once.

    ``sent`` is when it was queued, ``retried`` whether it is on its second try
    (the channel sets it), ``limit`` the most answer body it takes. The shadow
    mirror's requests are its shadow copies themselves (``strangler.shadow.copy``),
    whose ``on_answer`` is their route's plan's: a plain attribute rather than a
    method, so the answer reaches the plan without a frame in between."""

    data: bytes
    limit: int
    sent: float
    retried: bool
    on_answer: Answer


class _Callback:
    """A :class:`Request` that hands its answer to a function (:meth:`ShadowChannel.send`)."""

    __slots__ = ("data", "done", "limit", "on_answer", "retried", "sent")

    def __init__(self, data: bytes, limit: int, done: Done) -> None:
        self.data = data
        self.limit = limit
        self.sent = monotonic()
        self.retried = False
        self.done = done
        self.on_answer: Answer = _deliver


def _deliver(
    request: _Callback, status: int, fields: Fields, body: bytes, error: str | None, elapsed: float
) -> None:
    request.done(status, list(fields.items()), body, error, elapsed)


class _Connection(asyncio.Protocol):
    """One keep-alive connection with requests in flight, answered in order."""

    def __init__(self, channel: ShadowChannel) -> None:
        self.channel = channel
        self.transport: asyncio.Transport | None = None
        self._fields: Fields = {}
        self._heads: list[None] = []
        """Not empty once the answer being parsed has its whole head."""
        # The parser calls these C methods per header and per head, no Python frame
        # each: a repeated header keeps its first value, the one the comparison reads.
        self.on_header = self._fields.setdefault
        self.on_headers_complete = partial(self._heads.append, None)
        self.parser = httptools.HttpResponseParser(self)
        self.pending: deque[Request] = deque()
        self.out: list[bytes] = []
        self.usable = True
        """False once the target said ``Connection: close`` or the connection failed."""
        self.dead = False
        self.answers = 0
        self.listed = False
        """In the channel's idle list."""
        self.progress = 0
        self.seen = 0
        self.deadline = 0.0
        self.now = 0.0
        """When the data being parsed arrived."""
        self.written = 0.0
        """When the last batch was written (the loop's clock)."""
        self.answers_read = False
        """The read being parsed carried an answer (a sign of life, once per read)."""
        self._body: list[bytes] = []
        self._size = 0

    @property
    def idle(self) -> bool:
        return self.usable and not self.pending and not self.dead

    # ------------------------------------------------------------ asyncio side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        set_nodelay(transport)
        if self.out:
            self.write()

    def write(self) -> None:
        assert self.transport is not None
        self.written = self.channel.loop.time()
        out = self.out
        self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()

    def data_received(self, data: bytes) -> None:
        self.progress += 1
        self.now = monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail_all(f"malformed answer: {exc}")
        if self.answers_read:
            self._answered()

    def _answered(self) -> None:
        """Once per read, not per answer: how fast the target answers, a sign of life."""
        channel = self.channel
        # From our write to the read, less what our own loop took to come back to it
        # (a busy proxy reads every answer a turn late, however fast the target).
        waited = channel.loop.time() - self.written - 2 * channel.turn
        channel.observed(waited if waited > 0 else 0.0)
        self.answers_read = False
        circuit = channel.circuit
        if circuit.failures or circuit.state is not CLOSED:
            circuit.success()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.pending and self._heads and not self.dead and until_close(self._fields.items()):
            # A body delimited by the close (no Content-Length, not chunked) ends here:
            # httptools has no way to be told of the end of the stream.
            self.now = monotonic()
            self.on_message_complete()
            if self.answers_read:
                self._answered()
        self.dead = True
        self.channel.lost(self)

    def abort(self) -> None:
        self.dead = True
        self.usable = False
        if self.transport is not None:
            self.transport.abort()

    def fail_all(self, error: str) -> None:
        """Fail every request in flight (no retry) and drop the connection."""
        owed, self.pending = self.pending, deque()
        self.abort()
        for pending in owed:
            self.channel.failed(pending, error)

    # -------------------------------------------------------- parser callbacks

    def on_body(self, body: bytes) -> None:
        if self.dead or not self.pending:
            return
        self._size += len(body)
        if self._size > self.pending[0].limit:
            # Over the limit: this one is done; the rest go again on a new connection.
            self.dead = True
            self.channel.failed(self.pending.popleft(), TOO_LARGE, success=True)
            self.abort()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        fields = self._fields
        self._heads.clear()
        if status < 200:  # a 1xx: the final answer follows
            fields.clear()
            return
        if not parser.should_keep_alive():
            self.usable = False
        if self.dead or not self.pending:
            fields.clear()
            return
        pending = self.pending
        request = pending.popleft()
        self.answers += 1
        body = self._body
        self._body, self._size = [], 0
        channel = self.channel
        self.answers_read = True
        elapsed = self.now - request.sent
        if not pending and self.usable and not self.listed:
            self.listed = True
            channel.idle_connections.append(self)
        try:
            request.on_answer(
                request,
                status,
                fields,
                body[0] if len(body) == 1 else b"".join(body),
                None,
                elapsed,
            )
        finally:
            fields.clear()


class ShadowChannel:
    """Pipelined GETs to one shadow target, over connections of its own."""

    def __init__(self, pool: UpstreamPool, max_connections: int) -> None:
        self.pool = pool
        """Address, ``Host``, path prefix, timeouts and circuit breaker of the target."""
        self.max_connections = max_connections
        self.loop = pool.loop
        self.latency = FAST
        """Recent answer time (s), decayed: decides whether batches are pipelined."""
        self.turn = 0.0
        """Recent time (s) between two flushes, decayed: how long our own loop takes
        to come back to a connection, which a read of the answer waits for anyway."""
        self._flushed = 0.0
        self.strikes = 0
        """Connections the target closed unannounced after at most one answer."""
        self.depth = 1
        """Requests one connection takes per write: ``MAX_DEPTH`` while answers are fast."""
        self.circuit = pool.circuit
        self.connections: set[_Connection] = set()
        self.idle_connections: list[_Connection] = []
        self._filling: _Connection | None = None
        self._dirty: list[_Connection] = []
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._connects: set[asyncio.Task[None]] = set()
        self.closed = False

    def send(self, data: bytes, limit: int, done: Done) -> None:
        """Queue one encoded GET; ``done`` is called once, later or (circuit open) now."""
        self.enqueue(_Callback(data, limit, done))

    def enqueue(self, request: Request) -> None:
        """Queue ``request``; its ``on_answer`` is called once, later or (circuit open) now."""
        if self.closed:
            request.on_answer(request, 0, {}, b"", "shadow channel closed", 0.0)
            return
        circuit = self.circuit
        if circuit.state is not CLOSED and not circuit.allow():
            request.on_answer(request, 0, {}, b"", "circuit open: failing, not tried", 0.0)
            return
        conn = self._filling
        if conn is not None and len(conn.out) < self.depth and conn.usable and not conn.dead:
            # The common case under load: join this loop turn's batch.
            conn.pending.append(request)
            conn.out.append(request.data)
            return
        self._queue(request)

    def observed(self, elapsed: float) -> None:
        """An answer time (or a failure's: the timeout) into the decayed latency."""
        self.latency = latency = self.latency * 0.8 + elapsed * 0.2
        self.depth = MAX_DEPTH if latency < FAST and self.strikes < STRIKES else 1

    def _queue(self, pending: Request) -> None:
        conn = self._filling
        if conn is None or conn.dead or not conn.usable or len(conn.out) >= self.depth:
            conn = self._filling = self._pick()
        if not conn.pending:
            conn.seen = conn.progress
            conn.deadline = monotonic() + self.pool.config.timeout
        conn.pending.append(pending)
        if not conn.out:
            self._dirty.append(conn)
        conn.out.append(pending.data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)
        if self._timer is None:
            interval = sweep_interval(self.pool.config.timeout)
            self._timer = self.loop.call_later(interval, self._check)

    def _pick(self) -> _Connection:
        """An idle connection, else a new one (below the cap), else the least loaded."""
        idle = self.idle_connections
        while idle:
            conn = idle.pop()
            conn.listed = False
            if conn.idle and conn in self.connections:
                return conn
        usable: list[_Connection] = []
        if len(self.connections) >= self.max_connections:
            usable = [c for c in self.connections if c.usable and not c.dead]
        if not usable:  # below the cap, or every connection is closing
            conn = _Connection(self)
            self.connections.add(conn)
            task = self.loop.create_task(self._connect(conn))
            self._connects.add(task)
            task.add_done_callback(self._connects.discard)
            return conn
        return min(usable, key=lambda c: len(c.pending))

    async def _connect(self, conn: _Connection) -> None:
        pool = self.pool
        try:
            await asyncio.wait_for(
                self.loop.create_connection(lambda: conn, *pool.address, ssl=pool.ssl),
                pool.config.connect_timeout,
            )
        except TimeoutError:
            self._unreachable(
                conn, f"timeout: no connection within {pool.config.connect_timeout:g}s"
            )
        except OSError as exc:
            self._unreachable(
                conn, f"connect: cannot connect: {exc.strerror or type(exc).__name__}"
            )

    def _unreachable(self, conn: _Connection, error: str) -> None:
        self.connections.discard(conn)
        conn.dead = True
        self.latency = max(self.latency, FAST)
        self.depth = 1
        owed, conn.pending = conn.pending, deque()
        conn.out.clear()
        for pending in owed:
            self.failed(pending, error)

    def _flush(self) -> None:
        now = self.loop.time()
        gap = now - self._flushed
        self._flushed = now
        if gap < 1.0:  # back to back: the loop is busy, and this is its pace
            self.turn = self.turn * 0.8 + gap * 0.2
        self._flush_scheduled = False
        self._filling = None
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            if conn.out and conn.transport is not None and not conn.dead:
                conn.write()

    def _check(self) -> None:
        """The upstream timeout: fail a connection in which nothing moved for ``timeout``."""
        self._timer = None
        now = monotonic()
        busy = False
        for conn in list(self.connections):
            if not conn.pending:
                continue
            if conn.progress != conn.seen:
                conn.seen = conn.progress
                conn.deadline = now + self.pool.config.timeout
            elif now >= conn.deadline:
                self.latency = max(self.latency, self.pool.config.timeout)
                self.depth = 1
                conn.fail_all(f"timeout: no answer within {self.pool.config.timeout:g}s")
                continue
            busy = True
        if busy and not self.closed:
            self._timer = self.loop.call_later(
                sweep_interval(self.pool.config.timeout), self._check
            )

    # ------------------------------------------------------------ outcomes

    def failed(self, pending: Request, error: str, *, success: bool = False) -> None:
        if success:
            self.pool.circuit.success()
        else:
            self.pool.circuit.failure()
        pending.on_answer(pending, 0, {}, b"", error, monotonic() - pending.sent)

    def lost(self, conn: _Connection) -> None:
        """A connection closed: what it still owed goes once more on another."""
        self.connections.discard(conn)
        owed, conn.pending = conn.pending, deque()
        if owed and conn.usable and conn.answers <= 1 and len(owed) + conn.answers > 1:
            self.strikes += 1
            if self.strikes == STRIKES:
                self.depth = 1
                log.warning(
                    "shadow target %s closes pipelined connections unannounced; "
                    "sending it one request per connection from now on",
                    self.pool.name,
                )
        for pending in owed:
            if pending.retried or self.closed:
                self.failed(pending, "connect: closed the connection")
            else:
                pending.retried = True
                self._queue(pending)

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._connects:
            task.cancel()
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                conn.fail_all("shadow channel closed")
        self.connections.clear()
