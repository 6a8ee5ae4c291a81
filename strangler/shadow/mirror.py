"""The shadow sink: mirrors sampled requests off the client's path and compares.

:class:`ShadowMirror` implements ``strangler.runtime.ShadowSink``. On the
request path it only does O(1) work: ``wants()`` samples stickily on the
decision's bucket; ``submit()`` checks the in-flight bounds and sends the mirror (or counts
``dropped``); ``skipped()`` counts. Everything else — the mirrored call with
``X-Strangler-Shadow: 1``, an optional second legacy call for noise, the
response adapter, the comparison, the store, metrics and the rollback feed —
happens off the request path, bounded per route (``shadow.max_in_flight``) and
in total, and never raises.

Two lanes. A plain GET (no request adapter on the way, no noise call) is
pipelined (:mod:`strangler.shadow.pipeline`) and its answer arrives in a
callback: an answer byte-identical to the client's (same status, body and
compared headers) is a match counted right there, since equal bytes stay equal
under any normalisation; anything else is compared in a task. Every other
mirror runs in a task of its own over :class:`ShadowClient`.

This module must never await anything on the client's behalf, queue work
without a bound, or let an exception from the shadow side reach the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Callable, Coroutine, Mapping
from time import monotonic
from typing import Any, Protocol, cast

from strangler.adapter import HttpAdapter
from strangler.config import (
    DEFAULT_SHADOW,
    CompareConfig,
    MirrorConfig,
    RouteConfig,
    UpstreamConfig,
)
from strangler.message import HttpRequest, make_headers
from strangler.proxy.circuit import CLOSED, CircuitBreaker
from strangler.proxy.headers import RawHeaders
from strangler.proxy.request import decoded
from strangler.shadow.client import ShadowClient, TooLarge, encode, encode_get, get_parts
from strangler.shadow.compare import Comparator, adapt
from strangler.shadow.copy import ShadowCopy
from strangler.shadow.endpoints import Endpoints
from strangler.shadow.identity import MirrorRewrite
from strangler.shadow.observation import Observation, Side
from strangler.shadow.pipeline import TOO_LARGE, Fields, ShadowChannel
from strangler.shadow.redaction import Redactor
from strangler.shadow.results import Batch, Sample
from strangler.shadow.store import ShadowStore

log = logging.getLogger(__name__)


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
    def shadow(self, route: str, outcome: str, count: int = 1) -> None: ...


Upstreams = Callable[[], Mapping[str, UpstreamConfig]]
"""The current upstreams (read per mirrored call, so a reload is picked up)."""
ComparisonFeed = Callable[[str, bool, int], None]
"""(route, matched, how many) for finished comparisons: the rollback monitor's input."""


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
        self._in_flight: dict[str, list[int]] = {}
        """Mirrors on their way, by route: one counter a route's plans share."""
        self._matched: list[_Plan] = []
        """Plans with byte-identical answers this loop turn (each keeps its count by
        path), counted at the turn's end."""
        self._tally: dict[tuple[str, str], int] = {}
        """Errors and drops decided up front this loop turn, by (route, outcome)."""
        self._counting = False
        """The end-of-turn count is scheduled."""
        """Byte-identical answers this loop turn, by route (counted at its end)."""
        self._plans: dict[tuple[MirroredRoute, str], _Plan] = {}
        self._total = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._batches: dict[str, Batch] = {}
        self._comparators: dict[int, tuple[CompareConfig, Comparator]] = {}
        """By the config's identity (configs are immutable, one per route table; the
        config is held so its id stays its own)."""
        self._redactors: dict[tuple[tuple[str, ...], tuple[str, ...]], Redactor] = {}
        self._endpoints: dict[str, Endpoints] = {}
        self._rewrites: dict[str, MirrorRewrite | str] = {}
        self._generations: dict[str, tuple[str, int]] = {}
        """Route -> (its shadow config's generation, max_fields), for batches."""
        self._noise: dict[str, tuple[float, frozenset[str]]] = {}
        self._client: ShadowClient | None = None
        self._turn = asyncio.Lock()
        self._error_sampled: dict[str, float] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------ ShadowSink

    def wants(self, decision: MirroredDecision, method: str) -> _Plan | None:
        """The route's plan (the copy's ``ticket``) when this request is mirrored."""
        route = decision.route
        shadow_to = decision.shadow_to
        if route is None or shadow_to is None:
            return None
        plan = self._plans.get((route, shadow_to)) or self._plan(route, shadow_to)
        if method not in plan.methods or not (
            plan.everyone or sampled(decision.bucket, plan.percent)
        ):
            return None
        if self._total >= self.max_in_flight or plan.flying[0] >= plan.bound:
            # Decided here, before the data plane copies any body for us.
            self._tally_one(plan.dropped)
            return None
        circuit = plan.circuit
        if (
            circuit is not None
            and circuit.state is not CLOSED
            and circuit.refusing()
            and not self._error_sample_due(plan.name)
        ):
            # The target's breaker is open: the mirror would fail untried, an error
            # whatever the client gets. Counted now, without a copy (the once-a-second
            # error sample still takes the whole path, to say why).
            self._tally_one(plan.failed)
            return None
        return plan

    def submit(self, decision: MirroredDecision, copy: ShadowCopy) -> None:
        try:
            plan = copy.ticket
            if not isinstance(plan, _Plan):  # a copy made off the data plane
                route, shadow_to = decision.route, decision.shadow_to
                if route is None or shadow_to is None:
                    return
                plan = self._plans.get((route, shadow_to)) or self._plan(route, shadow_to)
                copy.ticket = plan
                if len(copy.body) > plan.max_body:  # (the data plane's copies are bounded)
                    self._count(plan.name, "skipped")
                    return
            if copy.mirrored:
                return  # a mirrored request is never mirrored again
            flying = plan.flying
            # Checked again: other mirrors may have filled the bound since ``wants``.
            if self._total >= self.max_in_flight or flying[0] >= plan.bound:
                self._count(plan.name, "dropped")
                return
            self._total += 1
            flying[0] += 1
            noisy = plan.noise > 0 and random.random() * 100 < plan.noise
            channel = plan.channel
            if channel is not None and copy.method == "GET" and not noisy:
                parts = plan.get_parts
                if parts is not None and not copy.body:
                    data = encode_get(parts, copy.target, copy.headers)
                else:
                    pool = channel.pool
                    data = encode(pool, pool.config, "GET", copy.target, copy.headers, copy.body)
                # The copy travels as the pipelined request; its answer comes to the plan.
                copy.data = data
                copy.limit = plan.max_body
                copy.sent = monotonic()
                copy.decision = decision
                copy.on_answer = plan.on_answer
                channel.enqueue(copy)
                return
            self._spawn(self._run(decision, plan, copy, noisy))
        except Exception:  # the sink must never raise into the client's response
            log.exception("shadow submit failed")

    def _plan(self, route: MirroredRoute, shadow_to: str) -> _Plan:
        """What mirroring ``route`` to ``shadow_to`` needs, worked out once per route
        table (a reload or an override flip builds new routes, so new plans); callers
        look in ``_plans`` first."""
        if len(self._plans) > 1024:
            self._plans.clear()
        upstreams = self._upstreams()
        plan = _Plan(self, route, shadow_to, self._in_flight.setdefault(route.name, [0]))
        shadow = route.config.shadow or DEFAULT_SHADOW
        self._generations[route.name] = (
            hashlib.sha1(shadow.compare.model_dump_json().encode()).hexdigest()[:12],
            shadow.max_fields,
        )
        with contextlib.suppress(RuntimeError):  # without a loop: no sending either
            self._start(asyncio.get_running_loop())
            config = upstreams.get(shadow_to)
            # Pipelined: plain GETs whose answer is compared as it comes (no request
            # adapter on the way out, no response adapter on the way back).
            if config is not None:
                assert self._client is not None
                channel = self._client.channel(shadow_to, config)
                plan.circuit = channel.circuit  # the shadow pool's, shared by both lanes
                if plan.side == "legacy" or (route.adapter is None and plan.rewrite is None):
                    plan.channel = channel
                    plan.get_parts = get_parts(channel.pool, config)
            self._plans[(route, shadow_to)] = plan
        return plan

    def skipped(self, decision: MirroredDecision, reason: str) -> None:
        if decision.route is not None:
            self._count(decision.route.name, "skipped")

    # ------------------------------------------------------------ lifecycle

    @property
    def in_flight(self) -> int:
        return self._total

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for in-flight shadow work and flush counts (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._total > 0 and time.monotonic() < deadline:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=deadline - time.monotonic())
            else:  # pipelined mirrors: answered from callbacks, not tasks
                await asyncio.sleep(0.005)
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
        self._loop = loop
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush_loop())
        if self._client is None:
            self._client = ShadowClient(self.max_in_flight)

    def _count(self, route: str, outcome: str) -> None:
        self._batch(route).counts[outcome] += 1
        if self._metrics is not None:
            self._metrics.shadow(route, outcome)
        if self._flusher is None:
            # Without a running loop (a sync caller) the counts go out with the next flush.
            with contextlib.suppress(RuntimeError):
                self._start(asyncio.get_running_loop())

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            await self._flush()

    async def _flush(self) -> None:
        if self._counting:
            self._count_tally()
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
            generation, max_fields = self._generations.get(route, ("", 500))
            batch = self._batches[route] = Batch(generation=generation, max_fields=max_fields)
        return batch

    def endpoint(self, route: str, method: str, path: str) -> str:
        """``GET /api/articles/{id}``: the request's endpoint, learned per route."""
        endpoints = self._endpoints.get(route)
        if endpoints is None:
            endpoints = self._endpoints[route] = Endpoints()
        return endpoints.of(method, path)

    # ------------------------------------------------------------ the work

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None  # set by _plan() before any mirror is sent
        task = self._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finished(self, plan: _Plan) -> None:
        self._total -= 1
        plan.flying[0] -= 1

    def _tally_one(self, key: tuple[str, str]) -> None:
        """Count one (route, outcome) with the rest of this loop turn's."""
        if not self._counting:
            if self._loop is None:  # no loop yet (a sync caller): counted as it comes
                self._count(*key)
                return
            self._counting = True
            self._loop.call_soon(self._count_tally)
        tally = self._tally
        tally[key] = tally.get(key, 0) + 1

    def _count_tally(self) -> None:
        self._counting = False
        plans, self._matched = self._matched, []
        tally, self._tally = self._tally, {}
        now = time.time()
        for plan in plans:
            name = plan.name
            paths, plan.matched = plan.matched, {}
            try:
                count = sum(paths.values())
                batch = self._batch(name)
                batch.match(now, count)
                for path, n in paths.items():  # the pipelined lane is GET only
                    batch.endpoints[(self.endpoint(name, "GET", path), "match")] += n
                if self._metrics is not None:
                    self._metrics.shadow(name, "match", count)
                if self._on_comparison is not None:
                    self._on_comparison(name, True, count)
            except Exception:
                log.exception("shadow counting for route %r failed", name)
        for (name, outcome), count in tally.items():
            self._batch(name).counts[outcome] += count
            if self._metrics is not None:
                self._metrics.shadow(name, outcome, count)

    async def _settle(self, copy: ShadowCopy, second: Observation) -> None:
        plan = cast(_Plan, copy.ticket)
        decision = cast(MirroredDecision, copy.decision)
        try:
            await self._conclude(decision, plan.route, copy, plan.side, second)
        finally:
            self._finished(plan)

    async def _run(
        self, decision: MirroredDecision, plan: _Plan, copy: ShadowCopy, noisy: bool
    ) -> None:
        """A mirror in a task of its own: every method, request adapters, noise calls."""
        route, side = plan.route, plan.side
        try:
            request = copy.request()
            calls = [self._call(plan.upstream, side, route, request, plan.max_body, plan.rewrite)]
            if noisy:
                calls.append(
                    self._call(decision.legacy, "legacy", route, request, plan.max_body, None)
                )
            try:
                observed = [await calls[0]] if len(calls) == 1 else await asyncio.gather(*calls)
            except TooLarge:
                self._count(route.name, "skipped")
                return
            again = observed[1][0] if noisy else None
            second, sent = observed[0]
            await self._conclude(decision, route, copy, side, second, again, sent)
        finally:
            self._finished(plan)

    async def _conclude(
        self,
        decision: MirroredDecision,
        route: MirroredRoute,
        copy: ShadowCopy,
        shadow_side: Side,
        second: Observation,
        again: Observation | None = None,
        sent: HttpRequest | None = None,
    ) -> None:
        """Compare the client's answer with the mirror's (``again``: legacy asked twice)."""
        name = route.name
        try:
            shadow = route.config.shadow or DEFAULT_SHADOW
            primary_side: Side = "legacy" if shadow_side == "new" else "new"
            primary = copy.primary()
            if primary is not None:
                first = Observation.of(primary_side, decision.upstream, primary, copy.duration)
            else:
                first = Observation.failure(
                    primary_side, decision.upstream, copy.error or "failed", copy.duration
                )
            legacy, new = (first, second) if shadow_side == "new" else (second, first)
            comparator = self._comparator(shadow.compare)
            if again is not None:
                self._learn_noise(name, comparator, legacy, again)
            noise = await self._noise_of(name)
            request = copy.request()
            # One comparison per loop turn: shadows that finish together (a slow
            # target answering a burst) must not stall the client's I/O in one go.
            async with self._turn:
                if shadow_side == "new":
                    # A primary answered by `to` reached us already adapted (it is
                    # what the client got); only our own call needs translating.
                    new = adapt(route.adapter, request, new)
                comparison = comparator.compare(legacy, new, noise)
                endpoint = self.endpoint(name, copy.method, copy.path)
                sample = None
                if self._keep_sample(name, comparison.outcome):
                    # What each side received: the client's request, and the mirror
                    # after the identity rewrite and the request adapter.
                    to_shadow = sent if sent is not None else request
                    sent_by_side = (
                        {"legacy": request, "new": to_shadow}
                        if shadow_side == "new"
                        else {"legacy": to_shadow, "new": request}
                    )
                    sample = Sample.build(
                        name,
                        request,
                        legacy,
                        new,
                        comparison,
                        self._redactor(shadow.redact, shadow.reveal),
                        sent=sent_by_side,
                        endpoint=endpoint,
                    )
            if self._metrics is not None:
                self._metrics.shadow(name, comparison.outcome)
            if self._on_comparison is not None and comparison.outcome != "error":
                self._on_comparison(name, comparison.outcome == "match", 1)
            self._batch(name).add(comparison, sample, time.time(), endpoint)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("shadow comparison for route %r failed", name)

    def _keep_sample(self, route: str, outcome: str) -> bool:
        """Every mismatch is kept; errors at most once a second per route (a dead
        target fails every request the same way, and each sample costs a JSON dump)."""
        if outcome == "mismatch":
            return True
        if outcome != "error" or not self._error_sample_due(route):
            return False
        self._error_sampled[route] = time.monotonic()
        return True

    def _error_sample_due(self, route: str) -> bool:
        return time.monotonic() - self._error_sampled.get(route, 0.0) >= 1.0

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
        self,
        upstream: str,
        side: Side,
        route: MirroredRoute,
        request: HttpRequest,
        limit: int,
        rewrite: MirrorRewrite | str | None,
    ) -> tuple[Observation, HttpRequest]:
        """One mirrored call; also the request as it was sent."""
        config = self._upstreams().get(upstream)
        if config is None:
            return Observation.failure(side, upstream, "unknown upstream", 0.0), request
        if isinstance(rewrite, str):  # the hook did not load
            return Observation.failure(side, upstream, rewrite, 0.0), request
        if rewrite is not None:
            try:
                request = await rewrite.apply(request)
            except Exception as exc:
                return Observation.failure(side, upstream, f"mirror rewrite: {exc!r}", 0.0), request
        if side == "new" and route.adapter is not None:
            try:
                request = route.adapter.request(request)
            except Exception as exc:
                return Observation.failure(side, upstream, f"adapter: {exc!r}", 0.0), request
        assert self._client is not None
        return await self._client.send(side, upstream, config, request, limit), request

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

    def _redactor(self, paths: tuple[str, ...], reveal: tuple[str, ...] = ()) -> Redactor:
        redactor = self._redactors.get((paths, reveal))
        if redactor is None:
            redactor = self._redactors[(paths, reveal)] = Redactor(paths, reveal)
        return redactor


class _Plan:
    """One route mirrored to one upstream, as one route table has it: the ticket of
    each copy ``wants`` takes, and where its pipelined mirror's answer goes."""

    __slots__ = (
        "bound",
        "channel",
        "circuit",
        "dropped",
        "everyone",
        "failed",
        "flying",
        "get_parts",
        "headers",
        "matched",
        "max_body",
        "methods",
        "mirror",
        "name",
        "noise",
        "on_answer",
        "percent",
        "rewrite",
        "route",
        "side",
        "upstream",
    )

    def __init__(
        self, mirror: ShadowMirror, route: MirroredRoute, shadow_to: str, flying: list[int]
    ) -> None:
        shadow = route.config.shadow or DEFAULT_SHADOW
        self.mirror = mirror
        self.on_answer = self.answered
        """Bound once: every pipelined copy of this plan hands its answer here."""
        self.route = route
        self.name = route.name
        self.failed = (route.name, "error")
        self.dropped = (route.name, "dropped")
        """Keys of the loop turn's tally."""
        self.upstream = shadow_to
        self.side: Side = "new" if shadow_to == route.config.to else "legacy"
        self.methods = shadow.methods
        self.percent = shadow.percent
        self.everyone = shadow.percent >= 100
        self.bound = shadow.max_in_flight
        self.flying = flying
        """Mirrors of this route on their way (one counter for all the route's plans)."""
        self.max_body = shadow.max_body
        self.noise = shadow.noise_percent
        self.headers = tuple((h.lower().encode("latin-1"), len(h)) for h in shadow.compare.headers)
        self.channel: ShadowChannel | None = None
        """Set when this route's GETs are pipelined."""
        self.circuit: CircuitBreaker | None = None
        """The shadow target's breaker (None until a loop runs, or for an unknown target)."""
        self.get_parts: tuple[bytes, bytes] | None = None
        self.matched: dict[str, int] = {}
        """This loop turn's byte-identical answers, by path (see ``answered``)."""
        self.rewrite: MirrorRewrite | str | None = None
        """``shadow.mirror`` for mirrors to ``to`` (or why its hook did not load)."""
        if shadow.mirror is not None and self.side == "new":
            self.rewrite = mirror.rewrite(shadow.mirror)

    def answered(
        self,
        copy: ShadowCopy,
        status: int,
        fields: Fields,
        body: bytes,
        error: str | None,
        elapsed: float,
    ) -> None:
        """A pipelined mirror's answer, from the channel's parser callback (the
        copy's ``on_answer``): count a match here, compare the rest later.

        A match is an answer byte for byte the client's: status, body and the compared
        headers. Equal bytes stay equal under any ignore, replace, unordered or
        tolerance rule, so nothing is parsed (routes whose response adapter would
        change the new side are not pipelined)."""
        mirror = self.mirror
        name = self.name
        try:
            if (
                error is None
                and status == copy.status
                and body == copy.response_body
                and (not self.headers or _same_headers(self.headers, copy.response_headers, fields))
            ):
                # Counted once per loop turn for all the matches the turn brought.
                if not mirror._counting:
                    assert mirror._loop is not None
                    mirror._counting = True
                    mirror._loop.call_soon(mirror._count_tally)
                paths = self.matched
                if not paths:
                    mirror._matched.append(self)
                path = copy.path
                paths[path] = paths.get(path, 0) + 1
                mirror._total -= 1  # what _finished() does, without the call
                self.flying[0] -= 1
                return
            elif error == TOO_LARGE:
                mirror._count(name, "skipped")
            elif (
                error is not None and copy.status is not None and not mirror._error_sample_due(name)
            ):
                # The mirror failed where the client was answered: an error, whatever the
                # comparison rules; only the once-a-second sample needs the full path.
                mirror._count(name, "error")
            else:
                if error is not None:
                    second = Observation.failure(self.side, self.upstream, error, elapsed)
                else:
                    second = Observation(
                        self.side,
                        self.upstream,
                        status,
                        make_headers(decoded(fields.items())),
                        body,
                        elapsed,
                    )
                mirror._spawn(mirror._settle(copy, second))
                return  # the task says when it is finished
        except Exception:
            log.exception("shadow comparison for route %r failed", name)
        mirror._finished(self)


def _same_headers(names: tuple[tuple[bytes, int], ...], ours: RawHeaders, theirs: Fields) -> bool:
    """The compared headers (lower-case ``names``, with their lengths) have the same
    first value on both sides: what the comparator compares (``headers.get(name)``).
    The target's answer is looked up under the client answer's spelling first (a
    target that sends one header in two spellings is read in that one)."""
    for name, size in names:
        mine = other = None
        for n, v in ours:
            if len(n) == size and n.lower() == name:
                mine = v
                other = theirs.get(n)
                break
        if other is None:
            for n, v in theirs.items():
                if len(n) == size and n.lower() == name:
                    other = v
                    break
        if mine != other:
            return False
    return True
