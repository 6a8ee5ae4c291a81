"""What one proxy process holds at run time: the data plane's host.

The data plane reads ``runtime.router.table`` once per request, reports every
proxied request to ``runtime.record`` (metrics, automatic rollback), and opens
shadow taps from ``runtime.shadow`` (:class:`~strangler.proxy.exchange.Host` is
the protocol it sees). None of these may block or raise into the client's response.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from strangler.metrics import Metrics
from strangler.proxy.hold import WriteHold
from strangler.proxy.outcome import RequestRecord
from strangler.proxy.shadowing import ShadowSink
from strangler.routing.router import Router

__all__ = [
    "ComparisonListener",
    "MatchRateSource",
    "RequestListener",
    "RequestRecord",
    "Runtime",
    "ShadowSink",
]

RequestListener = Callable[[RequestRecord], None]

ComparisonListener = Callable[[str, bool, int], None]
"""Called with (route name, matched, how many) for finished shadow comparisons; O(1), no I/O."""

MatchRateSource = Callable[[str], float | None]
"""A route's recent shadow match rate (0..1), or None when nothing was compared."""


@dataclass
class Runtime:
    router: Router
    listeners: list[RequestListener] = field(default_factory=list)
    shadow: ShadowSink | None = None
    metrics: Metrics | None = None
    """This process's metrics (set by ``strangler.serve``); the admin app renders them."""
    comparison_listeners: list[ComparisonListener] = field(default_factory=list)
    shadow_match_rate: MatchRateSource | None = None
    """Set by the shadow part; read by the admin API (display, canary guard)."""
    hold: WriteHold = field(default_factory=WriteHold)
    """The contexts' write gates in this process (closed by the control plane while a
    cutover holds a context's writes)."""

    def record(self, record: RequestRecord) -> None:
        for listener in self.listeners:
            listener(record)

    def record_comparison(self, route: str, matched: bool, count: int = 1) -> None:
        """The shadow part reports comparisons here (automatic rollback listens)."""
        for listener in self.comparison_listeners:
            listener(route, matched, count)
