"""The pipelined lane: plain GETs mirrored over the target's channel.

A GET whose route needs no request adapter and no noise call travels as the
shadow copy itself on the target's
:class:`~strangler.shadow.pipeline.ShadowChannel`, and its answer comes back
to :meth:`ChannelLane.answered` straight from the parser. There the
comparator is asked for a glance (:meth:`~strangler.shadow.compare.Comparator.glance`):
a byte-identical answer is a match and a failed mirror an error without
parsing anything; an answer over ``shadow.max_body`` is skipped; anything else
is compared in full by the :class:`~strangler.shadow.judge.Judge` in a task.
The lane decides no outcome of its own.

It runs in callbacks of the event loop, off the client's path, and never
raises: a callback that fails is logged and its mirror released.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from time import monotonic
from typing import cast

from strangler.routing.decision import Decision
from strangler.shadow.background import Background
from strangler.shadow.bounds import InFlight
from strangler.shadow.client import encode, encode_get
from strangler.shadow.copy import ShadowCopy
from strangler.shadow.failure import FailureKind, MirrorFailure
from strangler.shadow.judge import Judge, MirrorAnswer
from strangler.shadow.observation import Observation
from strangler.shadow.outcome import ERROR, MATCH, ShadowOutcome
from strangler.shadow.pipeline import ShadowChannel
from strangler.shadow.pipeline_connection import Fields
from strangler.shadow.plan import Plan
from strangler.shadow.recorder import Recorder

log = logging.getLogger(__name__)


@dataclass
class ChannelLane:
    in_flight: InFlight
    recorder: Recorder
    judge: Judge
    background: Background

    def __post_init__(self) -> None:
        self.on_answer = self.answered
        """Bound once: every pipelined copy hands its answer here."""

    def send(
        self, channel: ShadowChannel, plan: Plan, decision: Decision, copy: ShadowCopy
    ) -> None:
        """Queue ``copy`` (a GET of ``plan``, counted in flight) on ``channel``."""
        parts = plan.get_parts
        if parts is not None and not copy.body:
            data = encode_get(parts, copy.target, copy.headers)
        else:
            pool = channel.pool
            data = encode(pool, pool.config, "GET", copy.target, copy.headers, copy.body)
        # The copy travels as the pipelined request; its answer comes to ``answered``.
        copy.data = data
        copy.limit = plan.max_body
        copy.sent = monotonic()
        copy.decision = decision
        copy.on_answer = self.on_answer
        channel.enqueue(copy)

    def answered(
        self,
        copy: ShadowCopy,
        status: int,
        fields: Fields,
        body: bytes,
        error: MirrorFailure | None,
        elapsed: float,
    ) -> None:
        """A pipelined mirror's answer, from the channel's parser callback (``fields``
        is valid during the call only)."""
        plan = copy.ticket
        assert isinstance(plan, Plan)  # what ``send`` was given
        name = plan.name
        try:
            if error is not None and error.kind is FailureKind.TOO_LARGE:
                self.recorder.count(name, ShadowOutcome.SKIPPED)
            else:
                glance = plan.comparator.glance(
                    copy, None if error is not None else status, fields.items(), body
                )
                if glance == MATCH:
                    self.recorder.matched(name, copy.path)
                elif glance == ERROR and not self.judge.error_sample_due(name):
                    self.recorder.count(name, ERROR)
                else:  # compared in full (an error: to sample why, once a second)
                    if error is not None:
                        why = str(error)
                        second = Observation.failure(plan.side, plan.upstream, why, elapsed)
                    else:
                        second = Observation.raw(
                            plan.side, plan.upstream, status, fields.items(), body, elapsed
                        )
                    self.background.start(self._judged(plan, copy, second))
                    return  # released once judged
        except Exception:
            log.exception("shadow comparison for route %r failed", name)
        self.in_flight.release(plan)

    async def _judged(self, plan: Plan, copy: ShadowCopy, second: Observation) -> None:
        try:
            decision = cast(Decision, copy.decision)
            await self.judge.judge(plan, copy, decision.upstream, MirrorAnswer(second))
        finally:
            self.in_flight.release(plan)
