"""Shadow copies on the data plane: tee the bodies while streaming, hand them over after.

When a decision names a ``shadow_to`` and the shadow sink ``wants`` the request,
a :class:`ShadowTap` copies the request body and the primary response body as
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
from collections.abc import Mapping

from strangler.config import ShadowConfig
from strangler.message import Headers, HttpRequest, HttpResponse, make_headers
from strangler.proxy.headers import RawHeaders
from strangler.proxy.request import ProxyRequest, as_message, decoded
from strangler.routing.decision import Decision
from strangler.runtime import Runtime

log = logging.getLogger(__name__)
DEFAULT_SHADOW = ShadowConfig()
MARKER = "X-Strangler-Shadow"


class ShadowCopy:
    """One mirrored exchange as the client saw it: what it sent, what it got.

    Raw bytes as they crossed the proxy; :meth:`request` and :meth:`primary`
    decode them into immutable values on first use. ``status`` is None when the
    primary failed (``error`` says why)."""

    __slots__ = (
        "_primary",
        "_request",
        "body",
        "duration",
        "error",
        "headers",
        "method",
        "mirrored",
        "params",
        "path",
        "response_body",
        "response_headers",
        "status",
        "target",
    )

    def __init__(
        self,
        method: str,
        target: bytes,
        headers: RawHeaders,
        body: bytes,
        path: str,
        params: Mapping[str, str],
        status: int | None,
        response_headers: RawHeaders,
        response_body: bytes,
        error: str | None,
        duration: float,
    ) -> None:
        self.method = method
        self.target = target
        """The request target as the client sent it (path and query)."""
        self.headers = headers
        """The client's header pairs, hop-by-hop ones included (senders drop them)."""
        self.body = body
        self.path = path
        self.params = params
        self.status = status
        self.response_headers = response_headers
        self.response_body = response_body
        self.error = error
        self.duration = duration
        self.mirrored = False
        """The client's request carried ``X-Strangler-Shadow``: a mirror, never mirrored."""
        self._request: HttpRequest | None = None
        self._primary: HttpResponse | None = None

    @classmethod
    def of(
        cls,
        request: HttpRequest,
        primary: HttpResponse | None,
        error: str | None,
        duration: float,
    ) -> ShadowCopy:
        """A copy from values (the adapter path, which buffered both sides, and tests)."""
        copy = cls(
            request.method,
            request.target.encode("latin-1"),
            raw_pairs(request.headers),
            request.body,
            request.path,
            request.params,
            primary.status if primary is not None else None,
            raw_pairs(primary.headers) if primary is not None else [],
            primary.body if primary is not None else b"",
            None if primary is not None else error or "failed",
            duration,
        )
        copy._request, copy._primary = request, primary
        copy.mirrored = MARKER in request.headers
        return copy

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


def raw_pairs(headers: Headers) -> RawHeaders:
    """Decoded headers back as raw pairs (what the shadow sender writes)."""
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


class ShadowTap:
    """Copies of the request and response bodies for a shadow mirror, up to ``limit``."""

    __slots__ = ("limit", "over", "request", "request_size", "response", "response_size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.request: list[bytes] = []
        self.request_size = 0
        self.response: list[bytes] = []
        self.response_size = 0
        self.over = False

    def tee_request(self, data: bytes) -> None:
        if not self.over:
            self.request_size += len(data)
            if self.request_size > self.limit:
                self.over = True
                self.request.clear()
            else:
                self.request.append(data)

    def restart_response(self) -> None:
        if not self.over:
            self.response.clear()
            self.response_size = 0

    def tee_response(self, data: bytes) -> None:
        if not self.over:
            self.response_size += len(data)
            if self.response_size > self.limit:
                self.over = True
                self.response.clear()
            else:
                self.response.append(data)


def open_tap(runtime: Runtime, decision: Decision, req: ProxyRequest) -> ShadowTap | None:
    """A tap when this request is to be mirrored, else None (cheap when not)."""
    shadow = runtime.shadow
    if decision.shadow_to is None or shadow is None or req.shadowed:
        return None
    route = decision.route
    if route is None:
        return None
    try:
        if not shadow.wants(decision, req.method):
            return None
    except Exception:
        log.exception("shadow sink failed in wants()")
        return None
    # A route in shadow mode without a ``shadow:`` block mirrors with the defaults.
    tap = ShadowTap((route.config.shadow or DEFAULT_SHADOW).max_body)
    inline = req.body.buffered
    if inline:
        tap.tee_request(inline)
    return tap


def submit(
    runtime: Runtime,
    decision: Decision,
    req: ProxyRequest,
    tap: ShadowTap,
    status: int,
    headers: RawHeaders | None,
    response: HttpResponse | None,
    error: str | None,
    duration: float,
) -> None:
    """Hand the sink what the client got (``response``, or ``status``/``headers`` plus
    the teed body); never raises."""
    shadow = runtime.shadow
    if shadow is None:
        return
    try:
        if tap.over:
            shadow.skipped(decision, "body_too_large")
            return
        teed = tap.request
        body = b"" if not teed else teed[0] if len(teed) == 1 else b"".join(teed)
        if response is not None:
            request = as_message(req, decision.path, decision.params, body)
            copy = ShadowCopy.of(request, response, None, duration)
        else:
            teed = tap.response
            copy = ShadowCopy(
                req.method,
                req.target,
                req.headers,
                body,
                decision.path,
                decision.params,
                status if headers is not None else None,
                headers if headers is not None else [],
                teed[0] if len(teed) == 1 else b"".join(teed),
                None if headers is not None else error or f"no answer (the client got {status})",
                duration,
            )
        shadow.submit(decision, copy)
    except Exception:
        log.exception("shadow sink failed")
