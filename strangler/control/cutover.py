"""The cutover: move a bounded context's writes and data ownership in one sequence.

::

    preconditions ──refused──> 409, nothing touched
         │
    hold   (state store: holding; every replica closes the context's write gate,
         │  lets its in-flight writes finish, and acknowledges)
    drain  (sync applies the old owner's writes up to its current position)
         │
    flip   (compare-and-set: owner = to, epoch + 1, steady) ──> writes released to `to`
         └── any failure, or not within hold_timeout ──> abort: steady with the old owner,
             writes released to it, 409

One cutover per context at a time (a lock in the store). A state store that
cannot be reached before the hold is a :class:`~strangler.errors.StateStoreError`
(503, nothing held). The flip and an abort are compare-and-set writes on the
holding value, so a replica's watchdog (which releases a hold whose runner died)
and the runner can never both win: the context is never half-moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from strangler.config import Config, ContextConfig
from strangler.control.audit import AuditEntry
from strangler.control.holds import hold_key
from strangler.control.ownership import Owner, Ownership, unowned
from strangler.control.rollback import verdict
from strangler.errors import StateStoreError, StranglerError
from strangler.routing.table import writes_only
from strangler.sync.drain import Drained

if TYPE_CHECKING:
    from strangler.control.plane import ControlPlane

log = logging.getLogger(__name__)


class Drainer(Protocol):
    """``strangler.sync.drain.drain``: wait until the old owner's writes are applied;
    ``cutover`` is the id its watermarks carry."""

    def __call__(
        self, config: Config, context: str, owner: Owner, timeout: float, *, cutover: str
    ) -> Awaitable[Drained]: ...


LagReader = Callable[[Config, str, Owner], Awaitable[float]]
"""``strangler.sync.drain.lag_seconds``: how far sync is behind the owner's side."""

FOLLOW_WINDOW = 2.0
"""Seconds within which a sync worker must have read ownership from a memory:// store."""

LAST_KEY = "cutovers:"
"""Capped list (per context) of the latest cutover results, newest first."""


class CutoverMetrics(Protocol):
    def cutover(self, context: str, to: str, result: str, hold: float | None) -> None: ...


class UnknownContext(StranglerError):
    """The context is not in routes.yaml's ``contexts:`` (404)."""


class CutoverRefused(StranglerError):
    """A precondition does not hold; nothing was touched (409)."""


class HoldNotAcknowledged(StranglerError):
    """Some replica did not confirm the hold in time (the cutover aborts)."""


@dataclass(frozen=True)
class CutoverResult:
    context: str
    to: Owner
    result: str
    """``done`` (the context moved) or ``aborted`` (everything stayed with the old owner)."""
    owner: Owner
    """Who owns the context now."""
    epoch: int
    held_seconds: float
    """How long the context's writes were held, from the hold to the release."""
    reason: str | None = None
    position: str | None = None
    """The old owner's position the drain reached."""
    drain_seconds: float | None = None
    by: str = ""
    at: float = 0.0

    @property
    def done(self) -> bool:
        return self.result == "done"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Cutovers:
    """Runs cutovers for this process's admin API (one per context at a time)."""

    def __init__(
        self,
        plane: ControlPlane,
        drain: Drainer,
        lag: LagReader,
        metrics: CutoverMetrics | None = None,
    ) -> None:
        self.plane = plane
        self.drain = drain
        self.lag = lag
        self.metrics = metrics

    @property
    def config(self) -> Config:
        return self.plane.router.config

    def context(self, name: str) -> ContextConfig:
        context = self.config.contexts.get(name)
        if context is None:
            known = ", ".join(self.config.contexts) or "none"
            raise UnknownContext(f"no context named {name!r} in routes.yaml (known: {known})")
        return context

    async def last(self, context: str) -> dict[str, Any] | None:
        """The latest cutover of ``context`` (raises StateStoreError)."""
        for line in await self.plane.store.latest(LAST_KEY + context, 1):
            try:
                value: dict[str, Any] = json.loads(line)
                return value
            except ValueError:
                return None
        return None

    async def run(self, name: str, to: Owner, *, who: str) -> CutoverResult:
        """The whole sequence. Raises UnknownContext, CutoverRefused (nothing touched) or
        StateStoreError (nothing held); otherwise returns done or aborted."""
        context = self.context(name)
        store = self.plane.store
        lock = f"cutover-lock:{name}"
        # Outlives the sequence (lag probe, hold, flip), not much more: a runner that died
        # must not block the next cutover for long (its hold is ended by a watchdog).
        if not await store.acquire(lock, context.max_lag + context.hold_timeout + 10.0):
            raise CutoverRefused(f"a cutover of {name!r} is already running; wait for it")
        try:
            current = (await store.snapshot()).ownerships.get(name) or unowned(name)
            try:
                await self._check(name, context, current, to)
            except CutoverRefused:
                if self.metrics is not None:
                    self.metrics.cutover(name, to, "refused", None)
                raise
            return await self._move(name, context, current, to, who)
        finally:
            try:
                await store.release(lock)
            except StateStoreError as exc:
                log.warning("cutover lock of %r not released (it expires): %s", name, exc)

    # ------------------------------------------------------------ preconditions

    async def _check(
        self, name: str, context: ContextConfig, current: Ownership, to: Owner
    ) -> None:
        if not current.steady:
            raise CutoverRefused(
                f"context {name!r} is {current.state} (cutover {current.cutover}); wait for it"
            )
        if current.owner == to:
            raise CutoverRefused(f"context {name!r} is already owned by {to}")
        self._check_followed(name, context)
        if to == "service":
            for route_name in context.routes:
                await self._check_reads(route_name)
        try:
            lag = await self.lag(self.config, name, current.owner)
        except StranglerError as exc:
            raise CutoverRefused(f"cannot read the sync lag of {name!r}: {exc}") from exc
        if lag > context.max_lag:
            raise CutoverRefused(
                f"sync lag of {name!r} is {lag:.2f}s, over max_lag {context.max_lag:g}s: "
                "let the sync worker catch up (strangler sync) and retry"
            )

    def _check_followed(self, name: str, context: ContextConfig) -> None:
        """With ``memory://`` state only a sync worker in this process sees the owner; a
        separate ``strangler sync`` would keep judging by legacy and refuse the service's
        writes, so moving data needs a worker here (the demo) or a shared store."""
        store = self.plane.store
        if self.config.sync is None or not context.tables or store.shared:
            return
        followed = store.followed_at
        if followed is None or time.monotonic() - followed > FOLLOW_WINDOW:
            raise CutoverRefused(
                f"no sync worker follows this proxy's ownership of {name!r}: with state "
                f"{store.url} a separate `strangler sync` cannot see it; set state: "
                "redis://host:6379/0 in routes.yaml for both (or run the worker in this "
                "process, as `strangler demo` does)"
            )

    async def _check_reads(self, route_name: str) -> None:
        """A read route must be on the service, and under its rollback thresholds."""
        route = self.plane.router.table.route(route_name)
        if route is None or writes_only(route.config):
            return
        breach = await self._breach(route_name)  # may roll the route back: read the mode after
        route = self.plane.router.table.route(route_name)
        if route is None:
            return
        if not (route.mode == "new" or (route.mode == "canary" and route.percent >= 100)):
            share = f" {route.percent:g}%" if route.mode == "canary" else ""
            why = (
                f" ({route.source}: {route.override.reason})"
                if route.override and route.override.reason
                else ""
            )
            raise CutoverRefused(
                f"read route {route_name!r} is {route.mode}{share}{why}, not new (or canary "
                f"100%): move its reads first (strangler flip {route_name} new)"
            )
        if breach is not None:
            raise CutoverRefused(f"route {route_name!r}: {breach}")

    async def _breach(self, route: str) -> str | None:
        """A rollback threshold the route is over now, as words, or None."""
        compiled = self.plane.router.table.route(route)
        config = compiled.config.rollback if compiled is not None else None
        if config is None:
            return None
        totals = await self.plane.rollback.totals(route, config)
        found = verdict(config, totals)
        if found is not None:
            return found[1] + " (over the rollback threshold)"
        rate_of = self.plane.match_rate
        rate = rate_of(route) if rate_of is not None else None
        limit = config.mismatch_rate
        if rate is not None and limit is not None and 1.0 - rate > limit:
            return f"shadow mismatch rate {1.0 - rate:.1%} above rollback.mismatch_rate {limit:.1%}"
        return None

    # ------------------------------------------------------------ the move

    async def _move(
        self, name: str, context: ContextConfig, current: Ownership, to: Owner, who: str
    ) -> CutoverResult:
        store = self.plane.store
        cutover = uuid.uuid4().hex[:10]
        holding = current.holding(to, cutover, who)
        if not await store.set_ownership(holding, expect=current):
            raise CutoverRefused(f"context {name!r} changed while the cutover started; retry")
        held_at = time.monotonic()
        deadline = held_at + context.hold_timeout
        drained: Drained | None = None
        reason: str | None = None
        try:
            await self.plane.refresh()
            await self._acknowledged(name, cutover, deadline, context.hold_timeout)
            draining = holding.draining()
            if not await store.set_ownership(draining, expect=holding):
                raise StranglerError("the hold was released by a replica's watchdog")
            holding = draining
            drained = await asyncio.wait_for(
                self.drain(
                    self.config,
                    name,
                    current.owner,
                    deadline - time.monotonic(),
                    cutover=cutover,
                ),
                max(0.001, deadline - time.monotonic()),
            )
        except TimeoutError:
            reason = f"the drain did not finish within hold_timeout {context.hold_timeout:g}s"
        except StranglerError as exc:
            reason = str(exc)
        except Exception as exc:  # any surprise aborts; never leave the context held
            log.exception("cutover of %r failed", name)
            reason = f"{type(exc).__name__}: {exc}"
        final = holding.moved(who) if reason is None else holding.kept(who)
        try:
            written = await store.set_ownership(final, expect=holding)
        except StateStoreError as exc:
            # The write may have landed before the answer was lost: ask the store.
            stored = await self._stored(name)
            written = stored == final
            if not written:
                reason = reason or f"the flip could not be written: {exc}"
                log.error("cutover of %r: %s; replicas release the hold when it is back", name, exc)
        if not written and reason is None:
            reason = "the hold was released by a replica's watchdog before the flip"
        if not written:
            final = (await self._stored(name)) or holding
        held = time.monotonic() - held_at
        with contextlib.suppress(StateStoreError):
            await self.plane.refresh()
        done = reason is None
        result = CutoverResult(
            name,
            to,
            "done" if done else "aborted",
            final.owner if final.steady else current.owner,
            final.epoch,
            held,
            reason,
            drained.position if drained else None,
            drained.seconds if drained else None,
            who,
            time.time(),
        )
        await self._record(result, current, final)
        return result

    async def _acknowledged(
        self, name: str, cutover: str, deadline: float, hold_timeout: float
    ) -> None:
        """Wait until every live replica holds the context's writes with none in flight."""
        store = self.plane.store
        key = hold_key(name, cutover)
        while True:
            acked = set(await store.totals([key]))
            missing = (await store.replicas() | {self.plane.replica}) - acked
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise HoldNotAcknowledged(
                    f"replicas {', '.join(sorted(missing))} did not confirm the hold (writes "
                    f"in flight finished) within hold_timeout {hold_timeout:g}s"
                )
            await asyncio.sleep(0.005)

    async def _stored(self, name: str, tries: int = 10) -> Ownership | None:
        """The stored ownership of ``name`` (None if the store does not answer)."""
        for _ in range(tries):
            try:
                return (await self.plane.store.snapshot()).ownerships.get(name)
            except StateStoreError:
                await asyncio.sleep(0.2)
        return None

    async def _record(self, result: CutoverResult, before: Ownership, after: Ownership) -> None:
        if self.metrics is not None:
            self.metrics.cutover(result.context, result.to, result.result, result.held_seconds)
        action = "cutover" if result.done else "cutover.aborted"
        await self.plane.audit.record(
            AuditEntry(
                action, result.context, result.by, before.audited(), after.audited(), result.reason
            )
        )
        line = json.dumps(result.to_dict(), separators=(",", ":"))
        try:
            await self.plane.store.push(LAST_KEY + result.context, line, 20)
        except StateStoreError as exc:
            log.warning("cutover result of %r not stored: %s", result.context, exc)
        log.info(
            "cutover of %r to %s %s after holding writes %.3fs%s",
            result.context,
            result.to,
            result.result,
            result.held_seconds,
            f": {result.reason}" if result.reason else "",
        )
