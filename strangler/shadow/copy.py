"""The shadow copy: one mirrored exchange as the client saw it, teed while it streamed.

The data plane asks :class:`ShadowTaps` (its ``ShadowSink``) to open a tap for a
request; when the mirror ``wants`` it, the tap is a :class:`ShadowCopy`. The
proxy tees both bodies into it as they stream past (up to the route's
``shadow.max_body``; beyond it the copy is ``over`` and holds nothing) and
completes it once the client has its answer; the copy then goes to the mirror's
``submit`` — or to ``skipped`` when a body was too large. :meth:`ShadowCopy.request`
and :meth:`ShadowCopy.primary` decode the raw bytes into immutable values only
when asked (a byte-identical shadow answer never needs them).

Nothing here sends the mirror, and nothing here raises into the client's answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Protocol

from strangler.message import Headers, HttpRequest, HttpResponse, make_headers
from strangler.proxy.headers import RawHeaders
from strangler.proxy.outcome import Answer
from strangler.proxy.request import ProxyRequest, decoded
from strangler.routing.decision import Decision

log = logging.getLogger(__name__)


class Mirror(Protocol):
    """What takes finished copies (``ShadowMirror``): sampling, then the mirror off-path."""

    def wants(self, decision: Decision, method: str) -> object:
        """Cheap, on the request path: should this request be mirrored? Falsy for no.

        A truthy answer comes back to :meth:`submit` as the copy's ``ticket``."""
        ...

    def submit(self, decision: Decision, copy: ShadowCopy) -> None:
        """Schedule the mirror and comparison off the request path. Never blocks or raises."""
        ...

    def skipped(self, decision: Decision, reason: str) -> None:
        """Count a request that was sampled but not mirrored (e.g. body over the limit)."""
        ...


class ShadowCopy:
    """One mirrored exchange: what the client sent, what it got, as raw bytes.

    ``status`` is None when the primary failed (``error`` says why). A pipelined
    mirror travels as the copy itself (``data``, ``sent``, ``retried`` and
    ``on_answer`` are what the shadow channel reads): one object per mirrored
    request, not two."""

    def __init__(self, request: ProxyRequest, decision: Decision, limit: int) -> None:
        self.method = request.method
        self.target: bytes = request.target
        """The request target as the client sent it (path and query)."""
        self.headers: RawHeaders = request.headers
        """The client's header pairs, hop-by-hop ones included (senders drop them)."""
        self.path = decision.path
        self.params: Mapping[str, str] = decision.params
        self.limit = limit
        self.over = False
        self.mirrored = request.shadowed
        """The client's request carried ``X-Strangler-Shadow``: a mirror, never mirrored."""
        self.body = b""
        self.status: int | None = None
        self.response_headers: RawHeaders = []
        self.response_body = b""
        self.error: str | None = None
        self.duration = 0.0
        self.ticket: object = None
        """What the mirror's ``wants`` answered for this request."""
        self.decision: object = decision
        """The decision the copy is mirrored for (the mirror's type of it)."""
        self.on_answer: Callable[..., None] = _unsent
        """The mirror's: who takes a pipelined mirror's answer (``(copy, status, ...)``)."""
        self.data = b""
        """The mirror's: the mirrored request, encoded."""
        self.sent = 0.0
        self.retried = False
        self.sink: Mirror | None = None
        """Where :meth:`complete` hands the copy (set by :class:`ShadowTaps`)."""
        self._request_chunks: list[bytes] = []
        self._request_size = 0
        self._response_chunks: list[bytes] = []
        self._response_size = 0
        self._request: HttpRequest | None = None
        self._primary: HttpResponse | None = None

    def answered_with(self, response: HttpResponse) -> None:
        """The primary answer as a value (what an adapter produced)."""
        self.status = response.status
        self.response_headers = raw_pairs(response.headers)
        self.response_body = response.body
        self._primary = response

    # ------------------------------------------------------------ while streaming

    def tee_request(self, data: bytes) -> None:
        if not self.over:
            self._request_size += len(data)
            self._keep(self._request_chunks, self._request_size, data)

    def restart_response(self) -> None:
        if not self.over:
            self._response_chunks = []
            self._response_size = 0

    def tee_response(self, data: bytes) -> None:
        if not self.over:
            self._response_size += len(data)
            self._keep(self._response_chunks, self._response_size, data)

    def _keep(self, chunks: list[bytes], size: int, data: bytes) -> None:
        """Keep ``data`` while the copy stays within its limit; past it, keep nothing."""
        if size > self.limit:
            self.over = True
            chunks.clear()
        else:
            chunks.append(data)

    def complete(self, answer: Answer, duration: float) -> None:
        """Fill in what the client got and hand the copy to its mirror; never raises."""
        sink = self.sink
        if sink is None:
            return
        decision = self.decision
        assert isinstance(decision, Decision)
        try:
            if self.over:
                sink.skipped(decision, "body_too_large")
                return
            if self._request_chunks:  # a streamed body (an inline one is in ``body`` already)
                self.body = b"".join(self._request_chunks)
            if answer.response is not None:
                self.answered_with(answer.response)
            elif answer.headers is not None:
                self.status = answer.status
                self.response_headers = answer.headers
                self.response_body = b"".join(self._response_chunks)
            else:
                self.error = answer.failure or f"no answer (the client got {answer.status})"
            self.duration = duration
            sink.submit(decision, self)
        except Exception:
            log.exception("shadow sink failed")

    # ------------------------------------------------------------ decoded

    def request(self) -> HttpRequest:
        if self._request is None:
            query = self.target.partition(b"?")[2]
            self._request = HttpRequest(
                headers=make_headers(decoded(self.headers)),
                body=self.body,
                method=self.method,
                path=self.path,
                query=query.decode("latin-1"),
                params=self.params,
            )
        return self._request

    def primary(self) -> HttpResponse | None:
        if self._primary is None and self.status is not None:
            self._primary = HttpResponse(
                headers=make_headers(decoded(self.response_headers)),
                body=self.response_body,
                status=self.status,
            )
        return self._primary


class ShadowTaps:
    """The data plane's ``ShadowSink``: a :class:`ShadowCopy` for each request ``mirror`` wants."""

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror

    def open(self, decision: Decision, request: ProxyRequest) -> ShadowCopy | None:
        route = decision.route
        if route is None:
            return None
        try:
            ticket = self.mirror.wants(decision, request.method)
        except Exception:
            log.exception("shadow sink failed in wants()")
            return None
        if not ticket:
            return None
        copy = ShadowCopy(request, decision, route.shadow_max_body)
        copy.ticket = ticket
        copy.sink = self.mirror
        if request.body.received:  # a body that arrived whole is copied now; a streamed one is teed
            inline = request.body.buffered
            if inline:
                copy.body = inline
                copy.over = len(inline) > copy.limit
        return copy


def _unsent(copy: ShadowCopy, *answer: object) -> None:
    raise RuntimeError("a shadow copy was sent without an on_answer")


def raw_pairs(headers: Headers) -> RawHeaders:
    """Decoded headers back as raw pairs (what the shadow sender writes)."""
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
