"""Shadow traffic: mirror sampled requests off the client's path and compare answers.

``copy`` (the mirrored exchange the data plane tees), ``observation`` (one
side's answer), ``compare`` (typed field-by-field differences after adapter
and normalisation), ``mirror`` (the bounded off-path sink), ``store`` (counts,
rates, noise, redacted samples; memory or Redis), ``api``
(``GET /api/routes/{name}/shadow`` and the match-rate hook).
:func:`install` wires them into a :class:`~strangler.runtime.Runtime`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strangler.shadow.api import MatchRates
from strangler.shadow.copy import ShadowTaps
from strangler.shadow.mirror import Metrics, ShadowMirror
from strangler.shadow.store import ShadowStore

if TYPE_CHECKING:
    from strangler.runtime import Runtime


def install(
    runtime: Runtime, store: ShadowStore, *, metrics: Metrics | None = None
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
    runtime.shadow = ShadowTaps(mirror)
    runtime.shadow_match_rate = rates
    return mirror, rates
