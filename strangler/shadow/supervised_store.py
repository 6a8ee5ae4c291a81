"""``memory://`` shadow results shared by ``--workers N``: the supervisor keeps them.

With Redis every replica adds its batches into one view
(:class:`~strangler.shadow.redis_store.RedisShadowStore`). Without it the
supervisor of :mod:`strangler.process` holds one
:class:`~strangler.shadow.store.MemoryShadowStore` next to the state and serves
it on the same Unix socket (:class:`~strangler.control.supervised_server.StateServer`,
given :func:`shadow_ops`);
every worker and the admin process use :class:`SupervisedShadowStore`, which
speaks the same :class:`~strangler.shadow.store.ShadowStore` protocol. So each
worker's recorder merges its batches there, and ``/api/shadow``, the dashboard
and the match rates read what every worker compared. (Automatic rollback counts
comparisons through the state's counters, :mod:`strangler.control.rollback`.)

Batches and reads cross the socket as JSON (``Batch.to_dict``,
``RouteShadow.to_dict``); the server's side is :func:`shadow_ops`. Every process
reads each shadowed route once a second for its match rates (a read without
samples): those are answered from one encoding for :data:`RATES_FRESH` seconds,
so the supervisor's cost does not grow with the number of workers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from strangler.control.supervised import SupervisorLink
from strangler.control.supervised_server import Operation
from strangler.control.supervised_wire import Encoded, encode
from strangler.shadow.results import Batch
from strangler.shadow.store import WINDOWS, MemoryShadowStore, RouteShadow, Window

RATES_FRESH = 0.5
"""Seconds a read without samples is answered from the same encoding (it may be
that old, on top of the recorders' flush interval)."""


class SupervisedShadowStore:
    """A worker's view of the supervisor's shadow results (the ShadowStore protocol).

    Its own connection to the supervisor, apart from the state's: a large batch or
    report never waits behind, or holds up, an override or a rollback count."""

    def __init__(self, path: Path) -> None:
        self._link = SupervisorLink(path)

    async def merge(self, route: str, batch: Batch) -> None:
        await self._link.call("shadow_merge", route=route, batch=batch.to_dict())

    async def noise(self, route: str) -> frozenset[str]:
        return frozenset(await self._link.call("shadow_noise", route=route))

    async def read(self, route: str, samples: int = 20, window: Window = "all") -> RouteShadow:
        data = await self._link.call("shadow_read", route=route, samples=samples, window=window)
        return RouteShadow.from_dict(data)

    async def routes(self) -> list[str]:
        return list(await self._link.call("shadow_routes"))

    async def reset(self, route: str) -> None:
        await self._link.call("shadow_reset", route=route)

    async def close(self) -> None:
        await self._link.close()


def _window(value: Any) -> Window:
    for window in WINDOWS:
        if value == window:
            return window
    raise ValueError(f"window must be one of {', '.join(WINDOWS)}")


class _Reads:
    """Reads of ``store``; those without samples encoded once per RATES_FRESH."""

    def __init__(self, store: MemoryShadowStore) -> None:
        self._store = store
        self._encoded: dict[tuple[str, Window], tuple[float, Encoded]] = {}

    def read(self, args: dict[str, Any]) -> Any:
        route, samples, window = args["route"], int(args["samples"]), _window(args["window"])
        if samples > 0:
            return self._store.read_now(route, samples, window).to_dict()
        now = time.monotonic()
        hit = self._encoded.get((route, window))
        if hit is not None and now - hit[0] < RATES_FRESH:
            return hit[1]
        encoded = Encoded(encode(self._store.read_now(route, 0, window).to_dict()))
        self._encoded[(route, window)] = (now, encoded)
        return encoded

    def reset(self, args: dict[str, Any]) -> None:
        route = args["route"]
        self._store.reset_now(route)
        for window in WINDOWS:
            self._encoded.pop((route, window), None)


def shadow_ops(store: MemoryShadowStore) -> dict[str, Operation]:
    """The supervisor's side: one operation per ShadowStore method, on ``store``
    (``StateServer(path, shadow_ops(store))``)."""
    reads = _Reads(store)
    return {
        "shadow_merge": lambda a: store.merge_now(a["route"], Batch.from_dict(a["batch"])),
        "shadow_noise": lambda a: sorted(store.noise_now(a["route"])),
        "shadow_read": reads.read,
        "shadow_routes": lambda a: store.routes_now(),
        "shadow_reset": reads.reset,
    }
