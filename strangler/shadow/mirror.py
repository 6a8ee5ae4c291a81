"""The shadow sink: mirrors sampled requests off the client's path and compares.

:class:`ShadowMirror` implements ``strangler.runtime.ShadowSink``. On the
request path it only does O(1) work: ``wants()`` samples stickily on the
decision's bucket and checks the in-flight bounds (or records ``dropped``);
``submit()`` checks them again and hands the copy to a lane; ``skipped()``
records. The parts, each in its module:

- :mod:`.plan`: what mirroring a route to an upstream needs, once per route table;
- :mod:`.bounds`: the in-flight bounds, in total and per route;
- :mod:`.channel_lane`: plain GETs pipelined to the target, glanced at as they come;
- :mod:`.task_lane`: every other mirror, in a task of its own;
- :mod:`.judge`: a comparison in full (adapter, noise, sample);
- :mod:`.compare`: the one definition of match (``glance`` is its shortcut);
- :mod:`.recorder`: where outcomes go (batches, metrics, rollback feed, store).

This module must never await anything on the client's behalf, queue work
without a bound, or let an exception from the shadow side reach the client.
"""

from __future__ import annotations

import logging
import random

from strangler.proxy.circuit import CLOSED
from strangler.routing.decision import Decision
from strangler.shadow.background import Background
from strangler.shadow.bounds import InFlight
from strangler.shadow.channel_lane import ChannelLane
from strangler.shadow.client import ShadowClient
from strangler.shadow.copy import ShadowCopy
from strangler.shadow.judge import Judge
from strangler.shadow.noise import NoiseBook
from strangler.shadow.outcome import ShadowOutcome
from strangler.shadow.plan import Plan, Plans, Upstreams
from strangler.shadow.recorder import ComparisonFeed, Recorder, ShadowMetrics
from strangler.shadow.store import ShadowStore
from strangler.shadow.task_lane import TaskLane

log = logging.getLogger(__name__)

_DROPPED = ShadowOutcome.DROPPED
_ERROR = ShadowOutcome.ERROR


class ShadowMirror:
    """The shadow sink: samples, bounds, and hands each copy to a lane.

    ``recorder`` is where its outcomes go (and ``recorder.flush()`` pushes them to
    ``store`` now); ``close()`` cancels what is on its way and flushes."""

    def __init__(
        self,
        upstreams: Upstreams,
        store: ShadowStore,
        *,
        metrics: ShadowMetrics | None = None,
        on_comparison: ComparisonFeed | None = None,
        max_in_flight: int = 512,
        flush_interval: float = 0.5,
    ) -> None:
        self.store = store
        self.recorder = Recorder(store, metrics, on_comparison, flush_interval)
        self._in_flight = InFlight(max_in_flight)
        self._client = ShadowClient(max_in_flight)
        self._plans = Plans(upstreams, self._client, self._in_flight, self.recorder.described)
        self._judge = Judge(self.recorder, NoiseBook(self.recorder))
        self._background = Background()
        self._channel_lane = ChannelLane(
            self._in_flight, self.recorder, self._judge, self._background
        )
        self._task_lane = TaskLane(
            upstreams, self._client, self._in_flight, self.recorder, self._judge
        )

    @property
    def in_flight(self) -> int:
        """Mirrors on their way, whose results are not recorded yet."""
        return self._in_flight.total

    # ------------------------------------------------------------ ShadowSink

    def wants(self, decision: Decision, method: str) -> Plan | None:
        """The route's plan (the copy's ``ticket``) when this request is mirrored."""
        route = decision.route
        shadow_to = decision.shadow_to
        if route is None or shadow_to is None:
            return None
        plan = self._plans.known.get((route, shadow_to)) or self._plans.build(route, shadow_to)
        if not plan.takes(method, decision.bucket):
            return None
        if self._in_flight.full(plan):
            # Decided here, before the data plane copies any body for us.
            self.recorder.later(plan.name, _DROPPED)
            return None
        circuit = plan.circuit
        if (
            circuit is not None
            and circuit.state is not CLOSED
            and circuit.refusing()
            and not self._judge.error_sample_due(plan.name)
        ):
            # The target's breaker is open: the mirror would fail untried, an error
            # whatever the client gets. Recorded now, without a copy (the once-a-second
            # error sample still takes the whole path, to say why).
            self.recorder.later(plan.name, _ERROR)
            return None
        return plan

    def submit(self, decision: Decision, copy: ShadowCopy) -> None:
        try:
            plan = copy.ticket
            if not isinstance(plan, Plan):
                plan = self._ticket(decision, copy)
                if plan is None:
                    return
            if copy.mirrored:
                return  # a mirrored request is never mirrored again
            # Checked again: other mirrors may have filled the bound since ``wants``.
            if not self._in_flight.admit(plan):
                self.recorder.count(plan.name, _DROPPED)
                return
            noisy = plan.noise_percent > 0 and random.random() * 100 < plan.noise_percent
            try:
                channel = plan.channel
                if channel is not None and copy.method == "GET" and not noisy:
                    self._channel_lane.send(channel, plan, decision, copy)
                else:
                    self._background.start(self._task_lane.run(plan, decision, copy, noisy))
            except BaseException:
                self._in_flight.release(plan)
                raise
        except Exception:  # the sink must never raise into the client's response
            log.exception("shadow submit failed")

    def _ticket(self, decision: Decision, copy: ShadowCopy) -> Plan | None:
        """The plan of a copy made off the data plane (which did not ask ``wants``);
        None when the request is not mirrored."""
        route, shadow_to = decision.route, decision.shadow_to
        if route is None or shadow_to is None:
            return None
        plan = self._plans.of(route, shadow_to)
        copy.ticket = plan
        if len(copy.body) > plan.max_body:  # (the data plane's copies are bounded)
            self.recorder.count(plan.name, ShadowOutcome.SKIPPED)
            return None
        return plan

    def skipped(self, decision: Decision, reason: str) -> None:
        if decision.route is not None:
            self.recorder.count(decision.route.name, ShadowOutcome.SKIPPED)

    # ------------------------------------------------------------ lifecycle

    async def close(self) -> None:
        """Cancel the mirrors still on their way, record what was, close the pools."""
        await self._background.cancel()
        await self.recorder.close()
        self._client.close()
