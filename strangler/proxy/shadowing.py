"""Shadow copies on the data plane: tee the bodies while streaming, hand them over after.

When a decision names a ``shadow_to`` and the shadow sink ``wants`` the request,
a :class:`ShadowCopy` copies the request body and the primary response body as
they stream past (up to the route's ``shadow.max_body``); the client's copy is
never delayed or held back for it. Once the client has its answer,
:func:`submit` hands the sink a :class:`ShadowCopy` — the client's request and
the primary answer as raw bytes, decoded into ``HttpRequest``/``HttpResponse``
only if the sink asks (a byte-identical shadow answer never needs them) — or
tells it the request was skipped because a body was too large. A request
already carrying ``X-Strangler-Shadow`` is never mirrored.

Nothing here sends the mirror (``strangler.shadow`` does, off the request path),
and no error of the sink reaches the client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from strangler.message import Headers, HttpRequest, HttpResponse, make_headers
from strangler.proxy.headers import RawHeaders
from strangler.proxy.request import ProxyRequest, decoded
from strangler.routing.decision import Decision
from strangler.runtime import Runtime

log = logging.getLogger(__name__)
_new = object.__new__
MARKER = "X-Strangler-Shadow"


class ShadowCopy:
    """One mirrored exchange as the client saw it: what it sent, what it got.

    Raw bytes as they crossed the proxy. The data plane opens a copy when the
    sink wants the request (:func:`open_tap`), tees both bodies into it as they
    stream past (up to ``limit``; beyond it the copy is ``over`` and holds
    nothing), and completes it (:func:`submit`) once the client has its answer.
    :meth:`request` and :meth:`primary` decode it into immutable values on first
    use. ``status`` is None when the primary failed (``error`` says why).

    A pipelined mirror travels as the copy itself (``data``, ``sent``,
    ``retried`` and ``on_answer`` are what the shadow channel reads): one
    object per mirrored request, not two."""

    __slots__ = (
        "_primary",
        "_request",
        "_request_chunks",
        "_request_size",
        "_response_chunks",
        "_response_size",
        "body",
        "data",
        "decision",
        "duration",
        "error",
        "headers",
        "limit",
        "method",
        "mirrored",
        "on_answer",
        "over",
        "params",
        "path",
        "response_body",
        "response_headers",
        "retried",
        "sent",
        "status",
        "target",
        "ticket",
    )

    method: str
    target: bytes
    """The request target as the client sent it (path and query)."""
    headers: RawHeaders
    """The client's header pairs, hop-by-hop ones included (senders drop them)."""
    path: str
    params: Mapping[str, str]
    limit: int
    over: bool
    mirrored: bool
    """The client's request carried ``X-Strangler-Shadow``: a mirror, never mirrored."""
    body: bytes
    status: int | None
    response_headers: RawHeaders
    response_body: bytes
    error: str | None
    duration: float
    ticket: object
    """What the sink's ``wants`` answered for this request (None for :meth:`of`)."""
    on_answer: Callable[..., None]
    """The sink's: who takes a pipelined mirror's answer (``(copy, status, ...)``)."""
    decision: object
    """The sink's: the decision the copy was submitted with."""
    data: bytes
    """The sink's: the mirrored request, encoded."""
    sent: float
    retried: bool
    _request_chunks: list[bytes] | None
    _request_size: int
    _response_chunks: list[bytes] | None
    _response_size: int
    _request: HttpRequest | None
    _primary: HttpResponse | None

    @classmethod
    def open(
        cls,
        method: str,
        target: bytes,
        headers: RawHeaders,
        path: str,
        params: Mapping[str, str],
        limit: int,
    ) -> ShadowCopy:
        """An empty copy of one request, to tee into.

        Built field by field rather than by ``__init__``: calling a class with an
        ``__init__`` runs a second interpreter loop on CPython 3.11 (~2k instructions
        measured per copy by ``bench/shadow_instructions.py``), on every mirrored request."""
        copy = _new(cls)
        copy.method = method
        copy.target = target
        copy.headers = headers
        copy.path = path
        copy.params = params
        copy.limit = limit
        copy.over = False
        copy.mirrored = False
        copy.body = b""
        copy.status = None
        copy.response_headers = []
        copy.response_body = b""
        copy.error = None
        copy.duration = 0.0
        copy._request_chunks = None
        copy._request_size = 0
        copy._response_chunks = None
        copy._response_size = 0
        copy._request = None
        copy._primary = None
        copy.ticket = None
        copy.decision = None
        copy.data = b""
        copy.sent = 0.0
        copy.retried = False
        copy.on_answer = _unsent
        return copy

    @classmethod
    def of(
        cls,
        request: HttpRequest,
        primary: HttpResponse | None,
        error: str | None,
        duration: float,
    ) -> ShadowCopy:
        """A complete copy from values (the sink's tests, and callers off the data plane)."""
        copy = cls.open(
            request.method,
            request.target.encode("latin-1"),
            raw_pairs(request.headers),
            request.path,
            request.params,
            max(len(request.body), len(primary.body) if primary is not None else 0),
        )
        copy.body = request.body
        if primary is not None:
            copy.answered_with(primary)
        else:
            copy.error = error or "failed"
        copy.duration = duration
        copy._request = request
        copy.mirrored = MARKER in request.headers
        return copy

    def answered_with(self, response: HttpResponse) -> None:
        """The primary answer as a value (what an adapter produced, or a test's)."""
        self.status = response.status
        self.response_headers = raw_pairs(response.headers)
        self.response_body = response.body
        self._primary = response

    # ------------------------------------------------------------ while streaming

    def tee_request(self, data: bytes) -> None:
        if not self.over:
            self._request_size += len(data)
            if self._request_size > self.limit:
                self.over = True
                self._request_chunks = None
            elif self._request_chunks is None:
                self._request_chunks = [data]
            else:
                self._request_chunks.append(data)

    def restart_response(self) -> None:
        """Before every attempt: a retry or a fallback answers afresh."""
        if not self.over:
            self._response_chunks = None
            self._response_size = 0

    def tee_response(self, data: bytes) -> None:
        if not self.over:
            self._response_size += len(data)
            if self._response_size > self.limit:
                self.over = True
                self._response_chunks = None
            elif self._response_chunks is None:
                self._response_chunks = [data]  # most answers are one chunk: no list before
            else:
                self._response_chunks.append(data)

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


def _unsent(copy: ShadowCopy, *answer: object) -> None:
    raise RuntimeError("a shadow copy was sent without an on_answer")


def raw_pairs(headers: Headers) -> RawHeaders:
    """Decoded headers back as raw pairs (what the shadow sender writes)."""
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def open_tap(runtime: Runtime, decision: Decision, req: ProxyRequest) -> ShadowCopy | None:
    """A copy to tee into when this request is to be mirrored, else None (cheap when not)."""
    shadow = runtime.shadow
    if decision.shadow_to is None or shadow is None or req.shadowed:
        return None
    route = decision.route
    if route is None:
        return None
    try:
        ticket = shadow.wants(decision, req.method)
    except Exception:
        log.exception("shadow sink failed in wants()")
        return None
    if not ticket:
        return None
    copy = ShadowCopy.open(
        req.method,
        req.target,
        req.headers,
        decision.path,
        decision.params,
        route.shadow_max_body,
    )
    copy.ticket = ticket
    if req.body.received:  # a body that arrived whole is copied now; a streamed one is teed
        inline = req.body.buffered
        if inline:
            copy.body = inline
            copy.over = len(inline) > copy.limit
    return copy


def submit(
    runtime: Runtime,
    decision: Decision,
    req: ProxyRequest,
    copy: ShadowCopy,
    status: int,
    headers: RawHeaders | None,
    response: HttpResponse | None,
    error: str | None,
    duration: float,
) -> None:
    """Complete ``copy`` with what the client got (``response``, or ``status``/``headers``
    plus the teed body) and hand it to the sink; never raises."""
    shadow = runtime.shadow
    if shadow is None:
        return
    try:
        if copy.over:
            shadow.skipped(decision, "body_too_large")
            return
        chunks = copy._request_chunks
        if chunks:  # a streamed body (an inline one is in ``body`` already)
            copy.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks = copy._response_chunks
        if response is not None:
            copy.answered_with(response)
        elif headers is not None:
            copy.status = status
            copy.response_headers = headers
            if chunks:
                copy.response_body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        else:
            copy.error = error or f"no answer (the client got {status})"
        copy.duration = duration
        shadow.submit(decision, copy)
    except Exception:
        log.exception("shadow sink failed")
