"""One client connection: llhttp request parsing, keep-alive, pipelining, back-pressure.

``ClientConnection`` is the asyncio Protocol behind the public listener. The
``httptools`` parser calls back as bytes arrive; when a request head is
complete it becomes a :class:`ProxyRequest` and is handed to the forwarder as
one task. Requests on one connection are answered strictly in order (pipelined
heads wait in a short queue).

Refused before forwarding, and never sent upstream:

* header section over ``limits.max_header_size`` -> 431 (chunked trailer fields
  count against it too; they are dropped, never routing input nor headers upstream);
* an HTTP/1.1 request without ``Host``, any request with two, or an invalid one -> 400;
* an HTTP/0.9 request line (no version) -> 400 at once;
* ``Content-Length`` over ``limits.max_body`` -> 413 (a chunked body that grows
  past it is cut off and answered 413 too, at once when a chunk's size says so:
  :meth:`ClientConnection._check_chunk`);
* ambiguous framing — ``Content-Length`` with ``Transfer-Encoding``, more than
  one ``Content-Length``, a transfer coding other than ``chunked``, a bad chunk
  size or anything llhttp rejects -> 400, and the connection is closed.

An HTTP/1.0 request with a chunked body is answered and the connection closed
(RFC 9112 §6.1). Client ``X-Strangler-*`` fields are kept apart from the
forwarded headers (``ProxyRequest.private``: routing may read a pin header there;
nothing upstream ever sees them). Every request gets its ``X-Request-Id``: the
client's when it is a token of at most 128 characters, else a fresh one.

It never decides routing and never buffers a body itself (``RequestBody`` does,
bounded). Idle keep-alive connections, and clients that stopped reading their
answer for longer than ``limits.client_idle_timeout``, are closed by the
server's sweep.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Callable, Coroutine
from time import monotonic
from typing import Any, Protocol, cast

import httptools

from strangler.config import LimitsConfig
from strangler.errors import BodyTooLarge, MalformedBody, RequestError
from strangler.proxy.accesslog import AccessLog
from strangler.proxy.headers import RawHeaders
from strangler.proxy.request import ProxyRequest, RequestBody, new_request_id
from strangler.proxy.responses import CONTINUE, error_response
from strangler.proxy.upstream import UpstreamConnection, set_nodelay

log = logging.getLogger(__name__)

_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}
_MAX_PIPELINED = 32
_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?")
"""RFC 9110 §7.2: ``uri-host [ ":" port ]`` (an IP literal or a reg-name)."""
_REQUEST_ID = re.compile(rb"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}")
"""A client's ``X-Request-Id`` is taken when it is a token of at most 128 characters."""
_PRIVATE = b"x-strangler-"


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
    access_log: AccessLog | None
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
        self._expect = False
        self._hosts = 0
        self._host = b""
        self._private: RawHeaders | None = None
        self._request_id: bytes | None = None
        self._headed = False
        self._url_piece = b""
        self._resume: ProxyRequest | None = None
        """A request whose Upgrade was refused: its body is parsed after a stand-in head."""
        self._paused_at = 0.0
        self._chunk_open = False
        self._chunk_here = False
        self._chunk_got = 0
        self._at_line = False
        """The last read ended between chunks: the next one starts with a size line."""
        self.sent = 0
        """Bytes written to the client for the active request (0: the shutdown's 503 can)."""

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

    def _feed(self, data: bytes) -> None:
        self._chunk_here = False
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
        else:
            if self._url_piece and not self._headed and not self._broken:
                self._check_request_line(data)
            elif self._chunk_here and self._chunk_open:
                self._check_chunk(data)
            self._at_line = not self._chunk_open and data[-1:] == b"\n"
        # Heads parsed in this chunk start only now, so a framing error later in
        # the same bytes turns them into a refusal before anything is forwarded.
        ready = self._ready
        if ready:
            self._ready = []
            for req in ready:
                self._dispatch(req)

    def _check_request_line(self, data: bytes) -> None:
        """A feed ended inside a head before any header (rare): a request line with no
        HTTP version after the target is HTTP/0.9, which llhttp would wait on forever."""
        piece = self._url_piece
        at = data.rfind(piece)
        if self._headers or at < 0:
            return
        rest = data[at + len(piece) :]
        if rest[:1] in (b"\r", b"\n"):
            self._refuse(400, "HTTP/0.9 requests are not supported")

    def _check_chunk(self, data: bytes) -> None:
        """A chunk of a request body is open at the end of this feed, its size line in
        it: refuse at once (413) when that size takes the body past ``max_body``.

        httptools does not expose a chunk's size, but it is readable here: llhttp
        consumed all of ``data``, so the chunk's bytes received so far are its last
        ``_chunk_got`` bytes, and the size line ends just before them. A size line
        that began in an earlier read is left to the check as the bytes arrive."""
        end = len(data) - self._chunk_got
        if end < 1 or data[end - 1 : end] != b"\n":
            return
        start = data.rfind(b"\n", 0, end - 1) + 1
        if start == 0 and not self._at_line:
            return  # the size line may have begun in the previous read
        size = data[start : end - 1].split(b";", 1)[0].strip()
        req = self._parsing
        try:
            announced = int(size, 16)
        except ValueError:
            return
        if req is not None and req.body.received - self._chunk_got + announced > (
            self._limits.max_body
        ):
            self._refuse(413, "request body is larger than limits.max_body")

    def plain(self, req: ProxyRequest) -> None:
        """Serve ``req`` as a normal request after all: its ``Upgrade`` is not tunnelled.

        llhttp stopped at the end of its head; a fresh parser takes the bytes that
        followed, behind a stand-in head with the same framing so the body (if any)
        is decoded into ``req`` and any request after it is parsed as usual."""
        req.upgrade = None
        buffered = self.tunnel_buffer or []
        self.tunnel_buffer = None
        self.parser = httptools.HttpRequestParser(self)
        if req.chunked:
            framing = b"transfer-encoding: chunked\r\n"
        else:
            framing = b"content-length: %d\r\n" % (req.content_length or 0)
        self._resume = req
        if not req.body.complete:
            self._parsing = req
        self._feed(b"POST / HTTP/1.1\r\n" + framing + b"\r\n" + b"".join(buffered))

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
        if self._resume is not None:
            return  # the stand-in head of a request whose Upgrade was refused
        self._url = b""
        self._url_piece = b""
        self._headers = []
        self._head_size = 0
        self._lengths = 0
        self._length = None
        self._coding = None
        self._expect = False
        self._hosts = 0
        self._private = None
        self._request_id = None
        self._headed = False
        self._limits = self.server.limits

    def on_url(self, url: bytes) -> None:
        if self._resume is not None:
            return
        self._url += url
        self._url_piece = url
        self._head_size += len(url)
        if self._head_size > self._limits.max_header_size:
            raise _Refuse(431, "request header section is larger than limits.max_header_size")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._resume is not None:
            return
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self._limits.max_header_size:
            raise _Refuse(431, "request header section is larger than limits.max_header_size")
        if self._headed:
            return  # a chunked trailer field: counted, never routing input nor forwarded
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
        elif n == 4 and name.lower() == b"host":
            self._hosts += 1
            self._host = value
        elif n == 12 and name.lower() == b"x-request-id":
            self._request_id = value
            return  # sent on as the request's id (the client's when valid)
        elif n > 12 and name[:12].lower() == _PRIVATE:
            # The proxy's own namespace: never forwarded, never a mirror marker.
            if self._private is None:
                self._private = []
            self._private.append((name, value))
            return
        elif n == 6 and name.lower() == b"expect" and value.lower() == b"100-continue":
            self._expect = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        resumed = self._resume
        if resumed is not None:
            self._resume = None
            self._headed = True
            if not resumed.body.complete:
                self._parsing = resumed
            return
        self._headed = True
        parser = self.parser
        if self._coding is not None:
            if self._lengths:
                raise _Refuse(400, "both Content-Length and Transfer-Encoding")
            if self._coding != b"chunked":
                raise _Refuse(400, "only Transfer-Encoding: chunked is accepted")
        if self._hosts != 1:
            if self._hosts > 1:
                raise _Refuse(400, "more than one Host header")
            if parser.get_http_version() != "1.0":
                raise _Refuse(400, "an HTTP/1.1 request needs a Host header")
        elif _HOST.fullmatch(self._host) is None:
            raise _Refuse(400, "invalid Host header")
        request_id = self._request_id
        if request_id is None or _REQUEST_ID.fullmatch(request_id) is None:
            request_id = new_request_id()
        self._headers.append((b"x-request-id", request_id))
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
        req.request_id = request_id
        req.private = self._private
        if chunked and parser.get_http_version() == "1.0":
            req.keep_alive = False  # RFC 9112 §6.1: faulty framing, close after it
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

    def on_chunk_header(self) -> None:
        self._chunk_open = self._chunk_here = True
        self._chunk_got = 0

    def on_chunk_complete(self) -> None:
        self._chunk_open = False

    def on_body(self, body: bytes) -> None:
        self._chunk_got += len(body)
        req = self._parsing
        if req is not None:
            if req.body.received + len(body) > self._limits.max_body:
                raise _Refuse(413, "request body is larger than limits.max_body")
            req.body.feed(body)

    def on_message_complete(self) -> None:
        req = self._parsing
        if req is not None:
            if req.upgrade is not None and req.has_body:
                return  # llhttp skips an Upgrade's body: tunnelled, or parsed by plain()
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
