"""Shadow traffic: mirror sampled requests off the client's path and compare answers.

``observation`` (one side's answer), ``compare`` (typed field-by-field
differences after adapter and normalisation: the one definition of match),
``mirror`` (the bounded off-path sink, and the parts it is made of: see its
docstring), ``recorder`` (where outcomes go), ``store`` (counts, rates, noise,
redacted samples; memory or Redis), ``api`` (``GET /api/routes/{name}/shadow``
and the match-rate hook).
:func:`install` wires them into a :class:`~strangler.runtime.Runtime`.
"""

from __future__ import annotations

from strangler.runtime import Runtime
from strangler.shadow.api import MatchRates
from strangler.shadow.mirror import ShadowMirror
from strangler.shadow.recorder import ShadowMetrics
from strangler.shadow.store import ShadowStore


def install(
    runtime: Runtime, store: ShadowStore, *, metrics: ShadowMetrics | None = None
) -> tuple[ShadowMirror, MatchRates]:
    """Make ``store`` the runtime's shadow store: the sink, rollback feed and rate hook.

    The caller runs ``rates.run()`` as a background task and closes the mirror
    (``await mirror.close()``) on shutdown."""
    mirror = ShadowMirror(
        lambda: runtime.router.table.config.upstreams,
        store,
        metrics=metrics,
        on_comparison=runtime.record_comparison,
    )
    rates = MatchRates(store)
    runtime.shadow = mirror
    runtime.shadow_match_rate = rates
    return mirror, rates
