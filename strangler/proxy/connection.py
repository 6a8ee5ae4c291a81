"""One client connection: llhttp request parsing, keep-alive, pipelining, back-pressure.

``ClientConnection`` is the asyncio Protocol behind the public listener. The
``httptools`` parser calls back as bytes arrive; when a request head is
complete it becomes a :class:`ProxyRequest` and is handed to the forwarder as
one task. Requests on one connection are answered strictly in order (pipelined
heads wait in a short queue).

Refused before forwarding, and never sent upstream:

* header section over ``limits.max_header_size`` -> 431;
* ``Content-Length`` over ``limits.max_body`` -> 413 (a chunked body that grows
  past it is cut off and answered 413 too);
* ambiguous framing — ``Content-Length`` with ``Transfer-Encoding``, more than
  one ``Content-Length``, a transfer coding other than ``chunked``, a bad chunk
  size or anything llhttp rejects -> 400, and the connection is closed.

It never decides routing and never buffers a body itself (``RequestBody`` does,
bounded). Idle keep-alive connections are closed by the server's sweep.
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
from strangler.errors import BodyTooLarge, MalformedBody, RequestError
from strangler.proxy.headers import RawHeaders
from strangler.proxy.request import ProxyRequest, RequestBody
from strangler.proxy.responses import CONTINUE
from strangler.proxy.upstream import UpstreamConnection, set_nodelay

log = logging.getLogger(__name__)

_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}
_MAX_PIPELINED = 32


class _Refuse(RequestError):
    """Raised from a parser callback to stop parsing and answer ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Listener(Protocol):
    """What a client connection needs from the server that accepted it."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def limits(self) -> LimitsConfig: ...

    closing: bool
    connections: set[ClientConnection]
    dispatch: Callable[[ClientConnection, ProxyRequest], None]
    """Start answering a parsed request (the connection's active one)."""


class InFlight(Protocol):
    """A request answered on callbacks only (the fast path): told when its client leaves."""

    def client_gone(self) -> None: ...


class ClientConnection(asyncio.Protocol):
    def __init__(self, server: Listener) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.ip = ""
        self.ip_bytes = b""
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
        # per-request parse state
        self._limits: LimitsConfig = server.limits
        self._parsing: ProxyRequest | None = None
        self._url = b""
        self._headers: RawHeaders = []
        self._head_size = 0
        self._lengths = 0
        self._length: int | None = None
        self._coding: bytes | None = None
        self._shadowed = False
        self._expect = False

    # ------------------------------------------------------------ asyncio side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        set_nodelay(transport)
        peer = transport.get_extra_info("peername")
        self.ip = str(peer[0]) if peer else ""
        self.ip_bytes = self.ip.encode("latin-1")
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
        self._write_paused = True
        if self._upstream is not None and self._upstream.transport is not None:
            self._upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._upstream is not None and self._upstream.transport is not None:
            self._upstream.transport.resume_reading()

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
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            self.tunnel_buffer = [data[offset:]] if offset < len(data) else []
        except _Refuse as exc:
            self._refuse(exc.status, exc.message)
        except httptools.HttpParserError as exc:
            # httptools wraps an exception raised in a callback; ours says what to answer.
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, _Refuse):
                self._refuse(cause.status, cause.message)
            else:
                self._refuse(400, f"malformed request: {exc}")
        # Heads parsed in this chunk start only now, so a framing error later in
        # the same bytes turns them into a refusal before anything is forwarded.
        ready = self._ready
        if ready:
            self._ready = []
            for req in ready:
                self._dispatch(req)

    def _refuse(self, status: int, message: str) -> None:
        """Answer the request being parsed with an error (in order) and stop reading."""
        self._broken = True
        req = self._parsing
        self._parsing = None
        if req is not None and req not in self._ready:
            # Already forwarding: cut its body short; the upstream never sees it complete.
            req.keep_alive = False
            req.body.abort(BodyTooLarge() if status == 413 else MalformedBody(message))
            return
        if req is None:
            req = ProxyRequest.stand_in()
            self._ready.append(req)
        req.reject = (status, message)
        req.keep_alive = False

    # -------------------------------------------------------- parser callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_size = 0
        self._lengths = 0
        self._length = None
        self._coding = None
        self._shadowed = False
        self._expect = False
        self._limits = self.server.limits

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if self._head_size > self._limits.max_header_size:
            raise _Refuse(431, "request header section is larger than limits.max_header_size")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self._limits.max_header_size:
            raise _Refuse(431, "request header section is larger than limits.max_header_size")
        n = len(name)
        if n == 14 and name.lower() == b"content-length":
            self._lengths += 1
            if self._lengths > 1:
                raise _Refuse(400, "more than one Content-Length")
            try:
                self._length = int(value)
            except ValueError:
                raise _Refuse(400, "Content-Length is not a number") from None
        elif n == 17 and name.lower() == b"transfer-encoding":
            self._coding = value.strip().lower() if self._coding is None else b"+"
        elif n == 18 and name.lower() == b"x-strangler-shadow":
            self._shadowed = True
        elif n == 6 and name.lower() == b"expect" and value.lower() == b"100-continue":
            self._expect = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._coding is not None:
            if self._lengths:
                raise _Refuse(400, "both Content-Length and Transfer-Encoding")
            if self._coding != b"chunked":
                raise _Refuse(400, "only Transfer-Encoding: chunked is accepted")
        parser = self.parser
        url = self._url
        path, _, query = url.partition(b"?")
        method = parser.get_method()
        chunked = self._coding is not None
        length = self._length
        body = RequestBody(
            self.transport,
            not chunked and not length,
            self._send_continue if self._expect else None,
        )
        req = ProxyRequest(
            _METHODS.get(method) or method.decode("latin-1"),
            url,
            path.decode("latin-1"),
            query,
            self._headers,
            parser.should_keep_alive(),
            body,
            length,
            chunked,
        )
        if self._shadowed:
            req.shadowed = True
        if parser.should_upgrade():
            req.upgrade = next(
                (v for n, v in self._headers if len(n) == 7 and n.lower() == b"upgrade"), b""
            )
        elif self._length is not None and self._length > self._limits.max_body:
            req.reject = (413, "request body is larger than limits.max_body")
            req.keep_alive = False
            self._broken = True
        self._parsing = req
        self._ready.append(req)

    def on_body(self, body: bytes) -> None:
        req = self._parsing
        if req is not None:
            if req.body.received + len(body) > self._limits.max_body:
                raise _Refuse(413, "request body is larger than limits.max_body")
            req.body.feed(body)

    def on_message_complete(self) -> None:
        req = self._parsing
        if req is not None:
            req.body.finish()
            self._parsing = None

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
                conn.transport.pause_reading()
            if old is not None and old.transport is not None and not old.transport.is_closing():
                old.transport.resume_reading()

    def close_if_idle(self, now: float, idle_timeout: float) -> None:
        idle = self.active is None and self.tunnel is None
        if idle and now - self.last_active > idle_timeout and self.transport is not None:
            self.transport.close()
