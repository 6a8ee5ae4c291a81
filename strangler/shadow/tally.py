"""The numbers one shadow store keeps per route and window, and how they are read back.

:class:`Tally` is one window's counts (by outcome, field template, endpoint,
signature, order warning), every map capped with an ``<other>`` overflow
bucket; :class:`RouteShadow` is what a store's ``read`` returns. Shared by the
memory and the Redis store. Nothing here does I/O.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from strangler.shadow.outcome import ShadowOutcome
from strangler.shadow.results import (
    MAX_ENDPOINTS,
    MAX_SIGNATURES,
    OVERFLOW,
    TREND_BUCKETS,
    TREND_STEP,
    Batch,
    Sample,
    bucket_of,
)

OUTCOMES = tuple(ShadowOutcome)
Window = Literal["all", "version", "5m"]
WINDOWS: tuple[Window, ...] = ("all", "version", "5m")
PARTS = ("counts", "fields", "endpoints", "signatures", "warnings")


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for a store in another process (:meth:`from_dict` reads it back)."""
        return {
            "counts": dict(self.counts),
            "fields": dict(self.fields),
            "noise": sorted(self.noise),
            "trend": [list(point) for point in self.trend],
            "samples": [sample.to_dict() for sample in self.samples],
            "endpoints": {k: dict(v) for k, v in self.endpoints.items()},
            "signatures": dict(self.signatures),
            "examples": {k: dict(v) for k, v in self.examples.items()},
            "warnings": dict(self.warnings),
            "window": self.window,
            "generation": self.generation,
            "stored_samples": self.stored_samples,
            "reached": sorted(self.reached),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RouteShadow:
        counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        counts.update(data["counts"])
        return cls(
            counts=counts,
            fields=dict(data["fields"]),
            noise=frozenset(data["noise"]),
            trend=tuple((int(b), int(m), int(mm)) for b, m, mm in data["trend"]),
            samples=tuple(Sample.from_dict(s) for s in data["samples"]),
            endpoints={k: dict(v) for k, v in data["endpoints"].items()},
            signatures=dict(data["signatures"]),
            examples={k: dict(v) for k, v in data["examples"].items()},
            warnings=dict(data["warnings"]),
            window=data["window"],
            generation=str(data["generation"]),
            stored_samples=int(data["stored_samples"]),
            reached=frozenset(data["reached"]),
        )

    @property
    def compared(self) -> int:
        return self.counts.get("match", 0) + self.counts.get("mismatch", 0)

    @property
    def mismatch_rate(self) -> float | None:
        return self.counts.get("mismatch", 0) / self.compared if self.compared else None


def endpoints_of(flat: Mapping[str, int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for key, n in flat.items():
        endpoint, _, outcome = key.rpartition("|")
        if not endpoint:  # the overflow bucket
            endpoint, outcome = OVERFLOW, "match"
        out.setdefault(endpoint, {})[outcome] = n
    return out


def trend_series(buckets: Mapping[int, tuple[int, int]]) -> tuple[tuple[int, int, int], ...]:
    now = bucket_of(time.time())
    start = now - TREND_STEP * (TREND_BUCKETS - 1)
    return tuple((b, *buckets.get(b, (0, 0))) for b in range(start, now + TREND_STEP, TREND_STEP))


def untimed(batch: Batch) -> Batch:
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
