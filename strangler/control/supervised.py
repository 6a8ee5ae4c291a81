"""``memory://`` state shared by ``--workers N``: the supervisor holds it, workers ask it.

With Redis the workers share Redis. Without it the supervisor process of
:mod:`strangler.process` owns one :class:`~strangler.control.state.MemoryState`
and serves it on a Unix socket in its private folder
(:class:`~strangler.control.supervised_server.StateServer`);
every worker and the admin process use :class:`SupervisedStateStore`, which
speaks the same :class:`~strangler.control.state.StateStore` protocol as the
other stores. So an override written through the admin API, a rollback count,
a context's owner or a hold acknowledgement is one call to the supervisor, and
each new version is pushed to every worker's subscription at once; the workers
then read the snapshot and swap their tables like they do with Redis.

The server is :mod:`strangler.control.supervised_server`, the wire (one JSON
object per line) :mod:`strangler.control.supervised_wire`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from strangler.control.ownership import Ownership
from strangler.control.state import OverrideChange, StateSnapshot, Subscription
from strangler.control.supervised_wire import (
    MAX_LINE,
    dump,
    override_from_json,
    snapshot_from_json,
)
from strangler.errors import StateStoreError
from strangler.override import Override

CALL_TIMEOUT = 5.0
"""Seconds a worker waits for the supervisor's answer before calling the store down."""


class _Connection:
    """One request connection to the supervisor; answers matched to calls by id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.ids = itertools.count(1)
        self.task = asyncio.create_task(self._read(), name="strangler-state-client")

    @property
    def alive(self) -> bool:
        return not self.task.done()

    async def _read(self) -> None:
        error = "the supervisor closed the connection"
        try:
            while True:
                line = await self.reader.readline()
                if not line:
                    break
                message = json.loads(line)
                future = self.pending.pop(message.get("id"), None)
                if future is None or future.done():
                    continue
                if "error" in message:
                    future.set_exception(StateStoreError(f"state: {message['error']}"))
                else:
                    future.set_result(message.get("result"))
        except (OSError, ValueError) as exc:
            error = f"lost the supervisor: {exc}"
        finally:
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(StateStoreError(error))
            self.pending.clear()
            self.writer.close()

    async def call(self, op: str, args: Mapping[str, Any]) -> Any:
        ident = next(self.ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[ident] = future
        try:
            self.writer.write(dump({"id": ident, "op": op, "args": dict(args)}))
            async with asyncio.timeout(CALL_TIMEOUT):
                return await future
        except TimeoutError:
            raise StateStoreError(f"the supervisor did not answer {op!r} in time") from None
        except OSError as exc:
            raise StateStoreError(f"lost the supervisor: {exc}") from exc
        finally:
            self.pending.pop(ident, None)

    async def close(self) -> None:
        self.writer.close()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


class _SupervisedSubscription:
    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    async def next(self, timeout: float) -> int | None:
        try:
            async with asyncio.timeout(timeout):
                line = await self._reader.readline()
        except TimeoutError:
            return None
        except (OSError, ValueError) as exc:
            raise StateStoreError(f"lost the supervisor's change channel: {exc}") from exc
        if not line:
            raise StateStoreError("the supervisor closed the change channel")
        return int(json.loads(line)["version"])


async def _connect(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.open_unix_connection(str(path), limit=MAX_LINE)
    except OSError as exc:
        raise StateStoreError(f"cannot reach the supervisor's state at {path}: {exc}") from exc


class SupervisorLink:
    """Calls to the supervisor on one connection, opened on first use and again
    after it was lost (a call on a lost connection fails with StateStoreError)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: _Connection | None = None
        self._connecting = asyncio.Lock()

    async def call(self, op: str, **args: Any) -> Any:
        async with self._connecting:
            if self._connection is None or not self._connection.alive:
                self._connection = _Connection(*await _connect(self.path))
            connection = self._connection
        return await connection.call(op, args)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None


class SupervisedStateStore:
    """A worker's view of the supervisor's ``memory://`` state (the StateStore protocol)."""

    url = "memory://"
    shared = False
    """Shared by this ``strangler serve``'s workers only: a ``strangler sync`` in
    another process cannot see it (a cutover that moves data says so)."""
    followed_at: float | None = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self._link = SupervisorLink(path)
        self._call = self._link.call

    async def close(self) -> None:
        await self._link.close()

    async def snapshot(self) -> StateSnapshot:
        return snapshot_from_json(await self._call("snapshot"))

    async def version(self) -> int:
        return int(await self._call("version"))

    async def set_override(self, route: str, override: Override | None) -> OverrideChange:
        data = None if override is None else override.to_dict()
        answer = await self._call("set_override", route=route, override=data)
        return OverrideChange(
            int(answer["version"]), override_from_json(answer["previous"]), override
        )

    async def ownerships(self) -> dict[str, Ownership]:
        answer = await self._call("ownerships")
        return {k: Ownership.from_dict(v) for k, v in answer.items()}

    async def set_ownership(self, ownership: Ownership, *, expect: Ownership | None = None) -> bool:
        expected = None if expect is None else expect.to_dict()
        return bool(
            await self._call("set_ownership", ownership=ownership.to_dict(), expect=expected)
        )

    async def beat(self, replica: str, ttl: float) -> None:
        await self._call("beat", replica=replica, ttl=ttl)

    async def replicas(self) -> set[str]:
        return set(await self._call("replicas"))

    @asynccontextmanager
    async def _subscription(self) -> AsyncIterator[Subscription]:
        reader, writer = await _connect(self.path)
        try:
            try:
                writer.write(dump({"id": 0, "op": "subscribe"}))
                await reader.readline()  # the answer: subscribed from here on
            except OSError as exc:
                raise StateStoreError(f"cannot subscribe to the supervisor: {exc}") from exc
            yield _SupervisedSubscription(reader)
        finally:
            writer.close()

    def subscribe(self) -> AbstractAsyncContextManager[Subscription]:
        return self._subscription()

    async def add(self, key: str, counts: Mapping[str, int], ttl: float) -> None:
        await self._call("add", key=key, counts=dict(counts), ttl=ttl)

    async def totals(self, keys: Sequence[str]) -> dict[str, int]:
        return dict(await self._call("totals", keys=list(keys)))

    async def delete(self, keys: Sequence[str]) -> None:
        await self._call("delete", keys=list(keys))

    async def push(self, key: str, value: str, keep: int) -> None:
        await self._call("push", key=key, value=value, keep=keep)

    async def latest(self, key: str, limit: int) -> list[str]:
        return list(await self._call("latest", key=key, limit=limit))

    async def acquire(self, key: str, ttl: float) -> bool:
        return bool(await self._call("acquire", key=key, ttl=ttl))

    async def release(self, key: str) -> None:
        await self._call("release", key=key)
