"""What one proxy process holds at run time, and the protocols the data plane calls.

The data plane reads ``runtime.router.table`` once per request, reports every
proxied request to ``runtime.record`` (metrics, automatic rollback), and hands
shadow copies to ``runtime.shadow``. None of these may block or raise into the
client's response.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from strangler.proxy.hold import WriteHold

if TYPE_CHECKING:
    from strangler.control.state import StateStore
    from strangler.metrics import Metrics
    from strangler.proxy.shadowing import ShadowCopy
    from strangler.routing.decision import Decision
    from strangler.routing.router import Router


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One proxied request, as seen by the data plane once the client has its answer."""

    route: str | None
    """Route name, or None when unmatched."""
    upstream: str
    """Upstream that answered (after any fallback)."""
    status: int
    duration: float
    to_new: bool
    """True when the route's new upstream (``to``) was tried for this request."""
    error: str | None = None
    """Why the new upstream failed, if it did: ``timeout``, ``connect``, ``circuit``,
    ``adapter``, ``status`` (a 5xx) — counted by automatic rollback."""
    fallback: bool = False
    """True when legacy answered after the new upstream failed."""


RequestListener = Callable[[RequestRecord], None]

ComparisonListener = Callable[[str, bool, int], None]
"""Called with (route name, matched, how many) for finished shadow comparisons; O(1), no I/O."""

MatchRateSource = Callable[[str], float | None]
"""A route's recent shadow match rate (0..1), or None when nothing was compared."""


class ShadowSink(Protocol):
    """Where the data plane hands shadow copies. Implemented in ``strangler.shadow``."""

    def wants(self, decision: Decision, method: str) -> object:
        """Cheap, on the request path: should this request be mirrored? Falsy for no.

        Sampling is sticky on ``decision.bucket`` so a user's session is mirrored whole.
        A truthy answer comes back to :meth:`submit` as the copy's ``ticket`` (a sink
        can hand itself what it worked out here)."""
        ...

    def submit(self, decision: Decision, copy: ShadowCopy) -> None:
        """Schedule the mirror and comparison off the request path. Never blocks or raises."""
        ...

    def skipped(self, decision: Decision, reason: str) -> None:
        """Count a request that was sampled but not mirrored (e.g. body over the limit)."""
        ...


@dataclass
class Runtime:
    router: Router
    listeners: list[RequestListener] = field(default_factory=list)
    shadow: ShadowSink | None = None
    metrics: Metrics | None = None
    """This process's metrics (set by ``strangler.serve``); the admin app renders them."""
    state: StateStore | None = None
    """The state store (set by the control plane); never used on the request path."""
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
