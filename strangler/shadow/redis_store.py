"""The shadow store shared by every replica: Redis hashes, sets and capped lists.

``strangler:<namespace>:shadow:<route>:...``: per window scope (``all``,
``v:<generation>``, ``b:<bucket>``) one hash per tally part, capped by a small
Lua script (a name past the cap is counted under ``<other>``); noise and the
applied rules as sets, signature examples as a hash, samples as a list capped
with LTRIM; the window scopes other than ``all`` expire. Redis errors surface
as StateStoreError. Used off the request path only.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from strangler.errors import StateStoreError
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
from strangler.shadow.tally import (
    OUTCOMES,
    PARTS,
    RouteShadow,
    Tally,
    Window,
    endpoints_of,
    trend_series,
    untimed,
)

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
                await self._tally(pipe, route, f"b:{now}", untimed(batch), bucket_ttl)
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
                    for part in PARTS:
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
        n = len(PARTS) * len(scopes)
        for i in range(0, n, len(PARTS)):
            counts, fields, endpoints, signatures, warnings = (
                {_text(k): int(v) for k, v in h.items()} for h in results[i : i + len(PARTS)]
            )
            tally.merge(Tally(Counter(counts), fields, endpoints, signatures, warnings))
        noise = results[n]
        trend = results[n + 1 : n + 1 + TREND_BUCKETS]
        examples = results[n + 1 + TREND_BUCKETS]
        stored = int(results[n + 2 + TREND_BUCKETS])
        reached = frozenset(_text(m) for m in results[n + 3 + TREND_BUCKETS])
        raw = results[n + 4 + TREND_BUCKETS] if samples > 0 else []
        merged: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        merged.update(tally.counts)
        series = {
            b: (int(t.get(b"match", 0)), int(t.get(b"mismatch", 0)))
            for b, t in zip(buckets, trend, strict=True)
        }
        return RouteShadow(
            counts=merged,
            fields=tally.fields,
            noise=frozenset(_text(m) for m in noise),
            trend=trend_series(series),
            samples=tuple(Sample.from_dict(json.loads(s)) for s in raw),
            endpoints=endpoints_of(tally.endpoints),
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
