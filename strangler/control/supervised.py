"""``memory://`` state shared by ``--workers N``: the supervisor holds it, workers ask it.

With Redis the workers share Redis. Without it the supervisor process of
:mod:`strangler.process` owns one :class:`~strangler.control.state.MemoryState`
and serves it on a Unix socket in its private folder (:class:`StateServer`);
every worker and the admin process use :class:`SupervisedStateStore`, which
speaks the same :class:`~strangler.control.state.StateStore` protocol as the
other stores. So an override written through the admin API, a rollback count,
a context's owner or a hold acknowledgement is one call to the supervisor, and
each new version is pushed to every worker's subscription at once; the workers
then read the snapshot and swap their tables like they do with Redis.

The wire is one JSON object per line: ``{"id", "op", "args"}`` asks,
``{"id", "result"}`` or ``{"id", "error"}`` answers, and a connection that sent
``subscribe`` then receives ``{"version": N}`` for every change.

The server is synchronous on purpose: the supervisor runs no event loop and no
thread (it forks workers), so it polls the socket between signal checks. The
state lives as long as the supervisor does: a worker that dies and is replaced
finds it intact; stopping ``strangler serve`` forgets it, as ``memory://`` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import selectors
import socket
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strangler.control.ownership import Ownership
from strangler.control.state import MemoryState, OverrideChange, StateSnapshot, Subscription
from strangler.errors import StateStoreError
from strangler.override import Override

log = logging.getLogger(__name__)

CALL_TIMEOUT = 5.0
"""Seconds a worker waits for the supervisor's answer before calling the store down."""
MAX_LINE = 64 * 1024 * 1024
"""Longest message either side accepts (a snapshot of very many overrides)."""
MAX_BACKLOG = 64 * 1024 * 1024
"""Bytes the server queues for a peer that does not read before it drops the peer."""


def _snapshot_json(snapshot: StateSnapshot) -> dict[str, Any]:
    return {
        "version": snapshot.version,
        "overrides": {k: v.to_dict() for k, v in snapshot.overrides.items()},
        "ownerships": {k: v.to_dict() for k, v in snapshot.ownerships.items()},
    }


def _snapshot(data: dict[str, Any]) -> StateSnapshot:
    return StateSnapshot(
        int(data["version"]),
        {k: Override.from_dict(v) for k, v in data["overrides"].items()},
        {k: Ownership.from_dict(v) for k, v in data["ownerships"].items()},
    )


def _override(data: dict[str, Any] | None) -> Override | None:
    return None if data is None else Override.from_dict(data)


def _dump(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


# ------------------------------------------------------------------ server


@dataclass(eq=False)
class _Peer:
    sock: socket.socket
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytearray = field(default_factory=bytearray)
    subscribed: bool = False


class StateServer:
    """The supervisor's side: the state, and a Unix socket serving it (never blocks)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state = MemoryState()
        self.state.listeners.append(self._announce)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(128)
        self._listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._peers: set[_Peer] = set()
        self._ops: dict[str, Callable[[dict[str, Any]], Any]] = {
            "snapshot": lambda a: _snapshot_json(self.state.snapshot()),
            "version": lambda a: self.state.version,
            "set_override": self._set_override,
            "ownerships": lambda a: {k: v.to_dict() for k, v in self.state.ownerships.items()},
            "set_ownership": lambda a: self.state.set_ownership(
                Ownership.from_dict(a["ownership"]),
                expect=None if a["expect"] is None else Ownership.from_dict(a["expect"]),
            ),
            "beat": lambda a: self.state.beat(a["replica"], a["ttl"]),
            "replicas": lambda a: sorted(self.state.replicas()),
            "add": lambda a: self.state.add(a["key"], a["counts"], a["ttl"]),
            "totals": lambda a: self.state.totals(a["keys"]),
            "delete": lambda a: self.state.delete(a["keys"]),
            "push": lambda a: self.state.push(a["key"], a["value"], a["keep"]),
            "latest": lambda a: self.state.latest(a["key"], a["limit"]),
            "acquire": lambda a: self.state.acquire(a["key"], a["ttl"]),
            "release": lambda a: self.state.release(a["key"]),
        }

    def _set_override(self, args: dict[str, Any]) -> dict[str, Any]:
        change = self.state.set_override(args["route"], _override(args["override"]))
        return {
            "version": change.version,
            "previous": change.previous.to_dict() if change.previous else None,
        }

    def poll(self, timeout: float) -> None:
        """Serve whatever is ready, waiting up to ``timeout`` s for something to be."""
        for key, events in self._selector.select(timeout):
            peer = key.data
            if peer is None:
                self._accept()
                continue
            if events & selectors.EVENT_READ:
                self._read(peer)
            if events & selectors.EVENT_WRITE and peer in self._peers:
                self._send(peer)

    def close(self) -> None:
        for peer in list(self._peers):
            self._drop(peer)
        self._selector.close()
        self._listener.close()
        with contextlib.suppress(OSError):
            self.path.unlink()

    def forget(self) -> None:
        """In a freshly forked child: close the inherited sockets, leave the state alone."""
        for peer in self._peers:
            peer.sock.close()
        self._listener.close()
        self._selector.close()

    def _accept(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            sock, _ = self._listener.accept()
            sock.setblocking(False)
            peer = _Peer(sock)
            self._peers.add(peer)
            self._selector.register(sock, selectors.EVENT_READ, peer)

    def _drop(self, peer: _Peer) -> None:
        self._peers.discard(peer)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(peer.sock)
        peer.sock.close()

    def _read(self, peer: _Peer) -> None:
        try:
            data = peer.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(peer)
            return
        peer.inbox += data
        while (end := peer.inbox.find(b"\n")) >= 0:
            line = bytes(peer.inbox[:end])
            del peer.inbox[: end + 1]
            self._queue(peer, self._answer(peer, line))
        if len(peer.inbox) > MAX_LINE:
            log.warning("dropping a state client that sent an over-long message")
            self._drop(peer)

    def _answer(self, peer: _Peer, line: bytes) -> dict[str, Any]:
        ident: Any = None
        try:
            message = json.loads(line)
            ident, op, args = message["id"], message["op"], message.get("args") or {}
            if op == "subscribe":
                peer.subscribed = True
                return {"id": ident, "result": self.state.version}
            return {"id": ident, "result": self._ops[op](args)}
        except Exception as exc:  # a bad request is answered, never fatal to the supervisor
            return {"id": ident, "error": f"{type(exc).__name__}: {exc}"}

    def _announce(self, version: int) -> None:
        for peer in list(self._peers):
            if peer.subscribed:
                self._queue(peer, {"version": version})

    def _queue(self, peer: _Peer, message: Mapping[str, Any]) -> None:
        if peer not in self._peers:
            return
        peer.outbox += _dump(message)
        if len(peer.outbox) > MAX_BACKLOG:
            log.warning("dropping a state client that stopped reading")
            self._drop(peer)
            return
        self._send(peer)

    def _send(self, peer: _Peer) -> None:
        try:
            sent = peer.sock.send(peer.outbox)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._drop(peer)
            return
        del peer.outbox[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if peer.outbox else 0)
        self._selector.modify(peer.sock, events, peer)


# ------------------------------------------------------------------ client


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
            self.writer.write(_dump({"id": ident, "op": op, "args": dict(args)}))
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


class SupervisedStateStore:
    """A worker's view of the supervisor's ``memory://`` state (the StateStore protocol)."""

    url = "memory://"
    shared = False
    """Shared by this ``strangler serve``'s workers only: a ``strangler sync`` in
    another process cannot see it (a cutover that moves data says so)."""
    followed_at: float | None = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: _Connection | None = None
        self._connecting = asyncio.Lock()

    async def _call(self, op: str, **args: Any) -> Any:
        async with self._connecting:
            if self._connection is None or not self._connection.alive:
                self._connection = _Connection(*await _connect(self.path))
            connection = self._connection
        return await connection.call(op, args)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def snapshot(self) -> StateSnapshot:
        return _snapshot(await self._call("snapshot"))

    async def version(self) -> int:
        return int(await self._call("version"))

    async def set_override(self, route: str, override: Override | None) -> OverrideChange:
        data = None if override is None else override.to_dict()
        answer = await self._call("set_override", route=route, override=data)
        return OverrideChange(int(answer["version"]), _override(answer["previous"]), override)

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
                writer.write(_dump({"id": 0, "op": "subscribe"}))
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
