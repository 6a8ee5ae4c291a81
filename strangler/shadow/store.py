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

Two implementations of one protocol: :class:`MemoryShadowStore` (here; one
process) and :class:`~strangler.shadow.redis_store.RedisShadowStore` (every
replica adds into one view that survives restarts). The tallies they share are
in :mod:`.tally`. Stores are used off the request path only; Redis errors
surface as StateStoreError.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from strangler.shadow.redaction import REDACTED, SECRET_HEADERS, Redactor
from strangler.shadow.redis_store import RedisShadowStore
from strangler.shadow.results import (
    MAX_SAMPLES,
    MAX_SIGNATURES,
    TREND_BUCKETS,
    TREND_STEP,
    Batch,
    Sample,
    bucket_of,
)
from strangler.shadow.tally import (
    OUTCOMES,
    WINDOWS,
    RouteShadow,
    Tally,
    Window,
    endpoints_of,
    trend_series,
    untimed,
)

__all__ = [
    "MAX_SAMPLES",
    "OUTCOMES",
    "REDACTED",
    "SECRET_HEADERS",
    "WINDOWS",
    "Batch",
    "MemoryShadowStore",
    "Redactor",
    "RedisShadowStore",
    "RouteShadow",
    "Sample",
    "ShadowStore",
    "Window",
    "open_store",
]


class ShadowStore(Protocol):
    async def merge(self, route: str, batch: Batch) -> None:
        """Add one batch of results for ``route``."""

    async def noise(self, route: str) -> frozenset[str]: ...

    async def read(self, route: str, samples: int = 20, window: Window = "all") -> RouteShadow: ...

    async def routes(self) -> list[str]: ...

    async def reset(self, route: str) -> None:
        """Forget everything stored for ``route`` (counts, windows, noise, samples)."""

    async def close(self) -> None: ...


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
    """One process's view, bounded: capped tallies, samples in a capped deque.

    Every method has a synchronous twin (``merge_now``...) for a caller without an
    event loop: the ``--workers`` supervisor serves this store to its workers."""

    def __init__(self, max_samples: int = MAX_SAMPLES) -> None:
        self._max_samples = max_samples
        self._routes: dict[str, _Route] = {}

    def _route(self, route: str) -> _Route:
        data = self._routes.get(route)
        if data is None:
            data = self._routes[route] = _Route(samples=deque(maxlen=self._max_samples))
        return data

    async def merge(self, route: str, batch: Batch) -> None:
        self.merge_now(route, batch)

    def merge_now(self, route: str, batch: Batch) -> None:
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
        data.buckets.setdefault(now, Tally()).add(untimed(batch))
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
        return self.noise_now(route)

    def noise_now(self, route: str) -> frozenset[str]:
        data = self._routes.get(route)
        return frozenset(data.noise) if data else frozenset()

    async def read(self, route: str, samples: int = 20, window: Window = "all") -> RouteShadow:
        return self.read_now(route, samples, window)

    def read_now(self, route: str, samples: int = 20, window: Window = "all") -> RouteShadow:
        data = self._routes.get(route) or _Route()
        if window == "5m":
            tally = Tally()
            for bucket in data.buckets.values():
                tally.merge(bucket)
        else:
            tally = data.all if window == "all" else data.version
        counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        counts.update(tally.counts)
        return RouteShadow(
            counts=counts,
            fields=dict(tally.fields),
            noise=frozenset(data.noise),
            trend=trend_series(
                {b: (t.counts["match"], t.counts["mismatch"]) for b, t in data.buckets.items()}
            ),
            samples=tuple(reversed(data.samples))[:samples],
            endpoints=endpoints_of(tally.endpoints),
            signatures=dict(tally.signatures),
            examples={k: data.examples[k] for k in tally.signatures if k in data.examples},
            warnings=dict(tally.warnings),
            window=window,
            generation=data.generation,
            stored_samples=len(data.samples),
            reached=frozenset(data.reached),
        )

    async def routes(self) -> list[str]:
        return self.routes_now()

    def routes_now(self) -> list[str]:
        return sorted(self._routes)

    async def reset(self, route: str) -> None:
        self.reset_now(route)

    def reset_now(self, route: str) -> None:
        self._routes.pop(route, None)

    async def close(self) -> None:
        return None


def open_store(url: str, namespace: str = "default", max_samples: int = MAX_SAMPLES) -> ShadowStore:
    """The store for ``state:`` in routes.yaml: ``memory://`` or ``redis://...``."""
    if url.startswith(("redis://", "rediss://")):
        return RedisShadowStore(url, namespace, max_samples)
    return MemoryShadowStore(max_samples)
