"""What one process collects between two flushes to the shadow store.

:class:`Sample` is one stored mismatch: the request as each side received it,
both answers and the differences, all redacted (:mod:`.redaction`) before it
exists. :class:`Batch` is one route's counts per outcome, per field template,
per endpoint (method and path template) and per mismatch signature (the set
of differing fields), plus samples, merged into a store in one go.

Field names are templates (``body.users.<key>.name``, ``body.items[*].id``) so
ids never become fields. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from strangler.message import HttpRequest
from strangler.shadow.compare import Comparison, Difference
from strangler.shadow.observation import Observation
from strangler.shadow.outcome import MATCH, MISMATCH, ShadowOutcome
from strangler.shadow.redaction import REDACTED, Redactor

TREND_STEP = 10
"""Seconds per trend bucket."""
TREND_BUCKETS = 30
"""Buckets kept: the last five minutes."""
MAX_SAMPLES = 100
"""Latest mismatches kept per route."""
MAX_FIELDS = 500
MAX_ENDPOINTS = 200
MAX_SIGNATURES = 100
OVERFLOW = "<other>"
"""The bucket that counts what is past a cap (fields, endpoints, signatures)."""


def signature_of(differences: Iterable[Difference]) -> str:
    """The set of differing field templates, as one readable key."""
    fields = sorted({d.field for d in differences})
    if len(fields) > 12:
        fields = [*fields[:12], f"+{len(fields) - 12} more"]
    return " ".join(fields)


def signature_id(signature: str) -> str:
    return hashlib.sha1(signature.encode()).hexdigest()[:10]


def _request(redactor: Redactor, request: HttpRequest) -> dict[str, Any]:
    return {
        "method": request.method,
        "target": redactor.target(request.target),
        "headers": redactor.headers(request.headers),
        "body": redactor.body(request.body, request.headers.get("content-type", "")),
    }


@dataclass(frozen=True)
class Sample:
    """One stored mismatch (or error): the redacted requests, both sides, the differences."""

    route: str
    at: float
    outcome: ShadowOutcome
    request: Mapping[str, Any]
    """As the client sent it (what legacy received when legacy answers)."""
    legacy: Mapping[str, Any]
    new: Mapping[str, Any]
    differences: tuple[Mapping[str, Any], ...]
    error: str | None = None
    sent: Mapping[str, Any] | None = None
    """The request as each side received it: ``{"legacy": ..., "new": ...}``."""
    endpoint: str = ""
    signature: str = ""

    @classmethod
    def build(
        cls,
        route: str,
        request: HttpRequest,
        legacy: Observation,
        new: Observation,
        comparison: Comparison,
        redactor: Redactor,
        *,
        sent: Mapping[str, HttpRequest] | None = None,
        endpoint: str = "",
    ) -> Sample:
        def side(obs: Observation) -> dict[str, Any]:
            out = obs.to_dict()
            out["headers"] = redactor.headers(obs.headers)
            out["body"] = redactor.body(obs.body, obs.headers.get("content-type", ""))
            return out

        differences = []
        for diff in (*comparison.differences, *comparison.noise):
            if redactor.covers(diff.path):
                diff = Difference(diff.path, diff.kind, REDACTED, REDACTED)
            else:
                diff = Difference(
                    diff.path,
                    diff.kind,
                    redactor.value(diff.path, diff.legacy),
                    redactor.value(diff.path, diff.new),
                )
            item = diff.to_dict()
            item["noise"] = diff.field in {d.field for d in comparison.noise}
            differences.append(item)
        return cls(
            route=route,
            at=time.time(),
            outcome=comparison.outcome,
            request=_request(redactor, request),
            legacy=side(legacy),
            new=side(new),
            differences=tuple(differences),
            error=comparison.error,
            sent={k: _request(redactor, v) for k, v in sent.items()} if sent else None,
            endpoint=endpoint,
            signature=signature_of(comparison.differences),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "at": self.at,
            "outcome": self.outcome,
            "endpoint": self.endpoint,
            "signature": self.signature,
            "request": dict(self.request),
            "sent": dict(self.sent) if self.sent else None,
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
            outcome=ShadowOutcome(data["outcome"]),
            request=data["request"],
            legacy=data["legacy"],
            new=data["new"],
            differences=tuple(data["differences"]),
            error=data.get("error"),
            sent=data.get("sent"),
            endpoint=data.get("endpoint", ""),
            signature=data.get("signature", ""),
        )

    def example(self) -> dict[str, Any]:
        """A small stand-in for the signature table: where and what differed."""
        return {
            "at": self.at,
            "endpoint": self.endpoint,
            "target": self.request.get("target"),
            "differences": [dict(d) for d in self.differences[:8]],
        }


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
    endpoints: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(endpoint, outcome) -> comparisons."""
    signatures: Counter[str] = field(default_factory=Counter)
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)
    """signature -> the latest example of it."""
    warnings: Counter[str] = field(default_factory=Counter)
    generation: str = ""
    """The compare config the results were compared under (windows by version)."""
    max_fields: int = MAX_FIELDS
    reached: set[str] = field(default_factory=set)
    """Config paths of rules that applied to some difference."""

    def add(
        self, comparison: Comparison, sample: Sample | None, now: float, endpoint: str = ""
    ) -> None:
        outcome = comparison.outcome
        self.counts[outcome] += 1
        for name in _fields(comparison):
            self.fields[name] += 1
        for diff in comparison.warnings:
            self.warnings[diff.field] += 1
        if comparison.reached:
            self.reached |= comparison.reached
        if outcome != ShadowOutcome.ERROR:
            self.trend[(bucket_of(now), outcome)] += 1
        if endpoint:
            self.endpoints[(endpoint, outcome)] += 1
        if outcome == MISMATCH:
            signature = signature_of(comparison.differences)
            self.signatures[signature] += 1
            if sample is not None:
                self.examples[signature] = sample.example()
        if sample is not None:
            self.samples.append(sample)

    def match(self, now: float, count: int = 1, endpoint: str = "") -> None:
        """Matches with no difference at all (what ``add`` does for them, cheaper)."""
        self.counts[MATCH] += count
        self.trend[(bucket_of(now), MATCH)] += count
        if endpoint:
            self.endpoints[(endpoint, MATCH)] += count

    def __bool__(self) -> bool:
        return bool(self.counts or self.noise)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for a store in another process (:meth:`from_dict` reads it back)."""
        return {
            "counts": dict(self.counts),
            "fields": dict(self.fields),
            "trend": [[bucket, outcome, n] for (bucket, outcome), n in self.trend.items()],
            "noise": sorted(self.noise),
            "samples": [sample.to_dict() for sample in self.samples],
            "endpoints": [
                [endpoint, outcome, n] for (endpoint, outcome), n in self.endpoints.items()
            ],
            "signatures": dict(self.signatures),
            "examples": self.examples,
            "warnings": dict(self.warnings),
            "generation": self.generation,
            "max_fields": self.max_fields,
            "reached": sorted(self.reached),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Batch:
        return cls(
            counts=Counter(data["counts"]),
            fields=Counter(data["fields"]),
            trend=Counter({(int(b), str(o)): int(n) for b, o, n in data["trend"]}),
            noise=set(data["noise"]),
            samples=deque((Sample.from_dict(s) for s in data["samples"]), maxlen=MAX_SAMPLES),
            endpoints=Counter({(str(e), str(o)): int(n) for e, o, n in data["endpoints"]}),
            signatures=Counter(data["signatures"]),
            examples=dict(data["examples"]),
            warnings=Counter(data["warnings"]),
            generation=str(data["generation"]),
            max_fields=int(data["max_fields"]),
            reached=set(data["reached"]),
        )


def _fields(comparison: Comparison) -> set[str]:
    return {d.field for d in (*comparison.differences, *comparison.noise)}


def bucket_of(now: float) -> int:
    return int(now) // TREND_STEP * TREND_STEP
