"""The Redis state store: overrides, versions, change channel and counters shared by replicas.

Layout under ``strangler:<namespace>:``: ``overrides`` (hash route -> JSON
override), ``version`` (counter), ``changes`` (pub/sub channel carrying each new
version), ``audit`` (capped list), and the generic keys the control plane asks
for (rollback counters, locks). An override write is one Lua script, so no
replica can see a write without its version. Every Redis error becomes
StateStoreError here; the store is never used on the request path.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import redis.asyncio as redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import RedisError

from strangler.control.ownership import Ownership, dump_ownership, load_ownership
from strangler.control.state import (
    OverrideChange,
    StateSnapshot,
    Subscription,
    dump_override,
    load_override,
    stored_form,
)
from strangler.errors import StateStoreError
from strangler.override import Override

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

# Compare and set one context's ownership (ARGV[2] is the expected stored value, '*' for
# any), then bump the version and announce it — atomic like an override write.
_SET_OWNERSHIP = """
if ARGV[2] ~= '*' then
  local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
  if current ~= ARGV[2] then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
local version = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', KEYS[3], version)
return 1
"""


def _public_url(url: str) -> str:
    """The URL without its password, for messages and /api/routes."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return url
    user = userinfo.partition(":")[0]
    return f"{scheme}{sep}{user + ':***@' if user else '***@'}{host}"


async def _close(pubsub: PubSub) -> None:
    """Close a pub/sub connection: the one typed place for ``PubSub.aclose``.

    redis-py annotates ``aclose`` only from 8.2 on; through a typed callable the
    call checks the same under every version ``pyproject.toml`` admits, with no
    version-dependent ``type: ignore``.
    """
    aclose: Callable[[], Awaitable[None]] = pubsub.aclose
    await aclose()


def _ownerships(raw: Mapping[Any, Any]) -> dict[str, Ownership]:
    out = {}
    for context, text in raw.items():
        try:
            out[str(context)] = load_ownership(str(text))
        except (ValueError, TypeError):
            continue  # unreadable: treated as never stored (legacy owns it)
    return out


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
    followed_at: float | None = None  # shared: workers in other processes read it

    def __init__(self, url: str, namespace: str = "default", *, timeout: float = 1.0) -> None:
        self.url = _public_url(url)
        self.namespace = namespace
        self._prefix = f"strangler:{namespace}:"
        self._overrides_key = self._prefix + "overrides"
        self._version_key = self._prefix + "version"
        self._channel = self._prefix + "changes"
        self._ownership_key = self._prefix + "ownership"
        self._replicas_key = self._prefix + "replicas"
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
        self._ownership_script = self._client.register_script(_SET_OWNERSHIP)

    def key(self, name: str) -> str:
        return self._prefix + name

    def _error(self, doing: str, exc: BaseException) -> StateStoreError:
        return StateStoreError(f"state store {self.url} is unreachable ({doing}): {exc}")

    async def close(self) -> None:
        for client in (self._client, self._sub_client):
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    async def snapshot(self) -> StateSnapshot:
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.get(self._version_key)
                pipe.hgetall(self._overrides_key)
                pipe.hgetall(self._ownership_key)
                version, raw, owned = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._error("reading overrides", exc) from exc
        overrides = {}
        for route, text in raw.items():
            try:
                overrides[route] = load_override(text)
            except (ValueError, TypeError):
                continue  # a value we cannot read is not an override; never crash routing
        return StateSnapshot(int(version or 0), overrides, _ownerships(owned))

    async def ownerships(self) -> dict[str, Ownership]:
        try:
            owned = await self._client.hgetall(self._ownership_key)
        except (RedisError, OSError) as exc:
            raise self._error("reading ownership", exc) from exc
        return _ownerships(owned)

    async def set_ownership(self, ownership: Ownership, *, expect: Ownership | None = None) -> bool:
        expected = "*" if expect is None else stored_form(expect)
        try:
            written = await self._ownership_script(
                keys=[self._ownership_key, self._version_key, self._channel],
                args=[ownership.context, expected, dump_ownership(ownership)],
            )
        except (RedisError, OSError) as exc:
            raise self._error("writing ownership", exc) from exc
        return bool(written)

    async def beat(self, replica: str, ttl: float) -> None:
        now = time.time()
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.zadd(self._replicas_key, {replica: now + ttl})
                pipe.zremrangebyscore(self._replicas_key, "-inf", now)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._error("announcing this replica", exc) from exc

    async def replicas(self) -> set[str]:
        try:
            alive = await self._client.zrangebyscore(self._replicas_key, time.time(), "+inf")
        except (RedisError, OSError) as exc:
            raise self._error("listing replicas", exc) from exc
        return {str(name) for name in alive}

    async def version(self) -> int:
        try:
            value = await self._client.get(self._version_key)
        except (RedisError, OSError) as exc:
            raise self._error("reading the version", exc) from exc
        return int(value or 0)

    async def set_override(self, route: str, override: Override | None) -> OverrideChange:
        payload = "" if override is None else dump_override(override)
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
                before = load_override(previous)
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
                await _close(pubsub)

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
