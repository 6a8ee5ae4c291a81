"""One request/response exchange on one upstream connection, and the head it sends.

:func:`exchange` takes a pooled (or new) connection, writes the request head and
body — inline when the body is in memory, else streamed from the client with
back-pressure (:func:`stream_body`) — waits for the :class:`Attempt` to end and
gives the connection back to the pool only when the exchange completed cleanly.
:func:`request_head` builds the upstream request head for one upstream (target
with the upstream's path prefix, ``Host`` per ``host:``, framing, forwarded
headers). No policy lives here: retries, fallback and the circuit breaker are
:mod:`strangler.proxy.forwarding`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strangler.errors import UpstreamError
from strangler.proxy.attempt import Attempt, error_kind
from strangler.proxy.headers import RawHeaders, client_host_of, upstream_head
from strangler.proxy.request import BodyTooLarge, MalformedBody, ProxyRequest
from strangler.proxy.upstream import UpstreamConnection, UpstreamPool
from strangler.routing.decision import Decision

if TYPE_CHECKING:
    from strangler.proxy.connection import ClientConnection


async def exchange(
    client: ClientConnection,
    req: ProxyRequest,
    pool: UpstreamPool,
    attempt: Attempt,
    head: bytes,
    inline: bytes | None,
    max_body: int,
) -> str | None:
    """One request/response on one connection. Returns None or the error kind."""
    try:
        conn = await pool.acquire()
    except UpstreamError as exc:
        return attempt.fail(error_kind(exc), exc)
    reused = conn.uses > 0
    conn.start(attempt, attempt.head_request)
    client.attach(conn)
    sent = True
    try:
        if inline is not None:
            conn.write(head + inline if inline else head)
        else:
            conn.write(head)
            try:
                sent = await stream_body(req, conn, attempt, max_body)
            except BodyTooLarge:
                sent = False
                attempt.fail("body_too_large")
            except MalformedBody:
                # The upstream got a truncated body and its connection is dropped below,
                # so it never sees a complete request.
                sent = False
                attempt.fail("bad_request")
        result = await attempt.wait()
    except BaseException:
        pool.discard(conn)
        raise
    finally:
        client.attach(None)
    if result is None and sent:
        pool.release(conn)
        return None
    pool.discard(conn)
    if result == "connect" and reused and not conn.got_bytes and inline is not None:
        # A pooled connection the upstream had already closed: safe to try afresh.
        return "connect"
    return result


async def stream_body(
    req: ProxyRequest, conn: UpstreamConnection, attempt: Attempt, max_body: int
) -> bool:
    """Copy the request body upstream with back-pressure; False if cut short."""
    body = req.body
    chunked = req.chunked
    tap = attempt.tap
    total = 0
    while not attempt.finished:
        data = await body.read()
        if attempt.finished:
            return False
        if not data:
            if chunked:
                conn.write(b"0\r\n\r\n")
            return True
        total += len(data)
        if total > max_body:
            raise BodyTooLarge()
        if tap is not None:
            tap.tee_request(data)
        if chunked:
            conn.write(b"%x\r\n" % len(data))
            conn.write(data)
            conn.write(b"\r\n")
        else:
            conn.write(data)
        await conn.drain()
    return False


def request_head(
    client_ip: bytes,
    req: ProxyRequest,
    decision: Decision,
    pool: UpstreamPool,
    inline: bytes | None,
    method: bytes | None = None,
    target: bytes | None = None,
    headers: RawHeaders | None = None,
) -> bytes:
    if target is None:
        path = decision.path
        if path == req.path:
            target = req.target if not pool.prefix else pool.prefix + req.target
        else:
            target = pool.prefix + path.encode("latin-1")
            if req.query:
                target += b"?" + req.query
    if inline is not None:
        framing = b"content-length: %d\r\n" % len(inline) if inline or req.has_body else b""
    elif req.chunked:
        framing = b"transfer-encoding: chunked\r\n"
    else:
        framing = b"content-length: %d\r\n" % (req.content_length or 0)
    host = pool.host_header
    if pool.config.host == "client":
        host = client_host_of(req.headers) or host
    return upstream_head(
        method or req.method.encode("latin-1"),
        target,
        req.headers if headers is None else headers,
        host,
        client_ip,
        b"http",
        framing,
    )
