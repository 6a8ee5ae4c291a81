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

Every request (:class:`~.pipeline_connection.Request`) ends in exactly one call
of its ``on_answer``: an answer, or an error (refused, timeout — no byte for the
upstream's ``timeout`` —, a malformed answer, a body over ``limit``:
``TOO_LARGE``: a :class:`~.failure.MirrorFailure` each). One connection's order and parsing live in
:mod:`.pipeline_connection`. The channel shares the shadow pool's circuit
breaker, so a dead target costs a clock read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from time import monotonic

from strangler.proxy.circuit import CLOSED
from strangler.proxy.sweep import sweep_interval
from strangler.proxy.upstream import UpstreamPool
from strangler.shadow.failure import CHANNEL_CLOSED, CIRCUIT_OPEN, FailureKind, MirrorFailure
from strangler.shadow.pipeline_connection import PipelinedConnection, Request

log = logging.getLogger(__name__)

MAX_DEPTH = 32
"""Requests written together on one connection, at most."""
FAST = 0.05
"""A target whose recent answers took less than this (s) gets pipelined batches
(counted from our write to our read, less our own loop's pace)."""
STRIKES = 3
"""Unannounced closes after at most one answer, with more owed, before pipelining stops."""


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
        self.connections: set[PipelinedConnection] = set()
        self.idle_connections: list[PipelinedConnection] = []
        self._filling: PipelinedConnection | None = None
        self._dirty: list[PipelinedConnection] = []
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._connects: set[asyncio.Task[None]] = set()
        self.closed = False

    def enqueue(self, request: Request) -> None:
        """Queue ``request``; its ``on_answer`` is called once, later or (circuit open) now."""
        if self.closed:
            request.on_answer(request, 0, {}, b"", CHANNEL_CLOSED, 0.0)
            return
        circuit = self.circuit
        if circuit.state is not CLOSED and not circuit.allow():
            request.on_answer(request, 0, {}, b"", CIRCUIT_OPEN, 0.0)
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

    def _pick(self) -> PipelinedConnection:
        """An idle connection, else a new one (below the cap), else the least loaded."""
        idle = self.idle_connections
        while idle:
            conn = idle.pop()
            conn.listed = False
            if conn.idle and conn in self.connections:
                return conn
        usable: list[PipelinedConnection] = []
        if len(self.connections) >= self.max_connections:
            usable = [c for c in self.connections if c.usable and not c.dead]
        if not usable:  # below the cap, or every connection is closing
            conn = PipelinedConnection(self)
            self.connections.add(conn)
            task = self.loop.create_task(self._connect(conn))
            self._connects.add(task)
            task.add_done_callback(self._connects.discard)
            return conn
        return min(usable, key=lambda c: len(c.pending))

    async def _connect(self, conn: PipelinedConnection) -> None:
        pool = self.pool
        target = pool.target
        if target.tls_error is not None:  # never in clear text to an https:// target
            self._unreachable(
                conn, MirrorFailure(FailureKind.CONNECT, f"cannot connect: {target.tls_error}")
            )
            return
        try:
            await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: conn,
                    *target.address,
                    ssl=target.ssl,
                    server_hostname=target.server_name,
                ),
                pool.config.connect_timeout,
            )
        except TimeoutError:
            self._unreachable(
                conn,
                MirrorFailure(
                    FailureKind.TIMEOUT, f"no connection within {pool.config.connect_timeout:g}s"
                ),
            )
        except OSError as exc:
            self._unreachable(
                conn,
                MirrorFailure(
                    FailureKind.CONNECT,
                    f"cannot connect: {exc.strerror or type(exc).__name__}",
                ),
            )

    def _unreachable(self, conn: PipelinedConnection, error: MirrorFailure) -> None:
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
                why = f"no answer within {self.pool.config.timeout:g}s"
                conn.fail_all(MirrorFailure(FailureKind.TIMEOUT, why))
                continue
            busy = True
        if busy and not self.closed:
            self._timer = self.loop.call_later(
                sweep_interval(self.pool.config.timeout), self._check
            )

    # ------------------------------------------------------------ outcomes

    def failed(self, pending: Request, error: MirrorFailure, *, success: bool = False) -> None:
        if success:
            self.pool.circuit.success()
        else:
            self.pool.circuit.failure()
        pending.on_answer(pending, 0, {}, b"", error, monotonic() - pending.sent)

    def lost(self, conn: PipelinedConnection) -> None:
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
                self.failed(pending, MirrorFailure(FailureKind.CONNECT, "closed the connection"))
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
                conn.fail_all(CHANNEL_CLOSED)
        self.connections.clear()
