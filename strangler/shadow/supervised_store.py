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
``RouteShadow.to_dict``); the server's side is :func:`shadow_ops`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from strangler.control.supervised import SupervisorLink
from strangler.control.supervised_server import Operation
from strangler.shadow.results import Batch
from strangler.shadow.store import WINDOWS, MemoryShadowStore, RouteShadow, Window


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


def shadow_ops(store: MemoryShadowStore) -> dict[str, Operation]:
    """The supervisor's side: one operation per ShadowStore method, on ``store``
    (``StateServer(path, shadow_ops(store))``)."""
    return {
        "shadow_merge": lambda a: store.merge_now(a["route"], Batch.from_dict(a["batch"])),
        "shadow_noise": lambda a: sorted(store.noise_now(a["route"])),
        "shadow_read": lambda a: store.read_now(
            a["route"], int(a["samples"]), _window(a["window"])
        ).to_dict(),
        "shadow_routes": lambda a: store.routes_now(),
        "shadow_reset": lambda a: store.reset_now(a["route"]),
    }
