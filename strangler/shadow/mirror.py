"""The shadow sink: mirrors sampled requests off the client's path and compares.

:class:`ShadowMirror` implements ``strangler.runtime.ShadowSink``. On the
request path it only does O(1) work: ``wants()`` samples stickily on the
decision's bucket; ``submit()`` checks the in-flight bounds and starts a
detached task (or counts ``dropped``); ``skipped()`` counts. Everything else —
the mirrored call with ``X-Strangler-Shadow: 1``, an optional second legacy
call for noise, the response adapter, the comparison, the store, metrics and
the rollback feed — runs in that task, bounded per route
(``shadow.max_in_flight``) and in total, and never raises.

This module must never await anything on the client's behalf, queue work
without a bound, or let an exception from the shadow side reach the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Protocol

from strangler.adapter import HttpAdapter
from strangler.config import CompareConfig, RouteConfig, ShadowConfig, UpstreamConfig
from strangler.message import HttpRequest, HttpResponse
from strangler.shadow.client import MARKER, ShadowClient, TooLarge
from strangler.shadow.compare import Comparator, adapt
from strangler.shadow.observation import Observation, Side
from strangler.shadow.store import Batch, Redactor, Sample, ShadowStore

log = logging.getLogger(__name__)

DEFAULT_SHADOW = ShadowConfig()
"""What a route in ``shadow`` mode without a ``shadow:`` block gets."""

_NOISE_TTL = 2.0


class MirroredRoute(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def config(self) -> RouteConfig: ...
    @property
    def adapter(self) -> HttpAdapter | None: ...


class MirroredDecision(Protocol):
    """What the mirror reads from ``strangler.routing.decision.Decision``."""

    @property
    def route(self) -> MirroredRoute | None: ...
    @property
    def upstream(self) -> str: ...
    @property
    def legacy(self) -> str: ...
    @property
    def shadow_to(self) -> str | None: ...
    @property
    def bucket(self) -> int: ...


class Metrics(Protocol):
    def shadow(self, route: str, outcome: str) -> None: ...


Upstreams = Callable[[], Mapping[str, UpstreamConfig]]
"""The current upstreams (read per mirrored call, so a reload is picked up)."""
ComparisonFeed = Callable[[str, bool], None]
"""(route, matched) per finished comparison: the rollback monitor's input."""


def sampled(bucket: int, percent: float) -> bool:
    """Sticky sampling: the same bucket is always in or out for one percent.

    The bucket is permuted first (7919 is prime to 10000, so it is a bijection)
    so the shadow sample does not coincide with the canary's low buckets."""
    return (bucket * 7919 + 4957) % 10_000 < percent * 100


class ShadowMirror:
    def __init__(
        self,
        upstreams: Upstreams,
        store: ShadowStore,
        *,
        metrics: Metrics | None = None,
        on_comparison: ComparisonFeed | None = None,
        max_in_flight: int = 512,
        flush_interval: float = 0.5,
    ) -> None:
        self._upstreams = upstreams
        self.store = store
        self._metrics = metrics
        self._on_comparison = on_comparison
        self.max_in_flight = max_in_flight
        self._flush_interval = flush_interval
        self._in_flight: Counter[str] = Counter()
        self._total = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._batches: dict[str, Batch] = {}
        self._comparators: dict[CompareConfig, Comparator] = {}
        self._redactors: dict[tuple[str, ...], Redactor] = {}
        self._noise: dict[str, tuple[float, frozenset[str]]] = {}
        self._client: ShadowClient | None = None
        self._turn = asyncio.Lock()
        self._error_sampled: dict[str, float] = {}
        self._flusher: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ ShadowSink

    def wants(self, decision: MirroredDecision, method: str) -> bool:
        route = decision.route
        if route is None or decision.shadow_to is None:
            return False
        shadow = route.config.shadow or DEFAULT_SHADOW
        if method not in shadow.methods or not sampled(decision.bucket, shadow.percent):
            return False
        if self._full(route.name, shadow):
            # Decided here, before the data plane copies any body for us.
            self._count(route.name, "dropped")
            return False
        return True

    def _full(self, route: str, shadow: ShadowConfig) -> bool:
        return self._total >= self.max_in_flight or self._in_flight[route] >= shadow.max_in_flight

    def submit(
        self,
        decision: MirroredDecision,
        request: HttpRequest,
        primary: HttpResponse | None,
        primary_error: str | None,
        primary_duration: float,
    ) -> None:
        try:
            route = decision.route
            if route is None or decision.shadow_to is None or MARKER in request.headers:
                return  # a mirrored request is never mirrored again
            shadow = route.config.shadow or DEFAULT_SHADOW
            if self._full(route.name, shadow):
                self._count(route.name, "dropped")
                return
            if len(request.body) > shadow.max_body:
                self._count(route.name, "skipped")
                return
            loop = asyncio.get_running_loop()
            self._start(loop)
            self._total += 1
            self._in_flight[route.name] += 1
            task = loop.create_task(
                self._run(decision, route, request, primary, primary_error, primary_duration)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        except Exception:  # the sink must never raise into the client's response
            log.exception("shadow submit failed")

    def skipped(self, decision: MirroredDecision, reason: str) -> None:
        if decision.route is not None:
            self._count(decision.route.name, "skipped")

    # ------------------------------------------------------------ lifecycle

    @property
    def in_flight(self) -> int:
        return self._total

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for in-flight shadow work and flush counts (tests, shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        await self._flush()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2.0)
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        await self._flush()
        if self._client is not None:
            self._client.close()
            self._client = None

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush_loop())
        if self._client is None:
            self._client = ShadowClient(self.max_in_flight)

    def _count(self, route: str, outcome: str) -> None:
        self._batch(route).counts[outcome] += 1
        if self._metrics is not None:
            self._metrics.shadow(route, outcome)
        # Without a running loop (a sync caller) the counts go out with the next flush.
        with contextlib.suppress(RuntimeError):
            self._start(asyncio.get_running_loop())

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            await self._flush()

    async def _flush(self) -> None:
        batches, self._batches = self._batches, {}
        for route, batch in batches.items():
            try:
                await self.store.merge(route, batch)
            except Exception as exc:
                # Bounded loss over unbounded memory: the batch is dropped, and said so.
                lost = dict(batch.counts)
                log.warning("shadow store unavailable (%s); results lost: %s", exc, lost)

    def _batch(self, route: str) -> Batch:
        batch = self._batches.get(route)
        if batch is None:
            batch = self._batches[route] = Batch()
        return batch

    # ------------------------------------------------------------ the work

    async def _run(
        self,
        decision: MirroredDecision,
        route: MirroredRoute,
        request: HttpRequest,
        primary: HttpResponse | None,
        primary_error: str | None,
        primary_duration: float,
    ) -> None:
        name = route.name
        try:
            shadow = route.config.shadow or DEFAULT_SHADOW
            shadow_to = decision.shadow_to
            assert shadow_to is not None
            shadow_side: Side = "new" if shadow_to == route.config.to else "legacy"
            primary_side: Side = "legacy" if shadow_side == "new" else "new"
            if primary is not None:
                first = Observation.of(primary_side, decision.upstream, primary, primary_duration)
            else:
                first = Observation.failure(
                    primary_side, decision.upstream, primary_error or "failed", primary_duration
                )
            calls = [self._call(shadow_to, shadow_side, route, request, shadow.max_body)]
            noisy = shadow.noise_percent > 0 and random.random() * 100 < shadow.noise_percent
            if noisy:
                calls.append(self._call(decision.legacy, "legacy", route, request, shadow.max_body))
            try:
                observed = [await calls[0]] if len(calls) == 1 else await asyncio.gather(*calls)
            except TooLarge:
                self._count(name, "skipped")
                return
            second = observed[0]
            legacy, new = (first, second) if shadow_side == "new" else (second, first)
            comparator = self._comparator(shadow.compare)
            if noisy:
                self._learn_noise(name, comparator, legacy, observed[1])
            noise = await self._noise_of(name)
            # One comparison per loop turn: shadows that finish together (a slow
            # target answering a burst) must not stall the client's I/O in one go.
            async with self._turn:
                if shadow_side == "new":
                    # A primary answered by `to` reached us already adapted (it is
                    # what the client got); only our own call needs translating.
                    new = adapt(route.adapter, request, new)
                comparison = comparator.compare(legacy, new, noise)
                sample = None
                if self._keep_sample(name, comparison.outcome):
                    sample = Sample.build(
                        name, request, legacy, new, comparison, self._redactor(shadow.redact)
                    )
            if self._metrics is not None:
                self._metrics.shadow(name, comparison.outcome)
            if self._on_comparison is not None and comparison.outcome != "error":
                self._on_comparison(name, comparison.outcome == "match")
            self._batch(name).add(comparison, sample, time.time())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("shadow comparison for route %r failed", name)
        finally:
            self._total -= 1
            self._in_flight[name] -= 1
            if self._in_flight[name] <= 0:
                del self._in_flight[name]

    def _keep_sample(self, route: str, outcome: str) -> bool:
        """Every mismatch is kept; errors at most once a second per route (a dead
        target fails every request the same way, and each sample costs a JSON dump)."""
        if outcome == "mismatch":
            return True
        if outcome != "error":
            return False
        now = time.monotonic()
        if now - self._error_sampled.get(route, 0.0) < 1.0:
            return False
        self._error_sampled[route] = now
        return True

    def _learn_noise(
        self, route: str, comparator: Comparator, legacy: Observation, again: Observation
    ) -> None:
        """Fields that differ between two legacy answers to one request are noise."""
        if legacy.failed or again.failed:
            return
        fields = {d.field for d in comparator.compare(legacy, again).differences}
        if fields:
            self._batch(route).noise.update(fields)
            _, known = self._noise.get(route, (0.0, frozenset()))
            self._noise[route] = (time.monotonic(), known | fields)

    async def _noise_of(self, route: str) -> frozenset[str]:
        at, known = self._noise.get(route, (0.0, frozenset()))
        if time.monotonic() - at > _NOISE_TTL:
            try:
                # Noise only grows: what this process learned and has not flushed stays.
                known = known | await self.store.noise(route)
            except Exception:
                log.warning("shadow store unavailable; using cached noise for %r", route)
            self._noise[route] = (time.monotonic(), known)
        return known

    async def _call(
        self, upstream: str, side: Side, route: MirroredRoute, request: HttpRequest, limit: int
    ) -> Observation:
        config = self._upstreams().get(upstream)
        if config is None:
            return Observation.failure(side, upstream, "unknown upstream", 0.0)
        if side == "new" and route.adapter is not None:
            try:
                request = route.adapter.request(request)
            except Exception as exc:
                return Observation.failure(side, upstream, f"adapter: {exc!r}", 0.0)
        assert self._client is not None
        return await self._client.send(side, upstream, config, request, limit)

    def _comparator(self, config: CompareConfig) -> Comparator:
        comparator = self._comparators.get(config)
        if comparator is None:
            comparator = self._comparators[config] = Comparator(config)
        return comparator

    def _redactor(self, paths: tuple[str, ...]) -> Redactor:
        redactor = self._redactors.get(paths)
        if redactor is None:
            redactor = self._redactors[paths] = Redactor(paths)
        return redactor
