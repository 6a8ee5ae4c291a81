"""One request/response round trip on one upstream connection, and the head it sends.

:func:`round_trip` takes a pooled (or new) connection, writes the request head and
body — inline when the body is in memory, else streamed from the client with
back-pressure (:func:`stream_body`) — waits for the :class:`Attempt` to end and
gives the connection back to the pool only when the round trip completed cleanly.
:func:`request_head` builds the upstream request head for one upstream (target
with the upstream's path prefix, ``Host`` per ``host:``, framing, forwarded
headers). No policy lives here: retries, fallback and the circuit breaker are
:mod:`strangler.proxy.forwarding`'s.
"""

from __future__ import annotations

from strangler.errors import BodyTooLarge, MalformedBody, UpstreamError
from strangler.message import Headers, HttpRequest
from strangler.proxy.attempt import Attempt
from strangler.proxy.exchange import Exchange
from strangler.proxy.headers import RawHeaders, client_host_of, upstream_head
from strangler.proxy.outcome import Failure, failure_of
from strangler.proxy.upstream import UpstreamConnection, UpstreamPool

_FRAMING = frozenset({"content-length", "transfer-encoding"})


async def round_trip(
    attempt: Attempt, pool: UpstreamPool, head: bytes, inline: bytes | None
) -> Failure | None:
    """One request/response on one connection. Returns None or the failure."""
    try:
        conn = await pool.acquire()
    except UpstreamError as exc:
        return attempt.fail(failure_of(exc), exc)
    client = attempt.client
    attempt.on(conn)
    client.attach(conn)
    sent = True
    try:
        if inline is not None:
            conn.write(head + inline if inline else head)
        else:
            conn.write(head)
            try:
                sent = await stream_body(attempt, conn)
            except BodyTooLarge:
                sent = False
                attempt.fail(Failure.BODY_TOO_LARGE)
            except MalformedBody:
                # The upstream got a truncated body and its connection is dropped below,
                # so it never sees a complete request.
                sent = False
                attempt.fail(Failure.BAD_REQUEST)
        failure = await attempt.wait()
    except BaseException:
        pool.discard(conn)
        raise
    finally:
        client.attach(None)
    if failure is None and sent:
        pool.release(conn)
        return None
    pool.discard(conn)
    return failure


def stale(attempt: Attempt, conn: UpstreamConnection) -> bool:
    """Did ``attempt`` fail only because a pooled connection had been closed upstream?
    Then trying afresh is safe: the upstream never saw the request."""
    return attempt.failure is Failure.CONNECT and conn.uses > 1 and not conn.got_bytes


async def stream_body(attempt: Attempt, conn: UpstreamConnection) -> bool:
    """Copy the request body upstream with back-pressure; False if cut short."""
    req = attempt.ex.request
    body = req.body
    chunked = req.framing.chunked
    tap = attempt.tap
    max_body = attempt.max_body
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


def request_head(ex: Exchange, pool: UpstreamPool, inline: bytes | None) -> bytes:
    """The head of ``ex``'s request for ``pool``'s upstream (``inline``: the body, if whole)."""
    req = ex.request
    # The dispatcher made ``req.target`` the routed path (plus the query) already.
    target = req.target if not pool.prefix else pool.prefix + req.target
    if inline is not None:
        framing = b"content-length: %d\r\n" % len(inline) if inline or req.has_body else b""
    else:
        framing = req.framing.header()
    return upstream_head(
        req.method.encode("latin-1"),
        target,
        req.headers,
        pool.host_header if pool.config.host != "client" else host_for(ex, pool),
        ex.client,
        framing,
    )


def rewritten_head(ex: Exchange, pool: UpstreamPool, rewritten: HttpRequest) -> bytes:
    """The head of an adapter's rewritten request (its body goes inline)."""
    body = rewritten.body
    framing = b"content-length: %d\r\n" % len(body) if body or ex.request.has_body else b""
    return upstream_head(
        rewritten.method.encode("latin-1"),
        pool.prefix + rewritten.target.encode("latin-1", "replace"),
        raw_headers(rewritten.headers),
        host_for(ex, pool),
        ex.client,
        framing,
    )


def host_for(ex: Exchange, pool: UpstreamPool) -> bytes:
    """The ``Host`` the upstream is sent: its own, or the client's (``host: client``)."""
    if pool.config.host == "client":
        return client_host_of(ex.request.headers) or pool.host_header
    return pool.host_header


def raw_headers(headers: Headers) -> RawHeaders:
    """A message's headers as raw pairs, without framing (the proxy frames the body)."""
    return [
        (k.encode("latin-1", "replace"), v.encode("latin-1", "replace"))
        for k, v in headers.items()
        if k.lower() not in _FRAMING
    ]
