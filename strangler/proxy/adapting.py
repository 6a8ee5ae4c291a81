"""The adapter path: a route with an anti-corruption adapter, answered by ``to``.

The request body is buffered (up to ``limits.max_body``, else 413) into an
immutable :class:`~strangler.message.HttpRequest`; ``adapter.request()``
rewrites it for the new service; the new service's answer is buffered into an
:class:`~strangler.message.HttpResponse` and ``adapter.response()`` turns it
back into what the legacy client expects, sent with a fresh Content-Length.

An adapter that raises (or returns something that is not a request/response)
is answered with a JSON 502 naming the route and counted as ``error="adapter"``
— or, when the decision allows fallback (safe method, ``fallback: true``), by
legacy with the original request. The same holds for the new upstream failing.
Requests answered by legacy never pass through the adapter.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from strangler.adapter import HttpAdapter
from strangler.config import Config
from strangler.message import HttpRequest, HttpResponse, make_headers
from strangler.proxy.exchange import request_head
from strangler.proxy.forwarding import Forwarder, Outcome
from strangler.proxy.headers import RawHeaders, response_head
from strangler.proxy.request import (
    BodyTooLarge,
    MalformedBody,
    ProxyRequest,
    as_message,
    decoded,
)
from strangler.proxy.responses import error_response
from strangler.proxy.shadowing import ShadowCopy
from strangler.routing.decision import Decision

if TYPE_CHECKING:
    from strangler.proxy.connection import ClientConnection

log = logging.getLogger(__name__)

_FRAMING = frozenset({"content-length", "transfer-encoding"})


def _raw(headers: object) -> RawHeaders:
    items = headers.items() if hasattr(headers, "items") else ()
    return [
        (k.encode("latin-1", "replace"), v.encode("latin-1", "replace"))
        for k, v in items
        if k.lower() not in _FRAMING
    ]


async def adapted(
    fw: Forwarder,
    client: ClientConnection,
    req: ProxyRequest,
    decision: Decision,
    config: Config,
    adapter: HttpAdapter,
    tap: ShadowCopy | None,
) -> Outcome:
    to = decision.upstream
    route = decision.route_name
    body = req.body.buffered
    if body is None:
        try:
            body = await req.body.read_all(config.limits.max_body)
        except BodyTooLarge:
            req.keep_alive = False
            client.write(
                error_response(
                    413, "request body is larger than limits.max_body", route, to, close=True
                )
            )
            return Outcome(to, 413)
        except MalformedBody:
            req.keep_alive = False
            client.write(error_response(400, "malformed request body", route, to, close=True))
            return Outcome(to, 400)
        if tap is not None:
            tap.tee_request(body)
    original = as_message(req, decision.path, decision.params, body)

    try:
        rewritten = adapter.request(original)
        if not isinstance(rewritten, HttpRequest):
            raise TypeError(f"request() returned {type(rewritten).__name__}, not HttpRequest")
    except Exception as exc:
        log.warning("adapter of route %r failed in request(): %r", route, exc)
        return await _failed(fw, client, req, decision, config, body, "adapter", exc, tap)

    pool = fw.upstreams.pool(config, to)
    target = rewritten.target.encode("latin-1", "replace")
    head = request_head(
        client.ip_bytes,
        req,
        decision,
        pool,
        rewritten.body,
        method=rewritten.method.encode("latin-1"),
        target=pool.prefix + target,
        headers=_raw(rewritten.headers),
    )
    replayable = len(rewritten.body) <= config.limits.max_buffered_retry_body
    result, attempt = await fw.attempt(
        client,
        req,
        decision,
        config,
        to,
        rewritten.body,
        decision.fallback,
        replayable,
        None,
        head=head,
        buffer=True,
    )
    if result is not None:
        return await _failed(fw, client, req, decision, config, body, result, attempt.error, tap)

    answer = HttpResponse(
        headers=make_headers(decoded(attempt.headers)),
        body=b"".join(attempt.chunks or ()),
        status=attempt.status,
    )
    try:
        out = adapter.response(original, answer)
        if not isinstance(out, HttpResponse):
            raise TypeError(f"response() returned {type(out).__name__}, not HttpResponse")
    except Exception as exc:
        log.warning("adapter of route %r failed in response(): %r", route, exc)
        return await _failed(fw, client, req, decision, config, body, "adapter", exc, tap)

    no_body = req.method == "HEAD" or out.status in (204, 304) or out.status < 200
    framing = b"" if out.status == 204 else b"content-length: %d\r\n" % len(out.body)
    client.write(
        response_head(
            out.status, _raw(out.headers), fw.tags(route, to), framing, client.must_close()
        )
        + (b"" if no_body else out.body)
    )
    if tap is not None:
        tap.tee_response(out.body)
    error = "status" if out.status >= 500 else None
    return Outcome(to, out.status, error, response=out)


async def _failed(
    fw: Forwarder,
    client: ClientConnection,
    req: ProxyRequest,
    decision: Decision,
    config: Config,
    body: bytes,
    kind: str,
    exc: BaseException | None,
    tap: ShadowCopy | None,
) -> Outcome:
    """``to`` or its adapter failed: legacy answers if the decision allows, else 502/504.
    A fallback answer is teed into ``tap``: it is what the client got."""
    to = decision.upstream
    route = decision.route_name
    if decision.fallback:
        legacy = decision.legacy
        result, attempt = await fw.attempt(
            client, req, decision, config, legacy, body, False, True, tap
        )
        if result is None:
            return Outcome(legacy, attempt.status, kind, fallback=True, headers=attempt.headers)
        if attempt.committed:
            client.abort()
            return Outcome(legacy, attempt.status, kind, fallback=True)
        return fw.fail(client, decision, legacy, result, attempt, kind)
    if kind == "adapter":
        message = f"adapter of route {route!r} failed: {exc!r}"
        client.write(
            error_response(
                502, message, route, to, close=client.must_close(), head_only=client.head_only
            )
        )
        return Outcome(to, 502, "adapter")
    status = 504 if kind == "timeout" else 502
    message = str(exc) if exc is not None else f"upstream {to!r}: {kind}"
    if kind == "status":
        message = f"upstream {to!r} failed"
    elif kind == "too_large":
        message = f"upstream {to!r}: response larger than limits.max_body"
    client.write(
        error_response(
            status, message, route, to, close=client.must_close(), head_only=client.head_only
        )
    )
    return Outcome(to, status, kind)
