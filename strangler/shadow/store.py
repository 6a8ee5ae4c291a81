"""Where shadow results are kept: counts, per-field mismatch rates, noise, samples.

Per route: counts by outcome (match, mismatch, error, dropped, skipped); per
field path, how many comparisons differed there and whether the field is noise;
a 10-second trend of matches and mismatches; the latest mismatches as
:class:`Sample` values with requests and both responses REDACTED
(``Authorization``, ``Cookie``, ``Set-Cookie`` and ``shadow.redact`` body paths
are replaced before anything is stored, so a secret never reaches the store).

Two implementations of one protocol: :class:`MemoryShadowStore` (one process)
and :class:`RedisShadowStore` (HINCRBY counters and capped lists, so every
replica adds into one view and it survives restarts). Stores are only used off
the request path; Redis errors surface as StateStoreError.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from strangler.errors import StateStoreError
from strangler.message import Headers, HttpRequest
from strangler.shadow.compare import Comparison, PathPatterns
from strangler.shadow.observation import Observation

OUTCOMES = ("match", "mismatch", "error", "dropped", "skipped")
SECRET_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})
REDACTED = "<redacted>"
TREND_STEP = 10
"""Seconds per trend bucket."""
TREND_BUCKETS = 30
SAMPLE_BODY_LIMIT = 16 * 1024
MAX_SAMPLES = 50
"""Latest mismatches kept per route."""


# ----------------------------------------------------------------- redaction


class Redactor:
    """Removes secrets from what is stored: fixed headers and configured body paths."""

    def __init__(self, body_paths: Iterable[str] = ()) -> None:
        self._paths = PathPatterns(body_paths)

    def headers(self, headers: Headers) -> list[list[str]]:
        return [[k, REDACTED if k.lower() in SECRET_HEADERS else v] for k, v in headers.items()]

    def body(self, body: bytes, content_type: str) -> str:
        if self._paths and "json" in content_type.lower():
            try:
                data = json.loads(body)
            except ValueError:
                pass
            else:
                return json.dumps(self._scrub("body", data), ensure_ascii=False)
        text = body[:SAMPLE_BODY_LIMIT].decode("utf-8", "replace")
        return text + ("…" if len(body) > SAMPLE_BODY_LIMIT else "")

    def covers(self, path: str) -> bool:
        if path.startswith("header."):
            return path[7:].lower() in SECRET_HEADERS
        return self._paths.covers(path)

    def _scrub(self, path: str, value: Any) -> Any:
        if self._paths.covers(path):
            return REDACTED
        if isinstance(value, dict):
            return {k: self._scrub(f"{path}.{k}", v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._scrub(f"{path}[{i}]", v) for i, v in enumerate(value)]
        return value


@dataclass(frozen=True)
class Sample:
    """One stored mismatch (or error): the redacted request, both sides, the differences."""

    route: str
    at: float
    outcome: str
    request: Mapping[str, Any]
    legacy: Mapping[str, Any]
    new: Mapping[str, Any]
    differences: tuple[Mapping[str, Any], ...]
    error: str | None = None

    @classmethod
    def build(
        cls,
        route: str,
        request: HttpRequest,
        legacy: Observation,
        new: Observation,
        comparison: Comparison,
        redactor: Redactor,
    ) -> Sample:
        def side(obs: Observation) -> dict[str, Any]:
            out = obs.to_dict()
            out["headers"] = redactor.headers(obs.headers)
            out["body"] = redactor.body(obs.body, obs.headers.get("content-type", ""))
            return out

        differences = []
        for diff in (*comparison.differences, *comparison.noise):
            item = diff.to_dict()
            item["noise"] = diff in comparison.noise
            if redactor.covers(diff.path):
                item["legacy"] = item["new"] = REDACTED
            differences.append(item)
        return cls(
            route=route,
            at=time.time(),
            outcome=comparison.outcome,
            request={
                "method": request.method,
                "target": request.target,
                "headers": redactor.headers(request.headers),
                "body": redactor.body(request.body, request.headers.get("content-type", "")),
            },
            legacy=side(legacy),
            new=side(new),
            differences=tuple(differences),
            error=comparison.error,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "at": self.at,
            "outcome": self.outcome,
            "request": dict(self.request),
            "legacy": dict(self.legacy),
            "new": dict(self.new),
            "differences": [dict(d) for d in self.differences],
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Sample:
        return cls(
            route=data["route"],
            at=data["at"],
            outcome=data["outcome"],
            request=data["request"],
            legacy=data["legacy"],
            new=data["new"],
            differences=tuple(data["differences"]),
            error=data.get("error"),
        )


# ----------------------------------------------------------------- the protocol


@dataclass(frozen=True)
class RouteShadow:
    """Everything stored for one route, read back in one go."""

    counts: Mapping[str, int]
    fields: Mapping[str, int]
    noise: frozenset[str]
    trend: tuple[tuple[int, int, int], ...]
    """(bucket start, matches, mismatches), oldest first."""
    samples: tuple[Sample, ...]

    @property
    def compared(self) -> int:
        return self.counts.get("match", 0) + self.counts.get("mismatch", 0)

    @property
    def mismatch_rate(self) -> float | None:
        return self.counts.get("mismatch", 0) / self.compared if self.compared else None


@dataclass
class Batch:
    """One process's results for one route between two flushes, merged into a store
    in one go (one Redis round trip per route per flush, not one per comparison)."""

    counts: Counter[str] = field(default_factory=Counter)
    fields: Counter[str] = field(default_factory=Counter)
    trend: Counter[tuple[int, str]] = field(default_factory=Counter)
    """(bucket start, outcome) -> comparisons, for match and mismatch."""
    noise: set[str] = field(default_factory=set)
    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    """Oldest first; a flush keeps at most the latest MAX_SAMPLES."""

    def add(self, comparison: Comparison, sample: Sample | None, now: float) -> None:
        self.counts[comparison.outcome] += 1
        for name in _fields(comparison):
            self.fields[name] += 1
        if comparison.outcome != "error":
            self.trend[(_bucket(now), comparison.outcome)] += 1
        if sample is not None:
            self.samples.append(sample)

    def match(self, now: float, count: int = 1) -> None:
        """Matches with no difference at all (what ``add`` does for them, cheaper)."""
        self.counts["match"] += count
        self.trend[(_bucket(now), "match")] += count

    def __bool__(self) -> bool:
        return bool(self.counts or self.noise)


class ShadowStore(Protocol):
    async def merge(self, route: str, batch: Batch) -> None:
        """Add one batch of results for ``route``."""

    async def noise(self, route: str) -> frozenset[str]: ...

    async def read(self, route: str, samples: int = 20) -> RouteShadow: ...

    async def routes(self) -> list[str]: ...

    async def close(self) -> None: ...


def _fields(comparison: Comparison) -> set[str]:
    return {d.field for d in (*comparison.differences, *comparison.noise)}


def _bucket(now: float) -> int:
    return int(now) // TREND_STEP * TREND_STEP


# ----------------------------------------------------------------- memory


class MemoryShadowStore:
    """One process's view, bounded: samples in a capped deque, trend in a ring."""

    def __init__(self, max_samples: int = MAX_SAMPLES) -> None:
        self._counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
        self._fields: dict[str, dict[str, int]] = defaultdict(dict)
        self._noise: dict[str, set[str]] = defaultdict(set)
        self._trend: dict[str, dict[int, list[int]]] = defaultdict(dict)
        self._samples: dict[str, deque[Sample]] = defaultdict(lambda: deque(maxlen=max_samples))

    async def merge(self, route: str, batch: Batch) -> None:
        counts = self._counts[route]
        for outcome, n in batch.counts.items():
            counts[outcome] = counts.get(outcome, 0) + n
        fields = self._fields[route]
        for name, n in batch.fields.items():
            fields[name] = fields.get(name, 0) + n
        trend = self._trend[route]
        for (bucket, outcome), n in batch.trend.items():
            trend.setdefault(bucket, [0, 0])[outcome == "mismatch"] += n
        oldest = _bucket(time.time()) - TREND_STEP * TREND_BUCKETS
        for old in [b for b in trend if b < oldest]:
            del trend[old]
        self._noise[route].update(batch.noise)
        self._samples[route].extend(batch.samples)

    async def noise(self, route: str) -> frozenset[str]:
        return frozenset(self._noise.get(route, ()))

    async def read(self, route: str, samples: int = 20) -> RouteShadow:
        trend = self._trend.get(route, {})
        return RouteShadow(
            counts=dict(self._counts.get(route, dict.fromkeys(OUTCOMES, 0))),
            fields=dict(self._fields.get(route, {})),
            noise=frozenset(self._noise.get(route, ())),
            trend=_trend_series({b: (m[0], m[1]) for b, m in trend.items()}),
            samples=tuple(reversed(list(self._samples.get(route, ()))))[:samples],
        )

    async def routes(self) -> list[str]:
        return sorted(self._counts)

    async def close(self) -> None:
        return None


def _trend_series(buckets: Mapping[int, tuple[int, int]]) -> tuple[tuple[int, int, int], ...]:
    now = _bucket(time.time())
    start = now - TREND_STEP * (TREND_BUCKETS - 1)
    return tuple((b, *buckets.get(b, (0, 0))) for b in range(start, now + TREND_STEP, TREND_STEP))


# ----------------------------------------------------------------- redis


class RedisShadowStore:
    """Shared by every replica: ``{prefix}:shadow:{route}:...`` keys.

    counts/fields are hashes (HINCRBY), noise a set, trend one small hash per
    10 s bucket that expires, samples a list capped with LTRIM."""

    def __init__(
        self, url: str, namespace: str = "default", max_samples: int = MAX_SAMPLES
    ) -> None:
        self._redis = aioredis.Redis.from_url(url)
        self._prefix = f"strangler:{namespace}:shadow"
        self._max_samples = max_samples

    def _key(self, route: str, part: str) -> str:
        return f"{self._prefix}:{route}:{part}"

    async def merge(self, route: str, batch: Batch) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.sadd(f"{self._prefix}:routes", route)
                for outcome, n in batch.counts.items():
                    pipe.hincrby(self._key(route, "counts"), outcome, n)
                for name, n in batch.fields.items():
                    pipe.hincrby(self._key(route, "fields"), name, n)
                for (bucket, outcome), n in batch.trend.items():
                    trend = self._key(route, f"trend:{bucket}")
                    pipe.hincrby(trend, outcome, n)
                    pipe.expire(trend, TREND_STEP * (TREND_BUCKETS + 2))
                if batch.noise:
                    pipe.sadd(self._key(route, "noise"), *batch.noise)
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

    async def read(self, route: str, samples: int = 20) -> RouteShadow:
        now = _bucket(time.time())
        buckets = [now - TREND_STEP * i for i in range(TREND_BUCKETS)]
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(self._key(route, "counts"))
                pipe.hgetall(self._key(route, "fields"))
                pipe.smembers(self._key(route, "noise"))
                for b in buckets:
                    pipe.hgetall(self._key(route, f"trend:{b}"))
                if samples > 0:  # LRANGE 0 -1 would be the whole list
                    pipe.lrange(self._key(route, "samples"), 0, samples - 1)
                counts, fields, noise, *rest = await pipe.execute()
        except RedisError as exc:
            raise StateStoreError(f"shadow store (Redis) failed: {exc}") from exc
        trend, raw = rest[:TREND_BUCKETS], rest[TREND_BUCKETS:]
        raw = raw[0] if raw else []
        merged = dict.fromkeys(OUTCOMES, 0)
        merged.update({k.decode(): int(v) for k, v in counts.items()})
        series = {
            b: (int(t.get(b"match", 0)), int(t.get(b"mismatch", 0)))
            for b, t in zip(buckets, trend, strict=True)
        }
        return RouteShadow(
            counts=merged,
            fields={k.decode(): int(v) for k, v in fields.items()},
            noise=frozenset(m.decode() for m in noise),
            trend=_trend_series(series),
            samples=tuple(Sample.from_dict(json.loads(s)) for s in raw),
        )

    async def routes(self) -> list[str]:
        try:
            members = await self._redis.smembers(f"{self._prefix}:routes")
        except RedisError as exc:
            raise StateStoreError(f"shadow store (Redis) failed: {exc}") from exc
        return sorted(_text(m) for m in members)

    async def close(self) -> None:
        await self._redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def open_store(url: str, namespace: str = "default", max_samples: int = MAX_SAMPLES) -> ShadowStore:
    """The store for ``state:`` in routes.yaml: ``memory://`` or ``redis://...``."""
    if url.startswith(("redis://", "rediss://")):
        return RedisShadowStore(url, namespace, max_samples)
    return MemoryShadowStore(max_samples)
