"""Where shadow outcomes go: :class:`Recorder`.

Every outcome of a sampled request is recorded here, and only here: into the
route's :class:`~strangler.shadow.results.Batch` (merged into the store every
``flush_interval``), the process's metrics, and — for matches and mismatches —
the rollback monitor's comparison feed. Three ways in, by how often they come:

- :meth:`Recorder.compared` for a comparison made in full (with its sample);
- :meth:`Recorder.count` for an outcome decided without one (skipped, dropped,
  a failed mirror);
- :meth:`Recorder.matched` and :meth:`Recorder.later`, on the request path or
  in a parser callback, only add to this loop turn's tally; it is recorded
  once at the turn's end, however many requests the turn brought.

A store that fails loses the batch and says so (bounded loss over unbounded
memory); nothing here raises to its caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from strangler.shadow.difference import Comparison
from strangler.shadow.endpoints import Endpoints
from strangler.shadow.outcome import ERROR, MATCH, ShadowOutcome
from strangler.shadow.results import Batch, Sample
from strangler.shadow.store import ShadowStore
from strangler.tasks import stop_task

log = logging.getLogger(__name__)


class ShadowMetrics(Protocol):
    """What the recorder reports to (``strangler.metrics.Metrics`` in a server)."""

    def shadow(self, route: str, outcome: str, count: int = 1) -> None: ...


ComparisonFeed = Callable[[str, bool, int], None]
"""(route, matched, how many) for finished comparisons: the rollback monitor's input."""


class Recorder:
    """Batches per route, metrics and the comparison feed; flushed to the store."""

    def __init__(
        self,
        store: ShadowStore,
        metrics: ShadowMetrics | None = None,
        on_comparison: ComparisonFeed | None = None,
        flush_interval: float = 0.5,
    ) -> None:
        self.store = store
        self._metrics = metrics
        self._on_comparison = on_comparison
        self._flush_interval = flush_interval
        self._batches: dict[str, Batch] = {}
        self._kept: dict[str, tuple[str, int]] = {}
        """Route -> (its compare config's generation, max_fields), for new batches."""
        self._endpoints: dict[str, Endpoints] = {}
        self._matches: dict[str, dict[str, int]] = {}
        """This loop turn's byte-identical matches, by route and path."""
        self._later: dict[tuple[str, ShadowOutcome], int] = {}
        """This loop turn's outcomes decided up front, by (route, outcome)."""
        self._turn_ends = False
        """The end of this turn's tally is scheduled."""
        self._flusher: asyncio.Task[None] | None = None

    def described(self, route: str, generation: str, max_fields: int) -> None:
        """How ``route``'s results are kept: under which rules, how many fields."""
        self._kept[route] = (generation, max_fields)

    def endpoint(self, route: str, method: str, path: str) -> str:
        """``GET /api/articles/{id}``: the request's endpoint, learned per route."""
        endpoints = self._endpoints.get(route)
        if endpoints is None:
            endpoints = self._endpoints[route] = Endpoints()
        return endpoints.of(method, path)

    # ------------------------------------------------------------ recording

    def compared(
        self, route: str, comparison: Comparison, sample: Sample | None, endpoint: str
    ) -> None:
        outcome = comparison.outcome
        if self._metrics is not None:
            self._metrics.shadow(route, outcome)
        if self._on_comparison is not None and outcome != ERROR:
            self._on_comparison(route, outcome == MATCH, 1)
        self._batch(route).add(comparison, sample, time.time(), endpoint)

    def count(self, route: str, outcome: ShadowOutcome) -> None:
        self._batch(route).counts[outcome] += 1
        if self._metrics is not None:
            self._metrics.shadow(route, outcome)

    def noise(self, route: str, fields: set[str]) -> None:
        """Fields found noisy here, for the store (which every process reads)."""
        self._batch(route).noise.update(fields)

    def matched(self, route: str, path: str) -> None:
        """A byte-identical match of a GET of ``path``, recorded at the turn's end."""
        if not self._turn_ends and not self._end_turn_soon():
            self.compared(route, Comparison(MATCH), None, self.endpoint(route, "GET", path))
            return
        paths = self._matches.get(route)
        if paths is None:
            paths = self._matches[route] = {}
        paths[path] = paths.get(path, 0) + 1

    def later(self, route: str, outcome: ShadowOutcome) -> None:
        """``outcome`` (dropped, error), recorded at the turn's end."""
        if not self._turn_ends and not self._end_turn_soon():
            self.count(route, outcome)
            return
        key = (route, outcome)
        self._later[key] = self._later.get(key, 0) + 1

    def _end_turn_soon(self) -> bool:
        """Schedule the end of this turn's tally; False without a running loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._turn_ends = True
        loop.call_soon(self._end_turn)
        return True

    def _end_turn(self) -> None:
        self._turn_ends = False
        matches, self._matches = self._matches, {}
        later, self._later = self._later, {}
        now = time.time()
        for route, paths in matches.items():
            try:
                count = sum(paths.values())
                batch = self._batch(route)
                batch.match(now, count)
                for path, n in paths.items():  # the pipelined lane is GET only
                    batch.endpoints[(self.endpoint(route, "GET", path), MATCH)] += n
                if self._metrics is not None:
                    self._metrics.shadow(route, MATCH, count)
                if self._on_comparison is not None:
                    self._on_comparison(route, True, count)
            except Exception:
                log.exception("shadow counting for route %r failed", route)
        for (route, outcome), count in later.items():
            self._batch(route).counts[outcome] += count
            if self._metrics is not None:
                self._metrics.shadow(route, outcome, count)

    # ------------------------------------------------------------ flushing

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            await self.flush()

    async def flush(self) -> None:
        """Merge what was recorded so far into the store."""
        if self._turn_ends:
            self._end_turn()
        batches, self._batches = self._batches, {}
        for route, batch in batches.items():
            try:
                await self.store.merge(route, batch)
            except Exception as exc:
                # Bounded loss over unbounded memory: the batch is dropped, and said so.
                lost = dict(batch.counts)
                log.warning("shadow store unavailable (%s); results lost: %s", exc, lost)

    async def close(self) -> None:
        await stop_task(self._flusher)
        self._flusher = None
        await self.flush()

    def _batch(self, route: str) -> Batch:
        if self._flusher is None:
            self._start()
        batch = self._batches.get(route)
        if batch is None:
            generation, max_fields = self._kept.get(route, ("", 500))
            batch = self._batches[route] = Batch(generation=generation, max_fields=max_fields)
        return batch

    def _start(self) -> None:
        """The flush loop, once there is a running loop (a sync caller's counts go
        out with the first flush after it)."""
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            self._flusher = loop.create_task(self._flush_loop())
