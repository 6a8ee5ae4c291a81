"""The shadow's own tasks: started off the request path, cancelled on close.

A comparison that needs more than a glance, and every mirror that is not
pipelined, runs in a task of its own. :class:`Background` keeps a reference
to each until it ends (the event loop holds only weak ones) and cancels what
is left when the mirror closes. It bounds nothing itself: the in-flight
bounds (:mod:`.bounds`) are checked before anything is started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in a task (called from the running loop)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel(self, timeout: float = 2.0) -> None:
        """Cancel every task still running and give them ``timeout`` to end."""
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
