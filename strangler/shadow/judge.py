"""A comparison in full: the client's answer against the mirror's, recorded.

:class:`Judge` takes one mirrored exchange whose outcome did not show at a
glance: it builds the client's side as an
:class:`~strangler.shadow.observation.Observation`, puts a new-side mirror in
the legacy shape (the route's response adapter), learns noise when legacy was
asked twice, compares under the plan's comparator and the route's noise, keeps
a redacted sample (every mismatch; an error at most once a second per route:
a dead target fails every request alike, and a sample costs a JSON dump) and
hands the result to the :class:`~strangler.shadow.recorder.Recorder`.

It runs in tasks off the request path, one comparison per loop turn, and never
raises: a comparison that fails is logged, never the client's problem.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from strangler.message import HttpRequest
from strangler.shadow.compare import adapt
from strangler.shadow.copy import ShadowCopy
from strangler.shadow.noise import NoiseBook
from strangler.shadow.observation import Observation, Side
from strangler.shadow.outcome import ERROR, MISMATCH, ShadowOutcome
from strangler.shadow.plan import Plan
from strangler.shadow.recorder import Recorder
from strangler.shadow.results import Sample

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MirrorAnswer:
    """What the mirror brought back."""

    observation: Observation
    sent: HttpRequest | None = None
    """The request as the mirror sent it (after the identity rewrite and the request
    adapter); None when it went as the client sent it."""
    again: Observation | None = None
    """Legacy's second answer to the same request (``noise_percent``)."""


class Judge:
    def __init__(self, recorder: Recorder, noise: NoiseBook) -> None:
        self._recorder = recorder
        self._noise = noise
        self._turn = asyncio.Lock()
        self._error_sampled: dict[str, float] = {}

    def error_sample_due(self, route: str) -> bool:
        """No error of ``route`` was sampled in the last second."""
        return time.monotonic() - self._error_sampled.get(route, 0.0) >= 1.0

    async def judge(
        self, plan: Plan, copy: ShadowCopy, answered_by: str, mirror: MirrorAnswer
    ) -> None:
        """Compare what the client got from ``answered_by`` with ``mirror``; record it."""
        name = plan.name
        try:
            client_side: Side = "legacy" if plan.side == "new" else "new"
            primary = copy.primary()
            if primary is not None:
                first = Observation.of(client_side, answered_by, primary, copy.duration)
            else:
                first = Observation.failure(
                    client_side, answered_by, copy.error or "failed", copy.duration
                )
            second = mirror.observation
            legacy, new = (first, second) if plan.side == "new" else (second, first)
            comparator = plan.comparator
            if mirror.again is not None:
                self._noise.learn(name, comparator, legacy, mirror.again)
            noise = await self._noise.of(name)
            request = copy.request()
            # One comparison per loop turn: shadows that finish together (a slow
            # target answering a burst) must not stall the client's I/O in one go.
            async with self._turn:
                if plan.side == "new":
                    # A primary answered by `to` reached us already adapted (it is
                    # what the client got); only our own call needs translating.
                    new = adapt(plan.route.adapter, request, new)
                comparison = comparator.compare(legacy, new, noise)
                endpoint = self._recorder.endpoint(name, copy.method, copy.path)
                sample = None
                if self._keep_sample(name, comparison.outcome):
                    # What each side received: the client's request, and the mirror
                    # after the identity rewrite and the request adapter.
                    to_mirror = mirror.sent if mirror.sent is not None else request
                    sent = (
                        {"legacy": request, "new": to_mirror}
                        if plan.side == "new"
                        else {"legacy": to_mirror, "new": request}
                    )
                    sample = Sample.build(
                        name,
                        request,
                        legacy,
                        new,
                        comparison,
                        plan.redactor,
                        sent=sent,
                        endpoint=endpoint,
                    )
            self._recorder.compared(name, comparison, sample, endpoint)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("shadow comparison for route %r failed", name)

    def _keep_sample(self, route: str, outcome: ShadowOutcome) -> bool:
        if outcome == MISMATCH:
            return True
        if outcome != ERROR or not self.error_sample_due(route):
            return False
        self._error_sampled[route] = time.monotonic()
        return True
