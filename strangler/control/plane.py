"""The control plane of one proxy process: overrides and context owners from the state store
into the router (and, while a cutover holds a context, its write gate: ``holds.py``).

:class:`ControlPlane` loads every override when it starts, then follows the
store's change channel and, for each announced version, reloads the full
override set and hands it to ``router.set_overrides`` (one table swap). Writes
made through this process (the admin API, automatic rollback) go to the store
first and are applied here at once; the other replicas apply them when the
announcement reaches them.

The store is never on the request path. If it goes away, requests keep being
routed with the last table built; writes raise StateStoreError (the admin API
answers 503); the follower retries with backoff and, once the store answers
again, resubscribes and reconciles with a full reload. A periodic version check
catches announcements lost without the connection dropping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import TYPE_CHECKING, Protocol

from strangler.config import MODES, Mode, RouteConfig
from strangler.control.audit import AuditEntry, AuditLog
from strangler.control.holds import ReplicaHolds
from strangler.control.rollback import RollbackMonitor
from strangler.control.state import OverrideChange, StateSnapshot, StateStore
from strangler.errors import StateStoreError, StranglerError
from strangler.override import Override
from strangler.proxy.hold import WriteHold
from strangler.runtime import MatchRateSource

if TYPE_CHECKING:
    from strangler.routing.router import Router

log = logging.getLogger(__name__)


class RollbackCounter(Protocol):
    """The one metric the control plane feeds (``strangler_rollbacks_total``)."""

    def rollback(self, route: str, reason: str) -> None: ...


class UnknownRoute(StranglerError):
    """The route name is not in routes.yaml (the admin API answers 404)."""


class OwnedRoute(StranglerError):
    """The route's writes follow its context's owner; only a cutover moves them (409)."""


class InvalidOverride(StranglerError):
    """An override that makes no sense; ``field`` names the body field at fault (400)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def validate_override(mode: object, percent: object) -> tuple[Mode, float | None]:
    """Check a requested override; returns it typed or raises InvalidOverride."""
    if mode not in MODES:
        raise InvalidOverride("mode", f"{mode!r} is not one of {', '.join(MODES)}")
    if percent is None:
        if mode == "canary":
            raise InvalidOverride("percent", "is required with mode canary (0-100)")
        return mode, None
    if isinstance(percent, bool) or not isinstance(percent, int | float):
        raise InvalidOverride("percent", f"{percent!r} is not a number")
    if not math.isfinite(percent) or not 0 <= percent <= 100:
        raise InvalidOverride("percent", f"{percent!r} is outside 0-100")
    if mode != "canary":
        raise InvalidOverride("percent", f"only applies to mode canary, not {mode!r}")
    return mode, float(percent)


class ControlPlane:
    """Keeps this process's router in step with the shared overrides."""

    def __init__(
        self,
        router: Router,
        store: StateStore,
        *,
        hold: WriteHold | None = None,
        match_rate: MatchRateSource | None = None,
        metrics: RollbackCounter | None = None,
        audit_entries: int = 200,
        reconcile_every: float = 5.0,
        flush_every: float = 0.5,
    ) -> None:
        self.router = router
        self.hold = hold if hold is not None else WriteHold()
        """This process's write gates (the runtime's), closed while a cutover holds."""
        self.match_rate = match_rate
        """The shadow part's match rates (the cutover's canary guard reads them)."""
        self.store = store
        self.audit = AuditLog(store, audit_entries)
        self.rollback = RollbackMonitor(self, metrics, flush_every=flush_every)
        self.connected = False
        """True while this process follows the store's change channel."""
        self.last_error: str | None = None
        self._reconcile_every = reconcile_every
        self._applied = -1
        self._synced = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.holds = ReplicaHolds(self)

    # ---------------------------------------------------------------- lifecycle

    async def start(self, *, wait: float = 2.0) -> None:
        """Start following the store (``rollback.record`` is one of the runtime's request
        listeners from its construction), and wait (up to ``wait`` s)
        for the first full load, so a restarted proxy serves its overrides from the start.
        If the store is down, the proxy starts on routes.yaml alone and catches up later."""
        self._tasks = [
            asyncio.create_task(self._follow(), name="strangler-control-follow"),
            asyncio.create_task(self.rollback.run(), name="strangler-rollback"),
            asyncio.create_task(self.holds.beat(), name="strangler-beat"),
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._synced.wait()

    async def stop(self) -> None:
        follower, monitor, beat = self._tasks or (None, None, None)
        self.rollback.stop()
        for task in (follower, beat):
            if task is not None:
                task.cancel()
        self.holds.stop()
        for task in self._tasks:
            # The monitor ends its round (bounded by the store's timeouts) and returns.
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(5.0):
                    await task
        if monitor is not None and not monitor.done():
            monitor.cancel()
        self._tasks = []
        await self.store.close()

    # ---------------------------------------------------------------- following

    async def _follow(self) -> None:
        delay = 0.05
        while True:
            try:
                async with self.store.subscribe() as subscription:
                    # Subscribed before reading: nothing can slip between the two.
                    self.apply(await self.store.snapshot(), reconcile=True)
                    if not self.connected:
                        log.info("state store %s: following changes", self.store.url)
                    self.connected, self.last_error, delay = True, None, 0.05
                    self._synced.set()
                    while True:
                        version = await subscription.next(self._reconcile_every)
                        if version is None:
                            version = await self.store.version()
                        if version != self._applied:
                            # A version going backwards means the store lost its data
                            # (flushed, or replaced): follow it rather than wait forever.
                            snapshot = await self.store.snapshot()
                            self.apply(snapshot, reconcile=version < self._applied)
            except StateStoreError as exc:
                if self.connected or self.last_error is None:
                    log.warning("%s; routing continues with the last-known table", exc)
                self.connected, self.last_error = False, str(exc)
            except Exception:  # the follower must outlive any surprise; retry with backoff
                log.exception("control plane follower failed; retrying")
                self.connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def apply(self, snapshot: StateSnapshot, *, reconcile: bool = False) -> bool:
        """Swap in ``snapshot``'s overrides unless this process already has a newer state.

        ``reconcile`` applies it whatever its version (after a reconnect the store may
        have been restarted and its version counter reset)."""
        if not reconcile and snapshot.version <= self._applied:
            return False
        if dict(self.router.overrides) != dict(snapshot.overrides) or dict(
            self.router.ownerships
        ) != dict(snapshot.ownerships):
            try:
                self.router.set_overrides(snapshot.overrides, snapshot.ownerships)
            except StranglerError as exc:
                log.error("overrides at version %s not applied: %s", snapshot.version, exc)
                return False
        self._applied = snapshot.version
        # After the table swap: a released write decides its upstream from the new table.
        self.holds.follow(snapshot.ownerships)
        return True

    @property
    def replica(self) -> str:
        """This process's name among the replicas that acknowledge a hold."""
        return self.holds.replica

    async def refresh(self) -> None:
        """Apply the store's state now (after a write made through this process)."""
        self.apply(await self.store.snapshot())

    # ---------------------------------------------------------------- writes

    def route_config(self, route: str) -> RouteConfig:
        config: RouteConfig | None = self.router.config.route(route)
        if config is None:
            raise UnknownRoute(f"no route named {route!r} in routes.yaml")
        return config

    async def set_override(
        self, route: str, mode: object, percent: object = None, *, who: str
    ) -> OverrideChange:
        """Validate, store (every replica follows), apply here, audit.

        Raises UnknownRoute, InvalidOverride or StateStoreError; on any of them
        nothing has changed."""
        self.route_config(route)
        checked_mode, checked_percent = validate_override(mode, percent)
        owned = self.owned_writes(route)
        if owned is not None:
            raise OwnedRoute(owned)
        override = Override(mode=checked_mode, percent=checked_percent, by=who)
        change = await self._write(route, override)
        # A person's flip starts fresh evidence: failures counted before it (an outage
        # that already rolled the route back, counts a flush re-added after a reset) must
        # not roll back the decision just made.
        await self.rollback.forget(route)
        await self.audit.record(
            AuditEntry.of("override.set", route, who, change.previous, change.current)
        )
        return change

    async def clear_override(self, route: str, *, who: str) -> OverrideChange:
        """Back to routes.yaml. Also clears an override left for a route that routes.yaml
        no longer has (it would otherwise come back if the route were re-added)."""
        if route not in self.router.overrides:
            self.route_config(route)
        change = await self._write(route, None)
        # A cleared rollback must be able to trigger again on fresh evidence only.
        await self.rollback.forget(route)
        if change.previous is not None:
            await self.audit.record(
                AuditEntry.of("override.clear", route, who, change.previous, None)
            )
        return change

    def owned_writes(self, route: str) -> str | None:
        """Why ``route``'s mode cannot be overridden (its writes follow a context's owner),
        or None when it can."""
        compiled = self.router.table.route(route)
        if compiled is None or compiled.source != "ownership":
            return None
        return (
            f"route {route!r} carries the writes of context {compiled.context!r}, owned by "
            f"{compiled.owner}: its upstream follows the owner; move it with "
            f"`strangler cutover {compiled.context} --to "
            f"{'legacy' if compiled.owner == 'service' else 'service'}`"
        )

    async def roll_back(self, route: str, reason: str) -> OverrideChange | None:
        """Flip ``route`` to legacy with source ``auto-rollback`` (called by the monitor
        once it has won the decision). Refused (None, audited with the reason) for a
        route that carries a context's writes: they must stay with the owner's database."""
        refused = self.owned_writes(route)
        if refused is not None:
            log.warning("automatic rollback of %r refused: %s (%s)", route, refused, reason)
            await self.audit.record(
                AuditEntry("auto-rollback.refused", route, "auto-rollback", None, None, refused)
            )
            return None
        override = Override(
            mode="legacy", source="auto-rollback", reason=reason, by="auto-rollback"
        )
        change = await self._write(route, override)
        await self.audit.record(
            AuditEntry.of(
                "auto-rollback", route, "auto-rollback", change.previous, override, reason
            )
        )
        return change

    async def _write(self, route: str, override: Override | None) -> OverrideChange:
        change = await self.store.set_override(route, override)
        if change.version <= self._applied:
            return change  # the follower already applied a state that includes it
        if change.version != self._applied + 1:
            # Other writes happened that this process has not applied yet: take them all.
            with contextlib.suppress(StateStoreError):
                if self.apply(await self.store.snapshot()):
                    return change
        overrides = dict(self.router.overrides)
        if override is None:
            overrides.pop(route, None)
        else:
            overrides[route] = override
        try:
            self.router.set_overrides(overrides)
        except StranglerError as exc:
            log.error("override on %r stored but not applied here: %s", route, exc)
            return change
        if change.version == self._applied + 1:
            self._applied = change.version
        return change
