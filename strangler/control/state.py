"""The state store: what every replica must agree on, behind one small protocol.

Two implementations, chosen by ``state:`` in routes.yaml
(:func:`strangler.control.stores.open_store`):

* ``memory://`` — one process (the embedded default, ``strangler demo``), here;
* ``redis://host:port/db`` — shared by every replica and worker
  (:mod:`strangler.control.redis_store`).

It holds the per-route overrides (a Redis hash), a version counter bumped by
every change, a change channel (pub/sub) announcing new versions, the audit log
(a capped list) and a few generic primitives the control plane builds on:
windowed counters (``add`` / ``totals``), capped lists (``push`` / ``latest``)
and a lock with expiry (``acquire`` / ``release``: SET NX PX). Keys are
namespaced ``strangler:<namespace>:...`` so two proxies can share a Redis.

Every Redis failure surfaces as :class:`~strangler.errors.StateStoreError`.
Nothing here may ever be called on the request path: the data plane only sees
the route table the control plane built from this state.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from strangler.control.ownership import Ownership, dump_ownership, unowned
from strangler.override import Override

AUDIT_KEY = "audit"


@dataclass(frozen=True)
class StateSnapshot:
    """Every override at one version of the state."""

    version: int
    overrides: Mapping[str, Override]
    ownerships: Mapping[str, Ownership] = field(default_factory=dict)
    """Stored ownerships by context (a context absent here is owned by legacy, epoch 0)."""


@dataclass(frozen=True)
class OverrideChange:
    """What a write did: the new version and the override before and after it."""

    version: int
    previous: Override | None
    current: Override | None


class Subscription(Protocol):
    async def next(self, timeout: float) -> int | None:
        """The next announced version, or None after ``timeout`` seconds of quiet.

        Raises StateStoreError when the connection is lost (resubscribe, then reload)."""
        ...


class StateStore(Protocol):
    url: str
    """Where the state lives, for people (``memory://`` or the Redis URL without password)."""
    shared: bool
    """True when other processes see the same state (Redis)."""
    followed_at: float | None
    """Unshared stores: when a sync worker in this process last read ownership."""

    async def close(self) -> None: ...

    async def snapshot(self) -> StateSnapshot: ...

    async def version(self) -> int: ...

    async def set_override(self, route: str, override: Override | None) -> OverrideChange:
        """Set (or with None, clear) one override, bump the version and announce it; atomic."""
        ...

    def subscribe(self) -> AbstractAsyncContextManager[Subscription]:
        """Listen for announced versions. Subscribe *before* reading a snapshot."""
        ...

    async def ownerships(self) -> dict[str, Ownership]:
        """Every stored ownership by context (absent: legacy, epoch 0). For the sync
        worker; the proxy reads ``snapshot().ownerships``."""
        ...

    async def set_ownership(self, ownership: Ownership, *, expect: Ownership | None = None) -> bool:
        """Store ``ownership``, bump the version and announce it; atomic.

        With ``expect``, only if the stored value is still exactly ``expect`` (compare
        and set: a cutover and a watchdog can never both win); returns whether it wrote."""
        ...

    async def beat(self, replica: str, ttl: float) -> None:
        """Say that ``replica`` (a proxy process) is alive for the next ``ttl`` s."""
        ...

    async def replicas(self) -> set[str]:
        """The replicas alive now (the ones a cutover waits for)."""
        ...

    async def add(self, key: str, counts: Mapping[str, int], ttl: float) -> None:
        """Add ``counts`` to the hash ``key`` (HINCRBY); the hash expires ``ttl`` s later."""
        ...

    async def totals(self, keys: Sequence[str]) -> dict[str, int]:
        """Field-wise sum of the hashes ``keys`` (missing ones count as empty)."""
        ...

    async def delete(self, keys: Sequence[str]) -> None: ...

    async def push(self, key: str, value: str, keep: int) -> None:
        """Prepend to the list ``key``, keeping only the newest ``keep`` items."""
        ...

    async def latest(self, key: str, limit: int) -> list[str]:
        """The newest ``limit`` items of the list ``key``, newest first."""
        ...

    async def acquire(self, key: str, ttl: float) -> bool:
        """Take the lock ``key`` for ``ttl`` s if nobody holds it (SET NX PX)."""
        ...

    async def release(self, key: str) -> None: ...


def stored_form(ownership: Ownership | None) -> str:
    """What the store holds for ``ownership``: empty for a never-stored context."""
    if ownership is None or ownership == unowned(ownership.context):
        return ""
    return dump_ownership(ownership)


def dump_override(override: Override) -> str:
    return json.dumps(override.to_dict(), separators=(",", ":"))


def load_override(text: str) -> Override:
    data: dict[str, Any] = json.loads(text)
    return Override.from_dict(data)


# ---------------------------------------------------------------------- memory


class MemoryState:
    """The state itself, held in one process; synchronous, so the ``--workers``
    supervisor (which runs no event loop) can own it too
    (:mod:`strangler.control.supervised`). ``listeners`` hear every new version."""

    def __init__(self) -> None:
        self.version = 0
        self.overrides: dict[str, Override] = {}
        self.ownerships: dict[str, Ownership] = {}
        self.listeners: list[Callable[[int], None]] = []
        self._replicas: dict[str, float] = {}
        self._hashes: dict[str, tuple[float, dict[str, int]]] = {}
        self._lists: dict[str, list[str]] = {}
        self._locks: dict[str, float] = {}

    def snapshot(self) -> StateSnapshot:
        return StateSnapshot(self.version, dict(self.overrides), dict(self.ownerships))

    def set_override(self, route: str, override: Override | None) -> OverrideChange:
        previous = self.overrides.get(route)
        if override is None:
            self.overrides.pop(route, None)
        else:
            self.overrides[route] = override
        self._announce()
        return OverrideChange(self.version, previous, override)

    def _announce(self) -> None:
        self.version += 1
        for listener in self.listeners:
            listener(self.version)

    def set_ownership(self, ownership: Ownership, *, expect: Ownership | None = None) -> bool:
        if expect is not None and stored_form(self.ownerships.get(expect.context)) != stored_form(
            expect
        ):
            return False
        self.ownerships[ownership.context] = ownership
        self._announce()
        return True

    def beat(self, replica: str, ttl: float) -> None:
        self._replicas[replica] = time.time() + ttl

    def replicas(self) -> set[str]:
        now = time.time()
        return {name for name, until in self._replicas.items() if until > now}

    def _live_hash(self, key: str) -> dict[str, int] | None:
        entry = self._hashes.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._hashes[key]
            return None
        return entry[1]

    def add(self, key: str, counts: Mapping[str, int], ttl: float) -> None:
        fields = self._live_hash(key) or {}
        for name, delta in counts.items():
            fields[name] = fields.get(name, 0) + delta
        self._hashes[key] = (time.monotonic() + ttl, fields)

    def totals(self, keys: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for key in keys:
            for name, value in (self._live_hash(key) or {}).items():
                out[name] = out.get(name, 0) + value
        return out

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._hashes.pop(key, None)
            self._lists.pop(key, None)

    def push(self, key: str, value: str, keep: int) -> None:
        items = self._lists.setdefault(key, [])
        items.insert(0, value)
        del items[keep:]

    def latest(self, key: str, limit: int) -> list[str]:
        return list(self._lists.get(key, ())[:limit])

    def acquire(self, key: str, ttl: float) -> bool:
        now = time.monotonic()
        if self._locks.get(key, 0.0) > now:
            return False
        self._locks[key] = now + ttl
        return True

    def release(self, key: str) -> None:
        self._locks.pop(key, None)


class _MemorySubscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[int] = asyncio.Queue()

    async def next(self, timeout: float) -> int | None:
        try:
            async with asyncio.timeout(timeout):
                return await self.queue.get()
        except TimeoutError:
            return None


class MemoryStateStore:
    """State held in this process only: for one proxy process and the demo."""

    url = "memory://"
    shared = False

    def __init__(self) -> None:
        self.state = MemoryState()
        self.state.listeners.append(self._announce)
        self.followed_at: float | None = None
        """When a sync worker in this process last read ownership (``ownerships()``)."""
        self._subscribers: set[_MemorySubscription] = set()

    def _announce(self, version: int) -> None:
        for subscriber in self._subscribers:
            subscriber.queue.put_nowait(version)

    async def close(self) -> None:
        self._subscribers.clear()

    async def snapshot(self) -> StateSnapshot:
        return self.state.snapshot()

    async def version(self) -> int:
        return self.state.version

    async def set_override(self, route: str, override: Override | None) -> OverrideChange:
        return self.state.set_override(route, override)

    async def ownerships(self) -> dict[str, Ownership]:
        # Only a sync worker reads ownership this way (the proxy reads snapshots): it
        # shows a cutover that a worker in this process follows this very store.
        self.followed_at = time.monotonic()
        return dict(self.state.ownerships)

    async def set_ownership(self, ownership: Ownership, *, expect: Ownership | None = None) -> bool:
        return self.state.set_ownership(ownership, expect=expect)

    async def beat(self, replica: str, ttl: float) -> None:
        self.state.beat(replica, ttl)

    async def replicas(self) -> set[str]:
        return self.state.replicas()

    @asynccontextmanager
    async def _subscription(self) -> AsyncIterator[Subscription]:
        subscription = _MemorySubscription()
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    def subscribe(self) -> AbstractAsyncContextManager[Subscription]:
        return self._subscription()

    async def add(self, key: str, counts: Mapping[str, int], ttl: float) -> None:
        self.state.add(key, counts, ttl)

    async def totals(self, keys: Sequence[str]) -> dict[str, int]:
        return self.state.totals(keys)

    async def delete(self, keys: Sequence[str]) -> None:
        self.state.delete(keys)

    async def push(self, key: str, value: str, keep: int) -> None:
        self.state.push(key, value, keep)

    async def latest(self, key: str, limit: int) -> list[str]:
        return self.state.latest(key, limit)

    async def acquire(self, key: str, ttl: float) -> bool:
        return self.state.acquire(key, ttl)

    async def release(self, key: str) -> None:
        self.state.release(key)
