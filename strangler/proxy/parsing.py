"""Request heads and bodies off the wire: the llhttp (``httptools``) callbacks.

:class:`RequestParsing` is the half of :class:`~strangler.proxy.connection.ClientConnection`
that turns bytes into :class:`~strangler.proxy.request.ProxyRequest` values (the
connection inherits it; httptools calls the protocol object back). Everything
refused at parse time is decided here and answered in order by the connection:

* header section over ``limits.max_header_size`` -> 431 (chunked trailer fields
  count against it too; they are dropped, never routing input nor headers upstream);
* an HTTP/1.1 request without ``Host``, any request with two, or an invalid one -> 400;
* an HTTP/0.9 request line (no version) -> 400 at once;
* ``Content-Length`` over ``limits.max_body`` -> 413, and a chunked body that grows
  past it -> 413, at once when a chunk's size says so (:meth:`RequestParsing._check_chunk`);
* ambiguous framing — ``Content-Length`` with ``Transfer-Encoding``, more than
  one ``Content-Length``, a transfer coding other than ``chunked``, a bad chunk
  size or anything llhttp rejects -> 400, and the connection is closed.

An HTTP/1.0 request with a chunked body is answered and the connection closed
(RFC 9112 §6.1). Client ``X-Strangler-*`` fields are kept apart from the
forwarded headers (``ProxyRequest.private``: routing may read a pin header there;
nothing upstream ever sees them). Every request gets its ``X-Request-Id``: the
client's when it is a token of at most 128 characters, else a fresh one. An
``Upgrade`` that is not tunnelled is parsed on as a normal request (:meth:`plain`).
"""

from __future__ import annotations

import asyncio
import re

import httptools

from strangler.config import LimitsConfig
from strangler.errors import BodyTooLarge, MalformedBody, RequestError
from strangler.proxy.headers import RawHeaders
from strangler.proxy.request import NO_BODY, Framing, ProxyRequest, RequestBody, new_request_id

_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}
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


class RequestParsing:
    """The parser callbacks and the per-request parse state of a client connection."""

    # Provided by the connection.
    transport: asyncio.Transport | None
    parser: httptools.HttpRequestParser
    tunnel_buffer: list[bytes] | None
    _ready: list[ProxyRequest]
    _broken: bool

    @property
    def limits(self) -> LimitsConfig:
        """The limits of the current config (the connection's server's)."""
        raise NotImplementedError

    def _dispatch(self, req: ProxyRequest) -> None:
        raise NotImplementedError

    def _send_continue(self) -> None:
        raise NotImplementedError

    def _init_parsing(self, limits: LimitsConfig) -> None:
        self._limits = limits
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
        self._chunk_open = False
        self._chunk_here = False
        self._chunk_got = 0
        self._at_line = False
        """The last read ended between chunks: the next one starts with a size line."""

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
        self._resume = req
        if not req.body.complete:
            self._parsing = req
        self._feed(b"POST / HTTP/1.1\r\n" + req.framing.header() + b"\r\n" + b"".join(buffered))

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
        self._limits = self.limits

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
            self._url,
            self._headers,
            parser.should_keep_alive(),
            body,
            Framing(length, chunked) if chunked or length is not None else NO_BODY,
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
