"""The adapter path: a route with an anti-corruption adapter, answered by ``to``.

The request body is buffered (up to ``limits.max_body``, else 413) into an
immutable :class:`~strangler.message.HttpRequest`; ``adapter.request()``
rewrites it for the new service; the new service's answer is buffered into an
:class:`~strangler.message.HttpResponse` and ``adapter.response()`` turns it
back into what the legacy client expects, sent with a fresh Content-Length.

What an adapter returns is checked before it reaches the wire
(:func:`checked_request`, :func:`checked_response`): a method that is not a
token, a path that does not start with ``/`` or holds a space or control byte,
a header name that is not a token, a value with CR, LF or NUL, a status outside
100..599. An adapter that raises or returns such output (or something that is
not a request/response) is answered with a JSON 502 naming the adapter and its
route and counted as ``error="adapter"``
— or, when the decision allows fallback (safe method, ``fallback: true``), by
legacy with the original request. The same holds for the new upstream failing.
Requests answered by legacy never pass through the adapter.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from strangler.adapter import HttpAdapter
from strangler.errors import BodyTooLarge, MalformedBody
from strangler.message import HttpRequest, HttpResponse, make_headers
from strangler.proxy.exchange import Exchange
from strangler.proxy.forwarding import Forwarder, Try
from strangler.proxy.headers import response_head
from strangler.proxy.outcome import Answer, Failure
from strangler.proxy.request import as_message, decoded
from strangler.proxy.responses import error_response
from strangler.proxy.roundtrip import raw_headers, rewritten_head
from strangler.routing.table import Route

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_TARGET = re.compile(r"/[^\x00-\x20\x7f]*")
_VALUE = re.compile(r"[^\r\n\x00]*")


class BadAdapterOutput(ValueError):
    """An adapter returned what cannot go on the wire as it is."""


def checked_request(out: object) -> HttpRequest:
    """``out`` if it is a request that can be written as it is; else BadAdapterOutput."""
    if not isinstance(out, HttpRequest):
        raise BadAdapterOutput(f"request() returned {type(out).__name__}, not HttpRequest")
    if not _TOKEN.fullmatch(out.method):
        raise BadAdapterOutput(f"request() returned the method {out.method[:60]!r}")
    if not _TARGET.fullmatch(out.target):
        raise BadAdapterOutput(f"request() returned the target {out.target[:60]!r}")
    _check_headers("request", out.headers.items())
    return out


def checked_response(out: object) -> HttpResponse:
    """``out`` if it is a response that can be written as it is; else BadAdapterOutput."""
    if not isinstance(out, HttpResponse):
        raise BadAdapterOutput(f"response() returned {type(out).__name__}, not HttpResponse")
    if not isinstance(out.status, int) or not 100 <= out.status <= 599:
        raise BadAdapterOutput(f"response() returned the status {out.status!r}")
    _check_headers("response", out.headers.items())
    return out


def _check_headers(method: str, headers: Iterable[tuple[str, str]]) -> None:
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            raise BadAdapterOutput(f"{method}() returned the header name {name[:60]!r}")
        if not _VALUE.fullmatch(value):
            raise BadAdapterOutput(f"{method}() returned a {name} value with CR, LF or NUL")


def adapter_name(route: Route) -> str:
    spec = route.config.adapter
    return spec if isinstance(spec, str) else "declarative"


async def adapted(fw: Forwarder, ex: Exchange, adapter: HttpAdapter) -> Answer:
    """Answer ``ex`` through the route's adapter and its new upstream."""
    req = ex.request
    decision = ex.decision
    to = decision.upstream
    route = decision.route_name
    body = req.body.buffered
    if body is None:
        try:
            body = await req.body.read_all(ex.config.limits.max_body)
        except BodyTooLarge:
            return _refuse(ex, 413, "request body is larger than limits.max_body")
        except MalformedBody:
            return _refuse(ex, 400, "malformed request body")
        if ex.tap is not None:
            ex.tap.tee_request(body)
    ex.inline = body
    original = as_message(req, decision.path, decision.params, body)

    try:
        rewritten = checked_request(adapter.request(original))
    except Exception as exc:
        log.warning("adapter of route %r failed in request(): %r", route, exc)
        return await _failed(fw, ex, Failure.ADAPTER, exc)

    pool = fw.upstreams.pool(ex.config, to)
    replayable = len(rewritten.body) <= ex.config.limits.max_buffered_retry_body
    how = Try(
        to,
        rewritten.body,
        hold_5xx=decision.fallback,
        replayable=replayable,
        head=rewritten_head(ex, pool, rewritten),
        buffer=True,
    )
    attempt = await fw.attempt(ex, how)
    if attempt.failure is not None:
        return await _failed(fw, ex, attempt.failure, attempt.error)

    answer = HttpResponse(
        headers=make_headers(decoded(attempt.headers)),
        body=b"".join(attempt.chunks),
        status=attempt.status,
    )
    try:
        out = checked_response(adapter.response(original, answer))
    except Exception as exc:
        log.warning("adapter of route %r failed in response(): %r", route, exc)
        return await _failed(fw, ex, Failure.ADAPTER, exc)

    client = ex.client
    no_body = req.method == "HEAD" or out.status in (204, 304) or out.status < 200
    framing = b"" if out.status == 204 else b"content-length: %d\r\n" % len(out.body)
    client.write(
        response_head(
            out.status,
            raw_headers(out.headers),
            fw.tags(route, to),
            framing,
            client.must_close(),
            req.request_id,
        )
        + (b"" if no_body else out.body)
    )
    if ex.tap is not None:
        ex.tap.tee_response(out.body)
    failure = Failure.STATUS if out.status >= 500 else None
    return Answer(to, out.status, failure, response=out)


def _refuse(ex: Exchange, status: int, message: str) -> Answer:
    """The client's body could not be read whole: answer ``status`` and close."""
    ex.request.keep_alive = False
    to = ex.decision.upstream
    ex.client.write(
        error_response(
            status,
            message,
            ex.decision.route_name,
            to,
            close=True,
            request_id=ex.request.request_id,
        )
    )
    return Answer(to, status)


async def _failed(
    fw: Forwarder, ex: Exchange, failure: Failure, exc: BaseException | None
) -> Answer:
    """``to`` or its adapter failed: legacy answers if the decision allows, else 502/504.
    A fallback answer is teed into the shadow tap: it is what the client got."""
    decision = ex.decision
    if decision.fallback:
        return await fw.fall_back(ex, ex.inline, failure)
    to = decision.upstream
    route = decision.route_name
    if failure is Failure.ADAPTER:
        name = adapter_name(decision.route) if decision.route is not None else "?"
        message = f"adapter {name} of route {route!r} failed: {exc}"
    elif failure is Failure.STATUS:
        message = f"upstream {to!r} failed"
    elif failure is Failure.TOO_LARGE:
        message = f"upstream {to!r}: response larger than limits.max_body"
    else:
        message = str(exc) if exc is not None else f"upstream {to!r}: {failure}"
    client = ex.client
    client.write(
        error_response(
            failure.status,
            message,
            route,
            to,
            close=client.must_close(),
            head_only=client.head_only,
            request_id=ex.request.request_id,
        )
    )
    return Answer(to, failure.status, failure)
