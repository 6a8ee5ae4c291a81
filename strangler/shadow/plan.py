"""What mirroring one route to one upstream needs, worked out once per route table.

A :class:`Plan` is built the first time a route table's route is mirrored to
an upstream (a reload or an override flip builds new routes, so new plans):
the route's sampling and bounds, its comparator, redactor and identity
rewrite, and — when its GETs can be pipelined — the target's channel. It is
the ``ticket`` of every copy the sink takes, so nothing is looked up twice
per request. :class:`Plans` builds and keeps them, and the compiled parts
they share (a comparator per compare config, a rewrite per ``shadow.mirror``,
so a hook's cache survives reloads).

A plan is read, never changed, once built; the only state it points to is its
route's in-flight counter (:mod:`.bounds`). Nothing here does I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Mapping

from strangler.config import (
    DEFAULT_SHADOW,
    CompareConfig,
    MirrorConfig,
    UpstreamConfig,
)
from strangler.proxy.circuit import CircuitBreaker
from strangler.routing.table import Route
from strangler.shadow.bounds import InFlight, RouteLoad
from strangler.shadow.client import ShadowClient, get_parts
from strangler.shadow.compare import Comparator
from strangler.shadow.identity import MirrorRewrite
from strangler.shadow.observation import Side
from strangler.shadow.pipeline import ShadowChannel
from strangler.shadow.redaction import Redactor

Upstreams = Callable[[], Mapping[str, UpstreamConfig]]
"""The current upstreams (read per mirrored call, so a reload is picked up)."""
Described = Callable[[str, str, int], None]
"""(route, its compare config's generation, max_fields): how its results are kept."""


def sampled(bucket: int, percent: float) -> bool:
    """Sticky sampling: the same bucket is always in or out for one percent.

    The bucket is permuted first (7919 is prime to 10000, so it is a bijection)
    so the shadow sample does not coincide with the canary's low buckets."""
    return (bucket * 7919 + 4957) % 10_000 < percent * 100


class Plan:
    """One route mirrored to one upstream, as one route table has it."""

    def __init__(
        self,
        route: Route,
        shadow_to: str,
        load: RouteLoad,
        comparator: Comparator,
        redactor: Redactor,
    ) -> None:
        shadow = route.config.shadow or DEFAULT_SHADOW
        self.route = route
        self.name = route.name
        self.upstream = shadow_to
        self.side: Side = "new" if shadow_to == route.config.to else "legacy"
        """The side the mirror goes to (the client's answer is the other one)."""
        self.methods = shadow.methods
        self.percent = shadow.percent
        self.everyone = shadow.percent >= 100
        self.bound = shadow.max_in_flight
        self.load = load
        """Mirrors of this route on their way (one counter for all the route's plans)."""
        self.max_body = shadow.max_body
        self.noise_percent = shadow.noise_percent
        self.comparator = comparator
        self.redactor = redactor
        self.rewrite: MirrorRewrite | str | None = None
        """``shadow.mirror`` for mirrors to ``to`` (or why its hook did not load)."""
        self.channel: ShadowChannel | None = None
        """Set when this route's GETs are pipelined."""
        self.get_parts: tuple[bytes, bytes] | None = None
        self.circuit: CircuitBreaker | None = None
        """The shadow target's breaker (None until a loop runs, or for an unknown target)."""

    def takes(self, method: str, bucket: int) -> bool:
        """This request is in the sample."""
        return method in self.methods and (self.everyone or sampled(bucket, self.percent))


class Plans:
    """The plans of the current route tables, and the compiled parts they share."""

    def __init__(
        self, upstreams: Upstreams, client: ShadowClient, in_flight: InFlight, described: Described
    ) -> None:
        self._upstreams = upstreams
        self._client = client
        self._in_flight = in_flight
        self._described = described
        self.known: dict[tuple[Route, str], Plan] = {}
        """Look here first; :meth:`build` what is not."""
        self._comparators: dict[int, tuple[CompareConfig, Comparator]] = {}
        """By the config's identity (configs are immutable, one per route table; the
        config is held so its id stays its own)."""
        self._redactors: dict[tuple[tuple[str, ...], tuple[str, ...]], Redactor] = {}
        self._rewrites: dict[str, MirrorRewrite | str] = {}

    def of(self, route: Route, shadow_to: str) -> Plan:
        return self.known.get((route, shadow_to)) or self.build(route, shadow_to)

    def build(self, route: Route, shadow_to: str) -> Plan:
        """The plan for ``route`` to ``shadow_to``; kept only when a loop runs (a plan
        made without one has no channel, and is made again once there is a loop)."""
        if len(self.known) > 1024:
            self.known.clear()
        shadow = route.config.shadow or DEFAULT_SHADOW
        plan = Plan(
            route,
            shadow_to,
            self._in_flight.load(route.name),
            self._comparator(shadow.compare),
            self._redactor(shadow.redact, shadow.reveal),
        )
        if shadow.mirror is not None and plan.side == "new":
            plan.rewrite = self.rewrite(shadow.mirror)
        generation = hashlib.sha1(shadow.compare.model_dump_json().encode()).hexdigest()[:12]
        self._described(route.name, generation, shadow.max_fields)
        with contextlib.suppress(RuntimeError):  # without a loop: no sending either
            asyncio.get_running_loop()
            config = self._upstreams().get(shadow_to)
            if config is not None:
                channel = self._client.channel(shadow_to, config)
                plan.circuit = channel.circuit  # the shadow pool's, shared by both lanes
                # Pipelined: plain GETs whose answer is compared as it comes (no request
                # adapter on the way out, no response adapter on the way back).
                if plan.side == "legacy" or (route.adapter is None and plan.rewrite is None):
                    plan.channel = channel
                    plan.get_parts = get_parts(channel.pool, config)
            self.known[(route, shadow_to)] = plan
        return plan

    def rewrite(self, config: MirrorConfig) -> MirrorRewrite | str:
        """One rewrite per ``shadow.mirror`` text, kept across reloads so a hook's
        cache (minted credentials) survives them; or why its hook does not load."""
        key = config.model_dump_json()
        rewrite = self._rewrites.get(key)
        if rewrite is None:
            try:
                rewrite = MirrorRewrite(config)
            except Exception as exc:
                rewrite = f"mirror hook: {exc}"
            if len(self._rewrites) > 64:
                self._rewrites.clear()
            self._rewrites[key] = rewrite
        return rewrite

    def _comparator(self, config: CompareConfig) -> Comparator:
        known = self._comparators.get(id(config))
        if known is not None:
            return known[1]
        if len(self._comparators) > 256:
            self._comparators.clear()
        comparator = Comparator(config)
        self._comparators[id(config)] = (config, comparator)
        return comparator

    def _redactor(self, paths: tuple[str, ...], reveal: tuple[str, ...]) -> Redactor:
        redactor = self._redactors.get((paths, reveal))
        if redactor is None:
            if len(self._redactors) > 256:
                self._redactors.clear()
            redactor = self._redactors[(paths, reveal)] = Redactor(paths, reveal)
        return redactor
