"""What one proxy process holds at run time: the data plane's host.

The data plane reads ``runtime.router.table`` once per request, reports every
proxied request to ``runtime.record`` (metrics, automatic rollback), and opens
shadow taps from ``runtime.shadow`` (:class:`~strangler.proxy.exchange.Host` is
the protocol it sees). None of these may block or raise into the client's response.

A runtime is built whole, once, by ``strangler.serve`` after the parts it holds
(the control plane's rollback monitor is one of its listeners; the shadow mirror
is behind its sink), and never changed after: a part that needs something at
run time is given it when it is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from strangler.metrics import Metrics
from strangler.proxy.exchange import RequestTracer
from strangler.proxy.hold import WriteHold
from strangler.proxy.outcome import RequestRecord
from strangler.proxy.shadowing import ShadowSink
from strangler.routing.router import Router

__all__ = [
    "MatchRateSource",
    "RequestListener",
    "RequestRecord",
    "Runtime",
    "ShadowSink",
]

RequestListener = Callable[[RequestRecord], None]
"""Called once per proxied request, on the request path: O(1), in memory, no I/O."""

MatchRateSource = Callable[[str], float | None]
"""A route's recent shadow match rate (0..1), or None when nothing was compared."""


@dataclass(frozen=True)
class Runtime:
    router: Router
    listeners: tuple[RequestListener, ...] = ()
    """Told of every proxied request: metrics, the rollback monitor."""
    shadow: ShadowSink | None = None
    metrics: Metrics | None = None
    """This process's metrics; the admin app renders them."""
    shadow_match_rate: MatchRateSource | None = None
    """The shadow part's match rates; read by the admin API (display, canary guard)."""
    hold: WriteHold = field(default_factory=WriteHold)
    """The contexts' write gates in this process (closed by the control plane while a
    cutover holds a context's writes)."""
    tracer: RequestTracer | None = None
    """Spans for finished requests when ``tracing:`` is set (``strangler.tracing``)."""

    def record(self, record: RequestRecord) -> None:
        for listener in self.listeners:
            listener(record)
