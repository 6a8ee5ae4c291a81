"""One keep-alive connection of a pipelined shadow channel, answered in order.

A :class:`PipelinedConnection` writes its channel's batches of encoded GETs
(:class:`Request`) and parses the answers with httptools as they come, handing
each to its request's ``on_answer`` straight from the parser callback —
exactly once: an answer, or a :class:`~.failure.MirrorFailure` (``TOO_LARGE``
for a body over the request's ``limit``). What to send where, retries and timeouts are the
channel's (:mod:`.pipeline`); this module only keeps one connection's order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from functools import partial
from time import monotonic
from typing import Any, Protocol, cast

import httptools

from strangler.proxy.circuit import CLOSED, CircuitBreaker
from strangler.proxy.upstream import until_close
from strangler.proxy.upstream_target import set_nodelay
from strangler.shadow.failure import TOO_LARGE, FailureKind, MirrorFailure

Fields = dict[bytes, bytes]
"""An answer's headers as the parser gave them: raw names, the first value of each."""


Answer = Callable[[Any, int, Fields, bytes, "MirrorFailure | None", float], None]
"""``(request, status, fields, body, error, seconds)``: what a :class:`Request`'s
``on_answer`` is called with, exactly once. ``error`` is None for an answer;
``fields`` is the parser's own dict, valid during the call only: copy what you keep."""


class Request(Protocol):
    """One encoded GET on its way; the channel calls its ``on_answer`` exactly once.

    ``sent`` is when it was queued, ``retried`` whether it is on its second try
    (the channel sets it), ``limit`` the most answer body it takes. The shadow
    mirror's requests are its shadow copies themselves (``strangler.proxy.shadowing``),
    whose ``on_answer`` is the pipelined lane's: a plain attribute rather than a
    method, so the answer reaches the lane without a frame in between."""

    data: bytes
    limit: int
    sent: float
    retried: bool
    on_answer: Answer


class Channel(Protocol):
    """What a connection reads from and reports to its channel
    (:class:`~strangler.shadow.pipeline.ShadowChannel`)."""

    loop: asyncio.AbstractEventLoop
    turn: float
    circuit: CircuitBreaker
    idle_connections: list[PipelinedConnection]

    def observed(self, elapsed: float) -> None: ...
    def failed(self, pending: Request, error: MirrorFailure, *, success: bool = False) -> None: ...
    def lost(self, conn: PipelinedConnection) -> None: ...


class PipelinedConnection(asyncio.Protocol):
    """One keep-alive connection with requests in flight, answered in order."""

    def __init__(self, channel: Channel) -> None:
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
            self.fail_all(MirrorFailure(FailureKind.MALFORMED, str(exc)))
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

    def fail_all(self, error: MirrorFailure) -> None:
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
