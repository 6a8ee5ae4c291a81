"""The upstream timeout for many connections: one periodic check instead of a timer each.

A timer per exchange (a heap push and a cancel) cost more than the rest of a
request's bookkeeping, so busy upstream connections sit in a set that
:class:`Sweep` walks every ``interval`` seconds; a connection in which no byte
moved for its upstream's ``timeout`` is failed (-> 504). A timeout therefore
fires between ``timeout`` and ``timeout + interval`` after the last byte, with
``interval`` = ``timeout / 5`` bounded to 20..500 ms. Nothing here does I/O.
"""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import Protocol

SWEEP_MAX = 0.5
SWEEP_MIN = 0.02


class Timed(Protocol):
    """A busy upstream connection, as the sweep sees it."""

    def check_timeout(self, now: float) -> None:
        """Fail the exchange if nothing moved for its upstream's ``timeout``."""
        ...


def sweep_interval(timeout: float) -> float:
    return min(SWEEP_MAX, max(SWEEP_MIN, timeout / 5))


class Sweep:
    """Busy connections and the task that checks them (started on first use)."""

    def __init__(self, interval: float) -> None:
        self.busy: set[Timed] = set()
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def track(self, conn: Timed) -> None:
        self.busy.add(conn)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            now = monotonic()
            for conn in list(self.busy):
                conn.check_timeout(now)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
