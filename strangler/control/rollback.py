"""Automatic rollback: flip a route to legacy when its new upstream misbehaves.

For each route with a ``rollback:`` block whose effective mode sends users to
``to`` (canary or new), the monitor counts — per wall-clock bucket of a tenth
of ``window`` — the requests ``to`` served, how many failed (5xx, timeouts,
connection errors, open circuit, adapter errors), and the shadow comparisons
and mismatches reported by the shadow part. Once ``min_requests`` were served
(or compared) in the sliding ``window`` and a rate exceeds its threshold, the
route gets an override ``legacy`` with source ``auto-rollback`` and the reason,
``strangler_rollbacks_total{route,reason}`` is counted and the audit log
written. It stays so until a person clears the override.

Exactly once across replicas: every replica adds its counts to shared buckets
in the state store, so all see the same totals; the one that takes the store's
lock (SET NX with expiry) re-reads the state under it, and only it flips the
route (and then empties the buckets). Others find the route already rolled back.

On the request path the monitor only bumps integers in a dict (``record``,
``record_comparison``); the store is touched by :meth:`run`, every
``flush_every`` seconds, off the path. If the store is down, counts wait in
memory (at most one window's worth) and nothing is decided.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, NamedTuple, Protocol

from strangler.config import RollbackConfig
from strangler.control.state import OverrideChange, StateStore
from strangler.errors import StateStoreError
from strangler.runtime import RequestRecord

if TYPE_CHECKING:
    from strangler.routing.router import Router
    from strangler.routing.table import RouteTable

log = logging.getLogger(__name__)

_REQUESTS, _ERRORS, _COMPARED, _MISMATCHED = range(4)
_FIELDS = ("requests", "errors", "compared", "mismatched")
_BUCKETS = 10
_LOCK_TTL = 10.0
_ACTIVE_MODES = frozenset({"canary", "new"})


class _Watch(NamedTuple):
    width: float
    """Seconds per counting bucket (a tenth of the window)."""
    errors: bool
    mismatches: bool


def bucket_width(window: float) -> float:
    return max(window / _BUCKETS, 0.05)


def verdict(config: RollbackConfig, totals: dict[str, int]) -> tuple[str, str] | None:
    """``(metric reason, text for people)`` if the totals call for a rollback, else None."""
    checks = (
        ("error_rate", config.error_rate, "errors", "requests", "error rate"),
        ("mismatch_rate", config.mismatch_rate, "mismatched", "compared", "shadow mismatch rate"),
    )
    for reason, limit, part, whole, what in checks:
        bad, seen = totals.get(part, 0), totals.get(whole, 0)
        if limit is not None and seen >= config.min_requests and bad / seen > limit:
            return reason, (
                f"{what} {bad / seen:.1%} above {limit:.1%} "
                f"({bad} of {seen} {_COUNTED[whole]} in {config.window:g}s)"
            )
    return None


_COUNTED = {"requests": "requests", "compared": "comparisons"}


class RollbackCounter(Protocol):
    """The one metric the monitor feeds (``strangler_rollbacks_total``)."""

    def rollback(self, route: str, reason: str) -> None: ...


class RollbackPlane(Protocol):
    """What the monitor needs from the control plane (``ControlPlane`` is one): the
    route table it judges, the store it counts in, and the flip itself."""

    store: StateStore

    @property
    def router(self) -> Router: ...

    async def roll_back(self, route: str, reason: str) -> OverrideChange | None: ...


class RollbackMonitor:
    def __init__(
        self, plane: RollbackPlane, metrics: RollbackCounter | None, *, flush_every: float = 0.5
    ) -> None:
        self._plane = plane
        self._metrics = metrics
        self._flush_every = flush_every
        self._pending: dict[tuple[str, int], list[int]] = {}
        self._active: dict[str, float] = {}
        """Route -> last time this replica counted something for it (what to evaluate)."""
        self._table: RouteTable | None = None
        self._watch: dict[str, _Watch] = {}
        self._stopping = asyncio.Event()

    # ------------------------------------------------------------ request path

    def _watched(self) -> dict[str, _Watch]:
        """Routes under watch in the current table (rebuilt only when the table changes)."""
        table = self._plane.router.table
        if table is not self._table:
            watched = {}
            for route in table.routes:
                config = route.config.rollback
                if config is not None and route.mode in _ACTIVE_MODES:
                    watched[route.name] = _Watch(
                        bucket_width(config.window),
                        config.error_rate is not None,
                        config.mismatch_rate is not None,
                    )
            self._table, self._watch = table, watched
        return self._watch

    def _bump(self, route: str, width: float, field: int, hit: bool, count: int = 1) -> None:
        now = time.time()
        key = (route, int(now // width))
        counts = self._pending.get(key)
        if counts is None:
            counts = self._pending[key] = [0, 0, 0, 0]
            self._active[route] = now  # once per bucket is precise enough
        counts[field] += count
        if hit:
            counts[field + 1] += count

    def record(self, record: RequestRecord) -> None:
        """Request listener: O(1), in memory."""
        if not record.to_new or record.route is None:
            return
        watch = self._watched().get(record.route)
        if watch is None or not watch.errors:
            return
        failed = record.error is not None or record.status >= 500
        self._bump(record.route, watch.width, _REQUESTS, failed)

    def record_comparison(self, route: str, matched: bool, count: int = 1) -> None:
        """Shadow comparison listener (``count`` comparisons alike): O(1), in memory."""
        watch = self._watched().get(route)
        if watch is None or not watch.mismatches:
            return
        self._bump(route, watch.width, _COMPARED, not matched, count)

    def _config(self, route: str) -> RollbackConfig | None:
        """The rollback block of ``route`` if it is under watch now (off the path)."""
        if route not in self._watched():
            return None
        compiled = self._plane.router.table.by_name.get(route)
        return compiled.config.rollback if compiled is not None else None

    # ------------------------------------------------------------ off the path

    async def run(self) -> None:
        """Flush and judge every ``flush_every`` s until :meth:`stop`."""
        warned = False
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_every):
                    await self._stopping.wait()
            if self._stopping.is_set():
                return
            try:
                await self.flush()
                warned = False
            except StateStoreError as exc:
                if not warned:
                    log.warning("automatic rollback paused: %s", exc)
                    warned = True
            except Exception:  # never let the monitor die; the next tick retries
                log.exception("automatic rollback check failed")

    def stop(self) -> None:
        """Let :meth:`run` finish its current round and return. Stopping between rounds,
        never inside a store call, keeps the store's connections usable (cancelling a
        Redis call half-way can leave it waiting on a connection forever)."""
        self._stopping.set()

    async def flush(self) -> None:
        """Add this replica's counts to the shared buckets, then judge the active routes."""
        pending, self._pending = self._pending, {}
        now = time.time()
        failed: StateStoreError | None = None
        for (route, bucket), counts in pending.items():
            config = self._any_config(route)
            if config is None:
                continue
            width = bucket_width(config.window)
            if (bucket + 1) * width < now - config.window:
                continue  # too old to matter any more
            if failed is None:
                try:
                    await self._plane.store.add(
                        f"rollback:{route}:{bucket}",
                        {name: n for name, n in zip(_FIELDS, counts, strict=True) if n},
                        config.window + 2 * width,
                    )
                    continue
                except StateStoreError as exc:
                    failed = exc
            self._keep(route, bucket, counts)
        if failed is not None:
            raise failed
        for route, seen in list(self._active.items()):
            config = self._config(route)
            if config is None or seen < now - config.window:
                del self._active[route]
                continue
            await self._judge(route, config, now)

    def _any_config(self, route: str) -> RollbackConfig | None:
        compiled = self._plane.router.table.by_name.get(route)
        return compiled.config.rollback if compiled is not None else None

    def _keep(self, route: str, bucket: int, counts: list[int]) -> None:
        mine = self._pending.setdefault((route, bucket), [0, 0, 0, 0])
        for i, n in enumerate(counts):
            mine[i] += n

    @staticmethod
    def _keys(route: str, config: RollbackConfig, now: float) -> list[str]:
        current = int(now // bucket_width(config.window))
        return [f"rollback:{route}:{b}" for b in range(current - _BUCKETS, current + 1)]

    async def _judge(self, route: str, config: RollbackConfig, now: float) -> None:
        store = self._plane.store
        keys = self._keys(route, config, now)
        if verdict(config, await store.totals(keys)) is None:
            return
        lock = f"rollback-lock:{route}"
        if not await store.acquire(lock, _LOCK_TTL):
            return  # another replica is deciding
        try:
            # Under the lock, from the store: another replica may have decided already.
            current = (await store.snapshot()).overrides.get(route)
            mode = current.mode if current is not None else self._route_mode(route)
            if mode not in _ACTIVE_MODES:
                return
            found = verdict(config, await store.totals(keys))
            if found is None:
                return
            reason, text = found
            if await self._plane.roll_back(route, text) is None:
                await store.delete(keys)  # refused (and audited): judge fresh evidence only
                return
            if self._metrics is not None:
                self._metrics.rollback(route, reason)
            log.warning("route %r rolled back to legacy: %s", route, text)
            await store.delete(keys)
        finally:
            await store.release(lock)

    async def totals(self, route: str, config: RollbackConfig) -> dict[str, int]:
        """The shared counts of ``route`` over its window (for the cutover's preconditions);
        flushes this replica's pending counts first. Raises StateStoreError."""
        await self.flush()
        return await self._plane.store.totals(self._keys(route, config, time.time()))

    def _route_mode(self, route: str) -> str | None:
        """The mode without an override: routes.yaml's, or for a context's write route the
        one its owner gives it (``roll_back`` then refuses, saying why)."""
        compiled = self._plane.router.table.route(route)
        if compiled is not None and compiled.source == "ownership":
            return compiled.mode
        config = self._plane.router.config.route(route)
        return config.mode if config is not None else None

    async def forget(self, route: str) -> None:
        """Drop the evidence for ``route`` (a person cleared its override)."""
        for key in [k for k in self._pending if k[0] == route]:
            del self._pending[key]
        self._active.pop(route, None)
        config = self._any_config(route)
        if config is None:
            return
        try:
            await self._plane.store.delete(self._keys(route, config, time.time()))
        except StateStoreError as exc:
            log.warning("could not clear rollback counts for %r: %s", route, exc)
