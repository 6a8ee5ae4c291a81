"""The state store: what every replica must agree on, behind one small protocol.

Two implementations, chosen by ``state:`` in routes.yaml (:func:`open_store`):

* ``memory://`` — one process (the embedded default, ``strangler demo``);
* ``redis://host:port/db`` — shared by every replica and worker (``redis.asyncio``).

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
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import RedisError

from strangler.config import StateConfig
from strangler.errors import StateStoreError
from strangler.override import Override

AUDIT_KEY = "audit"


@dataclass(frozen=True)
class StateSnapshot:
    """Every override at one version of the state."""

    version: int
    overrides: Mapping[str, Override]


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

    async def close(self) -> None: ...

    async def snapshot(self) -> StateSnapshot: ...

    async def version(self) -> int: ...

    async def set_override(self, route: str, override: Override | None) -> OverrideChange:
        """Set (or with None, clear) one override, bump the version and announce it; atomic."""
        ...

    def subscribe(self) -> AbstractAsyncContextManager[Subscription]:
        """Listen for announced versions. Subscribe *before* reading a snapshot."""
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


def open_store(config: StateConfig) -> StateStore:
    """The store ``state:`` names. Does not connect yet (Redis connects on first use)."""
    if config.url == "memory://":
        return MemoryStateStore()
    return RedisStateStore(config.url, config.namespace)


def _dump(override: Override) -> str:
    return json.dumps(override.to_dict(), separators=(",", ":"))


def _load(text: str) -> Override:
    data: dict[str, Any] = json.loads(text)
    return Override.from_dict(data)


# ---------------------------------------------------------------------- memory


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
        self._version = 0
        self._overrides: dict[str, Override] = {}
        self._hashes: dict[str, tuple[float, dict[str, int]]] = {}
        self._lists: dict[str, list[str]] = {}
        self._locks: dict[str, float] = {}
        self._subscribers: set[_MemorySubscription] = set()

    async def close(self) -> None:
        self._subscribers.clear()

    async def snapshot(self) -> StateSnapshot:
        return StateSnapshot(self._version, dict(self._overrides))

    async def version(self) -> int:
        return self._version

    async def set_override(self, route: str, override: Override | None) -> OverrideChange:
        previous = self._overrides.get(route)
        if override is None:
            self._overrides.pop(route, None)
        else:
            self._overrides[route] = override
        self._version += 1
        for subscriber in self._subscribers:
            subscriber.queue.put_nowait(self._version)
        return OverrideChange(self._version, previous, override)

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

    def _live_hash(self, key: str) -> dict[str, int] | None:
        entry = self._hashes.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._hashes[key]
            return None
        return entry[1]

    async def add(self, key: str, counts: Mapping[str, int], ttl: float) -> None:
        fields = self._live_hash(key) or {}
        for name, delta in counts.items():
            fields[name] = fields.get(name, 0) + delta
        self._hashes[key] = (time.monotonic() + ttl, fields)

    async def totals(self, keys: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for key in keys:
            for name, value in (self._live_hash(key) or {}).items():
                out[name] = out.get(name, 0) + value
        return out

    async def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._hashes.pop(key, None)
            self._lists.pop(key, None)

    async def push(self, key: str, value: str, keep: int) -> None:
        items = self._lists.setdefault(key, [])
        items.insert(0, value)
        del items[keep:]

    async def latest(self, key: str, limit: int) -> list[str]:
        return list(self._lists.get(key, ())[:limit])

    async def acquire(self, key: str, ttl: float) -> bool:
        now = time.monotonic()
        if self._locks.get(key, 0.0) > now:
            return False
        self._locks[key] = now + ttl
        return True

    async def release(self, key: str) -> None:
        self._locks.pop(key, None)


# ----------------------------------------------------------------------- redis

# One round trip, atomic: read the previous value, write (or delete), bump the
# version and announce it — so no replica can see a write without its version.
_SET_OVERRIDE = """
local previous = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
local version = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', KEYS[3], version)
return {previous, version}
"""


def _public_url(url: str) -> str:
    """The URL without its password, for messages and /api/routes."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return url
    user = userinfo.partition(":")[0]
    return f"{scheme}{sep}{user + ':***@' if user else '***@'}{host}"


class _RedisSubscription:
    def __init__(self, pubsub: Any, url: str) -> None:
        self._pubsub = pubsub
        self._url = url

    async def next(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=remaining
                )
            except (RedisError, OSError) as exc:
                raise StateStoreError(f"lost the change channel on {self._url}: {exc}") from exc
            if message is not None and message.get("type") == "message":
                try:
                    return int(message["data"])
                except (TypeError, ValueError):
                    continue


class RedisStateStore:
    """State in Redis, shared by every replica and worker using the same namespace."""

    shared = True

    def __init__(self, url: str, namespace: str = "default", *, timeout: float = 1.0) -> None:
        self.url = _public_url(url)
        self.namespace = namespace
        self._prefix = f"strangler:{namespace}:"
        self._overrides_key = self._prefix + "overrides"
        self._version_key = self._prefix + "version"
        self._channel = self._prefix + "changes"
        # Short timeouts and one quick retry: a write while Redis is away must
        # fail fast with 503, not hang the operator's request.
        self._client: redis.Redis = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
        )
        # The subscriber must notice a lost connection (and then reload the full
        # state), so its client never reconnects and resubscribes behind our back.
        self._sub_client: redis.Redis = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._script = self._client.register_script(_SET_OVERRIDE)

    def key(self, name: str) -> str:
        return self._prefix + name

    def _error(self, doing: str, exc: BaseException) -> StateStoreError:
        return StateStoreError(f"state store {self.url} is unreachable ({doing}): {exc}")

    async def close(self) -> None:
        await self._client.aclose()
        await self._sub_client.aclose()

    async def snapshot(self) -> StateSnapshot:
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.get(self._version_key)
                pipe.hgetall(self._overrides_key)
                version, raw = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._error("reading overrides", exc) from exc
        overrides = {}
        for route, text in raw.items():
            try:
                overrides[route] = _load(text)
            except (ValueError, TypeError):
                continue  # a value we cannot read is not an override; never crash routing
        return StateSnapshot(int(version or 0), overrides)

    async def version(self) -> int:
        try:
            value = await self._client.get(self._version_key)
        except (RedisError, OSError) as exc:
            raise self._error("reading the version", exc) from exc
        return int(value or 0)

    async def set_override(self, route: str, override: Override | None) -> OverrideChange:
        payload = "" if override is None else _dump(override)
        try:
            previous, version = await self._script(
                keys=[self._overrides_key, self._version_key, self._channel],
                args=[route, payload],
            )
        except (RedisError, OSError) as exc:
            raise self._error("writing the override", exc) from exc
        before = None
        if previous:
            try:
                before = _load(previous)
            except (ValueError, TypeError):
                before = None
        return OverrideChange(int(version), before, override)

    @asynccontextmanager
    async def _subscription(self) -> AsyncIterator[Subscription]:
        pubsub = self._sub_client.pubsub()
        try:
            try:
                await pubsub.subscribe(self._channel)
            except (RedisError, OSError) as exc:
                raise self._error("subscribing to changes", exc) from exc
            yield _RedisSubscription(pubsub, self.url)
        finally:
            # The connection may already be gone; there is nothing left to release then.
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def subscribe(self) -> AbstractAsyncContextManager[Subscription]:
        return self._subscription()

    async def add(self, key: str, counts: Mapping[str, int], ttl: float) -> None:
        full = self.key(key)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for name, delta in counts.items():
                    pipe.hincrby(full, name, delta)
                pipe.pexpire(full, max(1, int(ttl * 1000)))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._error("adding counts", exc) from exc

    async def totals(self, keys: Sequence[str]) -> dict[str, int]:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(self.key(key))
                hashes = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._error("reading counts", exc) from exc
        out: dict[str, int] = {}
        for fields in hashes:
            for name, value in fields.items():
                out[name] = out.get(name, 0) + int(value)
        return out

    async def delete(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        try:
            await self._client.delete(*(self.key(k) for k in keys))
        except (RedisError, OSError) as exc:
            raise self._error("deleting keys", exc) from exc

    async def push(self, key: str, value: str, keep: int) -> None:
        full = self.key(key)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.lpush(full, value)
                pipe.ltrim(full, 0, keep - 1)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._error("appending to a list", exc) from exc

    async def latest(self, key: str, limit: int) -> list[str]:
        try:
            items = await self._client.lrange(self.key(key), 0, limit - 1)
        except (RedisError, OSError) as exc:
            raise self._error("reading a list", exc) from exc
        return [str(item) for item in items]

    async def acquire(self, key: str, ttl: float) -> bool:
        try:
            taken = await self._client.set(self.key(key), "1", nx=True, px=max(1, int(ttl * 1000)))
        except (RedisError, OSError) as exc:
            raise self._error("taking a lock", exc) from exc
        return bool(taken)

    async def release(self, key: str) -> None:
        await self.delete([key])
