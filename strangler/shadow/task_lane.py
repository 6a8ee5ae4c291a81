"""The task lane: a mirror in a task of its own, for everything not pipelined.

Any method, a request adapter or an identity rewrite on the way out, a noise
call (legacy asked a second time): the copy is decoded into an
:class:`~strangler.message.HttpRequest`, rewritten for the side it goes to,
sent over :class:`~strangler.shadow.client.ShadowClient`, and what came back
is compared in full by the :class:`~strangler.shadow.judge.Judge`. A rewrite,
an adapter or a target that fails makes the observation failed (an
``error``), never an exception; an answer over ``shadow.max_body`` is
skipped.

It runs off the client's path, and never raises.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from strangler.message import HttpRequest
from strangler.routing.decision import Decision
from strangler.shadow.bounds import InFlight
from strangler.shadow.client import ShadowClient, TooLarge
from strangler.shadow.copy import ShadowCopy
from strangler.shadow.judge import Judge, MirrorAnswer
from strangler.shadow.observation import Observation, Side
from strangler.shadow.outcome import ShadowOutcome
from strangler.shadow.plan import Plan, Upstreams
from strangler.shadow.recorder import Recorder


@dataclass
class TaskLane:
    upstreams: Upstreams
    client: ShadowClient
    in_flight: InFlight
    recorder: Recorder
    judge: Judge

    async def run(self, plan: Plan, decision: Decision, copy: ShadowCopy, noisy: bool) -> None:
        """Mirror ``copy`` (counted in flight) to the plan's target; with ``noisy``
        also to legacy once more."""
        try:
            request = copy.request()
            calls = [self._call(plan, plan.upstream, plan.side, request)]
            if noisy:
                calls.append(self._call(plan, decision.legacy, "legacy", request))
            try:
                observed = [await calls[0]] if len(calls) == 1 else await asyncio.gather(*calls)
            except TooLarge:
                self.recorder.count(plan.name, ShadowOutcome.SKIPPED)
                return
            second, sent = observed[0]
            again = observed[1][0] if noisy else None
            answer = MirrorAnswer(second, sent, again)
            await self.judge.judge(plan, copy, decision.upstream, answer)
        finally:
            self.in_flight.release(plan)

    async def _call(
        self, plan: Plan, upstream: str, side: Side, request: HttpRequest
    ) -> tuple[Observation, HttpRequest]:
        """One mirrored call; also the request as it was sent."""
        config = self.upstreams().get(upstream)
        if config is None:
            return Observation.failure(side, upstream, "unknown upstream", 0.0), request
        if side == "new":  # (legacy takes the request as the client sent it)
            rewrite = plan.rewrite
            if isinstance(rewrite, str):  # the hook did not load
                return Observation.failure(side, upstream, rewrite, 0.0), request
            if rewrite is not None:
                try:
                    request = await rewrite.apply(request)
                except Exception as exc:
                    why = f"mirror rewrite: {exc!r}"
                    return Observation.failure(side, upstream, why, 0.0), request
            adapter = plan.route.adapter
            if adapter is not None:
                try:
                    request = adapter.request(request)
                except Exception as exc:
                    return Observation.failure(side, upstream, f"adapter: {exc!r}", 0.0), request
        return await self.client.send(side, upstream, config, request, plan.max_body), request
