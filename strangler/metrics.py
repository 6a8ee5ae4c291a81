"""Prometheus metrics (the names in DESIGN.md), summed across worker processes.

Counting is on the request path, so it is plain dict arithmetic in this
process (~0.3 us per request, measured) instead of prometheus-client metric
objects (~3.4 us, or ~5.1 us in its multiprocess mode with a lock and an mmap
write per update). With several workers each process spools its counters to a
shared folder (:mod:`strangler.metrics_spool`) and the process that serves
``/metrics`` adds every other process's latest spool to its own live counts.

prometheus-client is used only to render the text format, through a collector
that yields metric families from those merged counts. That also sidesteps its
one global switch: it picks its value class from ``PROMETHEUS_MULTIPROC_DIR`` at
import time, which we never set and never need. Nothing here reads the
environment, and nothing on the request path does I/O or can raise.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from strangler.config import MODES
from strangler.metrics_spool import Counts, add_spools, label_tuple, write_spool
from strangler.proxy.outcome import RequestRecord

if TYPE_CHECKING:
    from strangler.routing.table import RouteTable

log = logging.getLogger(__name__)

BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Upper bounds (seconds) of the duration histogram; a proxy hop is usually ~1 ms."""

HOLD_BUCKETS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Upper bounds (seconds) of the cutover hold histogram (target: under a second)."""

UNMATCHED = "-"
SHADOW_OUTCOMES = ("match", "mismatch", "error", "dropped", "skipped")
STATE_SOURCES = ("store", "local_copy", "config")


@dataclass(frozen=True, slots=True)
class RouteCounts:
    """Totals for one route since start, summed over every worker process."""

    requests: int = 0
    errors: int = 0
    """Responses with a 5xx status."""
    fallbacks: int = 0


class Metrics:
    """This process's counters, the spool that shares them, and the /metrics renderer."""

    def __init__(self, spool_dir: Path | None = None) -> None:
        """``spool_dir``: shared folder of every worker's counts (None: one process)."""
        self.spool_dir = spool_dir
        self._counts = Counts()
        self._lock = threading.Lock()  # only the sync worker's threads need it
        self._percent: dict[str, float] = {}
        self._mode: dict[str, str] = {}
        self._state_source: str | None = None
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_Collector(self))

    # ---------------------------------------------------------- hot path (O(1))

    def request(self, route: str, upstream: str, code: int, duration: float) -> None:
        counts = self._counts
        key = (route, upstream, code)
        counts.requests[key] = counts.requests.get(key, 0) + 1
        hist = counts.durations.get((route, upstream))
        if hist is None:
            hist = counts.durations[(route, upstream)] = [0.0] * (len(BUCKETS) + 2)
        hist[bisect.bisect_left(BUCKETS, duration)] += 1
        hist[-1] += duration

    def fallback(self, route: str) -> None:
        self._counts.fallbacks[route] = self._counts.fallbacks.get(route, 0) + 1

    def listener(self, record: RequestRecord) -> None:
        """A ``Runtime.listeners`` entry: counts one proxied request."""
        route = record.route or UNMATCHED
        self.request(route, record.upstream, record.status, record.duration)
        if record.fallback:
            self.fallback(route)

    # ---------------------------------------------------------- off the hot path

    def shadow(self, route: str, outcome: str, count: int = 1) -> None:
        key = (route, outcome)
        self._counts.shadow[key] = self._counts.shadow.get(key, 0) + count

    def rollback(self, route: str, reason: str) -> None:
        key = (route, reason)
        self._counts.rollbacks[key] = self._counts.rollbacks.get(key, 0) + 1

    def cutover(self, context: str, to: str, result: str, hold: float | None) -> None:
        """One cutover (``done`` or ``aborted``) and, if writes were held, for how long."""
        key = (context, to, result)
        self._counts.cutovers[key] = self._counts.cutovers.get(key, 0) + 1
        if hold is None:
            return
        hist = self._counts.cutover_hold.get(context)
        if hist is None:
            hist = self._counts.cutover_hold[context] = [0.0] * (len(HOLD_BUCKETS) + 2)
        hist[bisect.bisect_left(HOLD_BUCKETS, hold)] += 1
        hist[-1] += hold

    def reload(self, result: str) -> None:
        """``accepted`` or ``rejected``: one routes.yaml reload."""
        self._counts.reloads[result] = self._counts.reloads.get(result, 0) + 1

    def sync_event(self, table: str, op: str, outcome: str, count: int = 1) -> None:
        with self._lock:
            key = (table, op, outcome)
            self._counts.sync_events[key] = self._counts.sync_events.get(key, 0) + count

    def sync_lag(self, source: str, seconds: float) -> None:
        with self._lock:
            self._counts.sync_lag[source] = seconds

    def observe_table(self, table: RouteTable) -> None:
        """Set the route gauges from a (new) route table; a ``Router.on_swap`` callback."""
        self._percent = {r.name: r.percent for r in table.routes}
        self._mode = {r.name: r.mode for r in table.routes}

    def state_source(self, source: str) -> None:
        """Where this process's overrides come from now (``STATE_SOURCES``)."""
        self._state_source = source

    # ---------------------------------------------------------- sharing and reading

    def flush(self) -> None:
        """Write this process's counts to the spool (atomically); no-op without one."""
        if self.spool_dir is None:
            return
        with self._lock:
            counts = self._counts.copy()
        write_spool(self.spool_dir, counts)

    def merged(self) -> Counts:
        """This process's live counts plus every other process's latest spool."""
        with self._lock:
            total = self._counts.copy()
        if self.spool_dir is None:
            return total
        add_spools(self.spool_dir, total)
        return total

    def snapshot(self) -> dict[str, RouteCounts]:
        """Per-route totals across all workers (callers derive rates from two snapshots)."""
        counts = self.merged()
        requests: dict[str, int] = {}
        errors: dict[str, int] = {}
        for (route, _, code), n in counts.requests.items():
            requests[route] = requests.get(route, 0) + n
            if code >= 500:
                errors[route] = errors.get(route, 0) + n
        names = set(requests) | set(counts.fallbacks) | set(self._mode)
        return {
            name: RouteCounts(
                requests.get(name, 0), errors.get(name, 0), counts.fallbacks.get(name, 0)
            )
            for name in sorted(names)
        }

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self._registry), CONTENT_TYPE_LATEST


class _Collector:
    """Turns merged counts into metric families at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        counts = m.merged()
        yield _counter(
            "strangler_requests",
            "Proxied requests by route, answering upstream and status code.",
            ["route", "upstream", "code"],
            {(r, u, str(c)): n for (r, u, c), n in counts.requests.items()},
        )
        yield _histogram(
            "strangler_request_duration_seconds",
            "Time to answer a proxied request, by route and answering upstream.",
            ["route", "upstream"],
            counts.durations,
            BUCKETS,
        )
        percent = GaugeMetricFamily(
            "strangler_route_percent", "Effective share served by `to`.", labels=["route"]
        )
        for name, value in sorted(m._percent.items()):
            percent.add_metric([name], value)
        yield percent
        mode = GaugeMetricFamily(
            "strangler_route_mode", "1 for the route's effective mode.", labels=["route", "mode"]
        )
        for name, current in sorted(m._mode.items()):
            for each in MODES:
                mode.add_metric([name, each], 1.0 if each == current else 0.0)
        yield mode
        if m._state_source is not None:
            sources = GaugeMetricFamily(
                "strangler_state_source",
                "1 for where the overrides come from: the state store, the local copy "
                "(the store was unreachable at start), or routes.yaml alone.",
                labels=["source"],
            )
            for source in STATE_SOURCES:
                sources.add_metric([source], 1.0 if source == m._state_source else 0.0)
            yield sources
        lag = GaugeMetricFamily(
            "strangler_sync_lag_seconds", "Seconds behind the source.", labels=["source"]
        )
        for source, seconds in sorted(counts.sync_lag.items()):
            lag.add_metric([source], seconds)
        yield lag
        for name, doc, labels, table in _COUNTERS:
            yield _counter(name, doc, list(labels), getattr(counts, table))
        yield _histogram(
            "strangler_cutover_hold_seconds",
            "How long a cutover held the context's writes at the proxy.",
            ["context"],
            {(k,): v for k, v in counts.cutover_hold.items()},
            HOLD_BUCKETS,
        )


_COUNTERS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    (
        "strangler_fallbacks",
        "Requests answered by legacy after the new upstream failed.",
        ("route",),
        "fallbacks",
    ),
    (
        "strangler_shadow",
        "Shadow comparisons by outcome (match, mismatch, error, dropped, skipped).",
        ("route", "outcome"),
        "shadow",
    ),
    (
        "strangler_config_reloads",
        "routes.yaml reloads by result (accepted, rejected).",
        ("result",),
        "reloads",
    ),
    (
        "strangler_rollbacks",
        "Automatic flips to legacy, by route and reason.",
        ("route", "reason"),
        "rollbacks",
    ),
    (
        "strangler_sync_events",
        "Change events by table, operation and outcome.",
        ("table", "op", "outcome"),
        "sync_events",
    ),
    (
        "strangler_cutovers",
        "Cutovers of a context's writes and data, by target owner and result.",
        ("context", "to", "result"),
        "cutovers",
    ),
)
"""The plain counters: (name, help, labels, the ``Counts`` table they read)."""


def _counter(name: str, doc: str, labels: list[str], values: dict[Any, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric([str(part) for part in label_tuple(key)], value)
    return family


def _histogram(
    name: str,
    doc: str,
    labels: list[str],
    rows: dict[tuple[str, str], list[float]] | dict[tuple[str], list[float]],
    bounds: tuple[float, ...],
) -> HistogramMetricFamily:
    """A histogram family from rows of [count per bucket ..., count above the last, sum]."""
    family = HistogramMetricFamily(name, doc, labels=labels)
    for key, values in sorted(rows.items()):
        cumulative, buckets = 0.0, []
        for bound, n in zip((*bounds, float("inf")), values[:-1], strict=True):
            cumulative += n
            buckets.append((_bound(bound), cumulative))
        family.add_metric(list(key), buckets, values[-1])
    return family


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
