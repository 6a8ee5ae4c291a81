"""Shadow traffic: mirror sampled requests off the client's path and compare answers.

``copy`` (the mirrored exchange the data plane tees), ``observation`` (one
side's answer), ``compare`` (typed field-by-field differences after adapter
and normalisation), ``mirror`` (the bounded off-path sink), ``store`` (counts,
rates, noise, redacted samples; memory or Redis), ``api``
(``GET /api/routes/{name}/shadow`` and the match-rate hook).
:func:`mirror_for` builds the mirror a :class:`~strangler.runtime.Runtime` holds.
"""

from __future__ import annotations

from collections.abc import Callable

from strangler.routing.router import Router
from strangler.shadow.api import MatchRates
from strangler.shadow.copy import ShadowTaps
from strangler.shadow.mirror import Metrics, ShadowMirror
from strangler.shadow.store import ShadowStore

__all__ = ["MatchRates", "ShadowMirror", "ShadowTaps", "mirror_for"]


def mirror_for(
    router: Router,
    store: ShadowStore,
    *,
    metrics: Metrics | None = None,
    on_comparison: Callable[[str, bool, int], None] | None = None,
) -> ShadowMirror:
    """The mirror for this process: it sends to the upstreams of ``router``'s current
    config and records into ``store``; ``on_comparison`` is told of every comparison
    (automatic rollback). The runtime's sink is ``ShadowTaps(mirror)``, its match-rate
    hook ``MatchRates(store)`` (run ``rates.run()`` as a background task); the caller
    closes the mirror (``await mirror.close()``) on shutdown."""
    return ShadowMirror(
        lambda: router.table.config.upstreams, store, metrics=metrics, on_comparison=on_comparison
    )
