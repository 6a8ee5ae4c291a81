"""Where shadow results are kept: counts, field templates, endpoints, signatures, samples.

Per route, three windows of the same tallies: ``all`` (since the start or the
last reset), ``version`` (since the route's compare rules last changed, so a
fix shows at once) and ``5m`` (10-second buckets, also the trend). A tally is
counts by outcome (match, mismatch, error, dropped, skipped), mismatches per
field template, comparisons per endpoint and outcome, mismatches per
signature, order warnings per field. Every map is capped (``max_fields``,
:data:`MAX_ENDPOINTS`, :data:`MAX_SIGNATURES`); what is past a cap is counted
in one ``<other>`` bucket, so 100,000 distinct keys cost no more than 500.
Samples (redacted before they exist, :mod:`.results`) are a capped list.

Two implementations of one protocol: :class:`MemoryShadowStore` (one process)
and :class:`RedisShadowStore` (capped HINCRBY by a script, capped lists, so
every replica adds into one view that survives restarts). Stores are used off
the request path only; Redis errors surface as StateStoreError.
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from strangler.errors import StateStoreError
from strangler.shadow.redaction import REDACTED, SECRET_HEADERS, Redactor
from strangler.shadow.results import (
    MAX_ENDPOINTS,
    MAX_SAMPLES,
    MAX_SIGNATURES,
    OVERFLOW,
    TREND_BUCKETS,
    TREND_STEP,
    Batch,
    Sample,
    bucket_of,
)

__all__ = [
    "MAX_SAMPLES",
    "OUTCOMES",
    "REDACTED",
    "SECRET_HEADERS",
    "Batch",
    "MemoryShadowStore",
    "Redactor",
    "RedisShadowStore",
    "RouteShadow",
    "Sample",
    "ShadowStore",
    "open_store",
]

OUTCOMES = ("match", "mismatch", "error", "dropped", "skipped")
Window = Literal["all", "version", "5m"]
WINDOWS: tuple[Window, ...] = ("all", "version", "5m")
_PARTS = ("counts", "fields", "endpoints", "signatures", "warnings")


@dataclass
class Tally:
    """One window's numbers for one route (every map capped, see the module doc)."""

    counts: Counter[str] = field(default_factory=Counter)
    fields: dict[str, int] = field(default_factory=dict)
    endpoints: dict[str, int] = field(default_factory=dict)
    """``"GET /api/x/{id}|match"`` -> comparisons."""
    signatures: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)

    def add(self, batch: Batch) -> None:
        self.counts.update(batch.counts)
        _capped(self.fields, batch.fields, batch.max_fields)
        _capped(
            self.endpoints,
            {f"{e}|{o}": n for (e, o), n in batch.endpoints.items()},
            MAX_ENDPOINTS * 5,
        )
        _capped(self.signatures, batch.signatures, MAX_SIGNATURES)
        _capped(self.warnings, batch.warnings, batch.max_fields)

    def merge(self, other: Tally) -> None:
        self.counts.update(other.counts)
        for mine, theirs in (
            (self.fields, other.fields),
            (self.endpoints, other.endpoints),
            (self.signatures, other.signatures),
            (self.warnings, other.warnings),
        ):
            for k, n in theirs.items():
                mine[k] = mine.get(k, 0) + n


def _capped(into: dict[str, int], items: Mapping[str, int], cap: int) -> None:
    for name, n in items.items():
        if name in into or len(into) < cap:
            into[name] = into.get(name, 0) + n
        else:
            into[OVERFLOW] = into.get(OVERFLOW, 0) + n


@dataclass(frozen=True)
class RouteShadow:
    """Everything stored for one route in one window, read back in one go."""

    counts: Mapping[str, int]
    fields: Mapping[str, int]
    noise: frozenset[str]
    trend: tuple[tuple[int, int, int], ...]
    """(bucket start, matches, mismatches), oldest first."""
    samples: tuple[Sample, ...]
    endpoints: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """endpoint -> outcome -> comparisons."""
    signatures: Mapping[str, int] = field(default_factory=dict)
    examples: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    warnings: Mapping[str, int] = field(default_factory=dict)
    window: Window = "all"
    generation: str = ""
    stored_samples: int = 0
    """How many samples are stored (``samples`` may be fewer: the ones asked for)."""
    reached: frozenset[str] = frozenset()
    """Config paths of the rules that applied to a difference under the current rules."""

    @property
    def compared(self) -> int:
        return self.counts.get("match", 0) + self.counts.get("mismatch", 0)

    @property
    def mismatch_rate(self) -> float | None:
        return self.counts.get("mismatch", 0) / self.compared if self.compared else None


def _endpoints(flat: Mapping[str, int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for key, n in flat.items():
        endpoint, _, outcome = key.rpartition("|")
        if not endpoint:  # the overflow bucket
            endpoint, outcome = OVERFLOW, "match"
        out.setdefault(endpoint, {})[outcome] = n
    return out


class ShadowStore(Protocol):
    async def merge(self, route: str, batch: Batch) -> None:
        """Add one batch of results for ``route``."""

    async def noise(self, route: str) -> frozenset[str]: ...

    async def read(self, route: str, samples: int = 20, window: Window = "all") -> RouteShadow: ...

    async def routes(self) -> list[str]: ...

    async def reset(self, route: str) -> None:
        """Forget everything stored for ``route`` (counts, windows, noise, samples)."""

    async def close(self) -> None: ...


def _trend_series(buckets: Mapping[int, tuple[int, int]]) -> tuple[tuple[int, int, int], ...]:
    now = bucket_of(time.time())
    start = now - TREND_STEP * (TREND_BUCKETS - 1)
    return tuple((b, *buckets.get(b, (0, 0))) for b in range(start, now + TREND_STEP, TREND_STEP))


def _untimed(batch: Batch) -> Batch:
    """What of a batch goes to the current 5-minute bucket as a whole: all but the
    match/mismatch counts, which the trend has in the bucket they happened in."""
    return Batch(
        counts=Counter({k: v for k, v in batch.counts.items() if k not in ("match", "mismatch")}),
        fields=batch.fields,
        endpoints=batch.endpoints,
        signatures=batch.signatures,
        warnings=batch.warnings,
        max_fields=batch.max_fields,
    )


# ----------------------------------------------------------------- memory


@dataclass
class _Route:
    all: Tally = field(default_factory=Tally)
    version: Tally = field(default_factory=Tally)
    generation: str = ""
    reached: set[str] = field(default_factory=set)
    buckets: dict[int, Tally] = field(default_factory=dict)
    noise: set[str] = field(default_factory=set)
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)
    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))


class MemoryShadowStore:
    """One process's view, bounded: capped tallies, samples in a capped deque."""

    def __init__(self, max_samples: int = MAX_SAMPLES) -> None:
        self._max_samples = max_samples
        self._routes: dict[str, _Route] = {}

    def _route(self, route: str) -> _Route:
        data = self._routes.get(route)
        if data is None:
            data = self._routes[route] = _Route(samples=deque(maxlen=self._max_samples))
        return data

    async def merge(self, route: str, batch: Batch) -> None:
        data = self._route(route)
        data.all.add(batch)
        if batch.generation and batch.generation != data.generation:
            data.generation, data.version = batch.generation, Tally()
            data.reached = set()
        data.version.add(batch)
        data.reached |= batch.reached
        by_bucket: dict[int, Counter[str]] = {}
        for (bucket, outcome), n in batch.trend.items():
            by_bucket.setdefault(bucket, Counter())[outcome] += n
        now = bucket_of(time.time())
        # The 5-minute window's tallies go to the current bucket; the trend's counts
        # to the bucket they happened in.
        data.buckets.setdefault(now, Tally()).add(_untimed(batch))
        for bucket, counts in by_bucket.items():
            data.buckets.setdefault(bucket, Tally()).counts.update(counts)
        oldest = now - TREND_STEP * TREND_BUCKETS
        for old in [b for b in data.buckets if b < oldest]:
            del data.buckets[old]
        data.noise.update(batch.noise)
        data.examples.update(batch.examples)
        if len(data.examples) > MAX_SIGNATURES * 2:
            keep = set(data.all.signatures) | set(data.version.signatures)
            data.examples = {k: v for k, v in data.examples.items() if k in keep}
        data.samples.extend(batch.samples)

    async def noise(self, route: str) -> frozenset[str]:
        data = self._routes.get(route)
        return frozenset(data.noise) if data else frozenset()

    async def read(self, route: str, samples: int = 20, window: Window = "all") -> RouteShadow:
        data = self._routes.get(route) or _Route()
        if window == "5m":
            tally = Tally()
            for bucket in data.buckets.values():
                tally.merge(bucket)
        else:
            tally = data.all if window == "all" else data.version
        counts = dict.fromkeys(OUTCOMES, 0)
        counts.update(tally.counts)
        return RouteShadow(
            counts=counts,
            fields=dict(tally.fields),
            noise=frozenset(data.noise),
            trend=_trend_series(
                {b: (t.counts["match"], t.counts["mismatch"]) for b, t in data.buckets.items()}
            ),
            samples=tuple(reversed(data.samples))[:samples],
            endpoints=_endpoints(tally.endpoints),
            signatures=dict(tally.signatures),
            examples={k: data.examples[k] for k in tally.signatures if k in data.examples},
            warnings=dict(tally.warnings),
            window=window,
            generation=data.generation,
            stored_samples=len(data.samples),
            reached=frozenset(data.reached),
        )

    async def routes(self) -> list[str]:
        return sorted(self._routes)

    async def reset(self, route: str) -> None:
        self._routes.pop(route, None)

    async def close(self) -> None:
        return None


# ----------------------------------------------------------------- redis

# HINCRBY for each (name, n) pair, but a name not yet in the hash only while the
# hash has fewer than ARGV[1] names; past that it is counted under ARGV[2].
_CAPPED_INCR = """
local cap = tonumber(ARGV[1])
local size = redis.call('HLEN', KEYS[1])
for i = 3, #ARGV, 2 do
  local name, n = ARGV[i], tonumber(ARGV[i + 1])
  if redis.call('HEXISTS', KEYS[1], name) == 1 then
    redis.call('HINCRBY', KEYS[1], name, n)
  elseif size < cap then
    redis.call('HINCRBY', KEYS[1], name, n)
    size = size + 1
  else
    redis.call('HINCRBY', KEYS[1], ARGV[2], n)
  end
end
return size
"""


class RedisShadowStore:
    """Shared by every replica: ``{prefix}:shadow:{route}:...`` keys.

    Per window scope (``all``, ``v:<generation>``, ``b:<bucket>``) one hash per
    tally part (capped by a script); noise a set, signature examples a hash,
    samples a list capped with LTRIM; the window scopes other than ``all`` expire."""

    def __init__(
        self, url: str, namespace: str = "default", max_samples: int = MAX_SAMPLES
    ) -> None:
        self._redis = aioredis.Redis.from_url(url)
        self._prefix = f"strangler:{namespace}:shadow"
        self._max_samples = max_samples
        self._incr = self._redis.register_script(_CAPPED_INCR)

    def _key(self, route: str, part: str) -> str:
        return f"{self._prefix}:{route}:{part}"

    async def _tally(
        self, pipe: Any, route: str, scope: str, batch: Batch, ttl: int | None
    ) -> None:
        parts: dict[str, tuple[Mapping[str, int], int]] = {
            "counts": (batch.counts, 100),
            "fields": (batch.fields, batch.max_fields),
            "endpoints": (
                {f"{e}|{o}": n for (e, o), n in batch.endpoints.items()},
                MAX_ENDPOINTS * 5,
            ),
            "signatures": (batch.signatures, MAX_SIGNATURES),
            "warnings": (batch.warnings, batch.max_fields),
        }
        for part, (items, cap) in parts.items():
            if not items:
                continue
            key = self._key(route, f"{scope}:{part}")
            args: list[Any] = [cap, OVERFLOW]
            for name, n in items.items():
                args += [name, n]
            await self._incr(keys=[key], args=args, client=pipe)
            if ttl:
                pipe.expire(key, ttl)

    async def merge(self, route: str, batch: Batch) -> None:
        bucket_ttl = TREND_STEP * (TREND_BUCKETS + 2)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.sadd(f"{self._prefix}:routes", route)
                await self._tally(pipe, route, "all", batch, None)
                if batch.generation:
                    pipe.set(self._key(route, "generation"), batch.generation)
                    if batch.reached:
                        reached = self._key(route, f"reached:{batch.generation}")
                        pipe.sadd(reached, *batch.reached)
                        pipe.expire(reached, 7 * 86400)
                    await self._tally(pipe, route, f"v:{batch.generation}", batch, 7 * 86400)
                now = bucket_of(time.time())
                await self._tally(pipe, route, f"b:{now}", _untimed(batch), bucket_ttl)
                for (bucket, outcome), n in batch.trend.items():
                    key = self._key(route, f"b:{bucket}:counts")
                    pipe.hincrby(key, outcome, n)
                    pipe.expire(key, bucket_ttl)
                if batch.noise:
                    pipe.sadd(self._key(route, "noise"), *batch.noise)
                if batch.examples:
                    pipe.hset(
                        self._key(route, "examples"),
                        mapping={k: json.dumps(v) for k, v in batch.examples.items()},
                    )
                if batch.samples:
                    samples = self._key(route, "samples")
                    for sample in batch.samples:  # oldest first: the newest ends at the head
                        pipe.lpush(samples, json.dumps(sample.to_dict(), ensure_ascii=False))
                    pipe.ltrim(samples, 0, self._max_samples - 1)
                await pipe.execute()
        except RedisError as exc:
            raise StateStoreError(f"shadow store (Redis) failed: {exc}") from exc

    async def noise(self, route: str) -> frozenset[str]:
        try:
            members = await self._redis.smembers(self._key(route, "noise"))
        except RedisError as exc:
            raise StateStoreError(f"shadow store (Redis) failed: {exc}") from exc
        return frozenset(_text(m) for m in members)

    async def read(self, route: str, samples: int = 20, window: Window = "all") -> RouteShadow:
        now = bucket_of(time.time())
        buckets = [now - TREND_STEP * i for i in range(TREND_BUCKETS)]
        try:
            generation = _text(await self._redis.get(self._key(route, "generation")) or b"")
            if window == "5m":
                scopes = [f"b:{b}" for b in buckets]
            else:
                scopes = ["all" if window == "all" else f"v:{generation}"]
            async with self._redis.pipeline(transaction=False) as pipe:
                for scope in scopes:
                    for part in _PARTS:
                        pipe.hgetall(self._key(route, f"{scope}:{part}"))
                pipe.smembers(self._key(route, "noise"))
                for b in buckets:
                    pipe.hgetall(self._key(route, f"b:{b}:counts"))
                pipe.hgetall(self._key(route, "examples"))
                pipe.llen(self._key(route, "samples"))
                pipe.smembers(self._key(route, f"reached:{generation}"))
                if samples > 0:  # LRANGE 0 -1 would be the whole list
                    pipe.lrange(self._key(route, "samples"), 0, samples - 1)
                results = await pipe.execute()
        except RedisError as exc:
            raise StateStoreError(f"shadow store (Redis) failed: {exc}") from exc
        tally = Tally()
        n = len(_PARTS) * len(scopes)
        for i in range(0, n, len(_PARTS)):
            counts, fields, endpoints, signatures, warnings = (
                {_text(k): int(v) for k, v in h.items()} for h in results[i : i + len(_PARTS)]
            )
            tally.merge(Tally(Counter(counts), fields, endpoints, signatures, warnings))
        noise = results[n]
        trend = results[n + 1 : n + 1 + TREND_BUCKETS]
        examples = results[n + 1 + TREND_BUCKETS]
        stored = int(results[n + 2 + TREND_BUCKETS])
        reached = frozenset(_text(m) for m in results[n + 3 + TREND_BUCKETS])
        raw = results[n + 4 + TREND_BUCKETS] if samples > 0 else []
        merged = dict.fromkeys(OUTCOMES, 0)
        merged.update(tally.counts)
        series = {
            b: (int(t.get(b"match", 0)), int(t.get(b"mismatch", 0)))
            for b, t in zip(buckets, trend, strict=True)
        }
        return RouteShadow(
            counts=merged,
            fields=tally.fields,
            noise=frozenset(_text(m) for m in noise),
            trend=_trend_series(series),
            samples=tuple(Sample.from_dict(json.loads(s)) for s in raw),
            endpoints=_endpoints(tally.endpoints),
            signatures=tally.signatures,
            examples={
                _text(k): json.loads(v) for k, v in examples.items() if _text(k) in tally.signatures
            },
            warnings=tally.warnings,
            window=window,
            generation=generation,
            stored_samples=stored,
            reached=reached,
        )

    async def routes(self) -> list[str]:
        try:
            members = await self._redis.smembers(f"{self._prefix}:routes")
        except RedisError as exc:
            raise StateStoreError(f"shadow store (Redis) failed: {exc}") from exc
        return sorted(_text(m) for m in members)

    async def reset(self, route: str) -> None:
        try:
            keys = [k async for k in self._redis.scan_iter(self._key(route, "*"), count=500)]
            async with self._redis.pipeline(transaction=False) as pipe:
                for start in range(0, len(keys), 500):
                    pipe.delete(*keys[start : start + 500])
                pipe.srem(f"{self._prefix}:routes", route)
                await pipe.execute()
        except RedisError as exc:
            raise StateStoreError(f"shadow store (Redis) failed: {exc}") from exc

    async def close(self) -> None:
        await self._redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def open_store(url: str, namespace: str = "default", max_samples: int = MAX_SAMPLES) -> ShadowStore:
    """The store for ``state:`` in routes.yaml: ``memory://`` or ``redis://...``."""
    if url.startswith(("redis://", "rediss://")):
        return RedisShadowStore(url, namespace, max_samples)
    return MemoryShadowStore(max_samples)
