"""One client request as the data plane carries it: the parsed head and a body stream.

``ProxyRequest`` is built once per request by the client connection from the
parser's callbacks and holds raw bytes (no dict of headers, no decoded URL).
``RequestBody`` is the request body as a stream with back-pressure: the parser
feeds it, the forwarding side reads it, and when more than ``HIGH_WATER`` bytes
wait unread the client socket stops being read until the reader catches up —
so a 1 GB upload never sits in memory. It never buffers a whole body unless
the reader asks for it (``read_all``, for adapters and retries).
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from strangler.errors import BodyTooLarge, ClientGone
from strangler.message import HttpRequest, make_headers
from strangler.proxy.headers import HOP_BY_HOP, RawHeaders

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


class _RequestIds:
    """A random prefix and a counter, drawn afresh in every forked worker (a prefix
    drawn once at import would be shared by ``--workers`` children, repeating ids)."""

    def __init__(self) -> None:
        self.prefix = b""
        self.count = itertools.count(1)
        self.reseed()

    def reseed(self) -> None:
        self.prefix = os.urandom(6).hex().encode()
        self.count = itertools.count(1)


_IDS = _RequestIds()
os.register_at_fork(after_in_child=_IDS.reseed)


def new_request_id() -> bytes:
    """A fresh ``X-Request-Id``: unique per process (random prefix) and cheap (a counter)."""
    return b"%s-%x" % (_IDS.prefix, next(_IDS.count))


class RequestBody:
    def __init__(
        self,
        transport: asyncio.Transport | None,
        complete: bool,
        on_first_read: Callable[[], None] | None = None,
    ) -> None:
        self._transport = transport
        """Whose reading is paused while too much waits unread (the client's)."""
        self.complete = complete
        self._on_first_read = on_first_read
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self.received = 0
        self.gone = False
        self.error: Exception | None = None

    # ------------------------------------------------------------- parser side

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        self.received += len(data)
        if self._waiter is not None:
            self._wake()
        if self._buffered > HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def finish(self) -> None:
        self.complete = True
        if self._waiter is not None:
            self._wake()

    def abort(self, error: Exception | None = None) -> None:
        """The body will never complete: readers get ``error`` (default ClientGone)."""
        self.gone = True
        self.error = error
        if self._waiter is not None:
            self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ------------------------------------------------------------- reader side

    @property
    def buffered(self) -> bytes | None:
        """The whole body if it has fully arrived and nothing was read yet, else None."""
        if not self.complete or self._buffered != self.received:
            return None
        if not self._chunks:
            return b""
        if len(self._chunks) == 1:
            return self._chunks[0]
        return b"".join(self._chunks)

    async def read(self) -> bytes:
        """The next bytes of the body; ``b""`` at the end. Raises ClientGone."""
        if self._on_first_read is not None:
            callback, self._on_first_read = self._on_first_read, None
            callback()
        while not self._chunks:
            if self.complete:
                return b""
            if self.gone:
                raise self.error or ClientGone()
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks = []
        self._buffered = 0
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return data

    async def read_all(self, limit: int) -> bytes:
        """The whole body, at most ``limit`` bytes. Raises BodyTooLarge, ClientGone."""
        parts: list[bytes] = []
        size = 0
        while True:
            data = await self.read()
            if not data:
                return b"".join(parts)
            size += len(data)
            if size > limit:
                raise BodyTooLarge()
            parts.append(data)


@dataclass(frozen=True)
class Framing:
    """How the client framed its request body: a ``Content-Length``, chunks, or neither."""

    length: int | None = None
    chunked: bool = False

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.length)

    def header(self) -> bytes:
        """The framing field that sends the body on as it comes (streamed)."""
        if self.chunked:
            return b"transfer-encoding: chunked\r\n"
        return b"content-length: %d\r\n" % (self.length or 0)


NO_BODY = Framing()


class ProxyRequest:
    """The parsed head of one client request plus its body stream."""

    def __init__(
        self,
        method: str,
        target: bytes,
        headers: RawHeaders,
        keep_alive: bool,
        body: RequestBody,
        framing: Framing = NO_BODY,
    ) -> None:
        self.method = method
        self.target = target
        """The request target as the client sent it (path and query); routing rewrites it."""
        raw_path, _, self.query = target.partition(b"?")
        self.path = raw_path.decode("latin-1")
        self.headers = headers
        self.keep_alive = keep_alive
        self.body = body
        self.framing = framing
        self.upgrade: bytes | None = None
        """The ``Upgrade`` protocol when the client asked to switch (websocket)."""
        self.reject: tuple[int, str] | None = None
        """(status, message) when the head was refused before forwarding (400/413/431)."""
        self.shadowed = False
        """A mirror, never mirrored again. Never set from a client's headers: a client
        cannot switch mirroring off (its ``X-Strangler-*`` fields are in ``private``)."""
        self.request_id = b""
        """The ``X-Request-Id`` (the client's when it sent a valid one, else generated);
        also in ``headers``, so every upstream and the mirror get it."""
        self.private: RawHeaders | None = None
        """The client's ``X-Strangler-*`` fields: read by routing (a pin header), never
        forwarded upstream, to an adapter or to the mirror."""

    @classmethod
    def stand_in(cls) -> ProxyRequest:
        """A request for a refusal that happened before a head was complete."""
        req = cls("GET", b"/", [], False, RequestBody(None, True))
        req.request_id = new_request_id()
        return req

    def keep_private(self, name: bytes) -> None:
        """Move the fields called ``name`` (lower-case) to ``private``: read by routing,
        never forwarded (the configured pin header)."""
        moved = [(n, v) for n, v in self.headers if len(n) == len(name) and n.lower() == name]
        if moved:
            self.headers = [(n, v) for n, v in self.headers if (n, v) not in moved]
            self.private = (self.private or []) + moved

    @property
    def routing_headers(self) -> RawHeaders:
        """What routing sees: the forwarded headers and the client's ``X-Strangler-*``."""
        private = self.private
        return self.headers if private is None else self.headers + private

    @property
    def has_body(self) -> bool:
        return self.framing.has_body


def target_of(path: str, query: bytes) -> bytes:
    """The request target sent upstream and to the mirror: the routed (normalised)
    path and the client's query, the one rule for both."""
    target = path.encode("latin-1")
    return target + b"?" + query if query else target


def decoded(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """Raw header pairs as text, without the hop-by-hop ones."""
    return [
        (n.decode("latin-1"), v.decode("latin-1"))
        for n, v in headers
        if n.lower() not in HOP_BY_HOP
    ]


def as_message(req: ProxyRequest, path: str, params: Mapping[str, str], body: bytes) -> HttpRequest:
    """The client's request as an immutable value (for adapters and shadow)."""
    return HttpRequest(
        headers=make_headers(decoded(req.headers)),
        body=body,
        method=req.method,
        path=path,
        query=req.query.decode("latin-1"),
        params=params,
    )
