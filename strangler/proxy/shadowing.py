"""Shadow copies on the data plane: tee the bodies while streaming, hand them over after.

When a decision names a ``shadow_to`` and the shadow sink ``wants`` the request,
a :class:`ShadowTap` copies the request body and the primary response body as
they stream past (up to the route's ``shadow.max_body``); the client's copy is
never delayed or held back for it. Once the client has its answer,
:func:`submit` hands the sink the client's request and the primary answer as
immutable values — or tells it the request was skipped because a body was too
large. A request already carrying ``X-Strangler-Shadow`` is never mirrored.

Nothing here sends the mirror (``strangler.shadow`` does, off the request path),
and no error of the sink reaches the client.
"""

from __future__ import annotations

import logging

from strangler.config import ShadowConfig
from strangler.message import HttpResponse, make_headers
from strangler.proxy.headers import RawHeaders
from strangler.proxy.request import ProxyRequest, as_message, decoded
from strangler.routing.decision import Decision
from strangler.runtime import Runtime

log = logging.getLogger(__name__)
DEFAULT_SHADOW = ShadowConfig()


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
    if inline is not None:
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
        request = as_message(req, decision.path, decision.params, b"".join(tap.request))
        primary = response
        if primary is None and headers is not None:
            primary = HttpResponse(
                headers=make_headers(decoded(headers)),
                body=b"".join(tap.response),
                status=status,
            )
        shadow.submit(decision, request, primary, error if primary is None else None, duration)
    except Exception:
        log.exception("shadow sink failed")
