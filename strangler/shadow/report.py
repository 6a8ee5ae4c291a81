"""What ``GET /api/routes/{name}/shadow`` says, built from one stored window.

:func:`report` turns a :class:`~strangler.shadow.store.RouteShadow` into the
JSON document: counts and rates, per-field mismatch rates (noise flagged),
``endpoints`` (per method and path template: counts and match rate), mismatch
``signatures`` (the set of differing fields, with a count and an example),
order warnings, the trend, a page of samples (filtered by endpoint, field or
signature) and learned noise as a ready ``routes.yaml`` rule. :func:`fixtures`
turns samples into contract-test cases (request and both responses).

Pure functions over immutable values: safe to run in a worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from strangler.config import CompareConfig
from strangler.shadow.outcome import ShadowOutcome
from strangler.shadow.reach import body_paths, unapplied
from strangler.shadow.results import OVERFLOW, Sample, signature_id
from strangler.shadow.store import WINDOWS, RouteShadow


@dataclass(frozen=True)
class SampleQuery:
    """A page of samples, optionally only those of one endpoint, field or signature."""

    limit: int = 20
    offset: int = 0
    endpoint: str | None = None
    field: str | None = None
    signature: str | None = None

    @property
    def filtered(self) -> bool:
        return bool(self.endpoint or self.field or self.signature)

    def keeps(self, sample: Sample) -> bool:
        if self.endpoint and sample.endpoint != self.endpoint:
            return False
        if self.signature and self.signature not in (
            sample.signature,
            signature_id(sample.signature),
        ):
            return False
        return not self.field or any(d.get("field") == self.field for d in sample.differences)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def report(
    route: str,
    data: RouteShadow,
    query: SampleQuery | None = None,
    config: CompareConfig | None = None,
) -> dict[str, Any]:
    """The JSON body of ``GET /api/routes/{name}/shadow``; with the route's ``compare``
    config, also the rules that name nothing in the stored samples."""
    query = query or SampleQuery()
    compared = data.compared
    fields = [
        {
            "field": name,
            "mismatches": count,
            "rate": _rate(count, compared),
            "noise": name in data.noise,
        }
        for name, count in sorted(data.fields.items(), key=lambda kv: (-kv[1], kv[0]))
        if name != OVERFLOW
    ]
    mismatches = data.counts.get("mismatch", 0)
    chosen = [s for s in data.samples if query.keeps(s)]
    return {
        "route": route,
        "window": data.window,
        "windows": list(WINDOWS),
        "generation": data.generation,
        "counts": dict(data.counts),
        "compared": compared,
        "match_rate": _rate(data.counts.get("match", 0), compared),
        "mismatch_rate": _rate(mismatches, compared),
        "fields": fields,
        "overflow": {
            "fields": data.fields.get(OVERFLOW, 0),
            "signatures": data.signatures.get(OVERFLOW, 0),
            "endpoints": sum(data.endpoints.get(OVERFLOW, {}).values()),
        },
        "noise": sorted(data.noise),
        "warnings": [
            {"field": name, "count": n}
            for name, n in sorted(data.warnings.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "endpoints": endpoints(data.endpoints),
        "signatures": signatures(data, mismatches),
        "suggested_rules": suggested_rules(data.noise),
        "unapplied_rules": _unapplied(config, data),
        "trend": [
            {"at": at, "match": m, "mismatch": mm, "match_rate": _rate(m, m + mm)}
            for at, m, mm in data.trend
        ],
        "samples": [s.to_dict() for s in chosen[query.offset : query.offset + query.limit]],
        "samples_total": len(chosen) if query.filtered else max(data.stored_samples, len(chosen)),
        "samples_offset": query.offset,
    }


def _unapplied(config: CompareConfig | None, data: RouteShadow) -> list[dict[str, Any]]:
    """Rules that applied to no difference under the current rules (once any compared)."""
    if config is None or not data.compared:
        return []
    paths = body_paths(config)
    bodies = [str(side.get("body")) for s in data.samples for side in (s.legacy, s.new)]
    return unapplied(paths, data.reached, bodies) if paths else []


def endpoints(flat: Mapping[str, Mapping[str, int]]) -> list[dict[str, Any]]:
    out = []
    for endpoint, counts in flat.items():
        if endpoint == OVERFLOW:
            continue
        matched, mismatched = counts.get("match", 0), counts.get("mismatch", 0)
        method, _, template = endpoint.partition(" ")
        out.append(
            {
                "endpoint": endpoint,
                "method": method,
                "path": template,
                "counts": dict(counts),
                "compared": matched + mismatched,
                "match_rate": _rate(matched, matched + mismatched),
            }
        )
    # Worst first: what to look at next.
    out.sort(key=lambda e: (e["match_rate"] if e["match_rate"] is not None else 2, e["endpoint"]))
    return out


def signatures(data: RouteShadow, mismatches: int) -> list[dict[str, Any]]:
    out = []
    for signature, count in sorted(data.signatures.items(), key=lambda kv: (-kv[1], kv[0])):
        if signature == OVERFLOW:
            continue
        out.append(
            {
                "id": signature_id(signature),
                "signature": signature,
                "fields": signature.split(" ") if signature else [],
                "mismatches": count,
                "share": _rate(count, mismatches),
                "example": data.examples.get(signature),
            }
        )
    return out


def rule_path(field: str) -> str:
    """A stored field template as a routes.yaml path (``<key>`` is any one key)."""
    return field.replace("<key>", "*")


def suggested_rules(noise: Iterable[str]) -> str | None:
    """Learned noise as a block to paste under the route's ``shadow:``."""
    paths = sorted({rule_path(f) for f in noise})
    if not paths:
        return None
    lines = ["compare:", "  ignore:"] + [f"    - {json.dumps(p)}" for p in paths]
    return "\n".join(lines) + "\n"


def _side(data: Mapping[str, Any]) -> dict[str, Any]:
    body = data.get("body")
    parsed: Any = body
    if isinstance(body, str):
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = body
    return {"status": data.get("status"), "headers": data.get("headers"), "body": parsed}


def fixtures(route: str, samples: Iterable[Sample]) -> dict[str, Any]:
    """Mismatches as contract-test cases: the request each side received and both
    answers (redacted as stored), one case per sample, newest first."""
    cases = []
    for i, sample in enumerate(samples):
        if sample.outcome != ShadowOutcome.MISMATCH:
            continue
        sent = sample.sent or {}
        cases.append(
            {
                "name": f"{route}-{i + 1}-{signature_id(sample.signature)}",
                "endpoint": sample.endpoint,
                "at": sample.at,
                "request": dict(sample.request),
                "sent": {k: dict(v) for k, v in sent.items()},
                "legacy": _side(sample.legacy),
                "new": _side(sample.new),
                "differences": [dict(d) for d in sample.differences],
            }
        )
    return {"route": route, "fixtures": cases}
