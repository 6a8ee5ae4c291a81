"""What the data plane asks of the shadow pipeline: a tap per mirrored request.

When a decision names a ``shadow_to``, the exchange asks the :class:`ShadowSink`
to ``open`` a :class:`ShadowTap` (cheap; None when the request is not sampled).
The strategies tee the request body and the primary response body into the tap
as they stream past — the client's copy is never delayed or held back for it —
and the exchange's ``finish`` hands the tap what the client got with
``complete``. A request already carrying ``X-Strangler-Shadow`` (:data:`MARKER`)
is a mirror and is never mirrored again.

Only the protocols live here; the copy itself and the mirror are
``strangler.shadow``'s. No error of the sink reaches the client.
"""

from __future__ import annotations

from typing import Protocol

from strangler.proxy.outcome import Answer
from strangler.proxy.request import ProxyRequest
from strangler.routing.decision import Decision

MARKER = "X-Strangler-Shadow"
"""The header every mirrored request carries (a loop guard)."""


class ShadowTap(Protocol):
    """One mirrored request's copy while it streams; bounded by the route's ``shadow.max_body``."""

    def tee_request(self, data: bytes) -> None: ...

    def restart_response(self) -> None:
        """Before every try: a retry or a fallback answers afresh."""
        ...

    def tee_response(self, data: bytes) -> None: ...

    def complete(self, answer: Answer, duration: float) -> None:
        """The client has its answer: hand the copy over for mirroring, off the request path."""
        ...


class ShadowSink(Protocol):
    """Where the data plane's shadow taps come from. Implemented in ``strangler.shadow``."""

    def open(self, decision: Decision, request: ProxyRequest) -> ShadowTap | None:
        """Cheap, on the request path: a tap when this request is to be mirrored, else None.

        Sampling is sticky on ``decision.bucket`` so a user's session is mirrored whole."""
        ...
